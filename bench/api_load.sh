#!/usr/bin/env bash
# Open-loop load on the read endpoints of a release `dbaas-api dev`: a fixed request rate
# (oha from crates.io, -q, with latency correction: a late request counts its wait) on
# GET database, list databases and GET operation. Prints p50/p99, errors and the ratio of
# p99 to the target (10 ms at 1,000 req/s), the service's idle RSS (target 40 MB) and its
# RSS under load.
#
#   bash bench/api_load.sh [RATE] [SECONDS]      (default 1000 req/s for 20 s per endpoint)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECS=${2:-20}
bash scripts/ensure-deps.sh
tools=${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}
OHA="$tools/oha/bin/oha"
[ -x "$OHA" ] || cargo install --locked --quiet --root "$tools/oha" oha
cargo build --release --locked -q -p dbaas-api
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start_dev
rss() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$dev/status"; }

# 100 databases of one tenant (the list's page), then the service idles a moment.
api -X POST "$DBAAS_ENDPOINT/v1/tenants" -d '{"name": "load", "max_databases": 200}' >/dev/null
api -X PATCH "$DBAAS_ENDPOINT/v1/instances/local" -d '{"max_databases": 200}' >/dev/null
op=""
for i in $(seq 0 99); do
  out=$(api -X POST "$DBAAS_ENDPOINT/v1/databases" -d "{\"name\": \"db-$i\", \"tenant\": \"load\", \"instance\": \"local\"}")
  [ "$i" = 0 ] && { id=$(echo "$out" | field "['database']['id']"); op=$(echo "$out" | field "['operation']['id']"); }
done
while [ "$(api "$DBAAS_ENDPOINT/v1/operations?status=queued&limit=1" | field "['items'].__len__()")" != 0 ] ||
  [ "$(api "$DBAAS_ENDPOINT/v1/operations?status=running&limit=1" | field "['items'].__len__()")" != 0 ]; do
  sleep 1
done
sleep 5
idle=$(rss)
echo "idle RSS: ${idle} MB (target < 40 MB, ratio $(python3 -c "print(f'{$idle/40:.2f}')"))"

load() { # name path
  local peak=0 json
  "$OHA" --no-tui --output-format json --latency-correction -q "$RATE" -z "${SECS}s" -c 50 \
    -H "Authorization: Bearer $DBAAS_TOKEN" "$DBAAS_ENDPOINT$2" >"$work/$1.json" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 1; done
  wait "$pid"
  python3 - "$1" "$work/$1.json" "$peak" "$RATE" <<'PY'
import json, sys
name, path, peak, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
d = json.load(open(path))
p = d["latencyPercentiles"]; s = d["summary"]
codes = d.get("statusCodeDistribution", {})
# Requests still in flight when the duration ends are cut by oha ("aborted due to deadline"):
# counted apart, they are not the service's errors.
errs = d.get("errorDistribution", {})
cut = sum(v for k, v in errs.items() if "deadline" in k)
errors = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(errs.values()) - cut
kinds = ", ".join(f"{k}: {v}" for k, v in errs.items() if "deadline" not in k)
p50, p99 = p["p50"] * 1000, p["p99"] * 1000
print(f"{name:14} {rate} req/s offered, {s['requestsPerSec']:7.0f} served: p50 {p50:6.2f} ms, p99 {p99:6.2f} ms "
      f"(target 10 ms, ratio {p99 / 10:.2f}), errors {errors}{' (' + kinds + ')' if kinds else ''}, "
      f"cut at the end {cut}, peak RSS {peak} MB")
PY
}
load "get-database" "/v1/databases/$id"
load "list-databases" "/v1/databases?tenant=load"
load "get-operation" "/v1/operations/$op"
