"""Where Strom's tool output may differ from Kafka's, and why; and the checks pending other work.

KNOWN: "check/step label" (or "check" for every step) -> the reason the difference is
accepted. The suite fails on any difference not listed here, and notes an entry that no
longer matches a difference (so the list shrinks as Strom catches up).

NOTES: what a row of COMPATIBILITY.md adds about a feature Strom lacks.

NOT_YET: checks of features Strom does not have yet; their differences are accepted and
COMPATIBILITY.md says "not yet" with the error the tool gets.

PENDING: checks whose broker area another change owns; their failures and differences are
reported as "pending <area>" and do not fail the suite until that change is merged (then
the entry is removed).
"""

_NO_ELR = (
    "Kafka 4.4 runs with eligible leader replicas (KIP-966): it answers DescribeTopicPartitions, so the tool "
    "prints empty Elr/LastKnownElr where Strom's Metadata answer gives N/A, and it records the cluster's "
    "min.insync.replicas as a config of every new topic; Strom has no ELR"
)

_ELR_MIN_ISR = (
    "with eligible leader replicas (KIP-966) Kafka 4.4 stores min.insync.replicas as a dynamic cluster "
    "default when the cluster is formatted, so it is listed among the cluster's default configs; Strom has "
    "no ELR and sets nothing it was not asked to"
)

_ELR_LAST_REPLICA = (
    "with eligible leader replicas (KIP-966) Kafka 4.4 empties the ISR of a partition whose last replica is "
    "down and lists that replica as ELR; Strom has no ELR and keeps the last replica in the ISR, as Kafka "
    "did before 4.0 (both show Leader: none)"
)

KNOWN = {
    "topics.create/describe": _NO_ELR,
    "topics.alter_partitions/describe": _NO_ELR,
    "topics.under_replicated/unavailable": _ELR_LAST_REPLICA,
    "leader_election.unclean_offline/unavailable": _ELR_LAST_REPLICA,
    "configs.broker_default/describe": _ELR_MIN_ISR,
    "configs.broker_default/describe after delete": _ELR_MIN_ISR,
    "broker_api_versions/versions": (
        "Strom serves a subset of Kafka 4.4's APIs (no transactions, delegation tokens, "
        "share or KIP-848 groups, raft voter changes); the check asserts that the ones the tools use are usable"
    ),
}

NOT_YET = {}

# NOTES: "check" -> what COMPATIBILITY.md adds to a passing row (a feature the tool reaches
# that Strom lacks, though the tool behaves as on Kafka without it).
NOTES = {
    "acls": (
        "both run without an authorizer here and refuse with SecurityDisabledException; with "
        "authorizer.class.name set, --add/--list/--remove match Kafka 4.4 (broker/tests/acls.rs)"
    ),
    "transactions": (
        "not yet: Strom has no transactions (a transactional producer's InitProducerId is refused); list, "
        "describe and describe-producers (idempotent producers) answer as on Kafka"
    ),
}

PENDING = {
}
