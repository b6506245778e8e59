#!/usr/bin/env python3
"""Sends a JSON-lines file to POST /v1/events in batches, one batch in flight at a time, in
file order: the reference sender that batch.sh --sender in-order uses to tell the hub's
outcome apart from the reordering of `pshub events send --parallel N`.

    send_in_order.py --url URL --token T FILE [--batch 1000]

Prints the tally of statuses as `pshub events send` does (`sent: accepted N, ...`).
"""

import argparse
import json
import sys
import urllib.request
from collections import Counter


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    if not 1 <= args.batch <= 10_000:
        ap.error("--batch: from 1 to 10,000")
    endpoint = args.url.rstrip("/") + "/v1/events"
    tally = Counter()

    def post(lines):
        body = ("[" + ",".join(lines) + "]").encode()
        request = urllib.request.Request(endpoint, data=body, headers={
            "Authorization": f"Bearer {args.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            results = json.load(response)["results"]
        if len(results) != len(lines):
            sys.exit(f"the hub answered {len(results)} results for {len(lines)} events")
        tally.update(r.get("status", "?") for r in results)

    batch = []
    with open(args.file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                batch.append(line)
            if len(batch) == args.batch:
                post(batch)
                batch = []
    if batch:
        post(batch)
    print("sent: " + ", ".join(f"{status} {n}" for status, n in sorted(tally.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
