#!/usr/bin/env python3
"""Writes the two exports of `benches/reconcile_time.sh`: a PSA's approved time and an ERP's
time entries, ROWS rows each, with 0.5% of the rows made into differences of every kind.

    reconcile_data.py --rows 1000000 --out DIR [--seed 7]

DIR/psa.csv: LF line endings, the columns in the contract's order.
DIR/erp.csv: a UTF-8 byte order mark, CRLF line endings, the columns in another order with
two more (invoice_no, and a description that is quoted when it holds a comma, about one row
in twenty, or a line break, one in a thousand), hours and amounts written with other
trailing zeros than the PSA's (7.5 against 7.50, 800 against 800.00: no difference), some
worker ids quoted, and the rows in another order (shuffled).
DIR/manifest.json: the rows of each file and the differences injected, per kind.

Differences, each on its own entry, the same number of each kind: entries only in the PSA
(missing_in_erp), only in the ERP (missing_in_psa), other hours, other amounts in the same
currency, another currency, another worker, project or date (attribute_diff, the three in
turn), and a second row of an entry id (duplicate, half in each file, at a later place in
the file). Plain Python and deterministic for a seed.
"""

import argparse
import json
import os
import random

CURRENCIES = ["EUR", "USD", "GBP", "JPY"]
KINDS = [
    "missing_in_erp",
    "missing_in_psa",
    "hours_diff",
    "amount_diff",
    "currency_diff",
    "attribute_diff",
    "duplicate",
]


def plain(hundredths):
    """A number of hundredths the shortest way: 750 -> '7.5', 800 -> '8', 25 -> '0.25'."""
    whole, cents = divmod(hundredths, 100)
    if cents == 0:
        return str(whole)
    if cents % 10 == 0:
        return f"{whole}.{cents // 10}"
    return f"{whole}.{cents:02d}"


def padded(hundredths):
    """The same number with two decimals: 750 -> '7.50'."""
    whole, cents = divmod(hundredths, 100)
    return f"{whole}.{cents:02d}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = args.rows
    # 0.5% of the rows are differences, the same number of each kind (an even number, so
    # that the duplicates split evenly between the files and both have ROWS rows).
    per_kind = max(2, (rows * 5 // 1000) // len(KINDS) // 2 * 2)
    dup_each = per_kind // 2
    entries = rows + per_kind - dup_each

    workers = max(10, entries // 150)
    projects = max(4, entries // 750)
    worker_rate = [rng.randrange(80, 251) for _ in range(workers)]
    project_currency = [CURRENCIES[rng.randrange(len(CURRENCIES))] for _ in range(projects)]

    # Which entries carry which difference: disjoint, spread over the file.
    chosen = rng.sample(range(entries), per_kind * len(KINDS))
    kind_of = {}
    for i, entry in enumerate(chosen):
        kind_of[entry] = KINDS[i // per_kind]

    psa = []
    erp = []
    psa_dups = []
    erp_dups = []
    attribute_turn = 0
    for e in range(entries):
        entry_id = f"TE-{e:08d}"
        w = rng.randrange(workers)
        p = rng.randrange(projects)
        day = rng.randrange(1, 32)
        hours = rng.randrange(1, 41) * 25  # hundredths: 0.25 to 10.00
        currency = project_currency[p]
        rate = worker_rate[w] * (150 if currency == "JPY" else 1)
        amount = hours * rate  # hundredths of the currency unit
        psa_row = [entry_id, f"W{w:05d}", f"PRJ-{p:04d}", f"2026-03-{day:02d}", plain(hours), padded(amount), currency]
        erp_worker = f"W{w:05d}"
        erp_project = f"PRJ-{p:04d}"
        erp_date = f"2026-03-{day:02d}"
        erp_hours = hours
        erp_amount = amount
        erp_currency = currency
        kind = kind_of.get(e)
        if kind == "hours_diff":
            erp_hours = hours + 25
        elif kind == "amount_diff":
            erp_amount = amount - rng.choice([-1, 1]) * rng.randrange(100, 100_000)
        elif kind == "currency_diff":
            erp_currency = CURRENCIES[(CURRENCIES.index(currency) + 1) % len(CURRENCIES)]
        elif kind == "attribute_diff":
            field = attribute_turn % 3
            attribute_turn += 1
            if field == 0:
                erp_worker = f"W{(w + 1) % workers:05d}"
            elif field == 1:
                erp_project = f"PRJ-{(p + 1) % projects:04d}"
            else:
                erp_date = f"2026-03-{day % 31 + 1:02d}"
        # The ERP writes numbers its own way: no difference.
        erp_hours_text = padded(erp_hours) if rng.random() < 0.3 else plain(erp_hours)
        erp_amount_text = plain(erp_amount) if rng.random() < 0.3 else padded(erp_amount)
        if rng.random() < 0.02:
            erp_worker_text = f'"{erp_worker}"'
        else:
            erp_worker_text = erp_worker
        roll = rng.random()
        if roll < 0.001:
            description = f'"time on {erp_project}\r\nsee the timesheet"'
        elif roll < 0.05:
            description = f'"consulting, {erp_project}, week {day // 7 + 1}"'
        else:
            description = f"consulting {erp_project}"
        # ERP columns: currency, amount, hours, entry_id, date, project_code, invoice_no,
        # worker_id, description.
        erp_row = [
            erp_currency,
            erp_amount_text,
            erp_hours_text,
            entry_id,
            erp_date,
            erp_project,
            f"INV-{erp_project}-2026-03",
            erp_worker_text,
            description,
        ]
        if kind != "missing_in_psa":
            psa.append(psa_row)
        if kind != "missing_in_erp":
            erp.append(erp_row)
        if kind == "duplicate" and len(psa_dups) < dup_each:
            psa_dups.append(psa_row)
        elif kind == "duplicate":
            erp_dups.append(erp_row)

    rng.shuffle(erp)
    # Each duplicate goes in later than a random place, after its first row most of the time.
    for dups, rows_of in ((psa_dups, psa), (erp_dups, erp)):
        for row in dups:
            rows_of.insert(rng.randrange(len(rows_of) // 2, len(rows_of) + 1), row)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "psa.csv"), "w", newline="") as f:
        f.write("entry_id,worker_id,project_code,date,hours,amount,currency\n")
        f.writelines(",".join(row) + "\n" for row in psa)
    with open(os.path.join(args.out, "erp.csv"), "w", newline="", encoding="utf-8-sig") as f:
        f.write("currency,amount,hours,entry_id,date,project_code,invoice_no,worker_id,description\r\n")
        f.writelines(",".join(row) + "\r\n" for row in erp)
    manifest = {
        "psa_rows": len(psa),
        "erp_rows": len(erp),
        "seed": args.seed,
        "injected": {kind: per_kind for kind in KINDS},
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
