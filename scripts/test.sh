#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real PostgreSQL clusters
# started by the harness, real dbaas-api processes and the real terraform; then the API fuzzed
# against its OpenAPI document (schemathesis) and the GitLab pipeline checked with
# gitlab-ci-local. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
# The Helm chart: linted and rendered by Helm's Go SDK, validated against Kubernetes schemas.
bash scripts/helm-check.sh
# The tests run as on a fresh machine: an empty home directory and no libpq variables, so no
# ~/.postgresql, ~/.pgpass, ~/.terraformrc or PG* left in a shell decides what they connect
# to or trust. Tool locations are resolved first, while HOME is still the user's.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
export DBAAS_TOOLS_DIR="${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}"
test_home=$(mktemp -d "${TMPDIR:-/tmp}/dbaas-test-home.XXXXXX")
trap 'rm -rf "$test_home"' EXIT
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^PG' || true)
export HOME="$test_home"
export DBAAS_MOTO_SERVER="${DBAAS_MOTO_SERVER:-${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}/moto-5.2.5/bin/moto_server}"
# test-hooks: fault injection (step delays, panics) compiled into the test build only.
cargo test --workspace --locked --features dbaas-api/test-hooks "$@"
# The OpenAPI document is the contract: schemathesis fuzzes `dbaas-api dev` against it.
bash scripts/contract.sh target/debug/dbaas-api
# The project's pipeline, validated and its lint jobs run locally.
bash scripts/ci-local.sh
