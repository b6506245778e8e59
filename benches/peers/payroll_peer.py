"""The payroll-load peer: Python's csv module and sqlite3 doing what `pshub load payroll`
does, as plainly as they can: read the file, check each row (worker id, YYYY-MM period,
a non-negative decimal cost, a currency code), and upsert one actual per (period, worker)
in one transaction with a full fsync. It reports its row counts as JSON on stdout.

Usage: payroll_peer.py FILE.csv DB.sqlite
"""

import csv
import json
import re
import sqlite3
import sys
from decimal import Decimal, InvalidOperation

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
COST = re.compile(r"^\d+(\.\d+)?$")


def main():
    path, db = sys.argv[1], sys.argv[2]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA page_size = 16384;"
        "CREATE TABLE IF NOT EXISTS payroll_actuals (period TEXT NOT NULL, worker_id TEXT NOT NULL,"
        " gross_cost TEXT NOT NULL, currency TEXT NOT NULL, line INTEGER NOT NULL,"
        " PRIMARY KEY (period, worker_id)) WITHOUT ROWID;"
    )
    rows = rejected = 0
    good = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        at = [header.index(c) for c in ("worker_id", "period", "gross_cost", "currency")]
        for n, record in enumerate(reader, start=2):
            rows += 1
            try:
                worker, period, cost, currency = (record[i] for i in at)
                if not worker or not PERIOD.match(period) or not COST.match(cost):
                    raise ValueError
                Decimal(cost)
                if len(currency) != 3 or not currency.isupper():
                    raise ValueError
            except (ValueError, IndexError, InvalidOperation):
                rejected += 1
                continue
            good.append((period, worker, str(Decimal(cost).normalize()), currency, n))
    conn.execute("BEGIN")
    before = conn.total_changes
    conn.executemany(
        "INSERT INTO payroll_actuals VALUES (?, ?, ?, ?, ?) ON CONFLICT (period, worker_id) DO UPDATE"
        " SET gross_cost = excluded.gross_cost, currency = excluded.currency, line = excluded.line"
        " WHERE gross_cost <> excluded.gross_cost OR currency <> excluded.currency",
        good,
    )
    loaded = conn.total_changes - before
    conn.execute("COMMIT")
    print(json.dumps({"rows": rows, "loaded": loaded, "rejected": rejected}))


if __name__ == "__main__":
    main()
