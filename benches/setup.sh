#!/usr/bin/env bash
# Installs what the benches need, when missing: wrk (Debian), a Python venv at
# benches/.venv with the FastAPI peer's pinned packages, and the release build of pshub.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
if ((${#need_apt[@]})); then
    echo "setup: installing ${need_apt[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "setup: $python is missing or older than 3.11" >&2
    exit 1
fi
venv="$here/.venv"
stamp="$venv/.requirements"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv"
fi
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    echo "setup: installing benches/requirements.txt into the venv"
    "$venv/bin/python" -m pip install -q -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

echo "setup: cargo build --release (waits for the build lock when another build runs)"
(cd "$root" && cargo build --release --bin pshub)
echo "setup: ready ($("$root/target/release/pshub" --version), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $("$venv/bin/python" -c 'import fastapi, uvicorn; print("fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__)'))"
