#!/usr/bin/env python3
"""The container image suite (issue 17): the project's own Dockerfile, built and run here.

No Docker engine and no registry on these machines, so podman (runtime runc) builds the
Dockerfile with local stand-ins for its two base images (bases.sh) and runs the result:

  build      the Dockerfile with --build-arg RUST_IMAGE/RUNTIME_IMAGE (cached layers and
             cache mounts: a second run rebuilds only what changed)
  metadata   OCI labels, user 65532, entrypoint, the SBOM under /usr/share/doc/strom/
  render     `strom-operator render -f deploy/examples/kafka-cluster.yaml` from the image
  pod-init   the init container as the StatefulSet runs it (its user, read-only root,
             dropped capabilities, the ConfigMap mounted read-only), its output compared
             with the ConfigMap's file for that pod
  single     one broker with its data on a mounted volume behind a published port: kcat
             produces (acks=all) and consumes; the data survives a container restart;
             SIGTERM stops it cleanly within the pod's grace period
  cluster    three brokers on a podman network, each prepared by pod-init from the
             operator's rendered ConfigMap and run with the StatefulSet's settings, formed
             through controller.quorum.voters; strom-load (acks=all, a consumer group, the
             history checker) against them
  size       the image's size (compressed, as a registry stores it) and layers, and the
             broker's start-up time: printed, and written to target/image/report.json

Every container, network and volume carries the label strom.image-suite=<run id> and is
removed at the end, even on failure; so are the nftables tables netavark made, when they
did not exist before the run. If podman cannot run a container here, prints `skipped:`
with the command and its error and exits 0; the test command reports it as skipped.

    python3 e2e/image/image_suite.py --target-dir target [--only build,single]
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PODMAN = ["podman", "--runtime", "runc"]
# The machine's hard limits are below podman's defaults (the finding).
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = "localhost/strom:image-suite"
# What the StatefulSet's pod spec says (asserted against the rendered one in `render`).
UID = 65532
CONFIG_DIR = "/etc/strom"
RUNTIME_DIR = "/var/run/strom"
DATA_DIR = "/var/lib/strom"
EXAMPLE = os.path.join(ROOT, "deploy", "examples", "kafka-cluster.yaml")
BROKERS = 3


class Failed(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def run(cmd, check=True, timeout=600, **kw):
    """Runs CMD; returns its CompletedProcess (text). Raises Failed with its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise Failed(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p


def wait_for(what, timeout, probe):
    """Polls PROBE (returns (done, detail)) until done; raises Failed after TIMEOUT s."""
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        done, detail = probe()
        if done:
            return
        time.sleep(0.2)
    raise Failed(f"timed out after {timeout}s waiting for {what}: {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Run:
    """One run's resources: everything made is labelled and removed by cleanup()."""

    def __init__(self, target_dir):
        self.id = f"{os.getpid()}-{int(time.time())}"
        self.label = f"strom.image-suite={self.id}"
        self.tmp = tempfile.mkdtemp(prefix="strom-image-suite-")
        self.target_dir = target_dir
        self.networks = []
        self.tables_before = nft_tables()
        self.report = {}

    def container(self, name, args, detach=True):
        """podman run with the suite's label and ulimits: detached, it returns the
        container's name; otherwise it waits and returns the finished process."""
        full = f"strom-image-{self.id}-{name}"
        cmd = PODMAN + ["run", "--name", full, "--label", self.label] + ULIMITS
        p = run(cmd + (["-d"] if detach else ["--rm"]) + args, timeout=300)
        return full if detach else p

    def network(self):
        name = f"strom-image-{self.id}"
        run(PODMAN + ["network", "create", "--label", self.label, name])
        self.networks.append(name)
        subnet = json.loads(run(PODMAN + ["network", "inspect", name]).stdout)[0]["subnets"][0]["subnet"]
        return name, subnet

    def host_dir(self, name, owner=UID):
        """A directory to mount, owned by the pod's user as fsGroup would make it."""
        path = os.path.join(self.tmp, name)
        os.makedirs(path, exist_ok=True)
        os.chown(path, owner, owner)
        return path

    def cleanup(self):
        ids = run(PODMAN + ["ps", "-aq", "--filter", f"label={self.label}"], check=False).stdout.split()
        if ids:
            run(PODMAN + ["rm", "-f", "-t", "0"] + ids, check=False)
        for net in self.networks:
            run(PODMAN + ["network", "rm", "-f", net], check=False)
        vols = run(PODMAN + ["volume", "ls", "-q", "--filter", f"label={self.label}"], check=False).stdout.split()
        if vols:
            run(PODMAN + ["volume", "rm", "-f"] + vols, check=False)
        # netavark makes iptables-nft tables (ip nat, ip filter) on first use and keeps
        # them; remove the ones this run brought. A container's network is torn down by a
        # process of its own (conmon's exit command, `podman container cleanup`), and
        # iptables-nft re-creates a table it removes rules from: let those finish first.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and subprocess.run(
                ["pgrep", "-f", "podman.* container cleanup"], capture_output=True).returncode == 0:
            time.sleep(0.2)
        for table in sorted(nft_tables() - self.tables_before):
            run(["nft", "delete", "table"] + table.split(), check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def nft_tables():
    p = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {line.removeprefix("table ").strip() for line in p.stdout.splitlines() if line.startswith("table ")}


# ---- build ------------------------------------------------------------------------------


def make_bases(r):
    """bases.sh: the stand-ins for the Dockerfile's two base images."""
    cache = os.path.join(r.target_dir, "image-cache")
    start = time.monotonic()
    p = run(["bash", os.path.join(HERE, "bases.sh")], env={**os.environ, "STROM_IMAGE_CACHE": cache},
            timeout=1800)
    r.bases = dict(kv.split("=", 1) for kv in p.stdout.strip().splitlines()[-1].split())
    log(f"  {r.bases} ({time.monotonic() - start:.0f}s)")


def build(r):
    """The Dockerfile, exactly as a user builds it but for the two ARGs."""
    bases = r.bases
    start = time.monotonic()
    cmd = PODMAN + ["build", "--pull=never", "--layers", "-f", os.path.join(ROOT, "Dockerfile"),
                    "--build-arg", f"RUST_IMAGE={bases['RUST_IMAGE']}",
                    "--build-arg", f"RUNTIME_IMAGE={bases['RUNTIME_IMAGE']}",
                    "-t", IMAGE, ROOT]
    log("  " + " ".join(cmd))
    p = run(cmd, timeout=3600)
    secs = time.monotonic() - start
    cached = sum(1 for line in (p.stdout + p.stderr).splitlines() if line.startswith("--> Using cache"))
    log(f"  built {IMAGE} in {secs:.0f}s ({cached} steps from the layer cache)")
    r.report["build_seconds"] = round(secs)
    r.report["build_steps_cached"] = cached
    prune_stale_layers(p.stdout + p.stderr)


def prune_stale_layers(build_output):
    """Removes the untagged images earlier builds left: a changed source leaves a builder
    stage of about a gigabyte behind each time. Only images made from our bases (they
    inherit the strom.base-key label) are touched, and the ones this build used or made
    stay: they are the next build's layer cache."""
    used = set(re.findall(r"^--> (?:Using cache )?([0-9a-f]{11,64})\s*$", build_output, re.M))
    listed = run(PODMAN + ["images", "--quiet", "--no-trunc", "--filter", "dangling=true",
                           "--filter", "label=strom.base-key"]).stdout.split()
    stale = [i for i in listed if not any(i.removeprefix("sha256:").startswith(u) for u in used)]
    if stale:
        # An image another one still builds on, or a container uses, stays; that is fine.
        p = run(PODMAN + ["rmi"] + stale, check=False)
        log(f"  removed {len(stale)} untagged images of earlier builds (exit {p.returncode})")


# ---- metadata ---------------------------------------------------------------------------


def metadata(r):
    info = json.loads(run(PODMAN + ["image", "inspect", IMAGE]).stdout)[0]
    config = info["Config"]
    if config.get("User") != f"{UID}:{UID}":
        raise Failed(f"image user is {config.get('User')!r}, not {UID}:{UID}")
    if config.get("Entrypoint") != ["/usr/local/bin/strom-operator"]:
        raise Failed(f"entrypoint {config.get('Entrypoint')}")
    labels = config.get("Labels") or {}
    for key in ["title", "description", "source", "licenses", "version"]:
        if not labels.get(f"org.opencontainers.image.{key}"):
            raise Failed(f"OCI label org.opencontainers.image.{key} missing: {labels}")
    # The SBOMs, read out of a created (never started) container.
    name = f"strom-image-{r.id}-sbom"
    run(PODMAN + ["create", "--name", name, "--label", r.label, IMAGE])
    out = os.path.join(r.tmp, "sbom")
    os.makedirs(out)
    run(PODMAN + ["cp", f"{name}:/usr/share/doc/strom/.", out])
    for binary, must in [("strom-broker", ["tokio", "rustls", "kafka-protocol", "openraft"]),
                         ("strom-operator", ["kube", "k8s-openapi", "tokio"])]:
        path = os.path.join(out, f"{binary}.cdx.json")
        if not os.path.exists(path):
            raise Failed(f"no SBOM /usr/share/doc/strom/{binary}.cdx.json in the image: {os.listdir(out)}")
        with open(path) as f:
            bom = json.load(f)
        comps = bom.get("components", [])
        names = {c["name"] for c in comps}
        missing = [m for m in must if m not in names]
        unlicensed = [c["name"] for c in comps if not c.get("licenses")]
        if bom["metadata"]["component"]["name"] != binary or missing:
            raise Failed(f"{binary}'s SBOM describes {bom['metadata']['component']['name']}, lacks {missing}")
        log(f"  {binary}.cdx.json: CycloneDX {bom.get('specVersion')}, {len(comps)} crates, "
            f"{len(comps) - len(unlicensed)} with a license{(' (none: ' + ', '.join(unlicensed) + ')') if unlicensed else ''}")
        r.report[f"sbom_{binary}_crates"] = len(comps)


# ---- render and pod-init ----------------------------------------------------------------


def render(r):
    """The operator's objects for the example, rendered by the image's own binary."""
    p = r.container("render", ["--read-only", "--read-only-tmpfs=false", "-v", f"{EXAMPLE}:/in/cluster.yaml:ro",
                               IMAGE, "render", "-f", "/in/cluster.yaml"], detach=False)
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    kinds = sorted({d["kind"] for d in docs})
    for want in ["ConfigMap", "StatefulSet", "Service", "PodDisruptionBudget"]:
        if want not in kinds:
            raise Failed(f"render printed no {want}: {kinds}")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    if (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) != (UID, UID, UID):
        raise Failed(f"the pod's user is not {UID}: {ctx}")
    containers = {c["name"]: c for c in pod["containers"] + pod["initContainers"]}
    mounts = {}
    for c in containers.values():
        if not c["securityContext"].get("readOnlyRootFilesystem"):
            raise Failed(f"container {c['name']} has a writable root file system")
        mounts[c["name"]] = {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
    if mounts["broker"] != {DATA_DIR: False, RUNTIME_DIR: True} or \
            mounts["pod-init"] != {CONFIG_DIR: True, RUNTIME_DIR: False}:
        raise Failed(f"the pod's mounts changed; update the suite: {mounts}")
    r.pod = {
        "grace": pod["terminationGracePeriodSeconds"],
        "broker_command": containers["broker"]["command"],
        "init_command": containers["pod-init"]["command"],
        "config": next(d for d in docs if d["kind"] == "ConfigMap")["data"],
    }
    log(f"  {len(docs)} objects ({', '.join(kinds)}); pod user {UID}, read-only roots, "
        f"grace {r.pod['grace']}s, broker command {r.pod['broker_command']}")


def pod_flags():
    """The StatefulSet's container security settings, as podman flags."""
    return ["--user", f"{UID}:{UID}", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]


def pod_init(r, pod_name, extra=()):
    """Runs pod-init as the StatefulSet's init container; returns the runtime-config dir."""
    config = os.path.join(r.tmp, "config")
    if not os.path.isdir(config):
        os.makedirs(config)
        for key, text in r.pod["config"].items():
            with open(os.path.join(config, key), "w") as f:
                f.write(text)
    runtime = r.host_dir(f"{pod_name}-runtime")
    r.container(f"{pod_name}-init", pod_flags() + list(extra) + [
        "-v", f"{config}:{CONFIG_DIR}:ro", "-v", f"{runtime}:{RUNTIME_DIR}",
        "-e", f"POD_NAME={pod_name}", "-e", "NODE_NAME=image-suite", "-e", "NODE_IP=127.0.0.1",
        "--entrypoint", r.pod["init_command"][0], IMAGE] + r.pod["init_command"][1:], detach=False)
    return runtime


def check_pod_init(r):
    runtime = pod_init(r, "my-cluster-broker-1")
    with open(os.path.join(runtime, "server.properties")) as f:
        written = f.read()
    if written != r.pod["config"]["broker-1.properties"]:
        raise Failed(f"pod-init wrote:\n{written}\nnot the ConfigMap's broker-1.properties")
    if os.stat(os.path.join(runtime, "server.properties")).st_uid != UID:
        raise Failed("pod-init's file is not owned by the pod's user")
    log(f"  pod-init (uid {UID}, read-only root, no capabilities) wrote broker-1's "
        f"{len(written.splitlines())}-line server.properties from the mounted ConfigMap")


# ---- one broker -------------------------------------------------------------------------


def kcat(*args, timeout=60, **kw):
    return run(["kcat", *args], timeout=timeout, **kw)


def wait_ready(admin_port, what, timeout=60):
    def probe():
        try:
            status, body = http_get(f"http://127.0.0.1:{admin_port}/ready")
            return status == 200, body
        except OSError as e:
            return False, str(e)
    wait_for(f"{what} /ready", timeout, probe)


def single(r):
    port, admin = free_port(), free_port()
    conf = r.host_dir("single-conf")
    with open(os.path.join(conf, "server.properties"), "w") as f:
        f.write(f"listeners=PLAINTEXT://0.0.0.0:9092\n"
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
                f"log.dirs={DATA_DIR}/data\nadmin.listener=0.0.0.0:9644\n")
    volume = f"strom-image-{r.id}-single-data"
    # A named volume, as a PersistentVolumeClaim would be; owned by the pod's user as
    # fsGroup makes a claim.
    run(PODMAN + ["volume", "create", "--label", r.label, "-o", f"o=uid={UID},gid={UID}", volume])
    args = pod_flags() + ["-p", f"127.0.0.1:{port}:9092", "-p", f"127.0.0.1:{admin}:9644",
                          "-v", f"{volume}:{DATA_DIR}", "-v", f"{conf}:{CONFIG_DIR}:ro",
                          "--stop-timeout", str(r.pod["grace"]),
                          "--entrypoint", "strom-broker", IMAGE, f"{CONFIG_DIR}/server.properties"]
    start = time.monotonic()
    name = r.container("single", args)
    wait_ready(admin, "the broker in the container")
    startup = time.monotonic() - start
    r.report["broker_ready_seconds"] = round(startup, 2)
    log(f"  broker ready {startup:.2f}s after `podman run` (127.0.0.1:{port} -> container 9092)")

    check_user(name)
    messages = [f"image-suite-{i}" for i in range(100)]
    kcat("-b", f"127.0.0.1:{port}", "-P", "-t", "image", "-X", "acks=all",
         input="\n".join(messages) + "\n")
    got = kcat("-b", f"127.0.0.1:{port}", "-C", "-t", "image", "-o", "beginning", "-e", "-q").stdout.split()
    if sorted(got) != sorted(messages):
        raise Failed(f"consumed {len(got)} messages, not the 100 produced")
    log("  kcat produced 100 messages (acks=all) and consumed them through the published port")

    run(PODMAN + ["restart", "-t", str(r.pod["grace"]), name], timeout=r.pod["grace"] + 60)
    wait_ready(admin, "the restarted broker")
    got = kcat("-b", f"127.0.0.1:{port}", "-C", "-t", "image", "-o", "beginning", "-e", "-q").stdout.split()
    if sorted(got) != sorted(messages):
        raise Failed(f"after a restart the volume gave {len(got)} messages, not 100")
    log("  after `podman restart` the broker served the same 100 messages from its volume")

    start = time.monotonic()
    run(PODMAN + ["stop", "-t", str(r.pod["grace"]), name], timeout=r.pod["grace"] + 60)
    stop = time.monotonic() - start
    state = json.loads(run(PODMAN + ["inspect", name]).stdout)[0]["State"]
    out = run(PODMAN + ["logs", name])
    logs = out.stdout + out.stderr
    if state["ExitCode"] != 0 or "SIGTERM received" not in logs or "shutdown complete" not in logs:
        raise Failed(f"SIGTERM: exit {state['ExitCode']} after {stop:.1f}s; log tail:\n{logs[-2000:]}")
    r.report["sigterm_stop_seconds"] = round(stop, 2)
    log(f"  SIGTERM: exit 0 after {stop:.1f}s (grace {r.pod['grace']}s), \"shutdown complete\" logged")


def check_user(name):
    """The container's process runs as the pod's user with nothing writable but its mounts."""
    pid = json.loads(run(PODMAN + ["inspect", name]).stdout)[0]["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        ids = {line.split(":")[0]: line.split()[1:] for line in f if line.startswith(("Uid", "Gid", "CapEff"))}
    if ids["Uid"][0] != str(UID) or ids["Gid"][0] != str(UID) or int(ids["CapEff"][0], 16) != 0:
        raise Failed(f"container process {pid}: {ids}")
    with open(f"/proc/{pid}/mountinfo") as f:
        root = next(line.split() for line in f if line.split()[4] == "/")
    if "ro" not in root[5].split(","):
        raise Failed(f"the container's root is mounted {root[5]}")


# ---- three brokers ----------------------------------------------------------------------


def cluster(r):
    net, subnet = r.network()
    prefix = subnet.rsplit(".", 1)[0]
    ips = [f"{prefix}.{11 + i}" for i in range(BROKERS)]
    # The pods' DNS names in the rendered configuration, as the headless Service gives them.
    hosts = []
    for i, ip in enumerate(ips):
        hosts += ["--add-host", f"my-cluster-broker-{i}.my-cluster-brokers.default.svc:{ip}"]
    names = []
    for i, ip in enumerate(ips):
        pod = f"my-cluster-broker-{i}"
        runtime = pod_init(r, pod)
        data = r.host_dir(f"{pod}-data")
        names.append(r.container(pod, pod_flags() + hosts + [
            "--network", net, "--ip", ip, "--hostname", pod,
            "-v", f"{data}:{DATA_DIR}", "-v", f"{runtime}:{RUNTIME_DIR}:ro",
            "--stop-timeout", str(r.pod["grace"]),
            "--entrypoint", r.pod["broker_command"][0], IMAGE] + r.pod["broker_command"][1:]))

    def ready():
        states = []
        for ip in ips:
            try:
                states.append(http_get(f"http://{ip}:9644/ready")[0] == 200)
            except OSError as e:
                states.append(str(e))
        return all(s is True for s in states), str(states)
    wait_for("three brokers ready", 120, ready)
    log(f"  three brokers on network {net} ({subnet}) formed a quorum and are ready")

    load_bin = os.path.join(r.target_dir, "debug", "strom-load")
    if not os.access(load_bin, os.X_OK):
        raise Failed(f"{load_bin} is missing (cargo build -p strom-e2e-cluster --bin strom-load)")
    load_port = free_port()
    # strom-load links zlib, which distroless "cc" does not ship: it runs on the bookworm
    # stand-in, with the binary mounted in.
    r.container("load", hosts + ["--network", net, "-p", f"127.0.0.1:{load_port}:8080",
                                 "-v", f"{load_bin}:/usr/local/bin/strom-load:ro",
                                 "localhost/strom-debian:bookworm", "strom-load", "--bootstrap",
                                 "my-cluster-broker-0.my-cluster-brokers.default.svc:9092", "--topic",
                                 "image-load", "--rate", "200"])

    def progress():
        try:
            _, body = http_get(f"http://127.0.0.1:{load_port}/progress")
            p = json.loads(body)
            return p.get("acked", 0) >= 2000 and p.get("consumed", 0) > 0, body
        except OSError as e:
            return False, str(e)
    wait_for("2000 acknowledged writes and some consumed", 120, progress)
    _, body = http_get(f"http://127.0.0.1:{load_port}/stop", timeout=120)
    rep = json.loads(body)
    log(f"  strom-load: {rep.get('sent')} sent, {rep.get('acked')} acked, {rep.get('failed')} failed; "
        f"{rep.get('consumed')} consumed, {rep.get('records_read')} read back; violations {rep.get('violations')}")
    # What Kafka promises with every broker up: every acknowledged write read back once
    # and in order, no failed send, no skipped offset, no consumer error.
    problems = {k: rep.get(k) for k in ["error", "send_errors", "violations", "skipped", "poll_errors"] if rep.get(k)}
    if problems or not rep.get("acked") or rep.get("failed") != 0:
        raise Failed(f"the load's history check: {body[:3000]}")
    r.report["cluster_load"] = {k: rep.get(k) for k in ["sent", "acked", "failed", "consumed", "records_read"]}
    for name in names:
        run(PODMAN + ["stop", "-t", str(r.pod["grace"]), name], timeout=r.pod["grace"] + 60)
        code = json.loads(run(PODMAN + ["inspect", name]).stdout)[0]["State"]["ExitCode"]
        if code != 0:
            raise Failed(f"{name} exited {code} on SIGTERM")
    log("  all three stopped with exit 0 on SIGTERM")


# ---- size -------------------------------------------------------------------------------


def size(r):
    archive = os.path.join(r.tmp, "image.tar")
    run(PODMAN + ["save", "--format", "oci-archive", "-o", archive, IMAGE])
    # An OCI archive keeps layers uncompressed; gzip each as a registry push would.
    compressed = int(run(["bash", "-c", f"gzip -6 -c {archive} | wc -c"]).stdout)
    info = json.loads(run(PODMAN + ["image", "inspect", IMAGE]).stdout)[0]
    history = run(PODMAN + ["history", "--format", "{{.Size}}\t{{.CreatedBy}}", IMAGE]).stdout
    layers = [line.split("\t", 1) for line in history.splitlines() if line and not line.replace(" ", "").startswith("0B")]
    r.report.update({"image_bytes": info["Size"], "image_gzip_bytes": compressed,
                     "layers": [{"size": s, "created_by": c[:160]} for s, c in layers]})
    log(f"  {IMAGE}: {info['Size'] / 1e6:.1f} MB unpacked, {compressed / 1e6:.1f} MB gzip-compressed")
    for s, c in layers:
        log(f"    {s:>9}  {c[:110]}")
    if compressed > 50_000_000:
        raise Failed(f"the image is {compressed / 1e6:.1f} MB compressed, above the 50 MB target")


CHECKS = [("bases", make_bases), ("build", build), ("metadata", metadata), ("render", render), ("pod-init", check_pod_init),
          ("single", single), ("cluster", cluster), ("size", size)]


def tools_missing():
    """None if the suite's tools are installed, else which one is not."""
    for tool in ["podman", "runc", "debootstrap", "nft", "kcat"]:
        if shutil.which(tool) is None:
            return f"{tool}: not installed (apt-get install podman buildah runc debootstrap nftables kcat)"
    return None


def podman_usable():
    """None if podman can run a container here (or if that cannot be told because bases.sh
    did not get as far as importing the bookworm image: then its failure stands), else the
    command and its error."""
    if run(PODMAN + ["image", "exists", "localhost/strom-debian:bookworm"], check=False).returncode != 0:
        return None
    cmd = PODMAN + ["run", "--rm"] + ULIMITS + ["--network", "none", "localhost/strom-debian:bookworm", "true"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-1000:]}"
    return None


# What every other check needs: a failure here ends the run.
ESSENTIAL = ("bases", "build", "render")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
    ap.add_argument("--only", help="comma-separated checks (bases, build and render always run)")
    ap.add_argument("--ready-file", help="written once the build is done: 0 when the image is there, "
                                         "else 1 or the skip's reason (for the sandbox scenario)")
    args = ap.parse_args()

    def ready(content):
        # Written once, whole (a rename): the sandbox scenario waits for it to appear.
        if args.ready_file and not os.path.exists(args.ready_file):
            with open(args.ready_file + ".tmp", "w") as f:
                f.write(content)
            os.replace(args.ready_file + ".tmp", args.ready_file)
    only = set(args.only.split(",")) if args.only else None

    missing = tools_missing()
    if missing:
        print(f"skipped: {missing}")
        ready(f"skipped: {missing}")
        return 0
    r = Run(os.path.abspath(args.target_dir))
    failed = []
    try:
        for name, check in CHECKS:
            if only and name not in only and name not in ESSENTIAL:
                continue
            log(f"== {name}")
            start = time.monotonic()
            try:
                check(r)
                log(f"-- {name}: ok ({time.monotonic() - start:.0f}s)")
            except (Failed, subprocess.TimeoutExpired, OSError, KeyError) as e:
                log(f"-- {name}: FAILED ({time.monotonic() - start:.0f}s)\n{e}")
                failed.append(name)
            if name == "bases":
                # Whether bases.sh got through or not: a machine whose podman cannot run
                # a container skips the suite, saying why.
                why = podman_usable()
                if why:
                    print(f"skipped: {why}")
                    ready(f"skipped: {why}")
                    return 0
            if name == "build":
                ready("1" if failed else "0")
            if failed and failed[-1] in ESSENTIAL:
                break
    finally:
        ready("1")
        r.cleanup()
        os.makedirs(os.path.join(r.target_dir, "image"), exist_ok=True)
        with open(os.path.join(r.target_dir, "image", "report.json"), "w") as f:
            json.dump(r.report, f, indent=2)
    log(f"image suite: failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
