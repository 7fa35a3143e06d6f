#!/usr/bin/env bash
# The routing proxy against direct connections, in the same run, against a release
# `dbaas-api dev` with a local host whose proxy (pgbouncer) fronts a managed instance with
# max_connections = 20:
#
# - pgbench select-only and tpcb-like at 10 clients, direct (the instance's own port) and
#   through the proxy, both over TLS; ratio proxy / direct of the average latency
#   (target <= 1.15).
# - 50 clients, the database in `transaction` pool mode: direct connections beyond
#   max_connections are refused; through the proxy all 50 are served (target: zero
#   connection errors, zero failed transactions).
#
#   bash bench/proxy.sh [SCALE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-10}
SECONDS_PER_RUN=${2:-20}
bash scripts/ensure-deps.sh
cargo build --release --locked -q -p dbaas-api

bench_before_cleanup() {
  for d in "$work"/host/*/pgdata; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl stop -m immediate -D "$d" >/dev/null 2>&1 || true
  done
  [ -f "$work/host/.proxy/pgbouncer.pid" ] && kill -TERM "$(cat "$work/host/.proxy/pgbouncer.pid")" 2>/dev/null || true
}
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start_dev
wait_op() {
  local status
  status=$(api "$DBAAS_ENDPOINT/v1/operations/$1?wait=600s" | field "['status']")
  [ "$status" = succeeded ] || { echo "operation $1: $status" >&2; api "$DBAAS_ENDPOINT/v1/operations/$1/logs" >&2; exit 1; }
}

PROXY_PORT=26390
mkdir -p "$work/host"
api -X POST "$DBAAS_ENDPOINT/v1/hosts" -d "{\"name\":\"bench\",\"kind\":\"local\",\"data_root\":\"$work/host\",
  \"port_range\":[26300,26309],\"proxy_port\":$PROXY_PORT}" >/dev/null
api -X POST "$DBAAS_ENDPOINT/v1/tenants" -d '{"name":"bench"}' >/dev/null
op=$(api -X POST "$DBAAS_ENDPOINT/v1/instances" -d '{"name":"pg-bench","kind":"managed","host":"bench","version":"15",
  "environment":"sandbox","settings":{"max_connections":"20"}}' | field "['last_operation_id']")
wait_op "$op"
direct_port=$(api "$DBAAS_ENDPOINT/v1/instances/pg-bench" | field "['port']")
resp=$(api -X POST "$DBAAS_ENDPOINT/v1/databases" -d '{"name":"app","tenant":"bench","instance":"pg-bench"}')
db=$(echo "$resp" | field "['database']['id']")
wait_op "$(echo "$resp" | field "['operation']['id']")"
cred=$(api "$DBAAS_ENDPOINT/v1/databases/$db/credentials/admin")
echo "$cred" | field "['ca_cert']" > "$work/ca.pem"
proxy_uri=$(echo "$cred" | field "['uri']")
case "$proxy_uri" in *":$PROXY_PORT/"*) ;; *) echo "not through the proxy: $proxy_uri" >&2; exit 1;; esac
proxy_uri="${proxy_uri%%\?*}?sslmode=verify-full&sslrootcert=$work/ca.pem"
direct_uri="${proxy_uri/:$PROXY_PORT\//:$direct_port/}"
echo "pgbench scale $SCALE, $SECONDS_PER_RUN s per run; instance port $direct_port, proxy port $PROXY_PORT (both TLS, verify-full)"
pgbench -q -i -s "$SCALE" "$direct_uri" >/dev/null 2>&1

# run NAME URI ARGS...: pgbench's average latency (ms) and its failures, into $lat/$out.
run() {
  local uri=$1; shift
  out=$(pgbench -n -j 2 -T "$SECONDS_PER_RUN" "$@" "$uri" 2>&1) || true
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
}
direct_errors=(); direct_done=()
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

# Direct runs first, while the instance's connection slots are all free (the proxy keeps
# its server connections open for reuse after its runs).
declare -A direct
for mode in select-only tpcb-like; do
  run "$direct_uri" -b "$mode" -c 10
  [ -n "$lat" ] || { echo "the direct $mode run failed:"; echo "$out"; exit 1; }
  direct[$mode]=$lat
done
for mode in select-only tpcb-like; do
  run "$direct_uri" -b "$mode" -c 50
  direct_errors[${#direct_errors[@]}]=$(echo "$out" | grep -c -i -E "too many clients|remaining connection slots|connection to server .* failed" || true)
  direct_done[${#direct_done[@]}]=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
done

for mode in select-only tpcb-like; do
  run "$proxy_uri" -b "$mode" -c 10
  [ -n "$lat" ] || { echo "the $mode run through the proxy failed:"; echo "$out"; exit 1; }
  echo "$mode, 10 clients (session mode): direct ${direct[$mode]} ms, proxy ${lat} ms; latency ratio proxy/direct $(ratio "$lat" "${direct[$mode]}") (target <= 1.15)"
done

# 50 clients against max_connections 20, the database in transaction pool mode.
op=$(api -X PATCH "$DBAAS_ENDPOINT/v1/databases/$db" -d '{"pool_mode":"transaction"}' | field "['operation']['id']")
wait_op "$op"
i=0
for mode in select-only tpcb-like; do
  run "$proxy_uri" -b "$mode" -c 50
  proxy_errors=$(echo "$out" | grep -c -i -E "too many clients|remaining connection slots|connection to server .* failed" || true)
  proxy_failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  proxy_done=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
  clients=$(echo "$out" | sed -n 's/^number of clients: \([0-9]*\)$/\1/p')
  echo "$mode, 50 clients, max_connections 20: direct: ${direct_errors[$i]} connection error(s), ${direct_done[$i]:-0} transactions; proxy (transaction mode): ${clients:-?} clients, ${proxy_errors} connection error(s), ${proxy_failed:-?} failed, ${proxy_done:-0} transactions, latency ${lat:-?} ms"
  i=$((i + 1))
done
