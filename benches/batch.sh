#!/usr/bin/env bash
# Batch over HTTP: `pshub events send work.jsonl --parallel 4` against the Python batch peer.
#
#   benches/batch.sh [--events N] [--parallel 4] [--batch 1000] [--sender events-send|in-order]
#                    [--pshub-port 18080] [--keep]
#
# pshub: a fresh store, `pshub serve` (release build), an admin token, reference.jsonl sent
# (untimed); then, timed, `pshub events send work.jsonl --parallel P --batch B`: from the
# first send until every event is acknowledged (durably recorded), and until pshub has
# settled (GET /v1/summary: every event received, nothing undelivered or blocked; the lines
# are posted to the sandbox ERP). The Python batch peer (peers/batch_peer.py) runs the same
# files: reference.jsonl, then work.jsonl timed, SQLite WAL, one transaction per 1,000
# events. Then the invoice lines and totals per currency of the two are compared. Prints a
# table; the JSON of the run is kept in benches/.work/batch-N.json.
#
# --events N is the dataset's size in entries, as `pshub bench time-to-bill --entries N`.
# --sender in-order sends work.jsonl with send_in_order.py instead (one batch in flight, in
# file order), to tell the hub's outcome apart from the order in which the sender delivers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

entries=200000
parallel=4
batch=1000
pshub_port=18080
sender="events-send"
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
    --events) entries="${2:-}"; shift 2 ;;
    --parallel) parallel="${2:-}"; shift 2 ;;
    --batch) batch="${2:-}"; shift 2 ;;
    --sender) sender="${2:-}"; shift 2 ;;
    --pshub-port) pshub_port="${2:-}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ "$entries" =~ ^[1-9][0-9]*$ ]] || die "--events: '$entries' is not a positive whole number"
[[ "$parallel" =~ ^[1-9][0-9]*$ ]] || die "--parallel: '$parallel' is not a positive whole number"
[[ "$batch" =~ ^[1-9][0-9]*$ ]] || die "--batch: '$batch' is not a positive whole number"
[[ "$pshub_port" =~ ^[0-9]+$ ]] || die "--pshub-port takes a port number"
[[ "$sender" == events-send || "$sender" == in-order ]] || die "--sender: '$sender' is not events-send or in-order"
require_tools
mkdir -p "$WORK"

load_dataset "$entries"
pshub_url="http://127.0.0.1:$pshub_port"
report="$WORK/batch-$entries.json"
failed=0

# pshub
dir="$WORK/pshub-batch"
start_pshub "$dir" "$pshub_port"
log "pshub: $reference_events reference events"
send_file "$pshub_url" "$PSHUB_TOKEN" "$data/reference.jsonl" --batch 10000 --parallel 1
wait_settled "$pshub_url" "$PSHUB_TOKEN" "$reference_events" 120 ||
    die "pshub did not settle after the reference data"
if [[ "$sender" == events-send ]]; then
    how="pshub events send --parallel $parallel --batch $batch"
    log "pshub: $work_events work events with $how"
    started=$(now)
    send_file "$pshub_url" "$PSHUB_TOKEN" "$data/work.jsonl" --parallel "$parallel" --batch "$batch"
    sent="$SENT"
else
    how="send_in_order.py --batch $batch (one batch in flight, in file order)"
    log "pshub: $work_events work events with $how"
    started=$(now)
    run "$WORK/send.out" python3 "$BENCHES/send_in_order.py" --url "$pshub_url" --token "$PSHUB_TOKEN" \
        --batch "$batch" "$data/work.jsonl" || die "send_in_order.py failed"
    sent="$(cat "$WORK/send.out")"
fi
acknowledged=$(now)
finish_pshub "$pshub_url" "$dir"
ack_seconds=$(echo "$acknowledged - $started" | bc)
settle_seconds=$(echo "$settled_at - $started" | bc)

# the Python batch peer
db="$WORK/batch-peer.sqlite"
SCRATCH_DIRS+=("$db" "$db-wal" "$db-shm" "$db.json" "$db.verdict.json")
log "Python batch peer: the same files"
run "$db.json" "$VENV_PY" "$BENCHES/peers/batch_peer.py" --data "$data" --db "$db" --json || die "the batch peer failed"
peer_run="$(cat "$db.json")"
run "$db.verdict.json" python3 "$BENCHES/compare.py" --pshub-dump "$dir/dump.json" --peer-db "$db" --json || failed=1
verdict="$(cat "$db.verdict.json")"
[[ -n "$verdict" ]] || verdict='{"identical": false, "error": "compare.py could not read both sides"}'

jq -n --argjson work "$work_events" --arg sent "$sent" --arg how "$how" --argjson parallel "$parallel" --argjson batch "$batch" \
    --argjson ack "$ack_seconds" --argjson settle "$settle_seconds" --argjson settled "$settled" \
    --argjson summary "$SUMMARY" --arg rss "$pshub_rss" --argjson errors "$server_errors" \
    --argjson peer "$peer_run" --argjson verdict "$verdict" \
    '{work_events: $work,
      pshub: {sender: $how, parallel: $parallel, batch: $batch, sent: $sent, acknowledged_seconds: $ack,
              events_per_sec_acknowledged: (($work / $ack) | round), settled: $settled,
              settled_seconds: $settle, events_per_sec_settled: (($work / $settle) | round),
              peak_rss_mb: $rss, serve_log_error_lines: $errors, summary: $summary},
      peer: $peer, comparison: $verdict}' >"$report"

echo
echo "Batch: $work_events work events (dataset of $entries entries), $(nproc) cores"
jq -r '"  pshub, \(.pshub.sender): \(.pshub.events_per_sec_acknowledged) events/s acknowledged (\(.pshub.acknowledged_seconds | tostring | .[0:6]) s), \(.pshub.events_per_sec_settled) events/s settled (\(.pshub.settled_seconds | tostring | .[0:6]) s), peak RSS \(.pshub.peak_rss_mb) MB",
       "  Python batch peer (SQLite WAL, a transaction per \(.peer.batch)):  \(.peer.events_per_sec) events/s (\(.peer.seconds) s), peak RSS \(.peer.peak_rss_mb) MB",
       "  pshub / peer: \((.pshub.events_per_sec_acknowledged / .peer.events_per_sec * 100 | round) / 100)x acknowledged, \((.pshub.events_per_sec_settled / .peer.events_per_sec * 100 | round) / 100)x settled",
       (if .comparison.identical then "  identical outputs: yes (\(.comparison.pshub_lines) lines, \(.comparison.pshub_reversals) reversals; \(.comparison.posted_value | to_entries | map("\(.key) \(.value)") | join(", ")))"
        else "  identical outputs: NO: pshub \(.comparison.pshub_lines) lines and \(.comparison.pshub_reversals) reversals, peer \(.comparison.peer_lines) and \(.comparison.peer_reversals); \(.comparison.lines_only_in_pshub) lines only in pshub, \(.comparison.lines_only_in_peer) only in the peer, \(.comparison.lines_that_differ) differ (see the JSON: comparison.examples)" end),
       "  answers to the sender: \(.pshub.sent)"' "$report"
echo "details: $report"
exit "$failed"
