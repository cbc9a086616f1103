#!/usr/bin/env python3
"""Offline checks of every manifest under deploy/ (no cluster needed).

- Every YAML document parses; core Kubernetes kinds validate against the
  Kubernetes JSON schemas shipped in the `kubernetes-validate` package.
- SpinApp and SpinAppExecutor use only fields of the operator's API types
  (spinframework/spin-operator api/v1alpha1) and set the required ones.
- Names agree across files: executor, Secrets, ConfigMap, PVC, image,
  namespace, broker address; the runtime config covers every database.
- The topics ConfigMap equals kafka/topics.toml and kafka/create-topics.sh.
- The scale-out overlay (deploy/scale-out/): every component of spin.toml
  runs in exactly one SpinApp, all on Postgres; the API has an HPA, every
  Kafka consumer group a KEDA ScaledObject on its own group and topics,
  with 1 <= minReplicaCount and maxReplicaCount <= the topics' partitions.

Prints one line per check and a closing `N passed, M failed` line.
`--write-topics` regenerates the topics ConfigMap from kafka/.
"""

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30"

# Field lists of the operator's Go types (json tags), api/v1alpha1.
SPINAPP_SPEC = {
    "executor", "image", "imagePullSecrets", "checks", "replicas", "enableAutoscaling",
    "runtimeConfig", "volumes", "volumeMounts", "variables", "serviceAnnotations",
    "deploymentAnnotations", "podAnnotations", "podLabels", "resources", "components",
    "serviceAccountName", "invocationLimits",
}
SPINAPP_REQUIRED = {"executor", "image"}
RUNTIME_CONFIG = {"loadFromSecret", "sqliteDatabases", "keyValueStores", "llmCompute"}
SPIN_VAR = {"name", "value", "valueFrom"}
HEALTH_CHECKS = {"readiness", "liveness"}
HEALTH_PROBE = {"httpGet", "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"}
HTTP_PROBE = {"path", "httpHeaders"}
RESOURCES = {"limits", "requests"}
EXECUTOR_SPEC = {"createDeployment", "deploymentConfig"}
EXECUTOR_REQUIRED = {"createDeployment"}
DEPLOYMENT_CONFIG = {"runtimeClassName", "spinImage", "caCertSecret", "installDefaultCACerts", "otel"}
# KEDA's ScaledObjectSpec and ScaleTriggers (keda.sh/v1alpha1), json tags.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "initialCooldownPeriod", "cooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "advanced", "triggers", "fallback",
}
SCALE_TRIGGER = {"type", "name", "useCachedMetrics", "metadata", "authenticationRef", "metricType"}
# The kafka scaler's metadata keys used here (KEDA docs, scalers/apache-kafka).
KAFKA_SCALER = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
}

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}")


def documents(folder=DEPLOY):
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def unknown(obj, allowed):
    return sorted(set(obj) - allowed)


def block_scalar(text):
    """kafka/ files as the ConfigMap embeds them."""
    return "\n".join(("    " + line if line else "") for line in text.rstrip("\n").split("\n")) + "\n"


def write_topics():
    path = DEPLOY / "topics.yaml"
    text = path.read_text()
    topics = (ROOT / "kafka/topics.toml").read_text()
    script = (ROOT / "kafka/create-topics.sh").read_text()
    head, rest = text.split("  topics.toml: |\n", 1)
    _, tail = rest.split("---\n", 1)
    path.write_text(head + "  topics.toml: |\n" + block_scalar(topics) + "  create-topics.sh: |\n" + block_scalar(script) + "---\n" + tail)


