#!/usr/bin/env python3
"""Turns the dataset's work events into signed webhook requests of a PSA in Kantata's shape.

    to_webhooks.py WORK.jsonl OUT.tsv --secret SECRET

Each canonical event (time_entry.approved/rejected, expense.approved/rejected) becomes the
body a PSA in Kantata's shape would send: {id, event, created_at, object}, where object is
a Kantata time entry (time_in_minutes, date_performed, user_id, workspace_id, billable) or
expense (amount_in_cents in the currency's minor units, date, category, ...). The mappings
kantata/*.v1 turn them back into the same canonical events. Each line of OUT is
`sha256=<hex HMAC-SHA256(secret, body)>` TAB body, for one_event_per_request.lua. A value
the source would not have sent as a number (a malformed amount the dataset has on purpose)
is passed through as its text, so that the mapping refuses it as the plain path does.
"""

import argparse
import hashlib
import hmac
import json
import sys
from decimal import Decimal, InvalidOperation

MINOR_UNITS = {"JPY": 0, "KRW": 0, "CLP": 0, "BHD": 3, "KWD": 3}


def scaled(text, factor):
    """text * factor: a whole number as a JSON number, else as its exact text (which the
    mapping reads as exactly), or the text itself when it is not a number."""
    try:
        value = Decimal(text) * factor
    except (InvalidOperation, TypeError):
        return text
    return int(value) if value == value.to_integral_value() else str(value)


def body_of(event):
    kind = event["type"]
    d = event["data"]
    if kind.startswith("time_entry."):
        obj = {"id": d["entry_id"], "date_performed": d["work_date"],
               "time_in_minutes": scaled(d["hours"], 60), "billable": d["billable"],
               "user_id": d["worker_id"], "workspace_id": d["project_code"]}
    elif kind.startswith("expense."):
        minor = MINOR_UNITS.get(str(d.get("currency")).upper(), 2)
        obj = {"id": d["expense_id"], "date": d["spent_on"], "category": d["category"],
               "amount_in_cents": scaled(d["amount"], 10 ** minor), "currency": d["currency"],
               "billable": d["billable"], "user_id": d["worker_id"],
               "workspace_id": d["project_code"]}
    else:
        raise SystemExit(f"to_webhooks.py: no Kantata shape for {kind}")
    # "id" first: the wrk script reads the first "id" of a body as the event's.
    return json.dumps({"id": event["id"], "event": kind, "created_at": event["occurred_at"],
                       "object": obj}, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work")
    ap.add_argument("out")
    ap.add_argument("--secret", required=True)
    args = ap.parse_args()
    key = args.secret.encode()
    count = 0
    with open(args.work) as src, open(args.out, "w") as out:
        for line in src:
            if not line.strip():
                continue
            body = body_of(json.loads(line))
            signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
            out.write(f"sha256={signature}\t{body}\n")
            count += 1
    print(count, file=sys.stderr)


if __name__ == "__main__":
    main()
