#!/usr/bin/env bash
# Installs what building, running and testing need when it is missing (fresh machines and
# CI start bare). Idempotent and quiet when everything is there.
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client-15)
# pg_repack: client binary and server extension (maintenance jobs and their tests).
[ -x /usr/lib/postgresql/15/bin/pg_repack ] || need+=(postgresql-15-repack)
# Point-in-time recovery of managed instances: WAL archiving, base backups and restores.
[ -x /usr/bin/pgbackrest ] || need+=(pgbackrest)
# The routing proxy each host runs in front of its managed instances.
[ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# Managed instances on SSH hosts: the service drives the OpenSSH client; the tests start a
# real sshd on loopback.
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# Observability: the alert rules' unit tests (promtool) and a real Prometheus in the suite.
[ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ] || need+=(prometheus)
# Replicas as deployed: each in its own network namespace (iproute2) behind HAProxy.
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# The portal's browser tests: Debian's Chromium (Playwright drives it; it never downloads one)
# and Node.js for Playwright.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
# Python for the S3 test server (moto, below) and the contract tests.
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# S3 backup stores are tested against moto's S3 server (PyPI; pinned) in a virtualenv.
MOTO_VERSION=5.2.5
MOTO_VENV="${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}/moto-$MOTO_VERSION"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  echo "installing moto $MOTO_VERSION (S3 server for the backup tests) into $MOTO_VENV" >&2
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi

# Playwright's driver library only (playwright-core, pinned; no browser download).
PLAYWRIGHT_VERSION=1.65.1
PLAYWRIGHT_DIR="${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}/playwright-$PLAYWRIGHT_VERSION"
if [ ! -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ]; then
  echo "installing playwright-core $PLAYWRIGHT_VERSION into $PLAYWRIGHT_DIR" >&2
  mkdir -p "$PLAYWRIGHT_DIR"
  npm install --silent --no-audit --no-fund --prefix "$PLAYWRIGHT_DIR" "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi

# gitlab-ci-local (npm; pinned) for the local pipeline check, and rsync, which it needs.
# Installed here, with the user's HOME: npm's and pip's settings (registry, node headers for
# native modules) live there, and the tests later run with an empty HOME.
command -v rsync >/dev/null 2>&1 || {
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq rsync >/dev/null
}
GCL_DIR="${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}"
if [ ! -x "$GCL_DIR/node_modules/.bin/gitlab-ci-local" ]; then
  echo "installing gitlab-ci-local 4.60.1 into $GCL_DIR" >&2
  mkdir -p "$GCL_DIR"
  # 4.60 is the newest release that runs on Node 20.
  npm install --prefix "$GCL_DIR" --no-audit --no-fund --silent gitlab-ci-local@4.60.1 >/dev/null
fi

if ! command -v "${TERRAFORM:-terraform}" >/dev/null 2>&1; then
  # Terraform is not in Debian's archive; the provider's acceptance tests need the binary.
  echo "terraform not found: install Terraform >= 1.10 (these machines have it at /usr/local/bin/terraform) or set TERRAFORM=/path/to/terraform" >&2
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) and retry" >&2
  exit 1
fi
