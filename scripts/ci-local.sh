#!/usr/bin/env bash
# Checks .gitlab-ci.yml locally with gitlab-ci-local: validates the whole file against GitLab's
# schema and runs the jobs that can run on this machine (lint: fmt and modules) with the
# shell executor. Installs gitlab-ci-local (npm) and rsync when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}
gcl="$tools/node_modules/.bin/gitlab-ci-local"
if ! command -v rsync >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null
fi
if [ ! -x "$gcl" ]; then
  command -v npm >/dev/null || { echo "npm not found: install Node.js to check the pipeline locally" >&2; exit 1; }
  mkdir -p "$tools"
  # 4.60 is the newest release that runs on Node 20.
  npm install --prefix "$tools" --no-audit --no-fund --silent gitlab-ci-local@4.60.1 >/dev/null
fi
"$gcl" --list >/dev/null            # parses, expands and validates the whole file
# The example pipelines teams copy are validated the same way.
for f in examples/gitlab-ci/.gitlab-ci.yml examples/gitlab-ci/review-databases/.gitlab-ci.yml; do
  "$gcl" --file "$f" --list >/dev/null
done
"$gcl" --force-shell-executor fmt modules
echo "gitlab-ci-local: pipeline valid; jobs fmt and modules passed"