def main():
    if "--write-topics" in sys.argv:
        write_topics()
        return 0
    import kubernetes_validate

    docs = documents()
    check("manifests parse", len(docs) > 0, "no YAML documents under deploy/")
    kinds = {}
    for file, doc in docs:
        kinds.setdefault(doc.get("kind"), []).append(doc)
        if doc.get("apiVersion", "").startswith("core.spinkube.dev/"):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            check(f"{file}: {doc['kind']}/{doc['metadata']['name']} is a valid Kubernetes {K8S_VERSION} object", True)
        except Exception as e:  # noqa: BLE001 - report any validation failure
            check(f"{file}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')} is a valid Kubernetes object", False, str(e).splitlines()[0])

    apps = kinds.get("SpinApp", [])
    executors = kinds.get("SpinAppExecutor", [])
    check("one SpinApp and one SpinAppExecutor", len(apps) == 1 and len(executors) == 1, f"{len(apps)} apps, {len(executors)} executors")
    app, executor = apps[0], executors[0]
    for doc in (app, executor):
        check(f"{doc['kind']} apiVersion", doc["apiVersion"] == "core.spinkube.dev/v1alpha1", doc["apiVersion"])
    spec = app["spec"]
    check("SpinApp fields exist in the operator's SpinAppSpec", not unknown(spec, SPINAPP_SPEC), str(unknown(spec, SPINAPP_SPEC)))
    check("SpinApp sets executor and image", SPINAPP_REQUIRED <= set(spec), str(SPINAPP_REQUIRED - set(spec)))
    check("SpinApp runtimeConfig fields", not unknown(spec.get("runtimeConfig", {}), RUNTIME_CONFIG), str(spec.get("runtimeConfig")))
    bad_vars = [v for v in spec.get("variables", []) if unknown(v, SPIN_VAR) or "name" not in v or ("value" in v) == ("valueFrom" in v)]
    check("SpinApp variables are name + value or valueFrom", not bad_vars, str(bad_vars))
    check("SpinApp variable names are Spin variable names", all(re.fullmatch(r"[a-z][a-z0-9_]*", v["name"]) for v in spec.get("variables", [])))
    checks = spec.get("checks", {})
    probes_ok = not unknown(checks, HEALTH_CHECKS) and all(
        not unknown(p, HEALTH_PROBE) and not unknown(p.get("httpGet", {}), HTTP_PROBE) and "path" in p.get("httpGet", {}) for p in checks.values()
    )
    check("SpinApp checks use HealthProbe fields", probes_ok, str(checks))
    check("SpinApp resources fields", not unknown(spec.get("resources", {}), RESOURCES))
    check("SpinApp replicas is 1 (SQLite is single-node)", spec.get("replicas") == 1, str(spec.get("replicas")))

    espec = executor["spec"]
    dconfig = espec.get("deploymentConfig", {})
    check("SpinAppExecutor fields exist in SpinAppExecutorSpec", not unknown(espec, EXECUTOR_SPEC), str(unknown(espec, EXECUTOR_SPEC)))
    check("SpinAppExecutor sets createDeployment", EXECUTOR_REQUIRED <= set(espec))
    check("deploymentConfig fields exist in ExecutorDeploymentConfig", not unknown(dconfig, DEPLOYMENT_CONFIG), str(unknown(dconfig, DEPLOYMENT_CONFIG)))
    check("deploymentConfig sets exactly one of runtimeClassName and spinImage", ("runtimeClassName" in dconfig) != ("spinImage" in dconfig))
    check("SpinApp uses the executor", spec["executor"] == executor["metadata"]["name"], f"{spec['executor']} vs {executor['metadata']['name']}")

    namespaces = {d["metadata"].get("namespace") for _, d in docs if d["kind"] != "Namespace"}
    declared = {d["metadata"]["name"] for d in kinds.get("Namespace", [])}
    check("every object lives in the declared namespace", namespaces == declared, f"{namespaces} vs {declared}")

    guide = (DEPLOY / "README.md").read_text()
    image = dconfig.get("spinImage", "")
    check("the guide builds the executor image", f"-t {image} " in guide, image)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    check("the Dockerfile puts the app where the SpinApp points", spec["image"] == "/app/spin.toml" and "COPY spin.toml /app/spin.toml" in dockerfile)
    # The admin listeners (metrics, health) stay on loopback unless built
    # otherwise: the probes use the app's port, and /metrics is no public page.
    admin_default = re.search(r"^ARG ADMIN_HOST=(\S+)$", dockerfile, re.M)
    check("the Dockerfile binds the admin listeners to loopback by default",
          admin_default is not None and admin_default.group(1) == "127.0.0.1"
          and "ADMIN_LISTEN=0.0.0.0" not in dockerfile
          and all(probe["httpGet"]["path"] == "/healthz" and "port" not in probe["httpGet"]
                  for probe in spec["checks"].values()))

    secrets = set()
    for v in spec.get("variables", []):
        ref = v.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            secrets.add(ref["name"])
    secrets.add(spec["runtimeConfig"]["loadFromSecret"])
    for secret in sorted(secrets):
        check(f"the guide creates Secret {secret}", re.search(rf"kubectl -n todo create secret generic {re.escape(secret)}\b", guide) is not None)
    check("no Secret objects are kept in the repository", "Secret" not in kinds)

    claims = {d["metadata"]["name"] for d in kinds.get("PersistentVolumeClaim", [])}
    used = {v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
    check("the SpinApp's volume claims exist", used and used <= claims, f"{used} vs {claims}")
    mounts = {m["mountPath"] for m in spec.get("volumeMounts", [])}

    kube = tomllib.loads((ROOT / "runtime-config/kube.toml").read_text())
    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    labels = {label for c in manifest["component"].values() for label in c.get("sqlite_databases", [])}
    configured = set(kube.get("sqlite_database", {}))
    check("runtime-config/kube.toml places every database of spin.toml", labels <= configured, str(labels - configured))
    paths = [db["path"] for db in kube.get("sqlite_database", {}).values()] + [kv["path"] for kv in kube.get("key_value_store", {}).values()]
    check("every database lives on the volume", all(any(p.startswith(m + "/") for m in mounts) for p in paths), str(paths))
    check("the guide loads kube.toml into the runtime-config Secret", "--from-file=runtime-config.toml=runtime-config/kube.toml" in guide)

    statefulsets = {d["metadata"]["name"]: d for d in kinds.get("StatefulSet", [])}
    broker = next((v["value"] for v in spec.get("variables", []) if v["name"] == "kafka_brokers"), "")
    host = broker.split(":")[0]
    check("kafka_brokers names the Redpanda pod", host == "redpanda-0.redpanda.todo.svc.cluster.local" and "redpanda" in statefulsets, broker)
    advertised = " ".join(statefulsets["redpanda"]["spec"]["template"]["spec"]["containers"][0]["args"])
    check("Redpanda advertises the address the app uses", broker in advertised)
    check("Redpanda does not auto-create topics", "auto_create_topics_enabled=false" in advertised)
    jobs = kinds.get("Job", [])
    job_command = " ".join(jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"]) if jobs else ""
    check("the topics Job targets the same broker", broker in job_command, job_command)

    configmap = next(d for d in kinds.get("ConfigMap", []) if d["metadata"]["name"] == "todo-topics")
    repo_topics = tomllib.loads((ROOT / "kafka/topics.toml").read_text())["topic"]
    deployed_topics = tomllib.loads(configmap["data"]["topics.toml"])["topic"]
    check("deployed topics equal kafka/topics.toml", deployed_topics == repo_topics, "run check_manifests.py --write-topics")
    check("the topic script equals kafka/create-topics.sh", configmap["data"]["create-topics.sh"] == (ROOT / "kafka/create-topics.sh").read_text())
    names = {t["name"] for t in repo_topics}
    check("every topic has its .dlq twin", all(f"{n}.dlq" in names for n in names if not n.endswith(".dlq")))

    check_scale_out(guide)

    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def check_scale_out(guide):
    """deploy/scale-out/: N replicas on one Postgres, scaled per role."""
    import kubernetes_validate

    folder = DEPLOY / "scale-out"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    missing = [r for r in kustomization["resources"] if not (folder / r).resolve().exists()]
    check("scale-out: every kustomization resource exists", not missing, str(missing))
    docs = documents(folder)
    kinds = {}
    for file, doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
        if "/" in doc["apiVersion"] and doc["apiVersion"].split("/")[0].endswith((".dev", ".sh")):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            check(f"scale-out/{file}: {doc['kind']}/{doc['metadata']['name']} is a valid Kubernetes {K8S_VERSION} object", True)
        except Exception as e:  # noqa: BLE001 - report any validation failure
            check(f"scale-out/{file}: {doc['kind']}/{doc['metadata']['name']} is a valid Kubernetes object", False, str(e).splitlines()[0])

    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    components = set(manifest["component"])
    apps = {a["metadata"]["name"]: a for a in kinds.get("SpinApp", [])}
    placed = [c for a in apps.values() for c in a["spec"].get("components", [])]
    check("scale-out: every component runs in exactly one SpinApp",
          sorted(placed) == sorted(components), f"{sorted(placed)} vs {sorted(components)}")
    broker = "redpanda-0.redpanda.todo.svc.cluster.local:9092"
    services = {d["metadata"]["name"]: d for d in kinds.get("Service", [])}
    pg_port = services["postgres"]["spec"]["ports"][0]["port"] if "postgres" in services else None
    for name, app in apps.items():
        spec = app["spec"]
        check(f"scale-out: SpinApp {name} fields exist in SpinAppSpec", not unknown(spec, SPINAPP_SPEC), str(unknown(spec, SPINAPP_SPEC)))
        check(f"scale-out: SpinApp {name} leaves replicas to its autoscaler",
              spec.get("enableAutoscaling") is True and "replicas" not in spec)
        check(f"scale-out: SpinApp {name} keeps nothing on a single-node volume",
              all("persistentVolumeClaim" not in v for v in spec.get("volumes", [])))
        variables = {v["name"]: v for v in spec.get("variables", [])}
        url = variables.get("postgres_url", {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(f"scale-out: SpinApp {name} keeps its stores in Postgres",
              variables.get("store", {}).get("value") == "postgres" and url.get("name") == "todo-postgres" and url.get("key") == "url")
        origin = variables.get("postgres_origin", {}).get("value", "")
        check(f"scale-out: SpinApp {name} may reach the Postgres Service",
              origin == f"postgres://postgres-0.postgres.todo.svc.cluster.local:{pg_port}", origin)
        check(f"scale-out: SpinApp {name} names the broker", variables.get("kafka_brokers", {}).get("value") == broker)

    http_components = {t["component"] for t in manifest["trigger"].get("http", [])}
    hpas = kinds.get("HorizontalPodAutoscaler", [])
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in kinds.get("ScaledObject", [])}
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]["name"]
        served = set(apps.get(target, {}).get("spec", {}).get("components", []))
        check(f"scale-out: HPA {hpa['metadata']['name']} scales the HTTP SpinApp's Deployment",
              hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment" and served and served <= http_components, str(served))
        check(f"scale-out: HPA {target} and no ScaledObject own its Deployment", target not in scaled)
    check("scale-out: the API has an HPA", any(set(apps.get(h["spec"]["scaleTargetRef"]["name"], {}).get("spec", {}).get("components", [])) & http_components for h in hpas))

    partitions = {t["name"]: t["partitions"] for t in tomllib.loads((ROOT / "kafka/topics.toml").read_text())["topic"]}
    for trigger in manifest["trigger"].get("kafka", []):
        group, component = trigger["group_id"], trigger["component"]
        owner = next((n for n, a in apps.items() if component in a["spec"].get("components", [])), None)
        so = scaled.get(owner)
        check(f"scale-out: group {group} has a ScaledObject on its SpinApp", so is not None, str(owner))
        if so is None:
            continue
        sspec = so["spec"]
        check(f"scale-out: ScaledObject {owner} fields exist in ScaledObjectSpec", not unknown(sspec, SCALED_OBJECT_SPEC), str(unknown(sspec, SCALED_OBJECT_SPEC)))
        kafka = [t for t in sspec["triggers"] if t["type"] == "kafka"]
        check(f"scale-out: ScaledObject {owner} triggers use known fields",
              all(not unknown(t, SCALE_TRIGGER) and not unknown(t["metadata"], KAFKA_SCALER) for t in sspec["triggers"]))
        check(f"scale-out: ScaledObject {owner} watches group {group} on exactly its topics",
              all(t["metadata"].get("consumerGroup") == group for t in kafka)
              and sorted(t["metadata"].get("topic") for t in kafka) == sorted(trigger["topics"]),
              str([t["metadata"] for t in kafka]))
        check(f"scale-out: ScaledObject {owner} reads the app's broker and sets a lag threshold",
              all(t["metadata"].get("bootstrapServers") == broker and int(t["metadata"].get("lagThreshold", "0")) > 0 for t in kafka))
        fewest = min(partitions[t] for t in trigger["topics"])
        check(f"scale-out: ScaledObject {owner} keeps 1 <= replicas <= {fewest} partitions",
              sspec.get("minReplicaCount", 0) >= 1 and sspec.get("maxReplicaCount", 100) <= fewest,
              f"{sspec.get('minReplicaCount')}..{sspec.get('maxReplicaCount')}")

    for key in ("password", "url"):
        check(f"the guide creates Secret todo-postgres with `{key}`",
              re.search(rf"create secret generic todo-postgres[^\n]*(\\\n[^\n]*)*--from-literal={key}=", guide) is not None)
    check("the guide applies the scale-out overlay", "kubectl apply -k deploy/scale-out/" in guide)


if __name__ == "__main__":
    sys.exit(main())
