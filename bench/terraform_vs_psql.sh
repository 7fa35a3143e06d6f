#!/usr/bin/env bash
# Applies N databases through terraform (parallelism 10) against `dbaas-api dev`, then does
# the same catalog work with one serial psql script against the same instance, and prints
# the time per database for each and their ratio (target: ratio <= 1.0 at N=50).
#
#   bash bench/terraform_vs_psql.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
bash scripts/ensure-deps.sh
cargo build --release --locked -q -p dbaas-api -p terraform-provider-dbaas

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start_dev
bench_terraform_mirror
mkdir -p "$work/tf"
cat >"$work/tf/main.tf" <<TF
terraform {
  required_providers {
    dbaas = { source = "dbaas/dbaas", version = "0.1.0" }
  }
}
resource "dbaas_tenant" "bench" {
  name          = "bench"
  max_databases = $N
}
resource "dbaas_database" "db" {
  count    = $N
  tenant   = dbaas_tenant.bench.name
  name     = "db-\${count.index}"
  instance = "local"
}
TF
(cd "$work/tf" && terraform init -input=false >/dev/null)
# The tenant first, so the timed apply covers the databases only.
(cd "$work/tf" && terraform apply -auto-approve -input=false -target=dbaas_tenant.bench >/dev/null)
t0=$(date +%s.%N)
(cd "$work/tf" && terraform apply -auto-approve -input=false -parallelism=10 >/dev/null)
t1=$(date +%s.%N)

# The serial floor: the same statements the service sends, one database after another.
lport=$(cat "$work/dev/local/port")
export PGPASSWORD
PGPASSWORD=$(cat "$work/dev/local/password")
sql="$work/serial.sql"
: >"$sql"
for i in $(seq 0 $((N - 1))); do
  d="serial-db-$i"
  for a in admin write read; do
    echo "CREATE ROLE \"$d-$a\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=';" >>"$sql"
  done
  cat >>"$sql" <<SQL
CREATE DATABASE "$d" OWNER "$d-admin" TEMPLATE template0 ENCODING 'UTF8';
REVOKE ALL ON DATABASE "$d" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE "$d" TO "$d-read", "$d-write";
\\connect "$d"
ALTER SCHEMA public OWNER TO "$d-admin";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE "$d-admin" GRANT USAGE ON SCHEMAS TO "$d-read", "$d-write";
ALTER DEFAULT PRIVILEGES FOR ROLE "$d-admin" GRANT SELECT ON TABLES TO "$d-read";
ALTER DEFAULT PRIVILEGES FOR ROLE "$d-admin" GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO "$d-write";
ALTER DEFAULT PRIVILEGES FOR ROLE "$d-admin" GRANT SELECT ON SEQUENCES TO "$d-read";
ALTER DEFAULT PRIVILEGES FOR ROLE "$d-admin" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "$d-write";
GRANT USAGE ON SCHEMA public TO "$d-read", "$d-write";
\\connect postgres
SQL
done
t2=$(date +%s.%N)
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$lport" -U postgres -d postgres -f "$sql" >/dev/null
t3=$(date +%s.%N)

python3 - "$N" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:])
tf, ps = (t1 - t0) / n, (t3 - t2) / n
print(f"databases: {n}")
print(f"terraform apply (parallelism 10): {t1 - t0:6.2f} s total, {tf * 1000:7.1f} ms per database")
print(f"serial psql script (floor):       {t3 - t2:6.2f} s total, {ps * 1000:7.1f} ms per database")
print(f"ratio terraform/psql: {tf / ps:.2f} (target <= 1.0)")
PY
