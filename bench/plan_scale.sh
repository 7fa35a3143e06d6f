#!/usr/bin/env bash
# `terraform plan` of N applied databases against `dbaas-api dev` (release): seconds and what
# the plan cost the target instance (transactions and sessions, from pg_stat_database),
# with their ratios to the targets (500 in < 2 s, 2,000 in < 8 s, zero connections).
# The databases are applied once per N (growing), each plan refreshes every one of them;
# three plans per N, the median reported (and each).
# Then: provisioning time per database as the instance fills (first vs last 200), the list
# paged, and one drift reconciler pass over all of them.
#
#   bash bench/plan_scale.sh [N ...]      (default: 500 2000; ~8 MB of disk per database)
#
# The service's background loops that connect to instances (metrics, drift reconciler) are
# spaced an hour apart for the run, so the instance's counters during a plan are the plan's
# own; the reconciler's cost is printed apart (one pass over the instance, timed).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(500 2000)
bash scripts/ensure-deps.sh
cargo build --release --locked -q -p dbaas-api -p terraform-provider-dbaas
# shellcheck source=bench/lib.sh
source bench/lib.sh
export DBAAS_METRICS_INTERVAL_MS=3600000 DBAAS_DRIFT_INTERVAL_MS=3600000
bench_start_dev
bench_terraform_mirror
max=$(printf '%s\n' "${SIZES[@]}" | sort -n | tail -1)
api -X PATCH "$DBAAS_ENDPOINT/v1/instances/local" -d "{\"max_databases\": $max}" >/dev/null
mkdir -p "$work/tf"
cat >"$work/tf/main.tf" <<TF
terraform {
  required_providers {
    dbaas = { source = "dbaas/dbaas", version = "0.1.0" }
  }
}
variable "n" { type = number }
resource "dbaas_tenant" "bench" {
  name          = "bench"
  max_databases = $max
}
resource "dbaas_database" "db" {
  count    = var.n
  tenant   = dbaas_tenant.bench.name
  name     = "db-\${count.index}"
  instance = "local"
}
TF
cd "$work/tf"
terraform init -input=false >/dev/null
counters() { local_sql "SELECT sum(xact_commit + xact_rollback)::bigint || ' ' || sum(sessions)::bigint FROM pg_stat_database"; }
for n in "${SIZES[@]}"; do
  t0=$(now)
  terraform apply -auto-approve -input=false -parallelism=10 -var "n=$n" >/dev/null
  t1=$(now)
  sleep 2 # statistics are flushed within a second of a session's end
  read -r x0 s0 < <(counters)
  # Three plans, then three without refreshing; the median of each is reported (the 2 cores
  # are shared with the instance's autovacuum visiting the new databases after an apply).
  plans=()
  for _ in 1 2 3; do
    t2=$(now)
    code=0
    terraform plan -input=false -detailed-exitcode -var "n=$n" >"$work/plan.out" || code=$?
    t3=$(now)
    [ "$code" = 0 ] || { echo "plan of $n databases is not empty (exit $code)" >&2; tail -20 "$work/plan.out" >&2; exit 1; }
    plans+=("$(python3 -c "print($t3 - $t2)")")
  done
  sleep 2
  read -r x1 s1 < <(counters)
  # Terraform's own floor: the same plan without refreshing (no API call per resource).
  floors=()
  for _ in 1 2 3; do
    t4=$(now)
    terraform plan -input=false -refresh=false -var "n=$n" >/dev/null
    t5=$(now)
    floors+=("$(python3 -c "print($t5 - $t4)")")
  done
  python3 - "$n" "$t0" "$t1" "$x0" "$x1" "$s0" "$s1" "${plans[*]}" "${floors[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); t0, t1 = map(float, sys.argv[2:4]); x0, x1, s0, s1 = map(int, sys.argv[4:8])
plans = [float(v) for v in sys.argv[8].split()]; floors = [float(v) for v in sys.argv[9].split()]
# The first counters query is one session and one transaction of its own.
xacts, sessions = x1 - x0 - 1, s1 - s0 - 1
target = 2.0 if n <= 500 else 8.0 * n / 2000
plan, floor = statistics.median(plans), statistics.median(floors)
each = ", ".join(f"{p:.2f}" for p in plans)
print(f"N={n}: apply {t1 - t0:7.1f} s; plan {plan:6.2f} s, median of {each} (target < {target:.1f} s, "
      f"ratio {plan / target:.2f}); during the 3 plans the instance saw {xacts} transactions and {sessions} "
      f"sessions (target 0; transactions without a session are the server's own, autovacuum's); "
      f"terraform's floor (plan -refresh=false) {floor:5.2f} s, median of "
      + ", ".join(f"{f:.2f}" for f in floors))
PY
done
cd - >/dev/null
# Provisioning cost as the instance fills: each provision operation's run time (started to
# finished), the first 200 against the last 200 (target: last <= 1.2 x first); then the
# whole list paged (1,000 and 100 per page).
python3 - "$DBAAS_ENDPOINT" "$DBAAS_TOKEN" <<'PY'
import json, sys, time, urllib.request
from datetime import datetime
endpoint, token = sys.argv[1:]
def get(path):
    req = urllib.request.Request(endpoint + path, headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req))
def every(path, limit):
    items, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        page = get(f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        items += page["items"]; pages += 1
        cursor = page.get("next_cursor")
        if not cursor:
            return items, pages
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
ops, _ = every("/v1/operations?kind=provision_database&status=succeeded", 1000)
ops.sort(key=lambda o: ts(o["created_at"]))
runs = [(ts(o["finished_at"]) - ts(o["started_at"])) * 1000 for o in ops]
if len(runs) >= 400:
    first, last = sum(runs[:200]) / 200, sum(runs[-200:]) / 200
    print(f"provisioning {len(runs)} databases on one instance: first 200 {first:.0f} ms each, "
          f"last 200 {last:.0f} ms each (ratio {last / first:.2f}, target <= 1.2)")
for limit in (1000, 100):
    t = time.monotonic(); dbs, pages = every("/v1/databases?tenant=bench", limit); t = time.monotonic() - t
    print(f"list of {len(dbs)} databases, {pages} pages of {limit}: {t * 1000:.0f} ms ({t * 1000 / pages:.1f} ms a page)")
PY
# What drift detection costs now: one reconciler pass over the instance (dev restarted with a
# one-second interval; the pass times itself: dbaas_drift_pass_* in /metrics).
read -r x0 s0 < <(counters)
DBAAS_DRIFT_INTERVAL_MS=1000 bench_restart_dev
pass=""
for _ in $(seq 1 240); do
  pass=$(curl -sf "$DBAAS_ENDPOINT/metrics" | grep '^dbaas_drift_pass_\(duration_seconds\|databases\){dbaas_instance="local"}' || true)
  [ "$(echo "$pass" | grep -c .)" = 2 ] && break
  sleep 0.5
done
kill -STOP "$dev" # no second pass while the counters are read
sleep 2
read -r x1 s1 < <(counters)
kill -CONT "$dev"
echo "$pass" | sed 's/^/reconciler: /'
echo "reconciler: the instance saw $((x1 - x0 - 1)) transactions and $((s1 - s0 - 1)) sessions from one restart and pass (the restart's own checks included)"
