#!/usr/bin/env bash
# Several `pshub serve` processes on one PostgreSQL database, against the Python batch peer.
#
#   benches/postgres_processes.sh [--events N] [--processes 1,2,3] [--pshub-port 18180]
#                                 [--sandbox-port 18170] [--keep]
#
# For each process count P: a fresh database pshub_bench_pP (dropdb, createdb), one
# `pshub sandbox` (fresh data dir) that every hub posts to (PSHUB_SANDBOX_URL), an admin
# token (`pshub token create --store postgres://...`), and P `pshub serve --store
# postgres://.../pshub_bench_pP`, each with its own data dir and port (--pshub-port, +1 for
# each next one). reference.jsonl goes to hub 0 (untimed; the bench waits until every deal
# is provisioned). work.jsonl is split, before the clock starts, into P files by entry (all
# the events of one time entry or expense in one file, in file order); then, timed, P
# `pshub events send FILE_i --url HUB_i --parallel 4` run at once. Acknowledged: the last
# sender exited. Settled: also, on hub 0's GET /v1/summary, every event received and
# nothing undelivered or blocked, and the sandbox ERP holds as many lines as the hub posted
# (lines and reversals); the clock stops at the later of the last sender's exit and the
# last line's posted_at, so the polling is left out. Rates are work events over those
# times. The lines and totals per currency of each P are compared with the batch peer's
# (peers/batch_peer.py) and with those of the first P. Then `pshub bench time-to-bill
# --entries N --store postgres://.../pshub_bench_inproc` (the engine in process, on
# PostgreSQL). Prints a table; the JSON of the run is kept in
# benches/.work/postgres_processes-N.json. The databases are dropped at the end (kept with
# --keep). BENCH_POSTGRES=postgres://user@host:port (default postgres://root@127.0.0.1:5432)
# names another server.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

entries=200000
processes=1,2,3
pshub_port=18180
sandbox_port=18170
parallel=4
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
    --events) entries="${2:-}"; shift 2 ;;
    --processes) processes="${2:-}"; shift 2 ;;
    --pshub-port) pshub_port="${2:-}"; shift 2 ;;
    --sandbox-port) sandbox_port="${2:-}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ "$entries" =~ ^[1-9][0-9]*$ ]] || die "--events: '$entries' is not a positive whole number"
