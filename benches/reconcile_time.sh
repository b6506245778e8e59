#!/usr/bin/env bash
# `pshub reconcile time` against DuckDB on the same two exports.
#
#   benches/reconcile_time.sh [--rows 1000000] [--runs 3] [--keep]
#
# The data (written once, kept in benches/.work/reconcile-N/): reconcile_data.py writes a
# PSA export and an ERP export of N rows each, with 0.5% of the rows made differences of
# every kind, the same number of each (manifest.json); the ERP file has a BOM, CRLF, its
# columns in another order with two more, quoted fields (commas, some line breaks), other
# trailing zeros and the rows shuffled. Then, --runs times, interleaved: DuckDB
# (peers/duckdb_reconcile.py: typed read_csv of both files, FULL OUTER JOIN on entry_id, the
# differences written with COPY; its time is measured inside Python, from connect to the
# end of the COPY) and `pshub reconcile time --json` (its time is the whole process). Peak
# RSS is /usr/bin/time's maximum resident set size of each process. Every run checks that
# DuckDB finds the same counts per kind and the same amounts per kind and currency as
# pshub, and that pshub's counts are those injected; the script fails if not. Prints the
# medians and their ratio; the JSON of the run is kept in benches/.work/reconcile_time-N.json.
#
# Needs python3 (3.11+), GNU time and jq (installed with apt-get when missing), and makes a
# venv at benches/.venv-duckdb with requirements-duckdb.txt.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

rows=1000000
runs=3
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
    --rows) rows="${2:-}"; shift 2 ;;
    --runs) runs="${2:-}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ "$rows" =~ ^[1-9][0-9]*$ ]] || die "--rows: '$rows' is not a positive whole number"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs: '$runs' is not a positive whole number"

