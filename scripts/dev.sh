#!/usr/bin/env bash
# The embedded default: state PostgreSQL, a local instance and the API, all on this machine.
# Extra arguments go to `dbaas-api dev` (e.g. --port 9090 --data-dir /var/tmp/mine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
exec cargo run --locked --release -p dbaas-api -- dev "$@"
