#!/usr/bin/env python3
"""The DuckDB peer of `pshub reconcile time`, and the check of the two against each other.

    duckdb_reconcile.py run --psa PSA.csv --erp ERP.csv --out DIR
        Reads both files with read_csv, every column typed (entry_id, worker_id,
        project_code VARCHAR, date DATE, hours and amount DECIMAL(18,6), currency VARCHAR,
        other columns VARCHAR; no type detection), numbers the rows in file order
        (row_number() OVER ()) and per entry id, joins the first row of each id with a FULL
        OUTER JOIN on entry_id (later rows are duplicates), and writes the differences to
        DIR/differences.csv with pshub's first eleven columns, in one statement. (Loading
        into tables first, CREATE TABLE AS read_csv, and numbering by rowid was slower.) Prints one JSON object: `seconds` (connect to the end of the
        COPY, measured inside the process, so Python's start and `import duckdb` are not
        counted), `counts` and `amounts` per kind, read back from the written file after
        the clock stopped.

    duckdb_reconcile.py compare --pshub PSHUB.json --duckdb DUCKDB.json [--manifest M.json]
        Exits 1, naming what differs, unless pshub's counts and amounts per kind and currency
        equal DuckDB's (as decimals: 12.50 equals 12.5) and, given a manifest, the counts
        equal the differences the generator injected.
"""

import argparse
import json
import sys
import time
from decimal import Decimal

KINDS = [
    "missing_in_erp",
    "missing_in_psa",
    "hours_diff",
    "amount_diff",
    "currency_diff",
    "attribute_diff",
    "duplicate",
]
AMOUNT_KINDS = ["missing_in_erp", "missing_in_psa", "amount_diff", "duplicate"]
TYPES = {
    "entry_id": "VARCHAR",
    "worker_id": "VARCHAR",
    "project_code": "VARCHAR",
    "date": "DATE",
    "hours": "DECIMAL(18,6)",
    "amount": "DECIMAL(18,6)",
    "currency": "VARCHAR",
}


def columns_of(path):
    """The file's columns in order, each with its type (VARCHAR for the extra ones)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = f.readline().rstrip("\r\n").split(",")
    return {name: TYPES.get(name, "VARCHAR") for name in header}


def read_csv(path):
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in columns_of(path).items())
    return (
        f"read_csv('{path}', header = true, delim = ',', quote = '\"', escape = '\"', "
        f"auto_detect = false, columns = {{{columns}}})"
    )


def differences_sql(psa, erp, out):
    """One statement: both files read typed, numbered in file order, the first row of each
    id joined FULL OUTER, the joined rows that differ kept once (MATERIALIZED), and one
    output row per difference, as pshub writes them (its first eleven columns)."""
    side = "entry_id, worker_id, project_code, date, hours, amount, currency"
    numbered = "SELECT *, row_number() OVER (PARTITION BY entry_id ORDER BY r) AS k FROM " \
        "(SELECT {side}, row_number() OVER () AS r FROM {source})"
    both = "p_id IS NOT NULL AND e_id IS NOT NULL"
    values = "p_hours, e_hours, p_amount, e_amount, p_currency, e_currency"
    return f"""
