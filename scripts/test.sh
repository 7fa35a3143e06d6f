#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real PostgreSQL clusters
# started by the harness, and real dbaas-api processes. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo test --workspace --locked "$@"