[[ "$processes" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--processes: '$processes' is not a list of positive whole numbers, such as 1,2,3"
[[ "$pshub_port" =~ ^[0-9]+$ ]] || die "--pshub-port takes a port number"
[[ "$sandbox_port" =~ ^[0-9]+$ ]] || die "--sandbox-port takes a port number"
IFS=, read -r -a counts <<<"$processes"
most=0
for p in "${counts[@]}"; do
    if ((p > most)); then most=$p; fi
done
if ((sandbox_port >= pshub_port && sandbox_port < pshub_port + most)); then
    die "--sandbox-port $sandbox_port is one of the hubs' ports ($pshub_port to $((pshub_port + most - 1)))"
fi

((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) ||
    die "bash 5.1 or later is needed (wait -n -p), this is $BASH_VERSION"
[[ -x "$PSHUB" ]] || die "$PSHUB is missing: run benches/setup.sh (or cargo build --release)"
for tool in jq curl bc python3 psql createdb dropdb; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
peer_py="$VENV_PY"
[[ -x "$peer_py" ]] || peer_py=python3 # the batch peer needs only the standard library
pg="${BENCH_POSTGRES:-postgres://root@127.0.0.1:5432}"
pg="${pg%/}"
psql -X -q -At -d "$pg/postgres" -c 'select 1' >/dev/null 2>&1 || die "PostgreSQL does not answer at $pg"
mkdir -p "$WORK"

# The databases this run created, dropped on exit unless --keep (after cleanup has stopped
# every process that uses them).
DATABASES=()
drop_database() {
    dropdb --maintenance-db="$pg/postgres" --if-exists --force "$1" >/dev/null 2>&1 || log "could not drop the database $1"
}
fresh_database() {
    dropdb --maintenance-db="$pg/postgres" --if-exists --force "$1" >/dev/null 2>&1 || die "dropdb $1 failed"
    createdb --maintenance-db="$pg/postgres" "$1" || die "createdb $1 failed"
    DATABASES+=("$1")
}
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
    cleanup
    if ((KEEP == 0)); then
        local db
        for db in "${DATABASES[@]}"; do drop_database "$db"; done
    fi
}
trap finish EXIT

# forget PID: a process this script started has ended (it was waited for).
forget() {
    local kept=() p
    for p in "${STARTED_PIDS[@]}"; do
        [[ "$p" == "$1" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
}

get() { curl -fsS -m 30 -H "Authorization: Bearer $TOKEN" "$1"; }

# check_send OUT ERR FILE WHAT: like send_file in lib.sh, for a sender run in the
# background: a "sent:" tally that counts every line of FILE (exit status 1 is expected:
# the dataset has a few quarantined and conflicting events, on purpose).
check_send() {
    local out err="$2" file="$3" what="$4" counted lines
    out="$(cat "$1")"
    if [[ "$out" != sent:* ]]; then
        die "pshub events send $what failed: $(grep -vE '^line [0-9]+:' "$err" | head -n 5) $out"
    fi
    counted=$(grep -oE '[0-9]+' <<<"$out" | paste -sd+ | bc)
    lines=$(grep -c . "$file")
    ((counted == lines)) || die "pshub events send $what: the hub answered for $counted of $lines events ($out)"
}

# wait_provisioned SANDBOX PROJECTS SECONDS: waits until the sandbox holds every deal's
# engagement, project, billing rules and CRM write-back (the last step of each deal).
wait_provisioned() {
    local url="$1" projects="$2" seconds="$3" stats=""
    for _ in $(seq $((seconds * 10))); do
        stats="$(curl -fsS -m 10 "$url/sandbox/stats" 2>/dev/null)" || stats=""
        if [[ -n "$stats" ]] && jq -e --argjson n "$projects" \
            '.psa.records == $n and .erp_projects.records == $n and .erp_billing_rules.records == $n and .crm.records == $n' \
            >/dev/null <<<"$stats"; then
            return 0
        fi
        sleep 0.1
    done
    log "the sandbox after the reference data: ${stats:-no answer}"
    return 1
}

# wait_shared_settled HUB SANDBOX EVENTS SECONDS: waits until hub's summary counts EVENTS
# events with nothing undelivered or blocked, and the sandbox ERP holds as many lines as
# the hub posted; leaves the last answers in SUMMARY and STATS, the polls in POLLS and
# how long the last GET /v1/summary took in SUMMARY_SECONDS. Polls every 0.2 s, in this
# shell (see lib.sh).
wait_shared_settled() {
    local hub="$1" sandbox="$2" events="$3" seconds="$4" asked
    SUMMARY="" STATS="" POLLS=0 SUMMARY_SECONDS=null
    for _ in $(seq $((seconds * 5))); do
        POLLS=$((POLLS + 1))
        asked=$(now)
        SUMMARY="$(get "$hub/v1/summary" 2>/dev/null)" || SUMMARY=""
        SUMMARY_SECONDS=$(echo "$(now) - $asked" | bc)
        if [[ -n "$SUMMARY" ]] && jq -e --argjson n "$events" \
            '.events == $n and .lines_undelivered == 0 and .lines_blocked == 0 and .steps_blocked == 0' \
            >/dev/null <<<"$SUMMARY"; then
            STATS="$(curl -fsS -m 10 "$sandbox/sandbox/stats" 2>/dev/null)" || STATS=""
            if [[ -n "$STATS" ]] && jq -e --argjson s "$SUMMARY" \
                '.erp_lines.records == ($s.lines_posted + $s.reversals_posted)' >/dev/null <<<"$STATS"; then
                return 0
            fi
        fi
        sleep 0.2
    done
    [[ -n "$SUMMARY" ]] || SUMMARY=null
    [[ -n "$STATS" ]] || STATS="$(curl -fsS -m 10 "$sandbox/sandbox/stats" 2>/dev/null)" || STATS=null
    return 1
}

# split_work FILE PARTS DIR: DIR/work-0.jsonl ... DIR/work-(PARTS-1).jsonl, every event of
# one entry (time_entry.* by data.entry_id, expense.* by data.expense_id, the keys of
# `pshub events send`'s lanes) in one file, in file order; entries dealt out in turn as
# they first appear. A line without such a key (none in the generated data) goes to file 0.
# Prints the events per file as JSON.
split_work() {
    python3 - "$@" <<'PY'
import json, sys
src, parts, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = [open(f"{out}/work-{i}.jsonl", "w", encoding="utf-8") for i in range(parts)]
owner, counts, keyless = {}, [0] * parts, 0
with open(src, encoding="utf-8") as f:
    for line in f:
        if not line.strip():
            continue
        key = None
        try:
            event = json.loads(line)
            kind, data = str(event.get("type") or ""), event.get("data") or {}
            if kind.startswith("time_entry.") and data.get("entry_id") is not None:
                key = ("time", str(data["entry_id"]))
            elif kind.startswith("expense.") and data.get("expense_id") is not None:
                key = ("expense", str(data["expense_id"]))
        except (ValueError, AttributeError, TypeError):
            pass
        if key is None:
            i = 0
            keyless += 1
        else:
            i = owner.setdefault(key, len(owner) % parts)
        files[i].write(line if line.endswith("\n") else line + "\n")
        counts[i] += 1
for f in files:
    f.close()
print(json.dumps({"events_per_file": counts, "entries": len(owner), "without_entry_key": keyless}))
PY
}

# last_posted_at DUMP: the latest posted_at of the lines in a `compare.py dump`, as Unix
# seconds (null when none has one).
last_posted_at() {
    python3 - "$1" <<'PY'
import datetime, json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    lines = json.load(f)["lines"]
times = [datetime.datetime.fromisoformat(l["posted_at"].replace("Z", "+00:00")).timestamp()
         for l in lines if l.get("posted_at")]
print(f"{max(times):.3f}" if times else "null")
PY
}

load_dataset "$entries"
projects=$(jq .projects "$data/manifest.json")
report="$WORK/postgres_processes-$entries.json"
sandbox_url="http://127.0.0.1:$sandbox_port"
failed=0
runs=()

for P in "${counts[@]}"; do
    db="pshub_bench_p$P"
    store="$pg/$db"
    rundir="$WORK/postgres-p$P"
    rm -rf "$rundir"
    mkdir -p "$rundir/split"
    SCRATCH_DIRS+=("$rundir")
    log "P=$P: database $db, sandbox on $sandbox_port, hubs on $pshub_port..$((pshub_port + P - 1))"
    fresh_database "$db"

    port_free "$sandbox_port" || die "port $sandbox_port is taken; choose another with --sandbox-port"
    "$PSHUB" sandbox --listen "127.0.0.1:$sandbox_port" --data-dir "$rundir/sandbox" >"$rundir/sandbox.log" 2>&1 &
    sandbox_pid=$!
    STARTED_PIDS+=("$sandbox_pid")
    wait_http "$sandbox_url/sandbox/stats" 30 || die "pshub sandbox did not answer on port $sandbox_port: $(tail -n 5 "$rundir/sandbox.log")"

    TOKEN="$("$PSHUB" token create --role admin --name bench --store "$store" 2>"$rundir/token.err" | tail -n 1)"
    [[ -n "$TOKEN" ]] || die "pshub token create failed: $(cat "$rundir/token.err")"

    hub_urls=() hub_pids=()
    for ((i = 0; i < P; i++)); do
        port=$((pshub_port + i))
        port_free "$port" || die "port $port is taken; choose others with --pshub-port"
        PSHUB_SANDBOX_URL="$sandbox_url" "$PSHUB" serve --store "$store" --data-dir "$rundir/hub$i" \
            --listen "127.0.0.1:$port" >"$rundir/hub$i.log" 2>&1 &
        hub_pids+=($!)
        STARTED_PIDS+=($!)
        hub_urls+=("http://127.0.0.1:$port")
    done
    for ((i = 0; i < P; i++)); do
        wait_http "${hub_urls[i]}/healthz" 30 || die "pshub serve $i did not answer: $(tail -n 5 "$rundir/hub$i.log")"
    done

    log "P=$P: $reference_events reference events to hub 0"
    send_file "${hub_urls[0]}" "$TOKEN" "$data/reference.jsonl" --batch 10000 --parallel 1
    wait_settled "${hub_urls[0]}" "$TOKEN" "$reference_events" 120 || die "P=$P: pshub did not settle after the reference data: $SUMMARY"
    wait_provisioned "$sandbox_url" "$projects" 120 || die "P=$P: the $projects deals were not provisioned within 120 s"

    split="$(split_work "$data/work.jsonl" "$P" "$rundir/split")"

    log "P=$P: $work_events work events, $P x pshub events send --parallel $parallel ($(jq -c .events_per_file <<<"$split") events)"
    sender_pids=()
    started=$(now)
    for ((i = 0; i < P; i++)); do
        "$PSHUB" events send "$rundir/split/work-$i.jsonl" --url "${hub_urls[i]}" --token "$TOKEN" \
            --parallel "$parallel" >"$rundir/send-$i.out" 2>"$rundir/send-$i.err" &
        sender_pids+=($!)
        STARTED_PIDS+=($!)
    done
    declare -A sender_done=()
    waiting=("${sender_pids[@]}")
    while ((${#waiting[@]})); do
        ended="" rc=0
        wait -n -p ended "${waiting[@]}" || rc=$?
        [[ -n "$ended" ]] || die "P=$P: lost track of a sender (wait status $rc)"
        sender_done[$ended]=$(now)
        forget "$ended"
        left=()
        for pid in "${waiting[@]}"; do [[ "$pid" == "$ended" ]] || left+=("$pid"); done
        waiting=("${left[@]}")
    done
    acknowledged=$(now)
    senders="[]"
    for ((i = 0; i < P; i++)); do
        check_send "$rundir/send-$i.out" "$rundir/send-$i.err" "$rundir/split/work-$i.jsonl" "$i to ${hub_urls[i]}"
        senders="$(jq -c --arg url "${hub_urls[i]}" --argjson events "$(jq ".events_per_file[$i]" <<<"$split")" \
            --arg sent "$(cat "$rundir/send-$i.out")" --argjson s "$(echo "${sender_done[${sender_pids[i]}]} - $started" | bc)" \
            '. + [{url: $url, events: $events, sent: $sent, seconds: $s}]' <<<"$senders")"
    done
    unset sender_done

    if wait_shared_settled "${hub_urls[0]}" "$sandbox_url" "$all_events" 600; then
        settled=true
    else
        settled=false
        failed=1
        log "P=$P: not settled within 600 s: summary $SUMMARY; sandbox $STATS"
    fi
    observed_at=$(now)
    ack_seconds=$(echo "$acknowledged - $started" | bc)
    observed_seconds=$(echo "$observed_at - $started" | bc)

    # GET /v1/summary reads its figures in several queries, not from one snapshot, so the
    # answer that showed the settled state may mix moments (straight_through_rate counted
    # before the last lines were posted, the lines after): read it again now that nothing
    # moves, for the report and to compare with the other hubs'. Every hub reads the same
    # database: their summaries must agree.
    if [[ "$settled" == true ]]; then
        SUMMARY="$(get "${hub_urls[0]}/v1/summary")" || die "P=$P: hub 0 did not answer GET /v1/summary"
    fi
    agree=true
    for ((i = 1; i < P; i++)); do
        other="$(get "${hub_urls[i]}/v1/summary")" || other=null
        if ! jq -e --argjson a "$SUMMARY" --argjson b "$other" -n '$a == $b' >/dev/null; then
            agree=false
            failed=1
            log "P=$P: hub $i's summary differs from hub 0's: $other"
        fi
    done
    run "$rundir/dump.json" python3 "$BENCHES/compare.py" dump --url "${hub_urls[0]}" --token "$TOKEN" || die "could not read pshub's lines"
    # The clock stops when the last sender exited and the last line was posted: the hub
    # stamps each line's posted_at (to the millisecond) when the ERP's answers of its
    # delivery round are in, just before the commit, so the settled time leaves out the
    # poll's delay and the GET /v1/summary that saw it.
    last_posted=$(last_posted_at "$rundir/dump.json")
    if [[ "$settled" == true && "$last_posted" != null ]]; then
        settle_seconds=$(echo "if ($last_posted > $acknowledged) $last_posted - $started else $acknowledged - $started" | bc)
    else
        settle_seconds=$observed_seconds
    fi
    hubs="[]"
    for ((i = 0; i < P; i++)); do
        hubs="$(jq -c --arg url "${hub_urls[i]}" --arg rss "$(peak_rss_mb "${hub_pids[i]}")" \
            --argjson errors "$(grep -ciE 'panic|error' "$rundir/hub$i.log" || true)" \
            '. + [{url: $url, peak_rss_mb: $rss, serve_log_error_lines: $errors}]' <<<"$hubs")"
    done
    sandbox_errors=$(grep -ciE 'panic|error' "$rundir/sandbox.log" || true)
    for pid in "${hub_pids[@]}"; do stop "$pid"; done
    stop "$sandbox_pid"
    ((KEEP == 1)) || drop_database "$db"

    jq -n --argjson p "$P" --arg db "$db" --argjson work "$work_events" --argjson split "$split" \
        --argjson senders "$senders" --argjson hubs "$hubs" --argjson ack "$ack_seconds" \
        --argjson settle "$settle_seconds" --argjson settled "$settled" --argjson polls "$POLLS" \
        --argjson observed "$observed_seconds" --argjson summary_seconds "$SUMMARY_SECONDS" \
        --argjson agree "$agree" --argjson summary "$SUMMARY" --argjson stats "${STATS:-null}" \
        --argjson sandbox_errors "$sandbox_errors" \
        '{processes: $p, database: $db, split: $split, senders: $senders, hubs: $hubs,
          acknowledged_seconds: $ack, events_per_sec_acknowledged: (($work / $ack) | round),
          settled: $settled, settled_seconds: $settle, events_per_sec_settled: (($work / $settle) | round),
          settled_observed_seconds: $observed, settle_polls: $polls, last_summary_seconds: $summary_seconds,
          summaries_agree: $agree, summary: $summary, sandbox_stats: $stats,
          sandbox_log_error_lines: $sandbox_errors}' >"$rundir/run.json"
    runs+=("$rundir")
done

# The Python batch peer, once: the same files.
peer_db="$WORK/postgres-processes-peer.sqlite"
SCRATCH_DIRS+=("$peer_db" "$peer_db-wal" "$peer_db-shm" "$peer_db.json")
log "Python batch peer: the same files"
run "$peer_db.json" "$peer_py" "$BENCHES/peers/batch_peer.py" --data "$data" --db "$peer_db" --json || die "the batch peer failed"
peer_run="$(cat "$peer_db.json")"

# Each P against the peer (every line), and against the first P (every line).
first="${runs[0]}"
for rundir in "${runs[@]}"; do
    run "$rundir/peer-verdict.json" python3 "$BENCHES/compare.py" --pshub-dump "$rundir/dump.json" --peer-db "$peer_db" --json || true
    run "$rundir/first-verdict.json" python3 "$BENCHES/compare.py" --pshub-dump "$rundir/dump.json" --peer-dump "$first/dump.json" --json || true
    for v in peer-verdict first-verdict; do
        [[ -s "$rundir/$v.json" ]] || echo '{"identical": false, "error": "compare.py could not read both sides"}' >"$rundir/$v.json"
    done
    jq --slurpfile peer "$rundir/peer-verdict.json" --slurpfile first "$rundir/first-verdict.json" \
        '. + {comparison_with_peer: $peer[0], comparison_with_first_run: $first[0],
              identical: ($peer[0].identical and $first[0].identical)}' "$rundir/run.json" >"$rundir/run.tmp"
    mv "$rundir/run.tmp" "$rundir/run.json"
    jq -e .identical "$rundir/run.json" >/dev/null || failed=1
done

# The engine in process, on PostgreSQL.
inproc_db="pshub_bench_inproc"
fresh_database "$inproc_db"
inproc_out="$WORK/postgres-processes-inproc"
SCRATCH_DIRS+=("$inproc_out.json" "$inproc_out.err")
log "pshub bench time-to-bill --entries $entries --store $pg/$inproc_db"
if run "$inproc_out.json" "$PSHUB" bench time-to-bill --entries "$entries" --json --store "$pg/$inproc_db" 2>"$inproc_out.err" &&
    jq -e . "$inproc_out.json" >/dev/null 2>&1; then
    in_process="$(cat "$inproc_out.json")"
else
    failed=1
    in_process="$(jq -n --arg e "$(tail -n 5 "$inproc_out.err")" '{error: $e}')"
    log "pshub bench time-to-bill failed: $(tail -n 5 "$inproc_out.err")"
fi
((KEEP == 1)) || drop_database "$inproc_db"

jq -n --argjson entries "$entries" --argjson work "$work_events" --argjson reference "$reference_events" \
    --argjson cores "$(nproc)" --argjson parallel "$parallel" --arg pg "$pg" \
    --argjson peer "$peer_run" --argjson in_process "$in_process" \
    --slurpfile runs <(for r in "${runs[@]}"; do cat "$r/run.json"; done) \
    '{entries: $entries, work_events: $work, reference_events: $reference, cores: $cores,
      postgres: $pg, sender: "pshub events send --parallel \($parallel), one per hub, on its share of the entries",
      runs: $runs,
      identical_across_processes: ($runs | all(.identical)),
      peer: $peer,
      in_process: ($in_process + {command: "pshub bench time-to-bill --entries \($entries) --json --store \($pg)/pshub_bench_inproc",
                                  same_line_counts_as_hubs: (($runs | all(.summary.lines_posted == $in_process.lines_posted and .summary.reversals_posted == $in_process.reversals_posted)))})}' >"$report"

echo
echo "PostgreSQL, several processes: $work_events work events (dataset of $entries entries), $(nproc) cores"
jq -r '["processes", "events/s (settled)", "events/s (acknowledged)", "identical outputs"],
       (.runs[] | [(.processes | tostring), "\(.events_per_sec_settled) (\(.settled_seconds | tostring | .[0:6]) s\(if .settled then "" else ", NOT SETTLED" end))",
                   "\(.events_per_sec_acknowledged) (\(.acknowledged_seconds | tostring | .[0:6]) s)",
                   (if .identical then "yes" else "NO" end)])
       | @tsv' "$report" | column -t -s $'\t' | sed 's/^/  /'
jq -r '"  in process (pshub bench time-to-bill on PostgreSQL): \(.in_process.entries_per_sec // "failed") events/s (\(.in_process.seconds // "?") s); its lines and reversals \(.in_process.lines_posted // "?") and \(.in_process.reversals_posted // "?"): \(if .in_process.same_line_counts_as_hubs then "the same as the hubs" else "NOT those of the hubs" end)",
       "  Python batch peer (SQLite WAL): \(.peer.events_per_sec) events/s (\(.peer.seconds) s)",
       (.runs[0] | "  outputs: \(.summary.lines_posted) lines, \(.summary.reversals_posted) reversals; \(.summary.posted_value | to_entries | map("\(.key) \(.value)") | join(", "))"),
       (.runs[] | select(.identical | not) | "  P=\(.processes): differs from the peer: \(.comparison_with_peer.lines_only_in_pshub) lines only in pshub, \(.comparison_with_peer.lines_only_in_peer) only in the peer, \(.comparison_with_peer.lines_that_differ) differ; lines that differ from the first run: \(.comparison_with_first_run.lines_only_in_pshub + .comparison_with_first_run.lines_only_in_peer + .comparison_with_first_run.lines_that_differ) (see the JSON: comparison_with_peer, comparison_with_first_run)"),
       (.runs[] | select(.summaries_agree | not) | "  P=\(.processes): the hubs answered different summaries (see the log)"),
       (.runs[] | "  P=\(.processes): senders \(.senders | map("\(.events) events \(.seconds | tostring | .[0:5]) s") | join(", ")); ERP line creates \(.sandbox_stats.erp_lines.creates), repeats \(.sandbox_stats.erp_lines.repeats)")' "$report"
echo "details: $report"
exit "$failed"
