#!/usr/bin/env bash
# The whole lifecycle of a database with curl only: create (idempotently), wait on the
# operation, read credentials, connect, rotate, lease, delete.
#
#   source /var/tmp/dbaas-dev/env      # from `dbaas-api dev`
#   TENANT=demo bash examples/rest/lifecycle.sh
#
# Needs curl and python3 (for reading JSON); psql if present is used to connect.
set -euo pipefail
: "${DBAAS_ENDPOINT:?set DBAAS_ENDPOINT}" "${DBAAS_TOKEN:?set DBAAS_TOKEN}"
TENANT=${TENANT:-demo}
NAME=${NAME:-rest-demo}
INSTANCE=${INSTANCE:-local}

api() { # method path [json-body] [extra curl args...]
  local method=$1 path=$2 body=${3:-}
  shift 3 || shift $#
  local args=(-sS -X "$method" -H "Authorization: Bearer $DBAAS_TOKEN" -w '\n%{http_code}')
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  local out code
  out=$(curl "${args[@]}" "$@" "$DBAAS_ENDPOINT$path")
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  if [ "$code" -ge 400 ]; then
    echo "$method $path -> HTTP $code: $out" >&2
    return 1
  fi
  printf '%s' "$out"
}
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"; }
wait_op() { # operation id -> prints final status
  local status
  while :; do
    status=$(api GET "/v1/operations/$1?wait=30s" | json status)
    case $status in succeeded|failed|cancelled) echo "$status"; return ;; esac
  done
}

# Admin tokens create the tenant first; with a tenant token it already exists.
api POST /v1/tenants "{\"name\":\"$TENANT\"}" >/dev/null 2>&1 || true

echo "== create $TENANT/$NAME (a retry with the same Idempotency-Key returns the same answer)"
body="{\"name\":\"$NAME\",\"tenant\":\"$TENANT\",\"instance\":\"$INSTANCE\",\"extensions\":[]}"
resp=$(api POST /v1/databases "$body" -H "Idempotency-Key: lifecycle-$TENANT-$NAME")
again=$(api POST /v1/databases "$body" -H "Idempotency-Key: lifecycle-$TENANT-$NAME")
db=$(echo "$resp" | json database.id)
[ "$db" = "$(echo "$again" | json database.id)" ] || { echo "idempotent retry created another database" >&2; exit 1; }
echo "operation: $(wait_op "$(echo "$resp" | json operation.id)")"

echo "== credentials"
for access in admin write read; do
  uri=$(api GET "/v1/databases/$db/credentials/$access" | json uri)
  echo "$access: ${uri%%:*}://…@${uri#*@}"
  if command -v psql >/dev/null; then psql "$uri" -Atc 'select current_user'; fi
done

echo "== rotate the write password"
rot=$(api POST "/v1/databases/$db/credentials/write/rotate" '{}')
echo "operation: $(wait_op "$(echo "$rot" | json operation.id)")"

echo "== lease a read login for 15 minutes, then revoke it"
lease=$(api POST "/v1/databases/$db/leases" '{"access":"read","ttl":"15m"}')
lease_id=$(echo "$lease" | json credential.id)
echo "operation: $(wait_op "$(echo "$lease" | json operation.id)")"
echo "lease user: $(echo "$lease" | json credential.username), expires $(echo "$lease" | json credential.expires_at)"
rev=$(api DELETE "/v1/databases/$db/leases/$lease_id")
echo "operation: $(wait_op "$(echo "$rev" | json operation.id)")"

echo "== delete"
del=$(api DELETE "/v1/databases/$db?grace=5s")
status=$(wait_op "$(echo "$del" | json operation.id)")
echo "operation: $status"
[ "$status" = succeeded ]
