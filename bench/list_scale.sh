#!/usr/bin/env bash
# The list of 10,000 databases, paged, through the API (release `dbaas-api dev`).
#
# 10,000 real databases need ~80 GB of disk (8 MB each, empty), more than these machines
# have, and provisioning is measured by bench/plan_scale.sh. Here one database is
# provisioned for real and its record copied 9,999 times in the state database (ids, names
# and physical names of their own, same instance, status ready): what is measured is what
# a list costs the API and the state database, which never look at the instance for it.
# The copies are marked by their tenant (`listscale`) and the whole dev is thrown away.
#
#   bash bench/list_scale.sh [N]        (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
bash scripts/ensure-deps.sh
cargo build --release --locked -q -p dbaas-api
# shellcheck source=bench/lib.sh
source bench/lib.sh
export DBAAS_METRICS_INTERVAL_MS=3600000 DBAAS_DRIFT_INTERVAL_MS=3600000
bench_start_dev
state_sql() {
  PGPASSWORD=$(cat "$work/dev/state/password") psql -X -A -t -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$(cat "$work/dev/state/port")" -U postgres -d postgres -c "$1"
}
api -X POST "$DBAAS_ENDPOINT/v1/tenants" -d "{\"name\": \"listscale\", \"max_databases\": $N}" >/dev/null
out=$(api -X POST "$DBAAS_ENDPOINT/v1/databases" -d '{"name": "db-0", "tenant": "listscale", "instance": "local"}')
op=$(echo "$out" | field "['operation']['id']")
[ "$(api "$DBAAS_ENDPOINT/v1/operations/$op?wait=60s" | field "['status']")" = succeeded ]
state_sql "INSERT INTO databases (id, tenant_id, name, instance_id, mode, status, extensions, connection_limit,
             version, created_at, updated_at, physical_name)
           SELECT gen_random_uuid(), d.tenant_id, 'db-' || g, d.instance_id, d.mode, 'ready', d.extensions,
             d.connection_limit, 1, now(), now(), 'listscale_db-' || g
           FROM databases d, generate_series(1, $N - 1) g WHERE d.name = 'db-0'
             AND d.tenant_id = (SELECT id FROM tenants WHERE name = 'listscale')"
state_sql "ANALYZE databases"
python3 - "$DBAAS_ENDPOINT" "$DBAAS_TOKEN" "$N" <<'PY'
import json, statistics, sys, time, urllib.request
endpoint, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def get(path):
    req = urllib.request.Request(endpoint + path, headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req))
def every(limit):
    items, cursor, pages, times = [], None, 0, []
    while True:
        t = time.monotonic()
        page = get(f"/v1/databases?tenant=listscale&limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        times.append(time.monotonic() - t)
        items += page["items"]; pages += 1
        cursor = page.get("next_cursor")
        if not cursor:
            return items, pages, times
every(1000)  # warm the pool and the caches
for limit in (1000, 100):
    runs = []
    for _ in range(3):
        t = time.monotonic(); dbs, pages, times = every(limit); runs.append((time.monotonic() - t, times))
    total, times = sorted(runs, key=lambda r: r[0])[1]
    ids = [d["id"] for d in dbs]
    assert len(ids) == n and len(set(ids)) == n, f"{len(ids)} listed, {len(set(ids))} distinct, {n} expected"
    first, last = times[0] * 1000, times[-1] * 1000
    print(f"list of {n} databases, {pages} pages of {limit}: {total * 1000:.0f} ms in all (median of 3), "
          f"{total * 1000 / pages:.1f} ms a page; first page {first:.1f} ms, last page {last:.1f} ms "
          f"(last/first {last / first:.2f})")
PY
