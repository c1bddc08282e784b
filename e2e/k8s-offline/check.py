#!/usr/bin/env python3
"""Offline Kubernetes checks of Strom's CRDs, operator output, kustomize and Helm packaging.

No API server is needed (none can run on the build machines). What is checked:

  a. crds/: structural schemas, printer columns, subresources, CEL rules present, and
     kubernetes-validate --strict accepts the CRD objects.
  b. `strom-operator render --file F` for every e2e/k8s-offline/clusters/*.yaml: every
     object it prints passes kubernetes-validate --strict and has the names, namespaces and
     wiring the operator contract promises; the same for e2e/k8s-offline/invalid/*.yaml
     must exit non-zero with a message naming the problem (`# expect-error:` lines).
  c. `kubectl kustomize deploy/` and `deploy/examples`: built-in kinds pass
     kubernetes-validate --strict, custom resources (examples and fixtures) pass the CRD
     openAPIV3Schema (unknown fields rejected, as `kubectl --validate=strict` does);
     deploy/crds is byte-identical to crds/ and deploy/operator.yaml is the chart's
     default render.
  d. charts/strom-operator: helm lint --strict, render with every ci/*-values.yaml,
     kubernetes-validate --strict, RBAC and Deployment follow the values, chart CRDs are
     byte-identical to crds/.

Usage:
  check.py                 run every check; exit 1 on any failure
  check.py --write-deploy  regenerate deploy/operator.yaml from the chart, then exit

Environment: STROM_OPERATOR_BIN (default: $CARGO_TARGET_DIR or target, /debug/strom-operator),
KUBECTL (default kubectl), K8S_VERSION (default 1.33.0, else the newest kubernetes-validate
knows).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

try:
    import jsonschema
    import kubernetes_validate
    import kubernetes_validate.utils as kv_utils
    import yaml
    import helm_python as helm
except ImportError as e:  # pragma: no cover - the venv is made by scripts/test-all.sh
    sys.exit(
        f"k8s-offline: missing Python package ({e}); install e2e/k8s-offline/requirements.txt "
        "into a venv (scripts/test-all.sh does this under target/venvs/k8s)"
    )

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CRDS_DIR = ROOT / "crds"
CHART_DIR = ROOT / "charts" / "strom-operator"
DEPLOY_DIR = ROOT / "deploy"
EXAMPLES_DIR = DEPLOY_DIR / "examples"
DEPLOY_OPERATOR = DEPLOY_DIR / "operator.yaml"

GROUP = "kafka.strom.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CR_KINDS = {"KafkaCluster", "KafkaTopic", "KafkaUser"}
CLUSTER_LABEL = "kafka.strom.dev/cluster"
RACK_CLUSTER_ROLE = "strom-broker-rack"
ADMIN_PORT = 9644

EXPECTED_CRDS = {
    "kafkaclusters.kafka.strom.dev.yaml": {
        "kind": "KafkaCluster",
        "plural": "kafkaclusters",
        "columns": ["Desired", "Ready", "Version", "Status", "Age"],
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
        "cel": True,
    },
    "kafkatopics.kafka.strom.dev.yaml": {
        "kind": "KafkaTopic",
        "plural": "kafkatopics",
        "columns": ["Cluster", "Partitions", "Replicas", "Status", "Age"],
        "scale": None,
        "cel": False,
    },
    "kafkausers.kafka.strom.dev.yaml": {
        "kind": "KafkaUser",
        "plural": "kafkausers",
        "columns": ["Cluster", "Authentication", "Status", "Age"],
        "scale": None,
        "cel": False,
    },
}

# The operator's RBAC contract, written out independently of the chart templates.
CRUD = ["get", "list", "watch", "create", "patch", "update", "delete"]
NAMESPACED_RULES = [
    ([GROUP], ["kafkaclusters", "kafkatopics", "kafkausers"], ["get", "list", "watch", "patch", "update"], None),
    ([GROUP], ["kafkaclusters/status", "kafkatopics/status", "kafkausers/status"], ["get", "patch", "update"], None),
    ([GROUP], ["kafkaclusters/finalizers", "kafkausers/finalizers"], ["update"], None),
    ([""], ["configmaps", "services", "serviceaccounts"], CRUD, None),
    # The KafkaUser controller writes each user's credentials Secret and reads the Secret
    # a password comes from.
    ([""], ["secrets"], CRUD, None),
    ([""], ["pods"], ["get", "list", "patch", "delete"], None),
    (["apps"], ["statefulsets"], CRUD, None),
    (["policy"], ["poddisruptionbudgets"], CRUD, None),
    (["networking.k8s.io"], ["networkpolicies"], CRUD, None),
    (["events.k8s.io"], ["events"], ["create", "patch"], None),
    (["monitoring.coreos.com"], ["prometheusrules"], CRUD, None),
]
CLUSTER_RULES = [
    (["rbac.authorization.k8s.io"], ["clusterrolebindings"], CRUD, None),
    (["rbac.authorization.k8s.io"], ["clusterroles"], ["bind"], [RACK_CLUSTER_ROLE]),
]
LEASE_RULES = [(["coordination.k8s.io"], ["leases"], ["get", "create", "update", "patch"], None)]
RACK_RULES = [([""], ["nodes"], ["get"], None)]


class CheckFailed(Exception):
    """One failed assertion; the message says what and where."""


def require(cond: Any, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[tuple[str, str]] = []

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one named check; record a failure instead of stopping."""
        try:
            result = fn()
        except CheckFailed as e:
            self._fail(name, str(e))
            return None
        except Exception as e:  # a crash in a check is a failure too, with its trace
            self._fail(name, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
            return None
        self.passed += 1
        detail = f" ({result})" if isinstance(result, str) and result else ""
        print(f"  ok    {name}{detail}", flush=True)
        return True if result is None else result

    def _fail(self, name: str, message: str) -> None:
        self.failures.append((name, message))
        indented = "\n".join("        " + line for line in message.rstrip().splitlines())
        print(f"  FAIL  {name}\n{indented}", flush=True)


# ---------------------------------------------------------------------------------------
# helpers


def load_yaml_docs(text: str, origin: str) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise CheckFailed(f"{origin}: not valid YAML: {e}")
    for d in docs:
        require(isinstance(d, dict), f"{origin}: a YAML document is not an object: {d!r:.200}")
    return docs


def load_file_docs(path: Path) -> list[dict]:
    return load_yaml_docs(path.read_text(), rel(path))


def rel(path: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def obj_id(obj: dict) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{(ns + '/') if ns else ''}{md.get('name')}"


def pick_k8s_version() -> str:
    wanted = os.environ.get("K8S_VERSION", "1.33.0")
    versions = kv_utils.all_versions()
    if wanted in versions:
        return wanted
    return versions[-1]


K8S_VERSION = pick_k8s_version()


def kv_validate(objs: Iterable[dict], origin: str, allow_unknown: Iterable[str] = ()) -> int:
    """kubernetes-validate --strict on built-in kinds. Custom resources are skipped (the
    caller checks them against their CRD); any other kind without a schema fails."""
    allow = set(allow_unknown) | CR_KINDS
    errors = []
    n = 0
    for obj in objs:
        if obj.get("apiVersion") == API_VERSION and obj.get("kind") in CR_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            n += 1
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            errors.append(f"{obj_id(obj)}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            if obj.get("kind") not in allow:
                errors.append(f"{obj_id(obj)}: {e.message}")
    require(not errors, f"{origin}: kubernetes-validate --strict -k {K8S_VERSION} rejected:\n" + "\n".join(errors))
    return n


@contextlib.contextmanager
def captured_fd2():
    """Helm's Go code logs to fd 2 (e.g. "found symbolic link in path"); keep that out of
    the output unless something fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    tmp = tempfile.TemporaryFile()
    os.dup2(tmp.fileno(), 2)
    box: dict[str, str] = {}
    try:
        yield box
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        tmp.seek(0)
        box["text"] = tmp.read().decode(errors="replace")
        tmp.close()


def rule_tuples(rules: list[dict]) -> list[tuple]:
    out = []
    for r in rules or []:
        out.append(
            (
                tuple(sorted(r.get("apiGroups") or [])),
                tuple(sorted(r.get("resources") or [])),
                tuple(sorted(r.get("verbs") or [])),
                tuple(sorted(r["resourceNames"])) if r.get("resourceNames") else None,
                bool(r.get("nonResourceURLs")),
            )
        )
    return sorted(out, key=repr)


def expected_rules(spec: list[tuple]) -> list[tuple]:
    return sorted(
        [
            (tuple(sorted(g)), tuple(sorted(res)), tuple(sorted(v)), tuple(sorted(n)) if n else None, False)
            for g, res, v, n in spec
        ],
        key=repr,
    )


def require_rules(obj: dict, spec: list[tuple], what: str) -> None:
    got, want = rule_tuples(obj.get("rules")), expected_rules(spec)
    if got != want:
        extra = [r for r in got if r not in want]
        missing = [r for r in want if r not in got]
        raise CheckFailed(
            f"{obj_id(obj)} ({what}) rules differ from the operator's RBAC contract\n"
            f"  unexpected: {extra}\n  missing: {missing}"
        )


# ---------------------------------------------------------------------------------------
# CRD schema -> JSON schema, for custom resource instances


def crd_objects() -> dict[str, dict]:
    """kind -> CRD object, from crds/."""
    out = {}
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        for doc in load_file_docs(path):
            if doc.get("kind") == "CustomResourceDefinition":
                out[doc["spec"]["names"]["kind"]] = doc
    return out


def to_json_schema(node: Any, root: bool = False) -> Any:
    """openAPIV3Schema (structural) -> JSON schema (draft 4): x-kubernetes-* dropped,
    nullable mapped to null, int-or-string spelled out, and unknown fields rejected
    where the API server would prune them (kubectl --validate=strict fails on those)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "description", "example"):
            continue
        if key == "properties":
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value) if isinstance(value, dict) else value
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [to_json_schema(v) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string") and "type" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}] + (
            [{"type": "null"}] if node.get("nullable") else []
        )
    elif node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if root:
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string", "enum": [API_VERSION]})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if (
        out.get("type") in ("object", ["object", "null"])
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate_cr(obj: dict, crds: dict[str, dict], origin: str) -> None:
    kind = obj.get("kind")
    require(obj.get("apiVersion") == API_VERSION, f"{origin}: {obj_id(obj)}: apiVersion must be {API_VERSION}")
    require(kind in crds, f"{origin}: {obj_id(obj)}: no CRD for kind {kind}")
    md = obj.get("metadata") or {}
    name = md.get("name") or ""
    require(DNS_SUBDOMAIN.match(name) and len(name) <= 253, f"{origin}: {obj_id(obj)}: bad metadata.name {name!r}")
    if kind == "KafkaCluster":
        # Pods are <name>-broker-<i>, Services <name>-<listener>-<i>: keep it a DNS label.
        require(DNS_LABEL.match(name), f"{origin}: {obj_id(obj)}: a KafkaCluster name must be a DNS label")
    else:
        labels = md.get("labels") or {}
        require(
            labels.get(CLUSTER_LABEL),
            f"{origin}: {obj_id(obj)}: a {kind} must name its cluster with label {CLUSTER_LABEL}",
        )
    version = next(v for v in crds[kind]["spec"]["versions"] if v["name"] == VERSION)
    schema = to_json_schema(version["schema"]["openAPIV3Schema"], root=True)
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors[:20]]
        raise CheckFailed(f"{origin}: {obj_id(obj)} does not match the {kind} CRD schema:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------
# a. CRDs


JUNCTORS = ("anyOf", "oneOf", "allOf", "not")
FORBIDDEN_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")


def structural_problems(node: Any, path: str, root: bool = True, in_junctor: bool = False) -> list[str]:
    problems: list[str] = []
    if not isinstance(node, dict):
        return [f"{path}: schema node is not an object"]
    if in_junctor:
        for key in FORBIDDEN_IN_JUNCTORS:
            if key in node:
                problems.append(f"{path}: `{key}` inside anyOf/oneOf/allOf/not")
    else:
        exempt = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        if "type" not in node and not exempt:
            problems.append(f"{path}: no `type` (structural schemas need one on every node)")
    if root and node.get("type") != "object":
        problems.append(f"{path}: root must be type object")
    if root and "metadata" in (node.get("properties") or {}):
        md = node["properties"]["metadata"]
        extra = set(md) - {"type", "properties", "description"}
        fields = set((md.get("properties") or {}))
        if extra or not fields <= {"name", "generateName"}:
            problems.append(f"{path}.properties.metadata: only name/generateName constraints are allowed")
    for key, value in node.items():
        if key == "properties":
            for name, sub in value.items():
                problems += structural_problems(sub, f"{path}.{name}", root=False, in_junctor=in_junctor)
        elif key == "items":
            if isinstance(value, list):
                problems.append(f"{path}.items: must be a single schema, not a list")
            else:
                problems += structural_problems(value, f"{path}[]", root=False, in_junctor=in_junctor)
        elif key == "additionalProperties" and isinstance(value, dict):
            problems += structural_problems(value, f"{path}{{*}}", root=False, in_junctor=in_junctor)
        elif key in JUNCTORS:
            int_or_string = node.get("x-kubernetes-int-or-string") and key in ("anyOf", "allOf")
            subs = value if isinstance(value, list) else [value]
            for i, sub in enumerate(subs):
                if int_or_string and set(sub) <= {"type"} and sub.get("type") in ("integer", "string"):
                    continue
                problems += structural_problems(sub, f"{path}.{key}[{i}]", root=False, in_junctor=True)
        elif key == "x-kubernetes-preserve-unknown-fields" and value is not True:
            problems.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true when set")
    return problems


def find_key(node: Any, key: str) -> list[Any]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found += find_key(v, key)
    elif isinstance(node, list):
        for v in node:
            found += find_key(v, key)
    return found


def check_crds(r: Runner) -> None:
    print("a. CRDs (crds/)")
    files = sorted(p.name for p in CRDS_DIR.glob("*.yaml"))
    r.check(
        "crds/ holds exactly the three CRDs",
        lambda: require(files == sorted(EXPECTED_CRDS), f"crds/ has {files}, expected {sorted(EXPECTED_CRDS)}"),
    )
    for fname, want in EXPECTED_CRDS.items():
        path = CRDS_DIR / fname
        if not path.exists():
            continue

        def load(path=path) -> dict:
            docs = load_file_docs(path)
            require(len(docs) == 1, f"{rel(path)}: expected one document, found {len(docs)}")
            return docs[0]

        crd = r.check(f"{fname}: parses", load)
        if crd is None:
            continue

        def identity(crd=crd, want=want, fname=fname) -> None:
            require(crd.get("apiVersion") == "apiextensions.k8s.io/v1", f"{fname}: apiVersion")
            spec = crd["spec"]
            require(spec["group"] == GROUP, f"{fname}: group {spec['group']}")
            require(spec["scope"] == "Namespaced", f"{fname}: scope {spec['scope']}")
            require(spec["names"]["kind"] == want["kind"], f"{fname}: kind {spec['names']['kind']}")
            require(spec["names"]["plural"] == want["plural"], f"{fname}: plural")
            require(crd["metadata"]["name"] == f"{want['plural']}.{GROUP}", f"{fname}: metadata.name")
            versions = [v["name"] for v in spec["versions"]]
            require(versions == [VERSION], f"{fname}: versions {versions}, expected [{VERSION}]")
            v = spec["versions"][0]
            require(v.get("served") and v.get("storage"), f"{fname}: {VERSION} must be served and stored")

        r.check(f"{fname}: group, kind, scope, version", identity)
        version = crd["spec"]["versions"][0]
        schema = version.get("schema", {}).get("openAPIV3Schema")

        def structural(schema=schema, fname=fname) -> None:
            require(schema, f"{fname}: no openAPIV3Schema")
            problems = structural_problems(schema, "openAPIV3Schema")
            require(not problems, f"{fname}: schema is not structural:\n" + "\n".join(problems[:30]))

        r.check(f"{fname}: schema is structural", structural)

        def columns(version=version, want=want, fname=fname) -> None:
            names = [c["name"] for c in version.get("additionalPrinterColumns") or []]
            require(names == want["columns"], f"{fname}: printer columns {names}, expected {want['columns']}")
            for c in version["additionalPrinterColumns"]:
                require(c.get("jsonPath", "").startswith("."), f"{fname}: column {c['name']} has no jsonPath")
                require(
                    c.get("type") in ("integer", "number", "string", "boolean", "date"),
                    f"{fname}: column {c['name']} type {c.get('type')}",
                )

        r.check(f"{fname}: printer columns {', '.join(want['columns'])}", columns)

        def subresources(version=version, want=want, fname=fname) -> None:
            sub = version.get("subresources") or {}
            require("status" in sub, f"{fname}: no status subresource")
            if want["scale"]:
                require(sub.get("scale") == want["scale"], f"{fname}: scale subresource {sub.get('scale')}, expected {want['scale']}")
            else:
                require("scale" not in sub, f"{fname}: unexpected scale subresource")

        r.check(f"{fname}: subresources", subresources)

        if want["cel"]:
            def cel(schema=schema, fname=fname) -> None:
                rules = [rule for v in find_key(schema, "x-kubernetes-validations") for rule in v]
                require(rules, f"{fname}: no x-kubernetes-validations (CEL rules) in the schema")
                for rule in rules:
                    require(rule.get("rule") and rule.get("message"), f"{fname}: CEL rule without rule/message: {rule}")

            r.check(f"{fname}: x-kubernetes-validations present", cel)

    def kv_cli() -> None:
        exe = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
        paths = [str(CRDS_DIR / f) for f in sorted(EXPECTED_CRDS)]
        proc = subprocess.run(
            [exe, "--strict", "-k", K8S_VERSION, *paths], capture_output=True, text=True
        )
        out = (proc.stdout + proc.stderr).strip()
        require(
            proc.returncode == 0 and "ERROR" not in out and "WARN" not in out and "FATAL" not in out,
            f"kubernetes-validate --strict -k {K8S_VERSION} crds/*.yaml exited {proc.returncode}:\n{out}",
        )

    r.check(f"kubernetes-validate --strict -k {K8S_VERSION} accepts crds/*.yaml", kv_cli)


# ---------------------------------------------------------------------------------------
# b. strom-operator render


def operator_bin() -> Path:
    env = os.environ.get("STROM_OPERATOR_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug" / "strom-operator"


# The default broker image the render is given; clusters naming neither spec.image nor
# spec.version must run it.
RENDER_BROKER_IMAGE = "registry.invalid/strom/strom:render-check"


def run_render(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(operator_bin()), "render", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RUST_LOG": "error", "LOG_FORMAT": "text", "STROM_BROKER_IMAGE": RENDER_BROKER_IMAGE},
    )


def expect_errors(path: Path) -> list[str]:
    return [
        m.group(1).strip()
        for m in re.finditer(r"^#\s*expect-error:\s*(.+)$", path.read_text(), re.MULTILINE)
    ]


def find(objs: list[dict], kind: str, name: str) -> dict | None:
    for o in objs:
        if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name:
            return o
    return None


def check_rendered_contract(cluster: dict, objs: list[dict], origin: str) -> None:
    """What the operator promises to create for one KafkaCluster."""
    md = cluster["metadata"]
    c = md["name"]
    ns = md.get("namespace") or "default"
    spec = cluster["spec"]
    replicas = spec["replicas"]
    listeners = spec.get("listeners") or [{"name": "plain", "port": 9092, "type": "internal"}]
    problems: list[str] = []

    def want(kind: str, name: str) -> dict:
        o = find(objs, kind, name)
        if o is None:
            problems.append(f"missing {kind} {name}")
            return {}
        return o

    seen = set()
    for o in objs:
        key = (o.get("apiVersion"), o.get("kind"), (o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name"))
        if key in seen:
            problems.append(f"{obj_id(o)} is printed twice")
        seen.add(key)
        if o.get("kind") in ("ClusterRoleBinding", "ClusterRole"):
            if (o.get("metadata") or {}).get("namespace"):
                problems.append(f"{obj_id(o)}: a cluster-scoped object has a namespace")
        elif (o.get("metadata") or {}).get("namespace") != ns:
            problems.append(f"{obj_id(o)}: namespace is not {ns}")

    want("ServiceAccount", f"{c}-broker")
    want("ConfigMap", f"{c}-config")
    headless = want("Service", f"{c}-brokers")
    if headless and (headless.get("spec") or {}).get("clusterIP") != "None":
        problems.append(f"Service {c}-brokers must be headless (clusterIP: None)")
    bootstrap = want("Service", f"{c}-bootstrap")
    internal_ports = {l["port"] for l in listeners if l.get("type", "internal") == "internal"}
    if bootstrap:
        ports = {p.get("port") for p in bootstrap["spec"].get("ports") or []}
        if not internal_ports <= ports:
            problems.append(f"Service {c}-bootstrap ports {sorted(ports)} miss internal listener ports {sorted(internal_ports)}")
    sts = want("StatefulSet", f"{c}-broker")
    if sts:
        s = sts["spec"]
        if s.get("replicas") != replicas:
            problems.append(f"StatefulSet replicas {s.get('replicas')} != spec.replicas {replicas}")
        if s.get("serviceName") != f"{c}-brokers":
            problems.append(f"StatefulSet serviceName {s.get('serviceName')} != {c}-brokers")
        selector = (s.get("selector") or {}).get("matchLabels") or {}
        pod_labels = ((s.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            problems.append("StatefulSet selector does not match its pod template labels")
        pod = s["template"]["spec"]
        if pod.get("serviceAccountName") != f"{c}-broker":
            problems.append(f"broker pods use ServiceAccount {pod.get('serviceAccountName')}, not {c}-broker")
        containers = pod.get("containers") or []
        ports = {p.get("containerPort") for ct in containers for p in ct.get("ports") or []}
        for port in [l["port"] for l in listeners] + [ADMIN_PORT]:
            if port not in ports:
                problems.append(f"no broker container port {port}")
        if spec.get("image") and not any(ct.get("image") == spec["image"] for ct in containers):
            problems.append(f"spec.image {spec['image']} is not the broker container image")
        if not spec.get("image") and not spec.get("version"):
            if not any(ct.get("image") == RENDER_BROKER_IMAGE for ct in containers):
                problems.append(f"the default broker image (STROM_BROKER_IMAGE={RENDER_BROKER_IMAGE}) is not used")
        template = spec.get("template") or {}
        pod_md = s["template"].get("metadata") or {}
        for k, v in (template.get("labels") or {}).items():
            if k not in (pod_labels or {}):
                problems.append(f"template label {k} missing on broker pods")
        for k, v in (template.get("annotations") or {}).items():
            if (pod_md.get("annotations") or {}).get(k) != v:
                problems.append(f"template annotation {k} missing on broker pods")
        for field in ("affinity", "tolerations", "priorityClassName"):
            if field in template and pod.get(field) != template[field]:
                problems.append(f"template.{field} is not the broker pods' {field}")
        if "securityContext" in template and pod.get("securityContext") != template["securityContext"]:
            problems.append("template.securityContext is not the broker pods' securityContext")
        if "containerSecurityContext" in template and not any(
            ct.get("securityContext") == template["containerSecurityContext"] for ct in containers
        ):
            problems.append("template.containerSecurityContext is not the broker container's securityContext")
        if spec.get("resources") and not any(ct.get("resources") == spec["resources"] for ct in containers):
            problems.append("spec.resources is not the broker container's resources")
        storage = spec.get("storage") or {}
        claims = s.get("volumeClaimTemplates") or []
        if storage.get("type") == "persistent-claim":
            if not claims:
                problems.append("persistent-claim storage without volumeClaimTemplates")
            else:
                cs = claims[0].get("spec") or {}
                if str(((cs.get("resources") or {}).get("requests") or {}).get("storage")) != str(storage.get("size")):
                    problems.append(f"claim size is not {storage.get('size')}")
                if storage.get("class") and cs.get("storageClassName") != storage["class"]:
                    problems.append(f"claim storageClassName is not {storage['class']}")
        elif claims:
            problems.append("ephemeral storage must not create volumeClaimTemplates")
    want("PodDisruptionBudget", f"{c}-broker")
    netpol = find(objs, "NetworkPolicy", f"{c}-broker")
    if (spec.get("networkPolicy") or {}).get("enabled"):
        if netpol is None:
            problems.append(f"networkPolicy.enabled but no NetworkPolicy {c}-broker")
    elif netpol is not None:
        problems.append(f"NetworkPolicy {c}-broker created although networkPolicy.enabled is false")
    rack_name = f"strom-{ns}-{c}-rack"
    crb = find(objs, "ClusterRoleBinding", rack_name)
    if spec.get("rack"):
        if crb is None:
            problems.append(f"spec.rack set but no ClusterRoleBinding {rack_name}")
        else:
            if (crb.get("roleRef") or {}).get("name") != RACK_CLUSTER_ROLE or crb["roleRef"].get("kind") != "ClusterRole":
                problems.append(f"ClusterRoleBinding {rack_name} does not bind ClusterRole {RACK_CLUSTER_ROLE}")
            subjects = crb.get("subjects") or []
            if {"kind": "ServiceAccount", "name": f"{c}-broker", "namespace": ns} not in [
                {k: sbj.get(k) for k in ("kind", "name", "namespace")} for sbj in subjects
            ]:
                problems.append(f"ClusterRoleBinding {rack_name} does not name ServiceAccount {ns}/{c}-broker")
    elif crb is not None:
        problems.append(f"ClusterRoleBinding {rack_name} without spec.rack")
    for l in listeners:
        kind = l.get("type", "internal")
        if kind == "internal":
            continue
        svc_type = {"nodeport": "NodePort", "loadbalancer": "LoadBalancer"}[kind]
        names = [f"{c}-{l['name']}-bootstrap"] + [f"{c}-{l['name']}-{i}" for i in range(replicas)]
        for name in names:
            svc = want("Service", name)
            if svc and svc["spec"].get("type") != svc_type:
                problems.append(f"Service {name} is type {svc['spec'].get('type')}, expected {svc_type}")
    require(not problems, f"{origin}: rendered objects break the operator contract:\n" + "\n".join(problems))


def check_render(r: Runner, crds: dict[str, dict]) -> None:
    print(f"b. strom-operator render ({rel(operator_bin())})")
    exe = operator_bin()

    def has_render() -> None:
        require(
            exe.is_file() and os.access(exe, os.X_OK),
            f"{exe} does not exist; build it with `cargo build -p strom-operator` or set STROM_OPERATOR_BIN",
        )
        proc = subprocess.run([str(exe), "render", "--help"], capture_output=True, text=True, timeout=60)
        require(
            proc.returncode == 0 and "--file" in proc.stdout,
            f"`{exe.name} render --help` exited {proc.returncode} without describing --file: "
            f"strom-operator has no working `render` subcommand (rebuild it with `cargo build -p "
            f"strom-operator`?)\n{(proc.stdout + proc.stderr).strip()[:2000]}",
        )

    if r.check("strom-operator has a `render` subcommand", has_render) is None:
        print("  (the other render checks are skipped until the subcommand works)")
        return

    fixtures = sorted((HERE / "clusters").glob("*.yaml"))
    r.check("there are cluster fixtures", lambda: require(len(fixtures) >= 4, f"only {len(fixtures)} fixtures in clusters/"))
    for path in fixtures:
        name = f"render clusters/{path.name}"

        def one(path=path) -> None:
            docs = load_file_docs(path)
            require(len(docs) == 1 and docs[0].get("kind") == "KafkaCluster", f"{rel(path)}: expected one KafkaCluster")
            validate_cr(docs[0], crds, rel(path))
            proc = run_render(path)
            require(
                proc.returncode == 0,
                f"`strom-operator render --file {rel(path)}` exited {proc.returncode}:\n{proc.stderr.strip()[:3000]}",
            )
            objs = load_yaml_docs(proc.stdout, f"render of {rel(path)}")
            require(objs, f"render of {rel(path)} printed no objects")
            n = kv_validate(objs, f"render of {rel(path)}")
            require(n == len(objs), f"render of {rel(path)}: only {n} of {len(objs)} objects were validated")
            check_rendered_contract(docs[0], objs, f"render of {rel(path)}")
            again = run_render(path)
            require(again.stdout == proc.stdout, f"render of {rel(path)} is not deterministic (two runs differ)")
            kinds = sorted({o["kind"] for o in objs})
            return f"{len(objs)} objects: {', '.join(kinds)}"

        r.check(name, one)

    invalid = sorted((HERE / "invalid").glob("*.yaml"))
    r.check("there are invalid fixtures", lambda: require(len(invalid) >= 3, f"only {len(invalid)} fixtures in invalid/"))
    for path in invalid:

        def bad(path=path) -> None:
            expected = expect_errors(path)
            require(expected, f"{rel(path)} has no `# expect-error: <text>` line")
            docs = load_file_docs(path)
            # The API server would accept it; only the operator can refuse it.
            validate_cr(docs[0], crds, rel(path))
            proc = run_render(path)
            require(proc.returncode != 0, f"`strom-operator render --file {rel(path)}` exited 0; it must refuse this spec")
            err = proc.stderr.strip()
            require(err, f"render of {rel(path)} failed without a message on stderr")
            # The message may quote the file's path; only the rest counts as naming the problem.
            text = err.replace(str(path), "").replace(rel(path), "").replace(path.name, "")
            missing = [e for e in expected if e.lower() not in text.lower()]
            require(not missing, f"render of {rel(path)}: stderr does not mention {missing}:\n{err[:2000]}")

        r.check(f"render refuses invalid/{path.name}", bad)


# ---------------------------------------------------------------------------------------
# c. kustomize


def kustomize(path: Path) -> list[dict]:
    kubectl = os.environ.get("KUBECTL", "kubectl")
    require(shutil.which(kubectl), f"{kubectl} not found (needed for `kubectl kustomize`)")
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    require(proc.returncode == 0, f"`kubectl kustomize {rel(path)}` exited {proc.returncode}:\n{proc.stderr.strip()}")
    return load_yaml_docs(proc.stdout, f"kubectl kustomize {rel(path)}")


def check_kustomize(r: Runner, crds: dict[str, dict]) -> None:
    print("c. kustomize (deploy/, deploy/examples)")

    def deploy_crds() -> None:
        problems = []
        for f in sorted(EXPECTED_CRDS):
            a, b = CRDS_DIR / f, DEPLOY_DIR / "crds" / f
            if not b.exists():
                problems.append(f"deploy/crds/{f} missing")
            elif a.read_bytes() != b.read_bytes():
                problems.append(f"deploy/crds/{f} differs from crds/{f}")
        extra = sorted(p.name for p in (DEPLOY_DIR / "crds").glob("*.yaml") if p.name not in EXPECTED_CRDS)
        if extra:
            problems.append(f"deploy/crds has extra files {extra}")
        require(
            not problems,
            "\n".join(problems) + "\nrun `cargo run -p strom-operator --bin crdgen -- --write deploy/crds`",
        )

    r.check("deploy/crds is byte-identical to crds/", deploy_crds)

    def operator_yaml() -> None:
        want = deploy_operator_yaml()
        have = DEPLOY_OPERATOR.read_text() if DEPLOY_OPERATOR.exists() else ""
        require(
            have == want,
            "deploy/operator.yaml is not the chart's default render; run "
            "`target/venvs/k8s/bin/python e2e/k8s-offline/check.py --write-deploy`",
        )

    r.check("deploy/operator.yaml matches the chart's default render", operator_yaml)

    def deploy() -> str:
        objs = kustomize(DEPLOY_DIR)
        n = kv_validate(objs, "kubectl kustomize deploy/")
        kinds = {o["kind"] for o in objs}
        for kind in ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                     "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"):
            require(kind in kinds, f"kubectl kustomize deploy/ has no {kind}")
        require(find(objs, "Namespace", "strom-system"), "no Namespace strom-system")
        require(find(objs, "ClusterRole", RACK_CLUSTER_ROLE), f"no ClusterRole {RACK_CLUSTER_ROLE}")
        for o in objs:
            if o["kind"] in ("Deployment", "Service", "ServiceAccount", "Role", "RoleBinding"):
                require(o["metadata"].get("namespace") == "strom-system", f"{obj_id(o)} is not in strom-system")
        got = {o["metadata"]["name"]: o for o in objs if o["kind"] == "CustomResourceDefinition"}
        for kind, crd in crds.items():
            require(got.get(crd["metadata"]["name"]) == crd, f"deploy/ CRD {crd['metadata']['name']} differs from crds/")
        dep = find(objs, "Deployment", "strom-operator")
        require(dep, "no Deployment strom-operator")
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        require(image == "ghcr.io/strom-dev/strom:0.1.0", f"operator image {image}")
        return f"{len(objs)} objects, {n} validated"

    r.check("kubectl kustomize deploy/ → kubernetes-validate --strict", deploy)

    def examples() -> str:
        objs = kustomize(EXAMPLES_DIR)
        kv_validate(objs, "kubectl kustomize deploy/examples")
        kinds = sorted(o["kind"] for o in objs)
        require(kinds == ["KafkaCluster", "KafkaTopic", "KafkaUser"], f"deploy/examples has {kinds}")
        for o in objs:
            validate_cr(o, crds, "deploy/examples")
        cluster = find(objs, "KafkaCluster", "my-cluster")
        require(cluster, "deploy/examples has no KafkaCluster my-cluster")
        for o in objs:
            if o["kind"] != "KafkaCluster":
                require(o["metadata"]["labels"][CLUSTER_LABEL] == "my-cluster", f"{obj_id(o)} is not labelled for my-cluster")
        s = cluster["spec"]
        require(s["replicas"] == 3 and s.get("defaultReplicationFactor") == 3 and s.get("minInsyncReplicas") == 2,
                "the example cluster must be 3 brokers, replication factor 3, min ISR 2")
        topic = find(objs, "KafkaTopic", "orders")
        require(topic and topic["spec"]["replicas"] <= s["replicas"], "KafkaTopic orders: replicas above the cluster's brokers")
        return "KafkaCluster, KafkaTopic, KafkaUser match their CRDs"

    r.check("kubectl kustomize deploy/examples → CRD schemas", examples)

    for path in sorted((HERE / "clusters").glob("*.yaml")) + sorted((HERE / "invalid").glob("*.yaml")):
        def fixture(path=path) -> None:
            for doc in load_file_docs(path):
                validate_cr(doc, crds, rel(path))

        r.check(f"{rel(path)} matches the KafkaCluster CRD schema", fixture)

    def negative() -> None:
        # The converted schema must catch what the API server would: a typo'd field and a
        # wrong type. Otherwise the checks above prove nothing.
        base = {"apiVersion": API_VERSION, "kind": "KafkaCluster", "metadata": {"name": "x"}, "spec": {"replicas": 1}}
        for bad, what in (
            ({"replicas": 1, "replicass": 2}, "unknown field"),
            ({"replicas": "three"}, "string replicas"),
            ({"replicas": 1, "storage": {"type": "tmpfs"}}, "unknown storage type"),
            ({"replicas": 1, "listeners": [{"name": "plain", "port": 80}]}, "port below 1024"),
        ):
            obj = {**base, "spec": bad}
            try:
                validate_cr(obj, crds, "negative")
            except CheckFailed:
                continue
            raise CheckFailed(f"the CRD schema check accepted a spec with {what}: {bad}")
        validate_cr(base, crds, "minimal")

    r.check("CRD schema check rejects typos and wrong types", negative)


# ---------------------------------------------------------------------------------------
# d. Helm


RELEASE = "strom-operator"
APP_VERSION = "0.1.0"  # Chart.yaml appVersion = the workspace version
RELEASE_NS = "strom-system"


def helm_render(values: dict, name: str = RELEASE, namespace: str = RELEASE_NS) -> dict[str, str]:
    with captured_fd2():
        chart = helm.Chart.load(str(CHART_DIR))
        return chart.render(values=values, name=name, namespace=namespace, is_install=True)


def helm_objects(rendered: dict[str, str]) -> list[dict]:
    objs = []
    for tpl, text in sorted(rendered.items()):
        if tpl.endswith("NOTES.txt"):
            continue
        objs += load_yaml_docs(text, tpl)
    return objs


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def env_of(container: dict) -> dict[str, Any]:
    out = {}
    for e in container.get("env") or []:
        out[e["name"]] = e.get("value") if "value" in e else e.get("valueFrom")
    return out


def check_chart_objects(objs: list[dict], values: dict, origin: str, chart_values: dict) -> None:
    v = deep_merge(chart_values, values)
    fullname = RELEASE
    problems: list[str] = []
    watch = v.get("watchNamespaces") or []
    le = bool(v["leaderElection"]["enabled"])

    sm = [o for o in objs if o["kind"] == "ServiceMonitor"]
    if v["serviceMonitor"]["enabled"]:
        if len(sm) != 1:
            problems.append(f"serviceMonitor.enabled but {len(sm)} ServiceMonitors")
        else:
            m = sm[0]
            if m.get("apiVersion") != "monitoring.coreos.com/v1":
                problems.append(f"ServiceMonitor apiVersion {m.get('apiVersion')}")
            eps = m["spec"].get("endpoints") or []
            if not eps or eps[0].get("port") != "http-metrics" or eps[0].get("path") != "/metrics":
                problems.append("ServiceMonitor does not scrape port http-metrics at /metrics")
            if eps and eps[0].get("interval") != v["serviceMonitor"]["interval"]:
                problems.append("ServiceMonitor interval does not follow serviceMonitor.interval")
            for k, val in (v["serviceMonitor"].get("labels") or {}).items():
                if m["metadata"]["labels"].get(k) != val:
                    problems.append(f"ServiceMonitor lacks label {k}={val}")
            svc = find(objs, "Service", f"{fullname}-metrics")
            sel = m["spec"]["selector"]["matchLabels"]
            if not svc or any(svc["metadata"]["labels"].get(k) != x for k, x in sel.items()):
                problems.append("ServiceMonitor selector does not select the metrics Service")
    elif sm:
        problems.append("ServiceMonitor rendered although serviceMonitor.enabled is false")

    # Alerting rules and dashboard: the chart's files, verbatim, behind their values.
    pr = [o for o in objs if o["kind"] == "PrometheusRule"]
    if v["prometheusRule"]["enabled"]:
        want_rules = yaml.safe_load((CHART_DIR / "files" / "prometheus-rules.yaml").read_text())
        if len(pr) != 1:
            problems.append(f"prometheusRule.enabled but {len(pr)} PrometheusRules")
        elif pr[0]["spec"] != want_rules:
            problems.append("PrometheusRule spec is not files/prometheus-rules.yaml")
        else:
            for k, val in (v["prometheusRule"].get("labels") or {}).items():
                if pr[0]["metadata"]["labels"].get(k) != val:
                    problems.append(f"PrometheusRule lacks label {k}={val}")
    elif pr:
        problems.append("PrometheusRule rendered although prometheusRule.enabled is false")
    gd = v["grafanaDashboard"]
    dash = find(objs, "ConfigMap", f"{fullname}-dashboard")
    if gd["enabled"]:
        want_dash = json.loads((CHART_DIR / "files" / "grafana-dashboard.json").read_text())
        if not dash:
            problems.append("grafanaDashboard.enabled but no dashboard ConfigMap")
        else:
            if dash["metadata"]["labels"].get(gd["label"]) != gd["labelValue"]:
                problems.append(f"dashboard ConfigMap lacks the sidecar label {gd['label']}={gd['labelValue']}")
            data = dash.get("data") or {}
            if len(data) != 1 or json.loads(next(iter(data.values()))) != want_dash:
                problems.append("dashboard ConfigMap does not hold files/grafana-dashboard.json")
    elif dash:
        problems.append("dashboard ConfigMap rendered although grafanaDashboard.enabled is false")

    dep = find(objs, "Deployment", fullname)
    if not dep:
        problems.append(f"no Deployment {fullname}")
    else:
        pod = dep["spec"]["template"]["spec"]
        ct = pod["containers"][0]
        tag = v["image"]["tag"] or APP_VERSION
        image = f"{v['image']['repository']}:{tag}"
        if ct["image"] != image:
            problems.append(f"container image {ct['image']} != {image}")
        if ct.get("imagePullPolicy") != v["image"]["pullPolicy"]:
            problems.append("imagePullPolicy does not follow image.pullPolicy")
        env = env_of(ct)
        expect_env = {
            "WATCH_NAMESPACES": ",".join(watch),
            "LEADER_ELECTION": "true" if le else "false",
            "STROM_BROKER_IMAGE": v.get("brokerImage") or image,
            "LOG_FORMAT": v["logFormat"],
            "HTTP_ADDR": "0.0.0.0:8080",
            "LEASE_NAME": "strom-operator",
            "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
            "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            # The chart's cluster-wide rules replace the operator's per-cluster ones.
            "PROMETHEUS_RULES": "false" if v["prometheusRule"]["enabled"] else "true",
        }
        for k, want in expect_env.items():
            if env.get(k) != want:
                problems.append(f"env {k}={env.get(k)!r}, expected {want!r}")
        replicas = v.get("replicaCount")
        want_replicas = replicas if replicas is not None else (2 if le else 1)
        if dep["spec"]["replicas"] != want_replicas:
            problems.append(f"replicas {dep['spec']['replicas']}, expected {want_replicas}")
        sc = ct.get("securityContext") or {}
        psc = pod.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append("operator does not run as non-root")
        if not sc.get("readOnlyRootFilesystem"):
            problems.append("operator root filesystem is not read-only")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append("capabilities do not drop ALL")
        if ((sc.get("seccompProfile") or psc.get("seccompProfile")) or {}).get("type") != "RuntimeDefault":
            problems.append("seccompProfile is not RuntimeDefault")
        ports = {p["name"]: p["containerPort"] for p in ct.get("ports") or []}
        if ports.get("http-metrics") != 8080:
            problems.append(f"container port http-metrics:8080 missing ({ports})")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (ct.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") not in ("http-metrics", 8080):
                problems.append(f"{probe} is not GET {path} on http-metrics")
        if ct.get("resources") != v["resources"]:
            problems.append("container resources do not follow values.resources")
        sa = f"{fullname}"
        if pod.get("serviceAccountName") != sa:
            problems.append(f"serviceAccountName {pod.get('serviceAccountName')} != {sa}")
        sel = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        if any(labels.get(k) != x for k, x in sel.items()):
            problems.append("Deployment selector does not match its pod labels")
        svc = find(objs, "Service", f"{fullname}-metrics")
        if not svc:
            problems.append(f"no metrics Service {fullname}-metrics")
        else:
            if any(labels.get(k) != x for k, x in svc["spec"]["selector"].items()):
                problems.append("metrics Service does not select the operator pods")
            sp = svc["spec"]["ports"][0]
            if sp.get("port") != 8080 or sp.get("name") != "http-metrics":
                problems.append("metrics Service port is not http-metrics:8080")

    sa_obj = find(objs, "ServiceAccount", fullname)
    if not sa_obj or sa_obj["metadata"].get("namespace") != RELEASE_NS:
        problems.append(f"no ServiceAccount {RELEASE_NS}/{fullname}")
    subject = {"kind": "ServiceAccount", "name": fullname, "namespace": RELEASE_NS}

    def bound(binding: dict | None, role_kind: str, role_name: str) -> None:
        if not binding:
            problems.append(f"missing binding for {role_kind} {role_name}")
            return
        if binding["roleRef"].get("kind") != role_kind or binding["roleRef"].get("name") != role_name:
            problems.append(f"{obj_id(binding)} refers to {binding['roleRef']}, expected {role_kind} {role_name}")
        if subject not in binding.get("subjects") or []:
            problems.append(f"{obj_id(binding)} does not bind {RELEASE_NS}/{fullname}")

    def rules(obj: dict | None, spec: list[tuple], what: str) -> None:
        if not obj:
            problems.append(f"missing {what}")
            return
        try:
            require_rules(obj, spec, what)
        except CheckFailed as e:
            problems.append(str(e))

    rules(find(objs, "ClusterRole", RACK_CLUSTER_ROLE), RACK_RULES, f"ClusterRole {RACK_CLUSTER_ROLE}")
    rules(find(objs, "ClusterRole", f"{fullname}-cluster"), CLUSTER_RULES, "cluster-scoped ClusterRole")
    bound(find(objs, "ClusterRoleBinding", f"{fullname}-cluster"), "ClusterRole", f"{fullname}-cluster")
    roles = [o for o in objs if o["kind"] == "Role" and o["metadata"]["name"] == fullname]
    if watch:
        if find(objs, "ClusterRole", fullname) or find(objs, "ClusterRoleBinding", fullname):
            problems.append("watchNamespaces is set but the namespaced rules are still granted cluster-wide")
        got_ns = sorted(o["metadata"].get("namespace") for o in roles)
        if got_ns != sorted(watch):
            problems.append(f"Roles in namespaces {got_ns}, expected one per watched namespace {sorted(watch)}")
        for role in roles:
            rules(role, NAMESPACED_RULES, f"Role in {role['metadata'].get('namespace')}")
            binding = next(
                (o for o in objs if o["kind"] == "RoleBinding" and o["metadata"]["name"] == fullname
                 and o["metadata"].get("namespace") == role["metadata"].get("namespace")), None)
            bound(binding, "Role", fullname)
    else:
        if roles:
            problems.append(f"namespaced Roles {[o['metadata'].get('namespace') for o in roles]} without watchNamespaces")
        rules(find(objs, "ClusterRole", fullname), NAMESPACED_RULES, "namespaced ClusterRole")
        bound(find(objs, "ClusterRoleBinding", fullname), "ClusterRole", fullname)
    lease_role = find(objs, "Role", f"{fullname}-leader-election")
    if le:
        rules(lease_role, LEASE_RULES, "leader-election Role")
        if lease_role and lease_role["metadata"].get("namespace") != RELEASE_NS:
            problems.append("the leader-election Role is not in the operator's namespace")
        bound(find(objs, "RoleBinding", f"{fullname}-leader-election"), "Role", f"{fullname}-leader-election")
    elif lease_role:
        problems.append("leader-election Role rendered although leaderElection.enabled is false")
    # The Lease requests of the operator's ServiceAccount, and only they, at the API
    # server's leader-election priority level.
    flow = find(objs, "FlowSchema", f"{fullname}-leader-election")
    if le:
        spec = (flow or {}).get("spec") or {}
        rule = next(iter(spec.get("rules") or []), {})
        subjects = [(x.get("serviceAccount") or {}) for x in rule.get("subjects") or []]
        resources = rule.get("resourceRules") or []
        if not flow:
            problems.append("no leader-election FlowSchema although leaderElection.enabled is true")
        elif (spec.get("priorityLevelConfiguration") or {}).get("name") != "leader-election":
            problems.append("the FlowSchema does not use the leader-election priority level")
        elif subjects != [{"name": sa, "namespace": RELEASE_NS}]:
            problems.append(f"the FlowSchema matches {subjects}, not the operator's ServiceAccount only")
        elif [(r.get("apiGroups"), r.get("resources"), r.get("namespaces")) for r in resources] != [
            (["coordination.k8s.io"], ["leases"], [RELEASE_NS])
        ]:
            problems.append(f"the FlowSchema matches {resources}, not only Leases in the operator's namespace")
    elif flow:
        problems.append("leader-election FlowSchema rendered although leaderElection.enabled is false")
    # No rule anywhere may grant more than the contract: no wildcards, no pods/exec.
    for o in objs:
        if o["kind"] in ("ClusterRole", "Role"):
            for rule in o.get("rules") or []:
                for field in ("apiGroups", "resources", "verbs"):
                    if "*" in (rule.get(field) or []):
                        problems.append(f"{obj_id(o)} has a wildcard in {field}")
    for o in objs:
        md = o.get("metadata") or {}
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding", "FlowSchema") and not md.get("namespace"):
            problems.append(f"{obj_id(o)} has no namespace")
    require(not problems, f"{origin}:\n" + "\n".join(problems))


def check_helm(r: Runner) -> None:
    print("d. Helm chart (charts/strom-operator)")

    def lint() -> None:
        with captured_fd2():
            report = helm.lint(str(CHART_DIR), strict=True, kube_version=f"v{K8S_VERSION}")
        bad = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
        errors = report.get("errors") or []
        require(not bad and not errors, f"helm lint --strict: {bad} {errors}")

    r.check("helm lint --strict", lint)

    def versions() -> str:
        with open(ROOT / "Cargo.toml", "rb") as f:
            workspace = tomllib.load(f)["workspace"]["package"]["version"]
        meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
        require(meta.get("apiVersion") == "v2", "Chart.yaml apiVersion must be v2")
        require(
            str(meta.get("appVersion")) == workspace == APP_VERSION,
            f"Chart.yaml appVersion {meta.get('appVersion')}, workspace {workspace}, check.py {APP_VERSION}: keep them equal",
        )
        values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
        require(values["image"]["repository"] == "ghcr.io/strom-dev/strom", "image.repository")
        return f"chart {meta.get('version')}, app {workspace}"

    r.check("chart appVersion is the workspace version", versions)

    def crds() -> str:
        with captured_fd2():
            chart = helm.Chart.load(str(CHART_DIR))
            chart_crds = chart.crds
        got = {Path(c["name"]).name: c["data"] for c in chart_crds}
        require(sorted(got) == sorted(EXPECTED_CRDS), f"chart CRDs {sorted(got)}, expected {sorted(EXPECTED_CRDS)}")
        for f, data in got.items():
            raw = data.encode() if isinstance(data, str) else bytes(data)
            require(raw == (CRDS_DIR / f).read_bytes(), f"chart CRD {f} is not byte-identical to crds/{f}")
        link = CHART_DIR / "crds"
        return f"symlink -> {os.readlink(link)}" if link.is_symlink() else "copied"

    r.check("chart CRDs are byte-identical to crds/", crds)

    with captured_fd2():
        chart_values = helm.Chart.load(str(CHART_DIR)).values
    ci_files = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
    r.check("there are ci/*-values.yaml files", lambda: require(len(ci_files) >= 4, f"only {len(ci_files)} ci values files"))
    for path in ci_files:

        def render(path=path) -> str:
            values = yaml.safe_load(path.read_text()) or {}
            try:
                rendered = helm_render(values)
            except helm.HelmError as e:
                raise CheckFailed(f"helm render with {rel(path)} failed: {e}")
            objs = helm_objects(rendered)
            n = kv_validate(objs, f"helm render with {rel(path)}", allow_unknown=["ServiceMonitor", "PrometheusRule"])
            check_chart_objects(objs, values, f"helm render with {rel(path)}", chart_values)
            return f"{len(objs)} objects, {n} validated"

        r.check(f"helm render ci/{path.name}", render)

    def refuses() -> None:
        for values, what in (
            ({"leaderElection": {"enabled": False}, "replicaCount": 2}, "2 replicas without leader election"),
            ({"logFormat": "yaml"}, "logFormat yaml (values.schema.json)"),
            ({"watchNamespaces": ["Not_A_Namespace"]}, "an invalid namespace name (values.schema.json)"),
        ):
            try:
                helm_render(values)
            except helm.HelmError:
                continue
            raise CheckFailed(f"the chart rendered with {what}: {values}")

    r.check("chart refuses bad values", refuses)

    def release_name() -> None:
        # Another release name and namespace: names follow the release, nothing is hard-coded.
        objs = helm_objects(helm_render({}, name="kafka", namespace="ops"))
        kv_validate(objs, "helm render (release kafka in ops)", allow_unknown=["ServiceMonitor", "PrometheusRule"])
        dep = find(objs, "Deployment", "kafka-strom-operator")
        require(dep and dep["metadata"]["namespace"] == "ops", "Deployment kafka-strom-operator in ops missing")
        for o in objs:
            md = o["metadata"]
            if md.get("namespace") not in (None, "ops"):
                raise CheckFailed(f"{obj_id(o)} is outside the release namespace")

    r.check("helm render with another release name/namespace", release_name)


# ---------------------------------------------------------------------------------------
# deploy/operator.yaml: the chart's default render, without Helm's own labels

DEPLOY_ORDER = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment"]
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def deploy_operator_yaml() -> str:
    objs = helm_objects(helm_render({}))
    for o in objs:
        labels = o["metadata"].get("labels") or {}
        for k in HELM_ONLY_LABELS:
            labels.pop(k, None)
    objs.sort(key=lambda o: (DEPLOY_ORDER.index(o["kind"]) if o["kind"] in DEPLOY_ORDER else 99, o["metadata"]["name"]))
    header = (
        "# Generated from charts/strom-operator (default values, release strom-operator in\n"
        "# namespace strom-system) by `e2e/k8s-offline/check.py --write-deploy`; the test command\n"
        "# fails when it drifts from the chart. Do not edit by hand.\n"
    )
    body = "---\n".join(yaml.safe_dump(o, sort_keys=False, default_flow_style=False, width=100) for o in objs)
    return header + "---\n" + body


# ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-deploy", action="store_true", help="regenerate deploy/operator.yaml from the chart")
    args = parser.parse_args()
    if args.write_deploy:
        DEPLOY_OPERATOR.write_text(deploy_operator_yaml())
        print(f"wrote {rel(DEPLOY_OPERATOR)}")
        return 0

    print(f"k8s-offline: Kubernetes {K8S_VERSION} schemas (kubernetes-validate {kubernetes_validate.__version__}), "
          f"helm-python-sdk {helm.__version__}")
    r = Runner()
    check_crds(r)
    crds: dict[str, dict] = {}
    try:
        crds = crd_objects()
    except CheckFailed as e:
        r._fail("load CRDs", str(e))
    if set(crds) == CR_KINDS:
        check_render(r, crds)
        check_kustomize(r, crds)
    else:
        r._fail("CRDs", f"crds/ defines {sorted(crds)}; expected {sorted(CR_KINDS)}; b and c not run")
    check_helm(r)

    if r.failures:
        print(f"\nk8s-offline: {len(r.failures)} check(s) FAILED, {r.passed} passed:")
        for name, _ in r.failures:
            print(f"  - {name}")
        return 1
    print(f"k8s-offline: {r.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
