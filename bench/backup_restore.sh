#!/usr/bin/env bash
# Backup and restore of one ~1 GB database (pgbench scale 70 by default) through the API,
# next to raw pg_dump/pg_restore with the same format (custom) and the same login (the
# database's admin role), on the same instance and disk, in one run. Prints each time, the
# ratios API/raw (targets: <= 1.15 for backup and for restore) and the restore drill's
# measured restore time (RTO). The API's extra work is sealing (AES-256-GCM + SHA-256), the
# manifest's row counts and checksums, and for the restore the provisioning of the new
# database and the manifest check.
#
#   bash bench/backup_restore.sh [SCALE]     (or SCALE=…; DBAAS_BENCH_NO_BUILD=1 uses the built binary)
#
# Each timed step starts after a CHECKPOINT, so no step pays for the previous one's writes.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-${SCALE:-70}}
bash scripts/ensure-deps.sh
[ "${DBAAS_BENCH_NO_BUILD:-}" = 1 ] || cargo build --release --locked -q -p dbaas-api
BIN=/usr/lib/postgresql/15/bin

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start_dev
wait_op() {
  local status
  while :; do
    status=$(api "$DBAAS_ENDPOINT/v1/operations/$1?wait=60s" | field "['status']")
    case $status in
      succeeded) return 0 ;;
      failed | cancelled) echo "operation $1 $status" >&2; api "$DBAAS_ENDPOINT/v1/operations/$1/logs" >&2; exit 1 ;;
    esac
  done
}

api -X POST "$DBAAS_ENDPOINT/v1/tenants" -d '{"name":"bench"}' >/dev/null
acc=$(api -X POST "$DBAAS_ENDPOINT/v1/databases" -d '{"tenant":"bench","name":"data","instance":"local"}')
db=$(echo "$acc" | field "['database']['id']")
wait_op "$(echo "$acc" | field "['operation']['id']")"
uri=$(api "$DBAAS_ENDPOINT/v1/databases/$db/credentials/admin" | field "['uri']")
role=$(api "$DBAAS_ENDPOINT/v1/databases/$db" | field "['roles']['admin']")
echo "loading pgbench scale $SCALE ..."
"$BIN/pgbench" -i -q -s "$SCALE" "$uri" >/dev/null 2>&1
size=$(psql -X -At "$uri" -c "select pg_size_pretty(pg_database_size(current_database()))")
echo "database size: $size"

lport=$(cat "$work/dev/local/port")
su() { PGPASSWORD=$(cat "$work/dev/local/password") psql -X -q -h 127.0.0.1 -p "$lport" -U postgres -d postgres "$@"; }
checkpoint() { su -c CHECKPOINT; sync; }

# Raw: the same format, the same login, a file on the same disk.
checkpoint
t0=$(now)
"$BIN/pg_dump" --format=custom -d "$uri" -f "$work/raw.dump"
t1=$(now)
su -c "CREATE DATABASE raw_restore OWNER \"$role\" TEMPLATE template0"
raw_uri=${uri/\/bench_data\?/\/raw_restore?}
[ "$raw_uri" != "$uri" ] || { echo "cannot derive the raw restore target from $uri" >&2; exit 1; }
checkpoint
t2=$(now)
"$BIN/pg_restore" --no-owner --no-privileges --exit-on-error --single-transaction -d "$raw_uri" "$work/raw.dump"
t3=$(now)
rm -f "$work/raw.dump"

# Through the API: backup, restore into a new database, drill.
checkpoint
t4=$(now)
acc=$(api -X POST "$DBAAS_ENDPOINT/v1/databases/$db/backups" -d '{}')
backup=$(echo "$acc" | field "['backup']['id']")
wait_op "$(echo "$acc" | field "['operation']['id']")"
t5=$(now)
checkpoint
t5b=$(now)
acc=$(api -X POST "$DBAAS_ENDPOINT/v1/databases/$db/restore" -d "{\"backup\":\"$backup\",\"target\":\"new\",\"name\":\"copy\"}")
restore_op=$(echo "$acc" | field "['operation']['id']")
wait_op "$restore_op"
t6=$(now)
breakdown=$(api "$DBAAS_ENDPOINT/v1/operations/$restore_op/logs" | python3 -c "import json,sys; print(' '.join(l['message'] for l in json.load(sys.stdin)['items'] if l['message'].startswith('pg_restore took')))")
checkpoint
acc=$(api -X POST "$DBAAS_ENDPOINT/v1/backups/$backup/verify")
wait_op "$(echo "$acc" | field "['operation']['id']")"
b=$(api "$DBAAS_ENDPOINT/v1/backups/$backup")
rto=$(echo "$b" | field "['restore_ms']")
verify=$(echo "$b" | field "['verify_status']")
stored=$(echo "$b" | field "['size_bytes']")

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t5b" "$t6" "$rto" "$verify" "$stored" <<'PY'
import sys
t = list(map(float, sys.argv[1:9]))
rto, verify, stored = int(sys.argv[9]), sys.argv[10], int(sys.argv[11])
raw_b, raw_r = t[1] - t[0], t[3] - t[2]
api_b, api_r = t[5] - t[4], t[7] - t[6]
print(f"stored backup: {stored / 1048576:.0f} MiB (sealed)")
print(f"backup:  api {api_b:6.1f} s, raw pg_dump    {raw_b:6.1f} s, ratio {api_b / raw_b:.2f} (target <= 1.15)")
print(f"restore: api {api_r:6.1f} s, raw pg_restore {raw_r:6.1f} s, ratio {api_r / raw_r:.2f} (target <= 1.15)")
print(f"restore drill: {verify}, measured restore time (RTO) {rto / 1000:.1f} s")
PY
echo "restore through the API, in its log: $breakdown"
