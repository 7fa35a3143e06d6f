#!/usr/bin/env bash
# Time from `POST /v1/instances` (kind managed) to ready, against `dbaas-api dev` with the
# machine registered as a local host. Each run provisions a new cluster (initdb, TLS, start,
# admin role, TLS login), waits on the operation by long-poll, then deletes it. Prints each
# time, the median, its ratio to the 3 s target (<= 1.0 meets it), and the floor: bare
# `initdb` + `pg_ctl start -w` of the same version on the same disk.
#
#   bash bench/managed_instance_ready.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
bash scripts/ensure-deps.sh
cargo build --release --locked -q -p dbaas-api

bench_before_cleanup() {
  for d in "$work"/host/*/pgdata "$work"/floor/pgdata; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl stop -m immediate -D "$d" >/dev/null 2>&1 || true
  done
}
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start_dev
# Without -f: this benchmark reads the problem documents of refused requests.
api() { curl -sS -H "Authorization: Bearer $DBAAS_TOKEN" -H 'Content-Type: application/json' "$@"; }

api -X POST "$DBAAS_ENDPOINT/v1/hosts" -d "{\"name\":\"bench\",\"kind\":\"local\",\"data_root\":\"$work/host\",\"port_range\":[26000,26099]}" >/dev/null

times=()
for i in $(seq 1 "$RUNS"); do
  t0=$(date +%s%N)
  op=$(api -X POST "$DBAAS_ENDPOINT/v1/instances" \
    -d "{\"name\":\"bench-$i\",\"kind\":\"managed\",\"host\":\"bench\",\"version\":\"15\",\"environment\":\"sandbox\"}" | field "['last_operation_id']")
  status=$(api "$DBAAS_ENDPOINT/v1/operations/$op?wait=60s" | field "['status']")
  t1=$(date +%s%N)
  [ "$status" = succeeded ] || { echo "run $i: provisioning $status" >&2; api "$DBAAS_ENDPOINT/v1/operations/$op/logs" >&2; exit 1; }
  ms=$(( (t1 - t0) / 1000000 ))
  times+=("$ms")
  echo "run $i: POST to ready ${ms} ms"
  del=$(api -X DELETE "$DBAAS_ENDPOINT/v1/instances/bench-$i" | field "['last_operation_id']")
  api "$DBAAS_ENDPOINT/v1/operations/$del?wait=60s" >/dev/null
done

# The floor: what any tool must at least spend (initdb + start), measured the same way.
mkdir -p "$work/floor" && chown postgres: "$work/floor"
f0=$(date +%s%N)
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$work/floor/pgdata" --auth-local=peer --auth-host=scram-sha-256 --data-checksums -U postgres >/dev/null
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl start -w -D "$work/floor/pgdata" -l "$work/floor/log" -o "-p 26100 -k $work/floor" >/dev/null
f1=$(date +%s%N)
floor=$(( (f1 - f0) / 1000000 ))

median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median POST to ready: ${median} ms over $RUNS runs (target 3000 ms)"
echo "bare initdb + pg_ctl start: ${floor} ms"
awk -v m="$median" 'BEGIN { printf "ratio to target: %.2f (<= 1.0 meets it)\n", m / 3000 }'
awk -v m="$median" -v f="$floor" 'BEGIN { printf "overhead over the bare floor: %.2fx\n", m / f }'
