#!/usr/bin/env python3
"""The Python batch peer: reads reference.jsonl then work.jsonl and runs pshub's
time-to-bill work on every event (benches/peers/ttb.py), on SQLite in WAL mode with
synchronous=FULL, one transaction per 1,000 events.

    batch_peer.py --data DIR --db FILE [--batch 1000] [--json]
    batch_peer.py --db FILE --summary          # the figures of a finished run
    batch_peer.py --db FILE --lines            # every invoice line, one JSON object a line

It prints the figures to compare with pshub's GET /v1/summary, and how fast the work file
went (events/s, from the first work event read to the last commit).
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ttb  # noqa: E402


def run_file(hub, path, batch):
    count = 0
    hub.begin()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            hub.ingest(line)
            count += 1
            if count % batch == 0:
                hub.commit()
                hub.begin()
    hub.commit()
    return count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder with reference.jsonl and work.jsonl (pshub bench generate)")
    ap.add_argument("--db", required=True, help="SQLite file of the peer (replaced by a run)")
    ap.add_argument("--batch", type=int, default=1000, help="events per transaction (default 1000)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--summary", action="store_true", help="print the figures of the store and exit")
    ap.add_argument("--lines", action="store_true", help="print every invoice line and exit")
    args = ap.parse_args()
    if args.summary or args.lines:
        db = ttb.connect(args.db)
        if args.summary:
            print(json.dumps(ttb.summary(db)))
        else:
            for line in ttb.lines(db):
                print(json.dumps(line))
        return 0
    if not args.data:
        ap.error("--data is required for a run")
    if args.batch < 1:
        ap.error("--batch must be at least 1")
    reference = os.path.join(args.data, "reference.jsonl")
    work = os.path.join(args.data, "work.jsonl")
    for path in (reference, work):
        if not os.path.isfile(path):
            ap.error(f"{path} is missing; write it with `pshub bench generate --out {args.data}`")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    db = ttb.connect(args.db, "FULL")
    hub = ttb.Hub(db)
    reference_events = run_file(hub, reference, args.batch)
    started = time.perf_counter()
    work_events = run_file(hub, work, args.batch)
    seconds = time.perf_counter() - started
    figures = {
        "peer": "python-batch",
        "reference_events": reference_events,
        "work_events": work_events,
        "seconds": round(seconds, 3),
        "events_per_sec": round(work_events / seconds) if seconds > 0 else None,
        "batch": args.batch,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "summary": ttb.summary(db),
    }
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
