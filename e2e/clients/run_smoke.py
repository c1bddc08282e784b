#!/usr/bin/env python3
"""Client compatibility smoke suite: real Kafka clients against a real strom-broker.

For each client: start a fresh strom-broker process on its own free loopback
ports and temp data dir, wait until GET /ready on its admin port answers 200,
run the client's script (in its venv) with a timeout, check its exit status,
then stop the broker (SIGTERM, then SIGKILL after a deadline) and remove the
temp dir. Prints one PASS/FAIL line per client and ends with
"N passed, N failed"; exits 1 if any client failed. Stdlib only.

    python3 e2e/clients/run_smoke.py --broker target/debug/strom-broker [--only kcat]

The venvs under target/venvs/ are prepared by scripts/test-all.sh.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@dataclass
class Client:
    name: str
    script: str
    venv: str | None = None  # None: the interpreter running this suite
    args: list = field(default_factory=list)


CLIENTS = [
    Client("kcat", "kcat_smoke.py"),
    Client("confluent-kafka", "confluent_kafka_smoke.py", venv="kafka3"),
    Client("kafka-python-3", "kafka_python_smoke.py", venv="kafka3", args=["--expect-major", "3"]),
    Client("kafka-python-2", "kafka_python_smoke.py", venv="kafka2", args=["--expect-major", "2"]),
]


class SmokeError(Exception):
    pass


def tail(text, lines):
    parts = text.rstrip("\n").splitlines()
    cut = parts[-lines:]
    prefix = [f"[... {len(parts) - len(cut)} earlier lines]"] if len(parts) > len(cut) else []
    return "\n".join(prefix + cut)


def indent(text, pad="    | "):
    return "\n".join(pad + line for line in text.splitlines()) if text else pad + "(empty)"


def free_ports(n):
    """n distinct free loopback ports (bound together so they differ, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Broker:
    """One strom-broker process with its own ports and data dir under workdir."""

    def __init__(self, binary, workdir, ready_timeout, stop_timeout):
        self.binary = binary
        self.workdir = workdir
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.proc = None
        self.log_path = os.path.join(workdir, "broker.log")
        self.notes = []

    def start(self, attempts=3):
        for attempt in range(1, attempts + 1):
            self.port, self.admin_port = free_ports(2)
            data_dir = os.path.join(self.workdir, f"data-{attempt}")
            os.makedirs(data_dir)
            cmd = [
                self.binary,
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"log.dirs={data_dir}",
                "--override", f"admin.listener=127.0.0.1:{self.admin_port}",
                "--override", "node.id=0",
            ]  # fmt: skip
            with open(self.log_path, "ab") as log:
                log.write(f"### attempt {attempt}: {' '.join(cmd)}\n".encode())
                log.flush()
                env = dict(os.environ)
                env.setdefault("RUST_BACKTRACE", "1")
                env.setdefault("NO_COLOR", "1")  # plain text in broker.log
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,  # anything written to ./ lands in the temp dir
                    env=env,
                    start_new_session=True,
                )
            try:
                self._wait_ready()
                return
            except SmokeError:
                # Another process may have taken a port between our probe and the
                # broker's bind: retry on fresh ports, but only for that cause.
                exited = self.proc.poll() is not None
                self.stop()
                if exited and attempt < attempts and "in use" in self.log().lower():
                    self.notes.append(f"broker start attempt {attempt}: address in use, retrying on new ports")
                    continue
                raise

    def _wait_ready(self):
        url = f"http://127.0.0.1:{self.admin_port}/ready"
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise SmokeError(f"broker exited with status {code} before it was ready")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if time.monotonic() > deadline:
                raise SmokeError(f"broker not ready after {self.ready_timeout}s: GET {url}: {last}")
            time.sleep(0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after stop_timeout. Always leaves the process reaped."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=self.stop_timeout)
                if code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                    self.notes.append(f"broker exited with status {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                self.notes.append(f"broker still running {self.stop_timeout}s after SIGTERM; sent SIGKILL")
                self.proc.kill()
                self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def python_for(client, venvs):
    if client.venv is None:
        return sys.executable
    py = os.path.join(venvs, client.venv, "bin", "python")
    if not os.path.exists(py):
        raise SmokeError(f"venv {client.venv!r} missing ({py}); run scripts/test-all.sh to prepare it")
    return py


def run_client(client, bootstrap, args):
    """Run the client's script; returns its combined output. Raises SmokeError on failure."""
    cmd = [python_for(client, args.venvs), "-u", os.path.join(HERE, client.script), "--bootstrap", bootstrap]
    cmd += client.args
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group, so a timeout also ends kcat children
        cwd=ROOT,
    )
    try:
        out, _ = proc.communicate(timeout=args.client_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise SmokeError(
            f"client timed out after {args.client_timeout}s",
            out.decode("utf-8", "replace"),
        )
    out = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SmokeError(f"client exited with status {proc.returncode}", out)
    return out


def run_one(client, args):
    """Returns (ok, message, details)."""
    workdir = tempfile.mkdtemp(prefix=f"strom-smoke-{client.name}-")
    broker = Broker(args.broker, workdir, args.ready_timeout, args.stop_timeout)
    out = ""
    ok, reason = False, ""
    try:
        try:
            broker.start()
            out = run_client(client, f"127.0.0.1:{broker.port}", args)
            if not broker.alive():
                raise SmokeError(f"broker exited (status {broker.proc.returncode}) while the client ran")
            ok = True
        except SmokeError as e:
            reason = e.args[0]
            if len(e.args) > 1:
                out = e.args[1]
    finally:
        broker.stop()
        log = broker.log()
        if args.keep_temp:
            broker.notes.append(f"temp dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    details = []
    if not ok or args.verbose:
        details.append(f"  client output ({client.name}):\n" + indent(tail(out, args.tail_lines)))
        details.append("  broker log:\n" + indent(tail(log, args.tail_lines)))
    for note in broker.notes:
        details.append(f"  note: {note}")
    return ok, reason, "\n".join(details)


def main():
    default_target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", help="path to the strom-broker binary")
    ap.add_argument("--venvs", default=os.path.join(default_target, "venvs"), help="dir holding the venvs")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this client (repeatable, or comma-separated); see --list",
    )
    ap.add_argument("--list", action="store_true", help="print the client names and exit")
    ap.add_argument("--ready-timeout", type=float, default=30, help="seconds for /ready (default 30)")
    ap.add_argument("--client-timeout", type=float, default=180, help="seconds per client (default 180)")
    ap.add_argument("--stop-timeout", type=float, default=10, help="seconds from SIGTERM to SIGKILL")
    ap.add_argument("--tail-lines", type=int, default=60, help="lines of output shown on failure")
    ap.add_argument("--keep-temp", action="store_true", help="keep each broker's temp dir")
    ap.add_argument("-v", "--verbose", action="store_true", help="show output of passing clients too")
    args = ap.parse_args()

    if args.list:
        for c in CLIENTS:
            print(c.name)
        return 0
    if not args.broker:
        ap.error("--broker is required")
    args.broker = os.path.abspath(args.broker)
    if not os.access(args.broker, os.X_OK):
        ap.error(f"broker binary not found or not executable: {args.broker}")

    selected = CLIENTS
    if args.only:
        names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        known = {c.name for c in CLIENTS}
        unknown = [n for n in names if n not in known]
        if unknown:
            ap.error(f"unknown client(s) {unknown}; known: {sorted(known)}")
        selected = [c for c in CLIENTS if c.name in names]

    passed = failed = 0
    for client in selected:
        start = time.monotonic()
        print(f"--- {client.name}: running", flush=True)
        ok, reason, details = run_one(client, args)
        took = time.monotonic() - start
        if ok:
            passed += 1
            print(f"PASS {client.name} ({took:.1f}s)", flush=True)
        else:
            failed += 1
            print(f"FAIL {client.name} ({took:.1f}s): {reason}", flush=True)
        if details:
            print(details, flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