need_apt=()
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v jq >/dev/null || need_apt+=(jq)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]} (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
venv="$BENCHES/.venv-duckdb"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
if ! cmp -s "$BENCHES/requirements-duckdb.txt" "$venv/.requirements" 2>/dev/null; then
    log "installing requirements-duckdb.txt into $venv"
    "$venv/bin/python" -m pip install -q -r "$BENCHES/requirements-duckdb.txt"
    cp "$BENCHES/requirements-duckdb.txt" "$venv/.requirements"
fi
log "cargo build --release -p pshub-cli"
(cd "$ROOT" && cargo build --release -q -p pshub-cli) || die "the build failed"

data="$WORK/reconcile-$rows"
if [[ ! -s "$data/psa.csv" || ! -s "$data/erp.csv" || ! -s "$data/manifest.json" ]]; then
    log "writing the exports of $rows rows to $data"
    python3 "$BENCHES/reconcile_data.py" --rows "$rows" --out "$data" >/dev/null || die "reconcile_data.py failed"
fi
scratch="$WORK/reconcile-run"
rm -rf "$scratch"
mkdir -p "$scratch"
SCRATCH_DIRS+=("$scratch")
# Both sides read the files from the page cache.
cat "$data/psa.csv" "$data/erp.csv" >/dev/null

# peak_kb FILE: the maximum resident set size in a /usr/bin/time -v report, in KB.
peak_kb() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
# since START: the seconds from START (a `now`) until now.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

duck_seconds=()
duck_process_seconds=()
duck_kb=()
pshub_seconds=()
pshub_kb=()
failed=0
for i in $(seq "$runs"); do
    log "run $i/$runs: DuckDB"
    started=$(now)
    run "$scratch/duckdb-$i.json" /usr/bin/time -v -o "$scratch/duckdb-$i.time" \
        "$venv/bin/python" "$BENCHES/peers/duckdb_reconcile.py" run \
        --psa "$data/psa.csv" --erp "$data/erp.csv" --out "$scratch/duckdb" || die "DuckDB failed"
    duck_process_seconds+=("$(since "$started")")
    duck_seconds+=("$(jq .seconds "$scratch/duckdb-$i.json")")
    duck_kb+=("$(peak_kb "$scratch/duckdb-$i.time")")

    log "run $i/$runs: pshub reconcile time"
    started=$(now)
    run "$scratch/pshub-$i.json" /usr/bin/time -v -o "$scratch/pshub-$i.time" \
        "$PSHUB" reconcile time --psa "$data/psa.csv" --erp "$data/erp.csv" \
        --out "$scratch/pshub" --json || die "pshub reconcile time failed"
    pshub_seconds+=("$(since "$started")")
    pshub_kb+=("$(peak_kb "$scratch/pshub-$i.time")")

    if ! python3 "$BENCHES/peers/duckdb_reconcile.py" compare --pshub "$scratch/pshub-$i.json" \
        --duckdb "$scratch/duckdb-$i.json" --manifest "$data/manifest.json"; then
        log "run $i: pshub and DuckDB (or the manifest) DIFFER"
        failed=1
    fi
done

report="$WORK/reconcile_time-$rows.json"
to_json() { printf '%s\n' "$@" | jq -s .; }
jq -n --argjson rows "$rows" --argjson manifest "$(cat "$data/manifest.json")" \
    --argjson duck_s "$(to_json "${duck_seconds[@]}")" \
    --argjson duck_process_s "$(to_json "${duck_process_seconds[@]}")" \
    --argjson duck_kb "$(to_json "${duck_kb[@]}")" \
    --argjson pshub_s "$(to_json "${pshub_seconds[@]}")" \
    --argjson pshub_kb "$(to_json "${pshub_kb[@]}")" \
    --argjson pshub "$(cat "$scratch/pshub-$runs.json")" \
    --argjson phases "$(jq -s 'map(.seconds)' "$scratch"/pshub-*.json)" \
    --argjson duckdb "$(cat "$scratch/duckdb-$runs.json")" \
    --argjson identical "$([[ $failed == 0 ]] && echo true || echo false)" \
    --arg duckdb_version "$("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)')" \
    --arg psa_bytes "$(stat -c %s "$data/psa.csv")" --arg erp_bytes "$(stat -c %s "$data/erp.csv")" \
    'def median: sort | .[(length - 1) / 2 | floor];
     {rows: $rows, psa_bytes: ($psa_bytes | tonumber), erp_bytes: ($erp_bytes | tonumber),
      injected: $manifest.injected, duckdb_version: $duckdb_version,
      pshub: {seconds: $pshub_s, median_seconds: ($pshub_s | median),
              peak_rss_mb: ($pshub_kb | map(. / 1024 | round)),
              median_peak_rss_mb: ($pshub_kb | median / 1024 | round),
              phases_seconds: $phases, counts: $pshub.counts, amounts: $pshub.amounts},
      duckdb: {seconds: $duck_s, median_seconds: ($duck_s | median),
               process_seconds: $duck_process_s, median_process_seconds: ($duck_process_s | median),
               peak_rss_mb: ($duck_kb | map(. / 1024 | round)),
               median_peak_rss_mb: ($duck_kb | median / 1024 | round),
               counts: $duckdb.counts, amounts: $duckdb.amounts},
      same_counts_and_amounts: $identical}
     | .duckdb_over_pshub = ((.duckdb.median_seconds / .pshub.median_seconds * 100 | round) / 100)
     | .target_met = (.pshub.median_seconds < .duckdb.median_seconds and .pshub.median_peak_rss_mb < 200)' \
    >"$report"

echo
echo "reconcile time: $rows PSA rows against $rows ERP rows, $(nproc) cores, median of $runs interleaved runs"
jq -r '"  pshub reconcile time: \(.pshub.median_seconds | tostring | .[0:5]) s (runs \(.pshub.seconds | map(tostring | .[0:5]) | join(", "))), peak RSS \(.pshub.median_peak_rss_mb) MB",
       "  DuckDB \(.duckdb_version):          \(.duckdb.median_seconds | tostring | .[0:5]) s inside Python (\(.duckdb.median_process_seconds | tostring | .[0:5]) s the whole process), peak RSS \(.duckdb.median_peak_rss_mb) MB",
       "  DuckDB / pshub: \(.duckdb_over_pshub)x the time, \((.duckdb.median_peak_rss_mb / .pshub.median_peak_rss_mb * 100 | round) / 100)x the memory",
       "  differences: \(.pshub.counts | to_entries | map("\(.key) \(.value)") | join(", "))",
       (if .same_counts_and_amounts then "  DuckDB and pshub: the same counts per kind and amounts per kind and currency, as injected"
        else "  DuckDB and pshub DIFFER (see the messages above)" end),
       "  target (faster than DuckDB, under 200 MB): \(if .target_met then "met" else "NOT met" end)"' "$report"
echo "details: $report"
exit "$failed"
