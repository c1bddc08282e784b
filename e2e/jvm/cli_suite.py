#!/usr/bin/env python3
"""Kafka's command-line tools against Strom, with Apache Kafka 4.4 as the reference.

Starts one Strom broker and a three-broker Strom cluster, and the same shapes of Apache
Kafka 4.4 from the jars; runs every check (e2e/jvm/cli/checks_*.py) on both kinds at once;
fails on a failed assertion on either side (on Kafka that means the check is wrong) and on
any difference of the normalised outputs not listed in e2e/jvm/cli/differences.py. A full
run rewrites the `cli-tools` section of COMPATIBILITY.md.

    python3 e2e/jvm/cli_suite.py --broker target/debug/strom-broker
    python3 e2e/jvm/cli_suite.py --list
    python3 e2e/jvm/cli_suite.py --only topics,groups.reset_offsets
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "e2e", "clients"))
sys.path.insert(0, HERE)

import compat_doc  # noqa: E402
from cli import checks_topics, checks_clients, checks_admin, checks_replication, checks_data, checks_election  # noqa: E402,F401,I001
from cli.differences import KNOWN, NOT_YET, NOTES, PENDING  # noqa: E402
from cli.framework import CHECKS, run_both, share_classes  # noqa: E402
from cli.sides import KAFKA, SINGLE, STROM, TRIPLE, start_side  # noqa: E402


def selected(only):
    if not only:
        return list(CHECKS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    return [c for c in CHECKS if any(c.name == w or c.name.startswith(w + ".") or c.name.startswith(w)
                                     for w in wanted)]


def known_reason(check, label):
    return KNOWN.get(f"{check.name}/{label}") or KNOWN.get(check.name)


def classify(outcome):
    """(status, unexplained differences, explained differences)."""
    check = outcome.check
    explained, unexplained = [], []
    for label, strom, kafka in outcome.differences:
        reason = known_reason(check, label) or NOT_YET.get(check.name)
        (explained if reason else unexplained).append((label, strom, kafka, reason))
    broken = outcome.strom.failures or outcome.kafka.failures or unexplained
    if check.name in PENDING:
        status = f"PENDING {PENDING[check.name]}" if broken else "PASS (its pending entry can go)"
    elif broken:
        status = "FAIL"
    else:
        status = "PASS"
    return status, unexplained, explained


def report(outcome, status, unexplained, explained, verbose):
    check = outcome.check
    extra = f" ({len(explained)} known difference{'s' * (len(explained) != 1)})" if explained else ""
    print(f"{status:<8} {check.name:<28} {outcome.seconds:5.1f}s{extra}", flush=True)
    if status == "PASS" and not verbose:
        return
    for side, run in ((STROM, outcome.strom), (KAFKA, outcome.kafka)):
        for failure in run.failures:
            text = [line for line in failure.splitlines() if not line.lstrip("[stderr] ").startswith(("at ", "\tat "))]
            print(f"    {side}: " + "\n        ".join(text[:8]))
    for label, strom, kafka, _ in unexplained:
        print(f"    differs at '{label}':\n        strom: {strom}\n        kafka: {kafka}")
    if verbose:
        for label, strom, kafka, reason in explained:
            print(f"    known difference at '{label}' ({reason}):\n        strom: {strom}\n        kafka: {kafka}")


def errors_of(run):
    errors = []
    for step in run.steps:
        for e in step.result.errors:
            if e not in errors:
                errors.append(e)
    return ", ".join(errors) or "no error"


def doc_row(outcome, status, unexplained, explained):
    check = outcome.check
    if check.name in NOT_YET:
        strom = (f"not yet ({NOT_YET[check.name]}): fails cleanly with {errors_of(outcome.strom)} "
                 f"(Kafka: {errors_of(outcome.kafka)})")
    elif status.startswith("PENDING"):
        first = (outcome.strom.failures or ["output differs from Kafka"])[0].splitlines()[0]
        strom = f"pending {PENDING[check.name]} work: {errors_of(outcome.strom)}; {first[:120]}"
    elif outcome.strom.failures:
        strom = "FAILS: " + outcome.strom.failures[0].splitlines()[0]
    else:
        strom = "ok"
    if check.name in NOTES:
        strom += f" ({NOTES[check.name]})"
    diffs = explained + unexplained
    if not diffs:
        same = "yes"
    elif check.name in NOT_YET:
        same = "no (not yet)"
    elif check.name in PENDING and unexplained:
        same = f"no, at {', '.join(repr(d[0]) for d in diffs)} (pending {PENDING[check.name]} work)"
    else:
        same = "no: " + "; ".join(f"'{label}': {reason or 'unexplained'}" for label, _, _, reason in diffs)

    def cell(text, limit=400):
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= limit else text[: limit - 3] + "..."

    return f"| {check.tool} | {cell(check.command)} | {cell(strom)} | {cell(same)} |"


def write_doc(rows, seconds):
    lines = [
        "## Kafka's command-line tools (Apache Kafka 4.4.0)",
        "",
        "Written by `e2e/jvm/cli_suite.py`: each command runs against Strom (one broker, or three with RF 3",
        "and min.insync.replicas 2) and against Apache Kafka 4.4.0 of the same shape; the output and exit code",
        "are compared after normalising ids, ports, timestamps and paths (errors by exception class).",
        f"Last full run: {time.strftime('%Y-%m-%d', time.gmtime())}, {seconds:.0f} s.",
        "",
        "| tool | command | Strom | same as Kafka? |",
        "|---|---|---|---|",
        *rows,
    ]
    compat_doc.replace_section("cli-tools", lines)


def broker_panicked(log_path):
    """Whatever a tool sent, a Strom broker must answer with an error, never panic."""
    try:
        with open(log_path, "rb") as f:
            return b"panicked at" in f.read()
    except OSError:
        return False


def start_sides(lanes, binary, workdir):
    """Starts one cluster of each kind per lane (shape, lane index): the one-broker lanes
    share lane 0's clusters, every three-broker lane has its own (its checks stop brokers)."""
    sides, errors = {}, []

    def start(kind, shape, lane):
        try:
            sides[(kind, shape, lane)] = start_side(kind, shape, binary, workdir, lane)
        except Exception as e:  # reported below; the others are stopped
            errors.append(f"{kind} {shape} {lane}: {e}")

    threads = [threading.Thread(target=start, args=(k, s, n)) for s, n in lanes for k in (STROM, KAFKA)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sides, errors


# The longest checks (a minute or more each) start first in their lanes, so the lanes end
# close together instead of one lane running a long check alone at the end. reassign.cancel
# goes last: it leaves an 8 MiB topic behind on its cluster, which a node restarted by a
# later check there must catch up on before it is ready.
SLOW_FIRST = ("leader_election.unclean_offline", "leader_election", "topics.under_replicated",
              "configs.matrix", "groups.reset_offsets")
LAST = ("reassign.cancel",)


def lanes_for(checks, single_lanes=2, triple_lanes=2):
    """The lanes as (shape, cluster index): the one-broker checks in `single_lanes` lanes
    on one cluster per kind (each check uses its own topics and groups, so they do not
    meet), the three-broker checks in `triple_lanes` lanes with a cluster each."""
    lanes = []
    if any(c.shape == SINGLE for c in checks):
        lanes += [(SINGLE, 0)] * single_lanes
    if any(c.shape == TRIPLE for c in checks):
        lanes += [(TRIPLE, n) for n in range(triple_lanes)]
    return lanes


def run_lanes(checks, lanes, sides, workdir, verbose):
    """Runs the checks in `lanes`, each taking the next check of its shape.

    Much of a check is waiting (a broker restart, a group to settle, a consumer's poll);
    the lanes overlap those waits. Returns {check name: (outcome, status, unexplained,
    explained)}.
    """
    results, lock = {}, threading.Lock()
    def order(check):
        if check.name in SLOW_FIRST:
            return SLOW_FIRST.index(check.name)
        return len(SLOW_FIRST) + (1 if check.name in LAST else 0)

    queues = {shape: sorted((c for c in checks if c.shape == shape), key=order) for shape in (SINGLE, TRIPLE)}

    def lane(shape, n):
        while True:
            with lock:
                if not queues[shape]:
                    return
                check = queues[shape].pop(0)
            outcome = run_both(check, sides[(STROM, shape, n)], sides[(KAFKA, shape, n)], workdir)
            status, unexplained, explained = classify(outcome)
            with lock:
                report(outcome, status, unexplained, explained, verbose)
                results[check.name] = (outcome, status, unexplained, explained)

    threads = [threading.Thread(target=lane, args=lane_key) for lane_key in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=os.path.join(ROOT, "target", "debug", "strom-broker"))
    ap.add_argument("--only", help="comma-separated check names or name prefixes")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    ap.add_argument("--verbose", action="store_true", help="also show known differences and passing details")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    if args.list:
        for c in CHECKS:
            tag = f"  [pending {PENDING[c.name]}]" if c.name in PENDING else ""
            print(f"{c.name:<28} {c.shape:<7} {c.tool} {c.command}{tag}")
        return 0
    checks = selected(args.only)
    if not checks:
        print(f"no check matches --only {args.only}", file=sys.stderr)
        return 2
    if not os.access(args.broker, os.X_OK):
        print(f"strom-broker binary not found: {args.broker}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    workdir = tempfile.mkdtemp(prefix="strom-cli-suite-")
    start = time.monotonic()
    lanes = lanes_for(checks)
    sides = {}
    passed = failed = pending = 0
    rows = []
    try:
        sides, errors = start_sides(sorted(set(lanes)), os.path.abspath(args.broker), workdir)
        if errors:
            for e in errors:
                print(f"cannot start {e}", file=sys.stderr)
            return 1
        share_classes(os.path.join(workdir, "tools.jsa"), next(iter(sides.values())).bootstrap)
        print(f"clusters up in {time.monotonic() - start:.0f}s; {len(checks)} checks", flush=True)
        results = run_lanes(checks, lanes, sides, os.path.join(workdir, "checks"), args.verbose)
        for check in checks:
            status = results[check.name][1]
            passed += status.startswith("PASS")
            failed += status == "FAIL"
            pending += status.startswith("PENDING")
            rows.append(doc_row(*results[check.name]))
        seen = {(o.check.name, label) for o, _, _, explained in results.values() for label, *_ in explained}
        for key in KNOWN:
            name, _, label = key.partition("/")
            if any(c.name == name for c in checks) and not any(n == name and (not label or label == lbl)
                                                                for n, lbl in seen):
                print(f"note: known difference '{key}' was not seen; remove it if Strom now matches")
        for (kind, shape, _), side in sides.items():
            if kind == STROM:
                for path in side.log_paths():
                    if broker_panicked(path):
                        print(f"FAIL     {side.name} broker panicked: see {path}")
                        failed += 1
        seconds = time.monotonic() - start
        print(f"\n{passed} passed, {failed} failed, {pending} pending other work; "
              f"{seconds:.0f}s", flush=True)
        if not args.only:
            write_doc(rows, seconds)
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for side in sides.values():
            side.cluster.stop()
        if args.keep or failed:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
