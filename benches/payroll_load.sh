#!/usr/bin/env bash
# `pshub load payroll` on a file of N rows (default 1,000,000: 83,334 workers x 12 months,
# in month order, as payroll exports come), from start to exit with the rows committed,
# beside the Python peer (benches/peers/payroll_peer.py: csv + sqlite3, one transaction)
# on the same file, interleaved, 3 runs each. Reports wall time, rows/s and peak RSS as
# JSON in benches/.work/payroll_load-N.json, and checks both loaded the same rows.
#
# Usage: benches/payroll_load.sh [--rows N] [--runs R]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

rows=1000000
runs=3
while (($#)); do
    case "$1" in
        --rows) rows="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        *) die "unknown flag $1" ;;
    esac
done
[[ -x "$PSHUB" ]] || (cd "$ROOT" && cargo build --release -p pshub-cli)
command -v /usr/bin/time >/dev/null || die "GNU time (/usr/bin/time) is needed: apt-get install time"
mkdir -p "$WORK"
file="$WORK/payroll-$rows.csv"
if [[ ! -s "$file" ]]; then
    log "writing $file"
    python3 - "$file" "$rows" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
workers = -(-n // 12)
with open(path, "w") as f:
    f.write("worker_id,period,gross_cost,currency\n")
    written = 0
    for month in range(1, 13):
        for w in range(1, workers + 1):
            if written == n:
                break
            f.write(f"W{w:06d},2026-{month:02d},{random.randint(3000, 9000)}.{random.randint(0, 99):02d},EUR\n")
            written += 1
PY
fi

# measure NAME CMD...: one run, as "seconds peak_kib".
measure() {
    local out="$WORK/payroll-time.txt"
    /usr/bin/time -f '%e %M' -o "$out" "$@" >"$WORK/payroll-out.json" 2>"$WORK/payroll-err.txt" \
        || { cat "$WORK/payroll-err.txt" >&2; die "$* failed"; }
    cat "$out"
}

pshub_runs=()
peer_runs=()
for run in $(seq "$runs"); do
    dir="$WORK/payroll-store"
    rm -rf "$dir"
    pshub_runs+=("$(measure "$PSHUB" load payroll "$file" --data-dir "$dir" --json)")
    pshub_loaded=$(jq .loaded "$WORK/payroll-out.json")
    rm -f "$WORK/payroll-peer.sqlite"*
    peer_runs+=("$(measure python3 "$BENCHES/peers/payroll_peer.py" "$file" "$WORK/payroll-peer.sqlite")")
    peer_loaded=$(jq .loaded "$WORK/payroll-out.json")
    [[ "$pshub_loaded" == "$peer_loaded" ]] || die "pshub loaded $pshub_loaded rows, the peer $peer_loaded"
    log "run $run: pshub ${pshub_runs[-1]}, peer ${peer_runs[-1]} (seconds, peak KiB); $pshub_loaded rows each"
done
rm -rf "$WORK/payroll-store" "$WORK/payroll-peer.sqlite"*

python3 - "$rows" "$WORK/payroll_load-$rows.json" "${pshub_runs[*]}" "${peer_runs[*]}" <<'PY'
import json, statistics, sys
rows, out = int(sys.argv[1]), sys.argv[2]
def runs(text):
    values = [float(v) for v in text.split()]
    return list(zip(values[0::2], values[1::2]))
def summary(name, measured):
    seconds = statistics.median(s for s, _ in measured)
    peak = max(k for _, k in measured) / 1024
    return {"who": name, "median_seconds": round(seconds, 3), "rows_per_second": round(rows / seconds),
            "peak_mb": round(peak, 1), "runs_seconds": [s for s, _ in measured]}
pshub, peer = summary("pshub load payroll", runs(sys.argv[3])), summary("python csv + sqlite3", runs(sys.argv[4]))
report = {"rows": rows, "pshub": pshub, "peer": peer,
          "ratio": round(peer["median_seconds"] / pshub["median_seconds"], 2)}
json.dump(report, open(out, "w"), indent=2)
print(json.dumps(report, indent=2))
PY
