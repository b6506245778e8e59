#!/usr/bin/env bash
# Installs Tryton 8.2 into a virtual environment, initialises a SQLite database with the
# modules pshub talks to, and sets up the accounting baseline over JSON-RPC (a company in
# EUR, the minimal chart, a fiscal year, a payment term, the "Consulting hour" product and
# a pay method; baseline.py), with the opportunities of sale_opportunity. The result is a snapshot that tests and benchmarks copy and
# serve: $TRYTON_ROOT/baseline/tryton.sqlite (TRYTON_ROOT defaults to target/tryton).
# Runs again in seconds when everything is there; `--fresh` starts over.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
root="${TRYTON_ROOT:-$repo/target/tryton}"
[[ "${1:-}" == "--fresh" ]] && rm -rf "$root"
mkdir -p "$root"
cd "$root"

# The packages and the modules activated; a change of either installs and sets up again.
packages=("trytond~=8.2.0" "trytond-party~=8.2.0" "trytond-company~=8.2.0"
    "trytond-currency~=8.2.0" "trytond-product~=8.2.0" "trytond-project~=8.2.0"
    "trytond-timesheet~=8.2.0" "trytond-timesheet-cost~=8.2.0" "trytond-project-invoice~=8.2.0"
    "trytond-project-revenue~=8.2.0" "trytond-account~=8.2.0" "trytond-account-invoice~=8.2.0"
    "trytond-sale-opportunity~=8.2.0")
modules="party company currency product project timesheet timesheet_cost project_invoice project_revenue account account_invoice sale_opportunity"
stamp="${packages[*]} | $modules | $(cksum < "$here/baseline.py")"

if [[ ! -x venv/bin/trytond || "$(cat venv/.pshub-packages 2>/dev/null)" != "${packages[*]}" ]]; then
    echo "installing trytond 8.2 into $root/venv" >&2
    [[ -x venv/bin/pip ]] || { rm -rf venv; python3 -m venv venv; }
    ./venv/bin/pip install -q --disable-pip-version-check "${packages[@]}"
    printf '%s' "${packages[*]}" > venv/.pshub-packages
fi

if [[ -s baseline/tryton.sqlite && "$(cat baseline/stamp 2>/dev/null)" == "$stamp" ]]; then
    exit 0
fi

rm -rf init baseline
mkdir -p init
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > init/trytond.conf <<CONF
[database]
uri = sqlite://
path = $root/init
[web]
listen = 127.0.0.1:$port
[session]
timeout = 3600
CONF
printf 'admin' > init/passfile
touch init/tryton.sqlite   # the SQLite backend does not create the file
echo "initialising the Tryton database (about 25 s)" >&2
TRYTONPASSFILE="$root/init/passfile" ./venv/bin/trytond-admin -c init/trytond.conf -d tryton \
    --email admin@example.com -u $modules \
    --activate-dependencies >init/admin.log 2>&1 \
    || { tail -n 30 init/admin.log >&2; echo "trytond-admin failed" >&2; exit 1; }

./venv/bin/trytond -c init/trytond.conf -d tryton >init/server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
python3 "$here/baseline.py" "http://127.0.0.1:$port" tryton admin admin \
    || { tail -n 30 init/server.log >&2; echo "the accounting baseline failed" >&2; exit 1; }
kill $server; wait $server 2>/dev/null || true
trap - EXIT
mkdir -p baseline
# The server keeps SQLite in WAL mode: fold the log into the file before copying it.
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' init/tryton.sqlite
cp init/tryton.sqlite baseline/tryton.sqlite
printf '%s' "$stamp" > baseline/stamp
echo "Tryton baseline ready: $root/baseline/tryton.sqlite" >&2
