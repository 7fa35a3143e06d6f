# Shared by the benchmarks (sourced): a release `dbaas-api dev` in a scratch directory under
# /var/tmp, stopped and removed on exit, its environment (DBAAS_ENDPOINT, DBAAS_TOKEN)
# sourced; API helpers; a filesystem mirror for the release provider.
#
# After `bench_start_dev`: $work (scratch dir), $port, $dev (pid). A benchmark that needs
# more cleaning defines `bench_before_cleanup` before starting.

bench_cleanup() {
  if declare -F bench_before_cleanup >/dev/null; then bench_before_cleanup; fi
  kill -TERM "$dev" 2>/dev/null
  wait "$dev" 2>/dev/null || true
  rm -rf "$work"
}

# bench_start_dev: extra environment of the service comes from the caller's environment.
bench_start_dev() {
  work=$(mktemp -d /var/tmp/dbaas-bench.XXXXXX)
  chmod 755 "$work"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  trap bench_cleanup EXIT
  bench_run_dev
}

# bench_restart_dev: SIGTERM, then dev again on the same data dir (same token, databases).
bench_restart_dev() {
  kill -TERM "$dev"
  wait "$dev" 2>/dev/null || true
  bench_run_dev
}

bench_run_dev() {
  ./target/release/dbaas-api dev --data-dir "$work/dev" --port "$port" >>"$work/dev.out" 2>>"$work/dev.err" &
  dev=$!
  for _ in $(seq 1 120); do
    [ -f "$work/dev/env" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.5
  done
  # shellcheck disable=SC1091
  source "$work/dev/env"
}

api() { curl -sS -f -H "Authorization: Bearer $DBAAS_TOKEN" -H 'Content-Type: application/json' "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
now() { date +%s.%N; }

# bench_terraform_mirror: the release provider in a filesystem mirror, and the CLI config
# that uses it (exported for every terraform run that follows).
bench_terraform_mirror() {
  local mirror="$work/mirror/registry.terraform.io/dbaas/dbaas/0.1.0/linux_amd64"
  mkdir -p "$mirror"
  cp target/release/terraform-provider-dbaas "$mirror/terraform-provider-dbaas_v0.1.0"
  cat >"$work/cli.tfrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$work/mirror"
    include = ["registry.terraform.io/dbaas/dbaas"]
  }
}
RC
  export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
}

# local_sql SQL: runs SQL on dev's local instance as its superuser, unaligned output.
local_sql() {
  PGPASSWORD=$(cat "$work/dev/local/password") psql -X -A -t -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$(cat "$work/dev/local/port")" -U postgres -d postgres -c "$1"
}
