#!/usr/bin/env bash
# Approved entries posted into a real Tryton 8.2, beside Tryton's own batched ceiling.
#
#   benches/tryton_post.sh [--entries 100000] [--batch 500] [--runs 1] [--pshub-port 18090] [--keep]
#
# Each run, interleaved, on a fresh copy of the accounting baseline (tests/tryton/setup.sh):
# - the ceiling (peers/tryton_peer.py ceiling): the same 10 projects, tasks and 20
#   employees made in Tryton, then the entries created as timesheet lines BATCH to a call,
#   back to back, by a client that does nothing else;
# - pshub: `pshub serve --config` (examples/tryton.toml with batch_size = BATCH and
#   invoicing off), the reference data sent and in Tryton (untimed), then, timed,
#   `pshub events send work.jsonl --parallel 4` until Tryton holds every line (counted in
#   Tryton's database file, read-only, every 0.1 s). The projects' tasks (one per rate)
#   are made on the first lines, inside the timed part; the ceiling makes them before.
# The entries come in date order through October, as a PSA sends approvals.
# Prints both rates and their ratio; the JSON is kept in benches/.work/tryton_post-N.json.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

entries=100000
batch=500
runs=1
pshub_port=18090
while (($#)); do
    case "$1" in
    --entries) entries="${2:-}"; shift 2 ;;
    --batch) batch="${2:-}"; shift 2 ;;
    --runs) runs="${2:-}"; shift 2 ;;
    --pshub-port) pshub_port="${2:-}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) die "unknown argument '$1'" ;;
    esac
done
[[ "$entries" =~ ^[1-9][0-9]*$ ]] || die "--entries: '$entries' is not a positive whole number"
[[ "$batch" =~ ^[1-9][0-9]*$ ]] || die "--batch: '$batch' is not a positive whole number"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs: '$runs' is not a positive whole number"
[[ -x "$PSHUB" ]] || (cd "$ROOT" && cargo build --release -p pshub-cli)
command -v jq >/dev/null || die "jq is missing: run benches/setup.sh"
"$ROOT/tests/tryton/setup.sh"
TRYTON_ROOT="${TRYTON_ROOT:-$ROOT/target/tryton}"
PEER="$BENCHES/peers/tryton_peer.py"
mkdir -p "$WORK"
data="$WORK/tryton-data-$entries"
if [[ ! -s "$data/work.jsonl" ]]; then
    log "writing $entries entries to $data"
    python3 "$PEER" data "$data" "$entries"
fi
reference_events=$(grep -c . "$data/reference.jsonl")

