#!/usr/bin/env bash
# Inbound webhooks against the plain path: one event per HTTP request, driven by wrk, in
# the same run.
#
#   benches/webhook_per_request.sh [--events N] [--connections 64] [--threads 2]
#                                  [--port 18080] [--keep]
#
# The dataset's work events are written out as the signed requests of a PSA in Kantata's
# shape (benches/to_webhooks.py: {id, event, created_at, object} bodies, X-Signature:
# sha256=<HMAC-SHA256 of the body>). For each connection count, twice each, interleaved:
#   plain    fresh store, `pshub serve`, reference data (untimed), then every work event
#            once, one per request, to POST /v1/events;
#   webhook  fresh store, `pshub serve --config benches/webhook.toml`, the same reference
#            data, then every signed request once to POST /v1/hooks/psa, where each is
#            verified, mapped by kantata/*.v1 and recorded as the plain path records it.
# Each run is timed from the first request to the last answer (wrk --latency for p50/p99)
# and waits until the hub has settled; peak RSS is serve's. The invoice lines and totals of
# every webhook run are compared with those of the plain run before it (benches/compare.py).
# Prints a table; the JSON of every run is kept in benches/.work/webhook_per_request-N.json.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

entries=200000
connections=64
threads=2
port=18080
rounds=2
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
    --events) entries="${2:-}"; shift 2 ;;
    --connections) connections="${2:-}"; shift 2 ;;
    --threads) threads="${2:-}"; shift 2 ;;
    --port) port="${2:-}"; shift 2 ;;
    --rounds) rounds="${2:-}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ "$entries" =~ ^[1-9][0-9]*$ ]] || die "--events: '$entries' is not a positive whole number"
[[ "$connections" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--connections: '$connections' is not a list such as 16,64"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads: '$threads' is not a positive whole number"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds: '$rounds' is not a positive whole number"
[[ "$port" =~ ^[0-9]+$ ]] || die "--port takes a port number"
require_tools
mkdir -p "$WORK"

load_dataset "$entries"
url="http://127.0.0.1:$port"
export PSHUB_BENCH_HOOK_SECRET="bench-$(date +%s)"
hooks="$WORK/hooks-$entries.tsv"
SCRATCH_DIRS+=("$hooks")
log "signing $work_events work events as webhook requests"
python3 "$BENCHES/to_webhooks.py" "$data/work.jsonl" "$hooks" --secret "$PSHUB_BENCH_HOOK_SECRET" 2>/dev/null
report="$WORK/webhook_per_request-$entries.json"
echo "[]" >"$report"
failed=0

# one_run PATH FILE CONFIG DIR: one run of serve on a fresh store; leaves its figures in RUN.
one_run() {
    local path="$1" file="$2" config="$3" dir="$4"
    start_pshub "$dir" "$port" "$config"
    send_file "$url" "$PSHUB_TOKEN" "$data/reference.jsonl" --batch 10000 --parallel 1
    wait_settled "$url" "$PSHUB_TOKEN" "$reference_events" 120 || die "pshub did not settle after the reference data"
    run "$dir/wrk.json" python3 "$BENCHES/drive_wrk.py" --url "$url" --file "$file" --path "$path" \
        --connections "$c" --threads "$threads" --token "$PSHUB_TOKEN" --json || failed=1
    RUN="$(cat "$dir/wrk.json")"
    [[ -n "$RUN" ]] || RUN='{"problems": ["drive_wrk.py printed nothing"]}'
    finish_pshub "$url" "$dir"
    RUN="$(jq --argjson summary "$SUMMARY" --arg rss "$pshub_rss" --argjson settled "$settled" \
        --argjson errors "$server_errors" \
        '. + {peak_rss_mb: $rss, settled: $settled, serve_log_error_lines: $errors, summary: $summary}' <<<"$RUN")"
}

IFS=, read -r -a counts <<<"$connections"
for c in "${counts[@]}"; do
    for round in $(seq "$rounds"); do
        log "plain path: $work_events work events to POST /v1/events, $c connections (round $round)"
        one_run /v1/events "$data/work.jsonl" "" "$WORK/pshub-plain-$c"
        plain="$RUN"
        log "webhook: $work_events signed requests to POST /v1/hooks/psa, $c connections (round $round)"
        one_run /v1/hooks/psa "$hooks" "$BENCHES/webhook.toml" "$WORK/pshub-hook-$c"
        hook="$RUN"
        run "$WORK/hook-verdict.json" python3 "$BENCHES/compare.py" --pshub-dump "$WORK/pshub-hook-$c/dump.json" \
            --peer-dump "$WORK/pshub-plain-$c/dump.json" --json || failed=1
        verdict="$(cat "$WORK/hook-verdict.json")"
        [[ -n "$verdict" ]] || verdict='{"identical": false, "error": "compare.py could not read both sides"}'
        jq --argjson c "$c" --argjson round "$round" --argjson plain "$plain" --argjson hook "$hook" \
            --argjson verdict "$verdict" \
            '. + [{connections: $c, round: $round, plain: $plain, webhook: $hook, comparison: $verdict,
                   ratio: (if ($plain.events_per_sec // 0) > 0 then (($hook.events_per_sec // 0) / $plain.events_per_sec) else null end)}]' \
            "$report" >"$report.new" && mv "$report.new" "$report"
    done
done

echo
echo "Webhooks (HMAC-SHA256 verified, mapped kantata/*.v1) beside POST /v1/events: $work_events events, one per request, $(nproc) cores shared with wrk ($threads threads)"
printf '%5s %5s  %11s %7s %7s %8s  %11s %7s %7s %8s  %6s  %s\n' conns round "plain ev/s" p50 p99 "RSS MB" "hook ev/s" p50 p99 "RSS MB" ratio "identical outputs"
jq -r '.[] | [ .connections, .round,
        (.plain.events_per_sec // "-"), (.plain.p50_ms // "-"), (.plain.p99_ms // "-"), (.plain.peak_rss_mb // "-"),
        (.webhook.events_per_sec // "-"), (.webhook.p50_ms // "-"), (.webhook.p99_ms // "-"), (.webhook.peak_rss_mb // "-"),
        ((.ratio // 0) * 100 | round / 100),
        (if .comparison.identical then "yes (\(.comparison.pshub_lines) lines)" else "NO: \(.comparison)" end)
      ] | @tsv' "$report" |
    while IFS=$'\t' read -r conns round pe p50 p99 prss he h50 h99 hrss ratio same; do
        printf '%5s %5s  %11s %7s %7s %8s  %11s %7s %7s %8s  %6s  %s\n' "$conns" "$round" "$pe" "$p50" "$p99" "$prss" "$he" "$h50" "$h99" "$hrss" "$ratio" "$same"
    done
jq -r '.[] | (.plain.problems + .webhook.problems) as $p | select(($p | length) > 0 or (.plain.serve_log_error_lines + .webhook.serve_log_error_lines) > 0) |
        "  problems at \(.connections) connections, round \(.round): \($p), error lines in serve.log: plain \(.plain.serve_log_error_lines), webhook \(.webhook.serve_log_error_lines)"' "$report"
echo "details: $report"
exit "$failed"
