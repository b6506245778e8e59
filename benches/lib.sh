# Shared by per_request.sh and batch.sh: paths, the dataset, starting and stopping the
# processes a bench runs (every one is stopped on exit, by its pid), and waiting for pshub
# to settle. Sourced, not run.

BENCHES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCHES/.." && pwd)"
PSHUB="$ROOT/target/release/pshub"
VENV_PY="$BENCHES/.venv/bin/python"
WORK="${BENCH_WORK:-$BENCHES/.work}"

# The settings that change what pshub decides or how it logs are the defaults here, so that
# pshub and the peers do the same work (no tax-code map, no daily limit, no faults).
for name in PSHUB_STORE PSHUB_DATA_DIR PSHUB_LISTEN PSHUB_SOURCES PSHUB_TAX_CODES \
    PSHUB_MAX_DAILY_HOURS PSHUB_SANDBOX_URL PSHUB_SANDBOX_FAULTS PSHUB_SANDBOX_ERP_FAULTS \
    PSHUB_CRASH_AFTER PSHUB_URL PSHUB_TOKEN PSHUB_LOG_FORMAT RUST_BACKTRACE; do
    unset "$name"
done
export PSHUB_LOG="${BENCH_PSHUB_LOG:-warn}"

STARTED_PIDS=()
SCRATCH_DIRS=()
KEEP=0

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
    if ((KEEP == 0)); then
        local dir
        for dir in "${SCRATCH_DIRS[@]}"; do
            rm -rf "$dir"
        done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: stops one process this script started.
