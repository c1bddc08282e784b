"""Clusters for the suites that need more than one broker, or Apache Kafka itself.

Stdlib only. `StromCluster` runs N strom-broker processes (KRaft-style voters on
loopback, the same properties e2e/cluster uses); `ApacheKafkaCluster` runs N Apache
Kafka 4.4 nodes in combined mode from the jars (e2e/jvm/bin/apache-kafka-node). Both
pick free ports, keep everything under one work dir, expose `bootstrap`, and stop every
process they started on stop() (also as a context manager), even after a failure.
"""

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from harness import HarnessError, free_ports, kill_group

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APACHE_KAFKA_NODE = os.path.join(ROOT, "e2e", "jvm", "bin", "apache-kafka-node")

# Faster failure detection than the defaults, as in e2e/cluster/src/props.rs.
STROM_CLUSTER_DEFAULTS = {
    "group.initial.rebalance.delay.ms": "0",
    "replica.lag.time.max.ms": "4000",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
}


class _Nodes:
    """Process bookkeeping shared by both cluster kinds."""

    def __init__(self, workdir, n, ready_timeout, stop_timeout):
        self.workdir = workdir
        self.n = n
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.procs = {}  # node index -> Popen
        self.ports = []  # node index -> (kafka port, controller port, admin port or None)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p[0]}" for p in self.ports)

    def node_dir(self, i):
        return os.path.join(self.workdir, f"node{i}")

    def log_path(self, i):
        return os.path.join(self.node_dir(i), "node.log")

    def log(self, i):
        try:
            with open(self.log_path(i), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _spawn(self, i, cmd):
        os.makedirs(self.node_dir(i), exist_ok=True)
        env = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1")
        with open(self.log_path(i), "ab") as log:
            log.write(f"### start: {' '.join(cmd)}\n".encode())
            log.flush()
            self.procs[i] = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.node_dir(i), env=env, start_new_session=True,
            )

    def stop_node(self, i, sig=signal.SIGTERM):
        """Stops node i (SIGKILL after stop_timeout, or at once with sig=SIGKILL)."""
        proc = self.procs.pop(i, None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_group(proc.pid)  # the JVM's or broker's children, and a hung process
        proc.wait()

    def stop(self):
        # All at once: a controlled shutdown one by one would wait for controllers
        # that are already gone.
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for i in list(self.procs):
            self.stop_node(i)

    def _wait(self, i, ready, what):
        deadline = time.monotonic() + self.ready_timeout
        while not ready(i):
            proc = self.procs.get(i)
            if proc is None or proc.poll() is not None:
                raise HarnessError(f"{what} node {i} exited before it was ready; log {self.log_path(i)}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} node {i} not ready after {self.ready_timeout}s; log {self.log_path(i)}")
            time.sleep(0.1)


class StromCluster(_Nodes):
    """n strom-broker processes forming one cluster (node ids 0..n-1)."""

    def __init__(self, binary, workdir, n=3, overrides=None, ready_timeout=60, stop_timeout=15):
        super().__init__(workdir, n, ready_timeout, stop_timeout)
        self.binary = binary
        self.overrides = dict(overrides or {})

    def start(self):
        flat = free_ports(3 * self.n)
        self.ports = [tuple(flat[3 * i : 3 * i + 3]) for i in range(self.n)]
        for i in range(self.n):
            shutil.rmtree(os.path.join(self.node_dir(i), "data"), ignore_errors=True)
        try:
            for i in range(self.n):
                self.start_node(i)
            for i in range(self.n):
                self._wait(i, self._ready, "strom")
        except BaseException:
            self.stop()
            raise

    def settings(self, i):
        voters = ",".join(f"{j}@127.0.0.1:{p[1]}" for j, p in enumerate(self.ports))
        port, controller, admin = self.ports[i]
        return {
            "node.id": str(i),
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.quorum.voters": voters,
            "log.dirs": os.path.join(self.node_dir(i), "data"),
            "admin.listener": f"127.0.0.1:{admin}",
            **STROM_CLUSTER_DEFAULTS,
            **self.overrides,
        }

    def start_node(self, i):
        cmd = [self.binary]
        for key, value in self.settings(i).items():
            cmd += ["--override", f"{key}={value}"]
        self._spawn(i, cmd)

    def restart_node(self, i):
        self.stop_node(i)
        self.start_node(i)
        self._wait(i, self._ready, "strom")

    def _ready(self, i):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[i][2]}/ready", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False


class ApacheKafkaCluster(_Nodes):
    """n Apache Kafka 4.4 nodes in KRaft combined mode (node ids 1..n), from the jars."""

    def __init__(self, workdir, n=1, overrides=None, ready_timeout=120, stop_timeout=30):
        super().__init__(workdir, n, ready_timeout, stop_timeout)
        self.overrides = dict(overrides or {})

    def start(self):
        if not os.access(APACHE_KAFKA_NODE, os.X_OK):
            raise HarnessError(f"{APACHE_KAFKA_NODE} missing")
        flat = free_ports(2 * self.n)
        self.ports = [(flat[2 * i], flat[2 * i + 1], None) for i in range(self.n)]
        for i in range(self.n):
            shutil.rmtree(self.node_dir(i), ignore_errors=True)
        try:
            for i in range(self.n):
                self.start_node(i)
            for i in range(self.n):
                self._wait(i, self._ready, "apache kafka")
        except BaseException:
            self.stop()
            raise

    def node_id(self, i):
        return i + 1

    def start_node(self, i):
        voters = ",".join(f"{self.node_id(j)}@127.0.0.1:{p[1]}" for j, p in enumerate(self.ports))
        port, controller, _ = self.ports[i]
        extra = [f"{k}={v}" for k, v in self.overrides.items()]
        cmd = [APACHE_KAFKA_NODE, self.node_dir(i), str(self.node_id(i)), str(port), str(controller), voters, *extra]
        self._spawn(i, cmd)
        # Readiness is judged on this start's log lines only.
        self._log_offset = getattr(self, "_log_offset", {})
        self._log_offset[i] = os.path.getsize(self.log_path(i))

    def restart_node(self, i):
        self.stop_node(i)
        self.start_node(i)
        self._wait(i, self._ready, "apache kafka")

    def _ready(self, i):
        return "Kafka Server started" in self.log(i)[self._log_offset.get(i, 0) :]