TRYTON_PID=""
# start_tryton DIR PORT: a fresh copy of the baseline served on PORT.
start_tryton() {
    local dir="$1" port="$2"
    rm -rf "$dir"
    mkdir -p "$dir"
    SCRATCH_DIRS+=("$dir")
    cp "$TRYTON_ROOT/baseline/tryton.sqlite" "$dir/tryton.sqlite"
    printf '[database]\nuri = sqlite://\npath = %s\n[web]\nlisten = 127.0.0.1:%s\n[session]\ntimeout = 3600\n' \
        "$dir" "$port" >"$dir/trytond.conf"
    "$TRYTON_ROOT/venv/bin/trytond" -c "$dir/trytond.conf" -d tryton >"$dir/server.log" 2>&1 &
    TRYTON_PID=$!
    STARTED_PIDS+=("$TRYTON_PID")
    wait_http_post "http://127.0.0.1:$port/rpc/" 60 || die "trytond did not start: $(tail -n 5 "$dir/server.log")"
}
wait_http_post() {
    for _ in $(seq $(($2 * 10))); do
        curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            -d '{"id":0,"method":"common.server.version","params":[]}' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

tryton_port=$((pshub_port + 1))
tryton_url="http://127.0.0.1:$tryton_port"
config="$WORK/tryton-bench.toml"
sed -e "s/^batch_size = .*/batch_size = $batch/" -e 's/^enabled = true/enabled = false/' \
    "$ROOT/examples/tryton.toml" >"$config"
export PSHUB_TRYTON_URL="$tryton_url" PSHUB_TRYTON_DATABASE=tryton PSHUB_TRYTON_USER=pshub \
    PSHUB_TRYTON_PASSWORD=pshub-connector

peer_runs=()
pshub_runs=()
for run_n in $(seq "$runs"); do
    log "run $run_n: Tryton's ceiling, $entries lines, $batch a call"
    start_tryton "$WORK/tryton-peer" "$tryton_port"
    run "$WORK/tryton-ceiling.json" python3 "$PEER" ceiling "$tryton_url" "$entries" "$batch" || die "the ceiling run failed"
    peer_runs+=("$(cat "$WORK/tryton-ceiling.json")")
    stop "$TRYTON_PID"

    log "run $run_n: pshub, $entries approved entries into Tryton"
    start_tryton "$WORK/tryton-pshub" "$tryton_port"
    dir="$WORK/pshub-tryton"
    rm -rf "$dir"
    mkdir -p "$dir"
    SCRATCH_DIRS+=("$dir")
    PSHUB_TOKEN="$("$PSHUB" token create --role admin --name bench --data-dir "$dir" 2>/dev/null | tail -n 1)"
    "$PSHUB" serve --config "$config" --listen "127.0.0.1:$pshub_port" --data-dir "$dir" >"$dir/serve.log" 2>&1 &
    PSHUB_PID=$!
    STARTED_PIDS+=("$PSHUB_PID")
    pshub_url="http://127.0.0.1:$pshub_port"
    wait_http "$pshub_url/healthz" 30 || die "pshub serve did not start: $(tail -n 5 "$dir/serve.log")"
    send_file "$pshub_url" "$PSHUB_TOKEN" "$data/reference.jsonl" --parallel 1
    wait_settled "$pshub_url" "$PSHUB_TOKEN" "$reference_events" 120 || die "the reference data did not settle: $SUMMARY"
    python3 "$PEER" provisioned "$tryton_url" 120 || die "the deals and workers did not reach Tryton: $(tail -n 5 "$dir/serve.log")"
    started=$(now)
    send_file "$pshub_url" "$PSHUB_TOKEN" "$data/work.jsonl" --parallel 4 --batch 1000
    acknowledged=$(now)
    run "$WORK/tryton-wait.json" python3 "$PEER" wait "$WORK/tryton-pshub/tryton.sqlite" "$entries" 900 || die "pshub did not post every line: $(tail -n 5 "$dir/serve.log")"
    done_at=$(now)
    rss=$(peak_rss_mb "$PSHUB_PID")
    stop "$PSHUB_PID"
    stop "$TRYTON_PID"
    seconds=$(echo "$done_at - $started" | bc)
    pshub_runs+=("$(jq -n --argjson n "$entries" --argjson s "$seconds" --argjson ack "$(echo "$acknowledged - $started" | bc)" --arg rss "$rss" \
        '{who: "pshub serve with the Tryton connector", lines: $n, seconds: ($s * 100 | round / 100),
          acknowledged_seconds: ($ack * 100 | round / 100), lines_per_second: ($n / $s | round), peak_rss_mb: $rss}')")
    log "run $run_n: ceiling $(jq .lines_per_second <<<"${peer_runs[-1]}") lines/s, pshub $(jq .lines_per_second <<<"${pshub_runs[-1]}") lines/s"
done

report="$WORK/tryton_post-$entries.json"
printf '%s\n' "${peer_runs[@]}" | jq -s . >"$WORK/peer-runs.json"
printf '%s\n' "${pshub_runs[@]}" | jq -s . >"$WORK/pshub-runs.json"
jq -n --argjson batch "$batch" --slurpfile peer "$WORK/peer-runs.json" --slurpfile pshub "$WORK/pshub-runs.json" \
    '($peer[0] | map(.lines_per_second) | sort | .[length / 2 | floor]) as $c
     | ($pshub[0] | map(.lines_per_second) | sort | .[length / 2 | floor]) as $p
     | {batch: $batch, ceiling_runs: $peer[0], pshub_runs: $pshub[0],
        ceiling_median_lines_per_second: $c, pshub_median_lines_per_second: $p,
        pshub_share_of_ceiling: ($p / $c * 1000 | round / 1000)}' >"$report"
echo
echo "Tryton: $entries approved entries, $batch lines a call, $(nproc) cores"
jq -r '"  Tryton ceiling: \(.ceiling_median_lines_per_second) lines/s (median of \(.ceiling_runs | length))",
       "  pshub:          \(.pshub_median_lines_per_second) lines/s (median of \(.pshub_runs | length))",
       "  pshub / ceiling: \(.pshub_share_of_ceiling)"' "$report"
echo "details: $report"