stop() {
    local pid="$1" kept=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${STARTED_PIDS[@]}"; do
        [[ "$p" == "$pid" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
}

# run OUT CMD...: runs CMD in the background with its stdout in OUT and waits for it, so
# that a signal to the bench interrupts the wait and the trap stops CMD at once (bash runs
# a trap only after a foreground command ends). Answers CMD's exit status.
run() {
    local out="$1" pid rc=0 kept=() p
    shift
    "$@" >"$out" &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait "$pid" || rc=$?
    for p in "${STARTED_PIDS[@]}"; do
        [[ "$p" == "$pid" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
    return "$rc"
}

require_tools() {
    [[ -x "$PSHUB" ]] || die "$PSHUB is missing: run benches/setup.sh"
    command -v wrk >/dev/null || die "wrk is missing: run benches/setup.sh"
    command -v jq >/dev/null || die "jq is missing: run benches/setup.sh"
    command -v curl >/dev/null || die "curl is missing: run benches/setup.sh"
    [[ -x "$VENV_PY" ]] || die "$VENV_PY is missing: run benches/setup.sh"
}

# port_free PORT: true when nothing answers on 127.0.0.1:PORT.
port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# dataset N: writes (once) and prints the folder of the dataset of N entries.
dataset() {
    local entries="$1" dir="$WORK/data-$1"
    if [[ ! -s "$dir/work.jsonl" || ! -s "$dir/reference.jsonl" || ! -s "$dir/manifest.json" ]]; then
        log "writing the dataset of $entries entries to $dir"
        "$PSHUB" bench generate --entries "$entries" --out "$dir" >&2 || die "pshub bench generate failed"
    fi
    echo "$dir"
}

# finish_pshub URL DIR: waits (up to 600 s) until the pshub at URL has settled every event,
# then saves its lines to DIR/dump.json and stops it; sets settled (true or false; false
# also sets failed=1), settled_at, pshub_rss and server_errors.
finish_pshub() {
    local url="$1" dir="$2"
    if wait_settled "$url" "$PSHUB_TOKEN" "$all_events" 600; then
        settled=true
    else
        settled=false
        failed=1
        log "pshub did not settle within 600 s: $SUMMARY"
    fi
    settled_at=$(now)
    run "$dir/dump.json" python3 "$BENCHES/compare.py" dump --url "$url" --token "$PSHUB_TOKEN" || die "could not read pshub's lines"
    pshub_rss=$(peak_rss_mb "$PSHUB_PID")
    server_errors=$(grep -ciE 'panic|error' "$dir/serve.log" || true)
    stop "$PSHUB_PID"
}

# load_dataset N: the dataset of N entries (written once); sets data (its folder),
# reference_events, work_events and all_events from its manifest.
load_dataset() {
    data="$(dataset "$1")"
    reference_events=$(jq .reference_events "$data/manifest.json")
    work_events=$(jq .work_events "$data/manifest.json")
    all_events=$((reference_events + work_events))
}

# wait_http URL SECONDS: waits until URL answers 200.
wait_http() {
    local url="$1" seconds="$2"
    for _ in $(seq $((seconds * 10))); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_pshub DIR PORT [CONFIG]: a fresh store in DIR, an admin token in DIR/token, `pshub serve` (with --config CONFIG when given) on
# PORT; sets PSHUB_PID and PSHUB_TOKEN.
start_pshub() {
    local dir="$1" port="$2" config="${3:-}"
    port_free "$port" || die "port $port is taken; choose another with --pshub-port"
    rm -rf "$dir"
    mkdir -p "$dir"
    SCRATCH_DIRS+=("$dir")
    PSHUB_TOKEN="$("$PSHUB" token create --role admin --name bench --data-dir "$dir" 2>"$dir/token.err" | tail -n 1)"
    [[ -n "$PSHUB_TOKEN" ]] || die "pshub token create failed: $(cat "$dir/token.err")"
    echo "$PSHUB_TOKEN" >"$dir/token"
    "$PSHUB" serve --listen "127.0.0.1:$port" --data-dir "$dir" ${config:+--config "$config"} >"$dir/serve.log" 2>&1 &
    PSHUB_PID=$!
    STARTED_PIDS+=("$PSHUB_PID")
    wait_http "http://127.0.0.1:$port/healthz" 30 || die "pshub serve did not answer on port $port: $(tail -n 5 "$dir/serve.log")"
}

# start_fastapi DB PORT: the FastAPI peer on a fresh SQLite file; sets PEER_PID.
start_fastapi() {
    local db="$1" port="$2"
    port_free "$port" || die "port $port is taken; choose another with --peer-port"
    rm -f "$db" "$db-wal" "$db-shm"
    "$VENV_PY" "$BENCHES/peers/fastapi_peer.py" --db "$db" --listen "127.0.0.1:$port" >"$db.log" 2>&1 &
    PEER_PID=$!
    STARTED_PIDS+=("$PEER_PID")
    wait_http "http://127.0.0.1:$port/healthz" 30 || die "the FastAPI peer did not answer on port $port: $(tail -n 5 "$db.log")"
}

# send_file URL TOKEN FILE [ARGS...]: `pshub events send`, which exits 1 when any event was
# quarantined or in conflict (the dataset has a few of each, on purpose). The bench stops on
# any other failure: no "sent:" tally (no answer, an HTTP error), or a tally that does not
# count every line of the file. Leaves the tally in SENT.
send_file() {
    local url="$1" token="$2" file="$3" out counted lines
    shift 3
    run "$WORK/send.out" "$PSHUB" events send "$file" --url "$url" --token "$token" "$@" 2>"$WORK/send.err" || true
    out="$(cat "$WORK/send.out")"
    if [[ "$out" != sent:* ]]; then
        die "pshub events send $file to $url failed: $(grep -vE '^line [0-9]+:' "$WORK/send.err" | head -n 5) $out"
    fi
    counted=$(grep -oE '[0-9]+' <<<"$out" | paste -sd+ | bc)
    lines=$(grep -c . "$file")
    if ((counted != lines)); then
        die "pshub events send $file: the hub answered for $counted of $lines events ($out)"
    fi
    # shellcheck disable=SC2034 # read by the caller
    SENT="$out"
}

# wait_settled URL TOKEN EVENTS SECONDS: waits until pshub has received EVENTS events and has
# nothing undelivered or blocked; leaves the last summary in SUMMARY. (It runs in this shell,
# not in a $(...) subshell, so that a signal's trap is not held up by the loop.)
wait_settled() {
    local url="$1" token="$2" events="$3" seconds="$4"
    SUMMARY=""
    for _ in $(seq $((seconds * 10))); do
        SUMMARY="$(curl -fsS -m 10 -H "Authorization: Bearer $token" "$url/v1/summary" 2>/dev/null)" || SUMMARY=""
        if [[ -n "$SUMMARY" ]] && jq -e --argjson n "$events" \
            '.events == $n and .lines_undelivered == 0 and .lines_blocked == 0 and .steps_blocked == 0' \
            >/dev/null <<<"$SUMMARY"; then
            return 0
        fi
        sleep 0.1
    done
    [[ -n "$SUMMARY" ]] || SUMMARY=null
    return 1
}

# peak_rss_mb PID: the process's high-water resident memory, in MB.
peak_rss_mb() {
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

now() { date +%s.%N; }
