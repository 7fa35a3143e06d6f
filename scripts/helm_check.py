"""Checks the Helm chart in deploy/helm/dbaas with Helm itself and the Kubernetes schemas.

Helm's own Go SDK (helm-python-sdk bundles it as libhelm_c) lints the chart and renders it
offline with several sets of values; every rendered object is validated against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors), and
the properties the service relies on are asserted. Values the chart must refuse are tried
too. Exits non-zero on the first problem.
"""

import copy
import sys

import helm_python as helm
import kubernetes_validate
import yaml

CHART = sys.argv[1] if len(sys.argv) > 1 else "deploy/helm/dbaas"
KUBE = "1.30"
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def render(chart, values, upgrade=False):
    out = chart.render(values, name="dbaas", namespace="platform", revision=2 if upgrade else 1,
                       is_install=not upgrade, is_upgrade=upgrade)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((path, doc))
    return docs


def by_kind(docs, kind):
    return [d for _, d in docs if d["kind"] == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    if len(found) != 1:
        fail(f"expected one {kind}, rendered {len(found)}")
        return {}
    return found[0]


def optional(docs, kind, enabled, label):
    """The one object of an optional `kind`: present when enabled, absent otherwise."""
    found = by_kind(docs, kind)
    if enabled and len(found) != 1:
        fail(f"{label}: expected one {kind}, rendered {len(found)}")
    elif not enabled and found:
        fail(f"{label}: {kind} rendered while disabled")
    return found[0] if enabled and len(found) == 1 else None


def check_schemas(docs, label):
    for path, doc in docs:
        if doc.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked field by field below
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{label}: {path} ({doc['kind']}) does not validate against Kubernetes {KUBE}: {e.message} at {list(e.path)}")
        except kubernetes_validate.SchemaNotFoundError as e:
            fail(f"{label}: {path}: no Kubernetes schema for {doc.get('apiVersion')}/{doc.get('kind')}: {e}")


def check_properties(docs, values, label):
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (c,) = spec["containers"]
    if dep["spec"]["replicas"] != values["replicaCount"]:
        fail(f"{label}: replicas {dep['spec']['replicas']} != {values['replicaCount']}")
    if dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] != 0:
        fail(f"{label}: a rolling update may drop below the desired replicas")
    probes = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}:
        fail(f"{label}: probes {probes}")
    env = {e["name"]: e for e in c["env"]}
    if "DBAAS_MASTER_KEY" in env:
        fail(f"{label}: the master key is in the environment")
    key_file = env.get("DBAAS_MASTER_KEY_FILE", {}).get("value", "")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    mk = vols.get("master-key", {}).get("secret", {})
    if mk.get("secretName") != values["masterKey"]["existingSecret"] or mk.get("defaultMode") != 0o400:
        fail(f"{label}: master key volume {mk}")
    if not key_file.startswith(mounts.get("master-key", {}).get("mountPath", "?") + "/"):
        fail(f"{label}: DBAAS_MASTER_KEY_FILE {key_file!r} is not in the mounted Secret")
    db = env.get("DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if db != {"name": values["stateDatabase"]["existingSecret"], "key": values["stateDatabase"]["urlKey"]}:
        fail(f"{label}: DATABASE_URL not from the Secret: {env.get('DATABASE_URL')}")
    for name, e in env.items():
        if "value" in e and any(s in e["value"] for s in ("postgres://", "postgresql://")):
            fail(f"{label}: {name} holds a connection string in plain values")
    if values["stateDatabase"].get("engineUrlKey") and "DBAAS_ENGINE_DATABASE_URL" not in env:
        fail(f"{label}: engineUrlKey set but DBAAS_ENGINE_DATABASE_URL missing")
    grace_s = values["engine"]["shutdownGraceMs"] / 1000 + values.get("preStopSleepSeconds", 0)
    if spec["terminationGracePeriodSeconds"] <= grace_s:
        fail(f"{label}: terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} leaves no time to hand back after {grace_s}s")
    sc = c["securityContext"]
    if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
        fail(f"{label}: container security context {sc}")
    if env.get("DBAAS_LISTEN", {}).get("value") != "0.0.0.0:8080":
        fail(f"{label}: the process would listen on loopback only")

    svc = one(docs, "Service")
    if svc["spec"]["selector"] != dep["spec"]["selector"]["matchLabels"] or \
            any(pod["metadata"]["labels"].get(k) != v for k, v in svc["spec"]["selector"].items()):
        fail(f"{label}: the Service does not select the pods")

    pdb = optional(docs, "PodDisruptionBudget", values["podDisruptionBudget"]["enabled"], label)
    if pdb and pdb["spec"]["selector"]["matchLabels"] != dep["spec"]["selector"]["matchLabels"]:
        fail(f"{label}: the PodDisruptionBudget does not select the pods")

    job = optional(docs, "Job", values["migrations"]["enabled"], label)
    if job:
        ann = job["metadata"].get("annotations", {})
        if set(ann.get("helm.sh/hook", "").split(",")) != {"pre-install", "pre-upgrade"}:
            fail(f"{label}: migration Job is not a pre-install/pre-upgrade hook: {ann}")
        (mc,) = job["spec"]["template"]["spec"]["containers"]
        if mc["args"] != ["migrate"] or mc["image"] != c["image"]:
            fail(f"{label}: migration Job runs {mc['image']} {mc['args']}")

    sm = optional(docs, "ServiceMonitor", values["serviceMonitor"]["enabled"], label)
    if sm:
        (ep,) = sm["spec"]["endpoints"]
        ports = {p["name"] for p in svc["spec"]["ports"]}
        if ep.get("port") not in ports or ep.get("path") != "/metrics":
            fail(f"{label}: ServiceMonitor scrapes {ep}, the Service has ports {ports}")
        if sm["spec"]["selector"]["matchLabels"].items() - svc["metadata"]["labels"].items():
            fail(f"{label}: the ServiceMonitor does not select the Service")


def main():
    report = helm.lint(CHART, strict=True, kube_version=f"v{KUBE}.0")
    for m in report.get("messages", []):
        if m.get("severity", 0) >= 2:
            fail(f"helm lint: {m}")
    for e in report.get("errors", []) or []:
        fail(f"helm lint: {e}")

    with helm.Chart.load(CHART) as chart:
        defaults = chart.values
        variants = {"defaults": {}}
        variants["everything on"] = {
            "replicaCount": 5,
            "stateDatabase": {"engineUrlKey": "engine-url"},
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
            "podDisruptionBudget": {"minAvailable": 3},
            "engine": {"shutdownGraceMs": 60000},
            "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
        }
        variants["minimal"] = {
            "replicaCount": 1,
            "migrations": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "preStopSleepSeconds": 0,
            "serviceAccount": {"create": False},
            "topologySpread": False,
        }
        rendered = 0
        for label, overrides in variants.items():
            chart.validate_schema(overrides)
            values = chart.merge_values(overrides)
            for upgrade in (False, True):
                docs = render(chart, overrides, upgrade)
                rendered += len(docs)
                check_schemas(docs, f"{label}{' (upgrade)' if upgrade else ''}")
                check_properties(docs, values, label)

        # Values the chart must refuse, before anything reaches a cluster.
        refused = {
            "no replicas": {"replicaCount": 0},
            "unknown key": {"replicas": 3},
            "empty master key secret": {"masterKey": {"existingSecret": ""}},
            "lease below 1 s": {"engine": {"opLeaseMs": 10}},
            "path in the key name": {"masterKey": {"key": "../etc/passwd"}},
        }
        for label, bad in refused.items():
            try:
                chart.validate_schema(bad)
                render(chart, bad)
                fail(f"values accepted: {label}: {bad}")
            except (helm.HelmValuesError, helm.HelmRenderError):
                pass
        try:
            render(chart, {"replicaCount": 2, "podDisruptionBudget": {"minAvailable": 2}})
            fail("a PodDisruptionBudget that blocks every drain was rendered")
        except helm.HelmRenderError as e:
            if "minAvailable" not in str(e):
                fail(f"unexpected render error: {e}")

    if failures:
        print(f"helm chart: {len(failures)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"helm chart: lint clean (Helm {helm.helm_sdk_version()}), {len(variants)} value sets x install/upgrade, "
          f"{rendered} objects valid against Kubernetes {KUBE} schemas, {len(refused) + 1} bad value sets refused")


if __name__ == "__main__":
    main()