COPY (
  WITH p_all AS MATERIALIZED ({numbered.format(side=side, source=read_csv(psa))}),
       e_all AS MATERIALIZED ({numbered.format(side=side, source=read_csv(erp))}),
       j AS MATERIALIZED (
         SELECT p.entry_id AS p_id, e.entry_id AS e_id,
                p.worker_id AS p_worker, e.worker_id AS e_worker,
                p.project_code AS p_project, e.project_code AS e_project,
                p.date AS p_date, e.date AS e_date,
                p.hours AS p_hours, e.hours AS e_hours,
                p.amount AS p_amount, e.amount AS e_amount,
                p.currency AS p_currency, e.currency AS e_currency
         FROM (SELECT * FROM p_all WHERE k = 1) p
         FULL OUTER JOIN (SELECT * FROM e_all WHERE k = 1) e ON p.entry_id = e.entry_id
         WHERE p.entry_id IS NULL OR e.entry_id IS NULL OR p.hours <> e.hours
            OR p.currency <> e.currency OR p.amount <> e.amount OR p.worker_id <> e.worker_id
            OR p.project_code <> e.project_code OR p.date <> e.date)
  SELECT 'missing_in_erp' AS kind, p_id AS entry_id, 'psa' AS side, p_hours AS psa_hours,
         NULL AS erp_hours, p_amount AS psa_amount, NULL AS erp_amount,
         p_currency AS psa_currency, NULL AS erp_currency, p_amount AS amount,
         p_currency AS currency
    FROM j WHERE e_id IS NULL
  UNION ALL SELECT 'missing_in_psa', e_id, 'erp', NULL, e_hours, NULL, e_amount, NULL,
         e_currency, e_amount, e_currency FROM j WHERE p_id IS NULL
  UNION ALL SELECT 'hours_diff', p_id, 'both', {values}, NULL, NULL
    FROM j WHERE {both} AND p_hours <> e_hours
  UNION ALL SELECT 'currency_diff', p_id, 'both', {values}, NULL, NULL
    FROM j WHERE {both} AND p_currency <> e_currency
  UNION ALL SELECT 'amount_diff', p_id, 'both', {values}, p_amount - e_amount, p_currency
    FROM j WHERE {both} AND p_currency = e_currency AND p_amount <> e_amount
  UNION ALL SELECT 'attribute_diff', p_id, 'both', {values}, NULL, NULL
    FROM j WHERE {both} AND p_worker <> e_worker
  UNION ALL SELECT 'attribute_diff', p_id, 'both', {values}, NULL, NULL
    FROM j WHERE {both} AND p_project <> e_project
  UNION ALL SELECT 'attribute_diff', p_id, 'both', {values}, NULL, NULL
    FROM j WHERE {both} AND p_date <> e_date
  UNION ALL SELECT 'duplicate', entry_id, 'psa', hours, NULL, amount, NULL, currency, NULL,
         amount, currency FROM p_all WHERE k > 1
  UNION ALL SELECT 'duplicate', entry_id, 'erp', NULL, hours, NULL, amount, NULL, currency,
         amount, currency FROM e_all WHERE k > 1
) TO '{out}' (HEADER, DELIMITER ',')
"""


def run(args):
    import os

    import duckdb

    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, "differences.csv")
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(differences_sql(args.psa, args.erp, out))
    seconds = time.perf_counter() - started
    # Untimed: what was written, per kind.
    counts = {kind: 0 for kind in KINDS}
    for kind, n in con.execute(
        f"SELECT kind, count(*) FROM read_csv('{out}', header = true, all_varchar = true) GROUP BY kind"
    ).fetchall():
        counts[kind] = n
    amounts = {kind: {} for kind in AMOUNT_KINDS}
    for kind, currency, total in con.execute(
        f"SELECT kind, currency, sum(CAST(amount AS DECIMAL(38,6))) FROM read_csv('{out}', "
        "header = true, all_varchar = true) WHERE amount IS NOT NULL GROUP BY kind, currency"
    ).fetchall():
        amounts[kind][currency] = str(total)
    print(json.dumps({"seconds": seconds, "counts": counts, "amounts": amounts}))


def compare(args):
    with open(args.pshub) as f:
        pshub = json.load(f)
    with open(args.duckdb) as f:
        duck = json.load(f)
    problems = []
    for kind in KINDS:
        ours, theirs = pshub["counts"].get(kind), duck["counts"].get(kind)
        if ours != theirs:
            problems.append(f"{kind}: pshub counts {ours}, DuckDB {theirs}")
    for kind in AMOUNT_KINDS:
        ours = {c: Decimal(v) for c, v in pshub["amounts"].get(kind, {}).items()}
        theirs = {c: Decimal(v) for c, v in duck["amounts"].get(kind, {}).items()}
        if ours != theirs:
            problems.append(f"{kind} amounts: pshub {ours}, DuckDB {theirs}")
    if args.manifest:
        with open(args.manifest) as f:
            injected = json.load(f)["injected"]
        for kind in KINDS:
            if pshub["counts"].get(kind) != injected[kind]:
                problems.append(f"{kind}: pshub counts {pshub['counts'].get(kind)}, injected {injected[kind]}")
    for problem in problems:
        print(f"differs: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--psa", required=True)
    p.add_argument("--erp", required=True)
    p.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--pshub", required=True)
    c.add_argument("--duckdb", required=True)
    c.add_argument("--manifest")
    args = parser.parse_args()
    run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    main()
