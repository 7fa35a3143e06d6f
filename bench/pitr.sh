#!/usr/bin/env bash
# Point-in-time recovery figures, against a release `dbaas-api dev` with the machine
# registered as a local host and a managed instance loaded with ~1 GB (pgbench scale 64):
#
# - RPO: after the last commit, how long until the recovery window's `latest` covers it,
#   with archive_timeout 5 s; ratio to the target archive_timeout + 5 s (<= 1.0 meets it).
# - Instance restore in place to a time through the API (safety backup, restore --delta,
#   recovery, checks, records brought back in line) vs by hand on the same data (stop,
#   `pgbackrest restore --delta` to the same time, start, wait for promotion); ratio
#   API / by hand (target <= 1.10).
# - One database restored to a time into a new database, with its parts as the operation
#   logs them (repository restore, recovery, dump; then pg_restore).
#
#   bash bench/pitr.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-64}
bash scripts/ensure-deps.sh
cargo build --release --locked -q -p dbaas-api

bench_before_cleanup() {
  for d in "$work"/host/*/pgdata "$work"/host/.pitr-*/pgdata; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl stop -m immediate -D "$d" >/dev/null 2>&1 || true
  done
}
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start_dev
ms() { echo $(( ($2 - $1) / 1000000 )); }
wait_op() {
  local status
  status=$(api "$DBAAS_ENDPOINT/v1/operations/$1?wait=600s" | field "['status']")
  [ "$status" = succeeded ] || { echo "operation $1: $status" >&2; api "$DBAAS_ENDPOINT/v1/operations/$1/logs" >&2; exit 1; }
}
latest_covers() {  # latest_covers PATH TIME: the window at PATH reaches TIME
  api "$DBAAS_ENDPOINT$1" | python3 -c "import sys,json
from datetime import datetime as d; w=json.load(sys.stdin)
sys.exit(0 if w['latest'] and d.fromisoformat(w['latest']) >= d.fromisoformat('$2') else 1)"
}

mkdir -p "$work/host"
api -X POST "$DBAAS_ENDPOINT/v1/hosts" -d "{\"name\":\"bench\",\"kind\":\"local\",\"data_root\":\"$work/host\",\"port_range\":[26200,26299]}" >/dev/null
api -X POST "$DBAAS_ENDPOINT/v1/tenants" -d '{"name":"bench"}' >/dev/null
op=$(api -X POST "$DBAAS_ENDPOINT/v1/instances" -d '{"name":"pg-bench","kind":"managed","host":"bench","version":"15",
  "environment":"sandbox","settings":{"archive_timeout":"5s","max_wal_size":"4GB"}}' | field "['last_operation_id']")
