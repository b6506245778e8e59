#!/usr/bin/env python3
"""Compares pshub's outcome with a peer's: the summary figures and, line by line, the
invoice lines (kind, quantity, rate, FX rate, amount, currency per (source_id, posting)).

    compare.py (--pshub URL --token T | --pshub-dump FILE) (--peer-url URL | --peer-db FILE | --peer-dump FILE)
               [--json] [--show N]
    compare.py dump --url URL [--token T] > FILE    # a side's summary and lines, to compare later

The verdict is "identical" when the invoice lines, their count, the reversals and the
posted totals per currency are the same on both sides; the other figures (duplicates,
conflicts, quarantined, exceptions per team, approved and held value) are compared and
reported too. Exits 0 when identical, 1 when not, 2 when a side could not be read.
"""

import argparse
import json
import os
import sys
import urllib.request
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

MUST = ("lines_posted", "reversals_posted", "posted_value")
ALSO = ("duplicates_suppressed", "conflicts", "quarantined", "approved_value", "held_value",
        "exceptions_by_owner", "open_exceptions_by_owner")
LINE_FIELDS = ("kind", "project_code", "worker_id", "date", "quantity", "rate", "rate_currency",
               "fx_rate", "amount", "currency")
DECIMALS = ("quantity", "rate", "fx_rate", "amount")


def get(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def paged_lines(base, token):
    cursor = None
    while True:
        url = f"{base}/v1/invoice-lines?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = get(url, token)
        yield from page["items"]
        cursor = page.get("next")
        if not cursor:
            return


def norm_money(totals):
    return {c: Decimal(v) for c, v in (totals or {}).items() if Decimal(v) != 0}


def norm(figure, value):
    if figure.endswith("_value"):
        return norm_money(value)
    return value


def line_key(line):
    return (line["source_id"], int(line["posting"]))


def line_value(line):
    out = []
    for field in LINE_FIELDS:
        v = line.get(field)
        if field in DECIMALS and v is not None:
            v = Decimal(v)
        out.append(v)
    return tuple(out)


def read_side(url=None, token=None, db=None, dump=None):
    """(summary, {(source_id, posting): line}) of one side."""
    if dump:
        with open(dump, encoding="utf-8") as f:
            saved = json.load(f)
        return saved["summary"], {line_key(l): l for l in saved["lines"]}
    if db:
        import ttb
        conn = ttb.connect(db)
        return ttb.summary(conn), {line_key(l): l for l in ttb.lines(conn)}
    base = url.rstrip("/")
    return get(f"{base}/v1/summary", token), {line_key(l): l for l in paged_lines(base, token)}


def dump_main(argv):
    ap = argparse.ArgumentParser(prog="compare.py dump")
    ap.add_argument("--url", required=True)
    ap.add_argument("--token")
    args = ap.parse_args(argv)
    summary, lines = read_side(url=args.url, token=args.token)
    json.dump({"summary": summary, "lines": list(lines.values())}, sys.stdout)
    return 0


def main():
    if sys.argv[1:2] == ["dump"]:
        return dump_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ours_from = ap.add_mutually_exclusive_group(required=True)
    ours_from.add_argument("--pshub", help="pshub's address, http://127.0.0.1:PORT")
    ours_from.add_argument("--pshub-dump", help="pshub's figures saved by `compare.py dump`")
    ap.add_argument("--token", help="a pshub token that may read (with --pshub)")
    peer = ap.add_mutually_exclusive_group(required=True)
    peer.add_argument("--peer-url", help="the FastAPI peer's address")
    peer.add_argument("--peer-db", help="the batch peer's SQLite file")
    peer.add_argument("--peer-dump", help="a peer's figures saved by `compare.py dump`")
    ap.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    ap.add_argument("--show", type=int, default=10, help="differing lines to show (default 10)")
    args = ap.parse_args()
    if args.pshub and not args.token:
        ap.error("--token is needed with --pshub")
    try:
        ours, our_lines = read_side(url=args.pshub, token=args.token, dump=args.pshub_dump)
        theirs, their_lines = read_side(url=args.peer_url, db=args.peer_db, dump=args.peer_dump)
    except Exception as e:  # noqa: BLE001 - any failure to read a side is reported as such
        print(f"compare: could not read both sides: {e}", file=sys.stderr)
        return 2

    differences = []
    for figure in MUST + ALSO:
        a, b = norm(figure, ours.get(figure)), norm(figure, theirs.get(figure))
        if a != b:
            differences.append({"figure": figure, "pshub": ours.get(figure), "peer": theirs.get(figure),
                                "decides": figure in MUST})
    only_pshub = sorted(set(our_lines) - set(their_lines))
    only_peer = sorted(set(their_lines) - set(our_lines))
    differ = sorted(k for k in set(our_lines) & set(their_lines)
                    if line_value(our_lines[k]) != line_value(their_lines[k]))
    pending = [k for k, l in our_lines.items() if l.get("status") not in (None, "posted")]

    def show(keys, side):
        return [{"source_id": k[0], "posting": k[1], **({f: side[k].get(f) for f in LINE_FIELDS})}
                for k in keys[: args.show]]

    identical = not any(d["decides"] for d in differences) and not (only_pshub or only_peer or differ)
    verdict = {
        "identical": identical,
        "pshub_lines": ours.get("lines_posted"),
        "peer_lines": theirs.get("lines_posted"),
        "pshub_reversals": ours.get("reversals_posted"),
        "peer_reversals": theirs.get("reversals_posted"),
        "posted_value": ours.get("posted_value"),
        "differences": differences,
        "lines_only_in_pshub": len(only_pshub),
        "lines_only_in_peer": len(only_peer),
        "lines_that_differ": len(differ),
        "pshub_lines_not_posted": len(pending),
        "examples": {
            "only_in_pshub": show(only_pshub, our_lines),
            "only_in_peer": show(only_peer, their_lines),
            "differ_pshub": show(differ, our_lines),
            "differ_peer": show(differ, their_lines),
        },
    }
    if args.json:
        print(json.dumps(verdict, default=str))
    else:
        print(json.dumps(verdict, indent=2, default=str))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
