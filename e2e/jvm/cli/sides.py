"""The two sides of every check: Strom and Apache Kafka, each as one or three brokers.

A `Side` hides what differs between a Strom cluster and a Kafka cluster that a check
must not care about: node ids (Strom numbers its nodes from 0, the Kafka launcher from
1), where a node keeps its partition directories, how a node is stopped and started.
"""

import os
import signal
import time

from clusters import ApacheKafkaCluster, StromCluster
from harness import Broker

STROM, KAFKA = "strom", "kafka"
SINGLE, TRIPLE = "single", "triple"

# Replication cases use RF 3 with min.insync.replicas 2 on both kinds. The election checks
# move leaders themselves: the controller's own preferred-leader rebalance (every 300 s on
# both kinds) would otherwise race them, and the suite's clusters live longer than that.
TRIPLE_OVERRIDES = {"min.insync.replicas": "2", "auto.leader.rebalance.enable": "false"}
# Both kinds start a consumer group at once (the tools' groups would wait 3 s otherwise).
COMMON_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


class Side:
    """One running cluster of one kind, as the checks see it."""

    def __init__(self, kind, shape, cluster):
        self.kind = kind
        self.shape = shape
        self.cluster = cluster

    @property
    def name(self):
        return f"{self.kind}-{self.shape}"

    @property
    def bootstrap(self):
        return self.cluster.bootstrap

    @property
    def size(self):
        return 1 if isinstance(self.cluster, Broker) else self.cluster.n

    def node_id(self, i):
        """The broker id of node index i (0-based)."""
        return i + 1 if self.kind == KAFKA else i

    def node_ids(self):
        return [self.node_id(i) for i in range(self.size)]

    def index_of(self, node_id):
        return node_id - 1 if self.kind == KAFKA else node_id

    def node_bootstrap(self, i):
        if isinstance(self.cluster, Broker):
            return self.cluster.bootstrap
        return f"127.0.0.1:{self.cluster.ports[i][0]}"

    def data_dir(self, i=0):
        if isinstance(self.cluster, Broker):
            return self.cluster.data_dir
        return os.path.join(self.cluster.node_dir(i), "data")

    def partition_dir(self, topic, partition, i=0):
        return os.path.join(self.data_dir(i), f"{topic}-{partition}")

    def stop_node(self, i):
        self.cluster.stop_node(i)

    def kill_node(self, i):
        """Kills node i at once (SIGKILL): no controlled shutdown, as in a crash."""
        self.cluster.stop_node(i, sig=signal.SIGKILL)

    def running(self, i):
        """Whether node i was started and not stopped since (it may still be starting)."""
        return i in self.cluster.procs

    def start_node(self, i):
        """Starts a stopped node again on its ports and data, and waits until it is ready."""
        self.cluster.start_node(i)
        self.cluster._wait(i, self.cluster._ready, self.kind)

    def log_paths(self):
        if isinstance(self.cluster, Broker):
            return [self.cluster.log_path]
        return [self.cluster.log_path(i) for i in range(self.cluster.n)]


def start_side(kind, shape, binary, workdir, index=0):
    """Starts the cluster of one side (the `index`th of its kind and shape); the caller
    stops it (Side.cluster.stop())."""
    path = os.path.join(workdir, f"{kind}-{shape}-{index}")
    os.makedirs(path, exist_ok=True)
    overrides = dict(COMMON_OVERRIDES)
    if shape == TRIPLE:
        overrides.update(TRIPLE_OVERRIDES)
    if kind == STROM and shape == SINGLE:
        cluster = Broker(binary, path, overrides=overrides, ready_timeout=60)
        cluster.start()
    elif kind == STROM:
        # A restarted node is ready once it is back in the ISR of every partition it
        # follows; on a loaded machine after a large reassignment that can take longer
        # than a minute. The same bound as Kafka's nodes below.
        cluster = StromCluster(binary, path, 3, overrides, ready_timeout=180)
        cluster.start()
    else:
        cluster = ApacheKafkaCluster(path, 1 if shape == SINGLE else 3, overrides, ready_timeout=180)
        cluster.start()
    return Side(kind, shape, cluster)


def wait_for(condition, timeout, interval=0.5):
    """Polls condition() until it returns a truthy value or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
