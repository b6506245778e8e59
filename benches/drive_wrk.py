#!/usr/bin/env python3
"""Runs wrk with one_event_per_request.lua and times it from the script's marks.

    drive_wrk.py --url URL --file work.jsonl --connections C [--threads T] [--token TOK] [--path /v1/hooks/psa]
                 [--timeout SECONDS] [--json]

wrk sleeps for its whole -d duration even when every thread has stopped, so this driver
reads the threads' marks on wrk's stderr as they come: the clock starts at the first
WRK_THREAD_READY (thread 0 sends right after it) and stops at the last WRK_THREAD_DONE
(every event of that thread answered). Then it interrupts wrk (SIGINT), which prints its
latency distribution and the script's WRK_RESULT line. Prints one JSON object: events/s,
p50/p90/p99 in ms, and what wrk and the script counted. Exits 1 when not every event was
sent and answered with HTTP 200, or when wrk reported socket errors.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--connections", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--token", default="")
    ap.add_argument("--path", default="/v1/events",
                    help="where to post: /v1/events, or a webhook such as /v1/hooks/psa (then FILE holds signed requests)")
    ap.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    ap.add_argument("--wrk-timeout", default="30s", help="wrk's --timeout per request (default 30s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.connections < 1 or args.threads < 1:
        ap.error("--connections and --threads must be at least 1")
    threads = min(args.threads, args.connections)
    script = os.path.join(HERE, "one_event_per_request.lua")
    command = ["wrk", "-t", str(threads), "-c", str(args.connections), "-d", f"{int(args.timeout) + 60}s",
               "--timeout", args.wrk_timeout, "--latency", "-s", script, args.url,
               "--", os.path.abspath(args.file), str(threads), args.token, args.path]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop_wrk(signum, _frame):
        # Stopped from outside (the bench's trap): wrk goes with us, never left running.
        wrk.kill()
        wrk.wait()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop_wrk)
    signal.signal(signal.SIGINT, stop_wrk)
    marks = {"ready": [], "done": []}
    notes = []
    all_done = threading.Event()

    def read_stderr():
        for line in wrk.stderr:
            now = time.perf_counter()
            if line.startswith("WRK_THREAD_READY"):
                marks["ready"].append(now)
            elif line.startswith("WRK_THREAD_DONE"):
                marks["done"].append(now)
                if len(marks["done"]) == threads:
                    all_done.set()
            elif line.strip():
                notes.append(line.rstrip())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    finished = all_done.wait(args.timeout)
    if wrk.poll() is None:
        wrk.send_signal(signal.SIGINT)
    try:
        out, _ = wrk.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        wrk.kill()
        out, _ = wrk.communicate()
    reader.join(timeout=5)
    result = None
    for line in out.splitlines():
        if line.startswith("WRK_RESULT "):
            result = json.loads(line[len("WRK_RESULT "):])
    seconds = (max(marks["done"]) - min(marks["ready"])) if finished and marks["ready"] else None
    figures = {
        "connections": args.connections,
        "threads": threads,
        "complete": bool(finished),
        "seconds": round(seconds, 3) if seconds else None,
        "events": result["events_sent"] if result else None,
        "events_per_sec": round(result["answered"] / seconds) if result and seconds else None,
        "p50_ms": result["p50_us"] / 1000 if result else None,
        "p90_ms": result["p90_us"] / 1000 if result else None,
        "p99_ms": result["p99_us"] / 1000 if result else None,
        "max_ms": result["max_us"] / 1000 if result else None,
        "wrk": result,
        "wrk_stderr": notes[:10],
        "wrk_exit": wrk.returncode,
    }
    problems = []
    if not finished:
        problems.append(f"not every thread finished within {args.timeout} s")
    if result is None:
        problems.append("wrk printed no WRK_RESULT")
    else:
        if result["events_sent"] != result["events_in_file"]:
            problems.append(f"sent {result['events_sent']} of {result['events_in_file']} events")
        if result["answered"] != result["events_sent"]:
            problems.append(f"{result['answered']} answers for {result['events_sent']} events")
        if result["non_200"]:
            problems.append(f"{result['non_200']} answers were not HTTP 200")
        if result["unmatched"]:
            problems.append(f"{result['unmatched']} answers named no event in flight")
        errors = {k: v for k, v in result["errors"].items() if v}
        if errors:
            problems.append(f"wrk socket errors: {errors}")
    figures["problems"] = problems
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