wait_op "$op"
resp=$(api -X POST "$DBAAS_ENDPOINT/v1/databases" -d '{"name":"orders","tenant":"bench","instance":"pg-bench"}')
db=$(echo "$resp" | field "['database']['id']")
wait_op "$(echo "$resp" | field "['operation']['id']")"
uri=$(api "$DBAAS_ENDPOINT/v1/databases/$db/credentials/admin" | field "['uri']")
echo "loading pgbench scale $SCALE..."
pgbench -q -i -s "$SCALE" "$uri" >/dev/null 2>&1
size=$(psql "$uri" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "database size: $size"
op=$(api -X POST "$DBAAS_ENDPOINT/v1/instances/pg-bench/base-backups" -d '{"kind":"full"}' | field "['id']")
t0=$(date +%s%N); wait_op "$op"; t1=$(date +%s%N)
echo "full base backup through the API: $(ms "$t0" "$t1") ms"

# RPO: the last commit, then nothing; when does the window cover it?
psql "$uri" -qc "CREATE TABLE marks (at timestamptz DEFAULT clock_timestamp())"
commit=$(psql "$uri" -Atc "INSERT INTO marks DEFAULT VALUES RETURNING to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" | head -1)
c0=$(date +%s%N)
until latest_covers "/v1/databases/$db/recovery" "$commit"; do sleep 0.2; done
c1=$(date +%s%N)
lag=$(ms "$c0" "$c1")
echo "RPO: the newest restorable time covered the last commit after $lag ms (archive_timeout 5000 ms)"
awk -v l="$lag" 'BEGIN { printf "RPO ratio to target archive_timeout + 5 s: %.2f (<= 1.0 meets it)\n", l / 10000 }'

# A moment to go back to, then changes after it.
sleep 2
target=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 2
psql "$uri" -qc "UPDATE pgbench_branches SET bbalance = bbalance + 1" -c "DELETE FROM pgbench_history"
psql "$uri" -qc "INSERT INTO marks DEFAULT VALUES"
until latest_covers "/v1/instances/pg-bench/recovery" "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ --date='-1 second')"; do sleep 0.5; done

# One database to the moment, into a new database.
t0=$(date +%s%N)
resp=$(api -X POST "$DBAAS_ENDPOINT/v1/databases/$db/restore" -d "{\"time\":\"$target\",\"target\":\"new\",\"name\":\"orders-at-t\"}")
op=$(echo "$resp" | field "['operation']['id']")
wait_op "$op"
t1=$(date +%s%N)
one=$(ms "$t0" "$t1")
parts=$(api "$DBAAS_ENDPOINT/v1/operations/$op/logs" | python3 -c "import sys,json
for l in json.load(sys.stdin)['items']:
    m = l['message']
    if m.startswith('parts:') or m.startswith('pg_restore took'): print('  ' + m)")
echo "one database to a time (new database): $one ms"
echo "$parts"

# The whole instance in place, first by hand and then through the API, each from the same kind
# of state (the same changes made after the target, archived), to the same target.
inst_dir=$(ls -d "$work"/host/pg-bench-*)
port=$(api "$DBAAS_ENDPOINT/v1/instances/pg-bench" | field "['port']")
pg() { runuser -u postgres -- "$@"; }
changes() {
  psql "$uri" -qc "UPDATE pgbench_branches SET bbalance = bbalance + 1" -c "DELETE FROM pgbench_history" \
    -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0"
  psql "$uri" -qc "INSERT INTO marks DEFAULT VALUES"
  local now; now=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  until latest_covers "/v1/instances/pg-bench/recovery" "$now"; do sleep 0.5; done
}
changes
t0=$(date +%s%N)
pg /usr/lib/postgresql/15/bin/pg_ctl stop -m fast -w -D "$inst_dir/pgdata" >/dev/null
pg pgbackrest --config="$inst_dir/pgbackrest.conf" --stanza=pg-bench restore --delta --type=time \
  "--target=$(date -u -d "$target" '+%Y-%m-%d %H:%M:%S.%6N+00')" --target-action=promote >/dev/null
pg /usr/lib/postgresql/15/bin/pg_ctl start -w -t 600 -D "$inst_dir/pgdata" -l "$inst_dir/server.log" >/dev/null
until [ "$(pg psql -X -At -h "$inst_dir/run" -p "$port" -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.1; done
t1=$(date +%s%N)
by_hand=$(ms "$t0" "$t1")
echo "instance in place to a time by hand (stop, pgbackrest restore --delta, start, promoted): $by_hand ms"
pg psql -X -q -h "$inst_dir/run" -p "$port" -d postgres -c CHECKPOINT
changes

t0=$(date +%s%N)
op=$(api -X POST "$DBAAS_ENDPOINT/v1/instances/pg-bench/restore" -d "{\"time\":\"$target\",\"target\":\"in_place\"}" | field "['last_operation_id']")
wait_op "$op"
t1=$(date +%s%N)
via_api=$(ms "$t0" "$t1")
echo "instance in place to a time through the API: $via_api ms; its steps:"
steps=$(api "$DBAAS_ENDPOINT/v1/operations/$op/logs" | python3 -c "import sys,json
from datetime import datetime as d
items = json.load(sys.stdin)['items']
t0 = d.fromisoformat(items[0]['at'])
at = lambda m: next((d.fromisoformat(i['at']) for i in items if i['message'].startswith(m)), None)
for a in items:
    print('  +%6.0f ms  %s' % ((d.fromisoformat(a['at']) - t0).total_seconds() * 1000, a['message'][:110]))
s, e = at('safety base backup'), at('stopping the server')
print('safety=%d' % ((e - s).total_seconds() * 1000 if s and e else 0))")
echo "$steps" | grep -v '^safety='
safety=$(echo "$steps" | sed -n 's/^safety=//p')
awk -v a="$via_api" -v b="$by_hand" 'BEGIN { printf "instance restore ratio API / by hand: %.2f (target <= 1.10)\n", a / b }'
awk -v a="$via_api" -v b="$by_hand" -v s="$safety" 'BEGIN { printf "without the safety base backup (%d ms): %.2f\n", s, (a - s) / b }'
