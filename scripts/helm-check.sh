#!/usr/bin/env bash
# Lints and renders the Helm chart (deploy/helm/dbaas) with Helm's own Go SDK and validates
# every rendered object against the Kubernetes schemas: see scripts/helm_check.py.
# Helm itself is not in the registries these machines reach as a binary; helm-python-sdk
# (PyPI) bundles Helm's official Go SDK (v4) as a shared library, and kubernetes-validate
# (PyPI) carries the Kubernetes OpenAPI schemas. Both pinned, in a virtualenv of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_SDK_VERSION=0.2.2
KUBE_VALIDATE_VERSION=1.37.0
VENV="${DBAAS_TOOLS_DIR:-/var/tmp/dbaas-tools}/helmcheck-$HELM_SDK_VERSION-$KUBE_VALIDATE_VERSION"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import helm_python, kubernetes_validate, yaml' 2>/dev/null; then
  echo "installing helm-python-sdk $HELM_SDK_VERSION and kubernetes-validate $KUBE_VALIDATE_VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "helm-python-sdk==$HELM_SDK_VERSION" "kubernetes-validate==$KUBE_VALIDATE_VERSION" "PyYAML>=6,<7"
fi
"$VENV/bin/python" scripts/helm_check.py deploy/helm/dbaas
