#!/usr/bin/env python3
"""kcat (Debian's, librdkafka inside) against a running broker.

Produces N keyed messages with `kcat -P -K:`, consumes them back with
`kcat -C -o beginning -e`, checks exact content and order, and checks that
`kcat -L` lists the topic. Stdlib only; exits non-zero on any failure.
"""

import argparse
import re
import shutil
import subprocess
import sys
import uuid

N = 100


def run(cmd, *, stdin=None, timeout):
    print("$ " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        sys.exit(f"FAIL: timed out after {timeout}s: {cmd}\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}")
    if p.stderr.strip():
        print("  stderr: " + p.stderr.strip().replace("\n", "\n  stderr: "), flush=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: exit status {p.returncode}: {cmd}\nstdout: {p.stdout[-2000:]}")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True, help="host:port")
    ap.add_argument("--timeout", type=float, default=60, help="per kcat command, seconds")
    args = ap.parse_args()

    kcat = shutil.which("kcat")
    if not kcat:
        sys.exit("FAIL: kcat not found on PATH (scripts/test-all.sh installs it)")
    version = subprocess.run([kcat, "-V"], capture_output=True, text=True).stdout
    print(next((line for line in version.splitlines() if "librdkafka" in line), version.strip()[:200]))

    bs = args.bootstrap
    topic = f"smoke-kcat-{uuid.uuid4().hex[:8]}"
    expected = "".join(f"key-{i}:value-{i}\n" for i in range(N))

    # Produce: one message per line, key and value split at the first ':'.
    # acks=all (librdkafka's default); kcat exits non-zero on delivery failure.
    run([kcat, "-P", "-b", bs, "-t", topic, "-K:", "-X", "acks=all"], stdin=expected, timeout=args.timeout)

    # Consume from the beginning until the end of the partition.
    p = run(
        [kcat, "-C", "-b", bs, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k:%s\n"],
        timeout=args.timeout,
    )
    if p.stdout != expected:
        got = p.stdout.splitlines()
        want = expected.splitlines()
        first_diff = next(
            (i for i, (g, w) in enumerate(zip(got, want)) if g != w),
            min(len(got), len(want)),
        )
        sys.exit(
            f"FAIL: consumed {len(got)} lines, expected {len(want)}; first difference at line "
            f"{first_diff}: got {got[first_diff] if first_diff < len(got) else None!r}, "
            f"want {want[first_diff] if first_diff < len(want) else None!r}"
        )
    print(f"consumed {N} messages back in order")

    # Metadata: the topic is listed with one partition (auto-created) and no error.
    p = run([kcat, "-L", "-b", bs, "-t", topic], timeout=args.timeout)
    m = re.search(r'^\s*topic "' + re.escape(topic) + r'" with (\d+) partitions:(.*)$', p.stdout, re.M)
    if not m:
        sys.exit(f"FAIL: kcat -L does not list topic {topic}:\n{p.stdout}")
    if m.group(1) != "1" or m.group(2).strip():
        sys.exit(f"FAIL: kcat -L: expected 1 partition and no error: {m.group(0)!r}\n{p.stdout}")
    if not re.search(r"^\s*partition 0, leader \d+, replicas: [\d,]+, isrs: [\d,]+\s*$", p.stdout, re.M):
        sys.exit(f"FAIL: kcat -L: partition 0 of {topic} has no leader/replicas/isrs line:\n{p.stdout}")
    print(p.stdout)
    print("kcat smoke: ok")


if __name__ == "__main__":
    main()
