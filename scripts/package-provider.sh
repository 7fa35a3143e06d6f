#!/usr/bin/env bash
# Packages the provider the way a Terraform registry (or a network mirror) serves it:
# terraform-provider-dbaas_<version>_<os>_<arch>.zip plus a SHA256SUMS file.
#   bash scripts/package-provider.sh <binary> <out-dir>
set -euo pipefail
bin=${1:?binary}
out=${2:?output directory}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n1)
os=linux arch=amd64
name="terraform-provider-dbaas_${version}_${os}_${arch}.zip"
mkdir -p "$out"
stage=$(mktemp -d)
cp "$bin" "$stage/terraform-provider-dbaas_v${version}"
python3 - "$stage" "$out/$name" <<'PY'
import os, sys, zipfile
stage, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
    for f in os.listdir(stage):
        info = zipfile.ZipInfo(f)
        info.external_attr = 0o755 << 16
        with open(os.path.join(stage, f), "rb") as fh:
            z.writestr(info, fh.read(), zipfile.ZIP_DEFLATED)
PY
rm -rf "$stage"
(cd "$out" && sha256sum "$name" > "terraform-provider-dbaas_${version}_SHA256SUMS")
echo "$out/$name"
