#!/usr/bin/env bash
# One event per HTTP request: pshub serve against the FastAPI peer, driven by wrk.
#
#   benches/per_request.sh [--events N] [--connections 16,64] [--threads 2]
#                          [--pshub-port 18080] [--peer-port 18090] [--keep]
#
# For each connection count: a fresh pshub store and `pshub serve` (release build); an
# admin token; reference.jsonl sent with `pshub events send` (untimed); then wrk with
# one_event_per_request.lua posts every event of work.jsonl exactly once, one per request
# (timed from the first request to the last answer; --latency for p50/p99). The bench waits
# until pshub has settled (GET /v1/summary: every event received, nothing undelivered or
# blocked), saves pshub's figures and lines, and stops it. Then the same for the FastAPI
# peer (reference data POSTed first, the same wrk run), and compares the invoice lines and
# totals per currency of the two. Prints a table; the JSON of every run is kept in
# benches/.work/per_request-N.json.
#
# --events N is the dataset's size in entries, as `pshub bench time-to-bill --entries N`
# (about 0.96 N work events). The machine's cores are shared by the server and wrk.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

entries=200000
connections=16,64
threads=2
pshub_port=18080
peer_port=18090
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
    --events) entries="${2:-}"; shift 2 ;;
    --connections) connections="${2:-}"; shift 2 ;;
    --threads) threads="${2:-}"; shift 2 ;;
    --pshub-port) pshub_port="${2:-}"; shift 2 ;;
    --peer-port) peer_port="${2:-}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ "$entries" =~ ^[1-9][0-9]*$ ]] || die "--events: '$entries' is not a positive whole number"
[[ "$connections" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--connections: '$connections' is not a list such as 16,64"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads: '$threads' is not a positive whole number"
[[ "$pshub_port" =~ ^[0-9]+$ && "$peer_port" =~ ^[0-9]+$ ]] || die "--pshub-port and --peer-port take port numbers"
require_tools
mkdir -p "$WORK"

load_dataset "$entries"
pshub_url="http://127.0.0.1:$pshub_port"
peer_url="http://127.0.0.1:$peer_port"
report="$WORK/per_request-$entries.json"
echo "[]" >"$report"
failed=0

IFS=, read -r -a counts <<<"$connections"
for c in "${counts[@]}"; do
    # pshub
    dir="$WORK/pshub-per-request-$c"
    start_pshub "$dir" "$pshub_port"
    log "pshub: $reference_events reference events"
    send_file "$pshub_url" "$PSHUB_TOKEN" "$data/reference.jsonl" --batch 10000 --parallel 1
    wait_settled "$pshub_url" "$PSHUB_TOKEN" "$reference_events" 120 ||
        die "pshub did not settle after the reference data"
    log "pshub: $work_events work events, one per request, $c connections"
    run "$dir/wrk.json" python3 "$BENCHES/drive_wrk.py" --url "$pshub_url" --file "$data/work.jsonl" \
        --connections "$c" --threads "$threads" --token "$PSHUB_TOKEN" --json || failed=1
    pshub_run="$(cat "$dir/wrk.json")"
    [[ -n "$pshub_run" ]] || pshub_run='{"problems": ["drive_wrk.py printed nothing"]}'
    settle_start=$(now)
    finish_pshub "$pshub_url" "$dir"
    settle_seconds=$(echo "$settled_at - $settle_start" | bc)

    # the FastAPI peer
    db="$WORK/fastapi-$c.sqlite"
    SCRATCH_DIRS+=("$db" "$db-wal" "$db-shm" "$db.log" "$db.wrk.json" "$db.verdict.json")
    start_fastapi "$db" "$peer_port"
    log "FastAPI peer: reference data, then $work_events work events, one per request, $c connections"
    send_file "$peer_url" none "$data/reference.jsonl" --batch 10000 --parallel 1
    run "$db.wrk.json" python3 "$BENCHES/drive_wrk.py" --url "$peer_url" --file "$data/work.jsonl" \
        --connections "$c" --threads "$threads" --json || failed=1
    peer_run="$(cat "$db.wrk.json")"
    [[ -n "$peer_run" ]] || peer_run='{"problems": ["drive_wrk.py printed nothing"]}'
    peer_rss=$(curl -fsS "$peer_url/v1/stats" | jq .peak_rss_mb)
    run "$db.verdict.json" python3 "$BENCHES/compare.py" --pshub-dump "$dir/dump.json" --peer-url "$peer_url" --json || failed=1
    verdict="$(cat "$db.verdict.json")"
    [[ -n "$verdict" ]] || verdict='{"identical": false, "error": "compare.py could not read both sides"}'
    stop "$PEER_PID"

    jq --argjson c "$c" --argjson pshub "$pshub_run" --argjson peer "$peer_run" \
        --argjson summary "$SUMMARY" --argjson verdict "$verdict" \
        --argjson settled "$settled" --argjson settle "$settle_seconds" \
        --arg pshub_rss "$pshub_rss" --arg peer_rss "$peer_rss" --argjson errors "$server_errors" \
        '. + [{connections: $c, pshub: ($pshub + {settled: $settled, settle_seconds: $settle,
               peak_rss_mb: $pshub_rss, serve_log_error_lines: $errors, summary: $summary}),
               peer: ($peer + {peak_rss_mb: $peer_rss}), comparison: $verdict}]' \
        "$report" >"$report.new" && mv "$report.new" "$report"
done

echo
echo "One event per HTTP request: $work_events work events (dataset of $entries entries), $(nproc) cores shared with wrk ($threads threads)"
printf '%-26s %5s  %12s %9s %9s  %12s %9s %9s  %s\n' path conns "pshub ev/s" "p50 ms" "p99 ms" "FastAPI ev/s" "p50 ms" "p99 ms" "identical outputs"
jq -r '.[] | [ "one event per request", .connections,
        (.pshub.events_per_sec // "-"), (.pshub.p50_ms // "-"), (.pshub.p99_ms // "-"),
        (.peer.events_per_sec // "-"), (.peer.p50_ms // "-"), (.peer.p99_ms // "-"),
        (if .comparison.identical then "yes (\(.comparison.pshub_lines) lines, \(.comparison.pshub_reversals) reversals)"
         else "NO: \(.comparison.lines_only_in_pshub) lines only in pshub, \(.comparison.lines_only_in_peer) only in the peer, \(.comparison.lines_that_differ) differ" end)
      ] | @tsv' "$report" |
    while IFS=$'\t' read -r path conns pe p50 p99 fe f50 f99 same; do
        printf '%-26s %5s  %12s %9s %9s  %12s %9s %9s  %s\n' "$path" "$conns" "$pe" "$p50" "$p99" "$fe" "$f50" "$f99" "$same"
    done
jq -r '.[] | "  \(.connections) connections: pshub settled \(.pshub.settle_seconds | tostring | .[0:5]) s after the last answer, peak RSS pshub \(.pshub.peak_rss_mb) MB, FastAPI \(.peer.peak_rss_mb) MB; totals \(.comparison.posted_value | to_entries | map("\(.key) \(.value)") | join(", "))"' "$report"
jq -r '.[] | (.pshub.problems + .peer.problems) as $p | select(($p | length) > 0 or (.pshub.serve_log_error_lines > 0)) |
        "  problems at \(.connections) connections: pshub \(.pshub.problems), peer \(.peer.problems), error lines in serve.log: \(.pshub.serve_log_error_lines)"' "$report"
echo "details: $report"
exit "$failed"
