"""Process plumbing for the client suites: a strom-broker process and client programs.

Stdlib only. `Broker` runs one strom-broker on its own free loopback ports and data
dir, and can restart it on the same ports and data dir (to test what survives a
restart). `run_program` runs a client program in its own process group so that a
timeout, or the end of the run, kills everything it started.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


class HarnessError(Exception):
    """The broker or a program could not be run as the suite needs."""


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


def read_text(path):
    """A log file's text (undecodable bytes replaced); "" if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def kill_group(pid):
    """SIGKILL a process group; quiet if it is already gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_unreaped(pid, timeout):
    """Wait up to timeout for pid to exit, without reaping it; True if it exited.

    While the leader is unreaped its id cannot be reused, so killing its process
    group afterwards cannot hit an unrelated process.
    """
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_group(proc, timeout):
    """SIGTERM a program's process group, SIGKILL what is left after timeout; returns its exit status."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_unreaped(proc.pid, timeout)
    kill_group(proc.pid)
    return proc.wait()


class Broker:
    """One strom-broker process with its own ports and a data dir under workdir.

    The first start() picks free ports (retrying on fresh ones if another process
    took a port between the probe and the broker's bind); restart() stops the
    broker and starts it again on the same ports and data dir.
    """

    def __init__(
        self, binary, workdir, *, overrides=None, ready_timeout=30, stop_timeout=10, listeners=(), format_args=()
    ):
        self.binary = binary
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "broker.log")
        self.overrides = dict(overrides or {})
        # Listeners besides PLAINTEXT, by name (SASL_SSL, SSL, ...); each gets its own port.
        self.extra_listeners = tuple(listeners)
        self.listener_ports = {}
        # `strom-broker format` arguments (e.g. --add-scram SPEC) run on the fresh data dir
        # before the first start; empty: no format, the broker picks a cluster id itself.
        self.format_args = tuple(format_args)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.port = None
        self.admin_port = None
        self.proc = None
        self.starts = 0
        self.notes = []  # informational, e.g. a start retried on new ports
        self.problems = []  # misbehaviour, e.g. SIGTERM did not stop it

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def listener_bootstrap(self, name):
        """host:port of one of the extra listeners."""
        return f"127.0.0.1:{self.listener_ports[name]}"

    def start(self, attempts=3):
        """First start: fresh ports and an empty data dir; waits for GET /ready = 200."""
        for attempt in range(1, attempts + 1):
            self.port, self.admin_port, *extra = free_ports(2 + len(self.extra_listeners))
            self.listener_ports = dict(zip(self.extra_listeners, extra))
            shutil.rmtree(self.data_dir, ignore_errors=True)
            os.makedirs(self.data_dir)
            if self.format_args:
                self._format()
            try:
                self._launch()
                return
            except HarnessError:
                exited = self.proc.poll() is not None
                self.stop()
                if exited and attempt < attempts and "in use" in self.log().lower():
                    self.notes.append(f"broker start attempt {attempt}: address in use, retrying on new ports")
                    continue
                raise

    def restart(self):
        """SIGTERM, wait for exit, start again on the same ports and data dir."""
        self.stop()
        try:
            self._launch()
        except HarnessError as e:
            raise HarnessError(f"restart on ports {self.port}/{self.admin_port}: {e}") from None

    def _format(self):
        """`strom-broker format` on the fresh data dir (e.g. to add SCRAM credentials)."""
        cmd = [self.binary, "format", "--cluster-id", "c3Ryb20tY29tcGF0LXN1aXRl", *self.format_args]
        cmd += ["--override", f"log.dirs={self.data_dir}", "--override", "node.id=0"]
        with open(self.log_path, "ab") as log:
            # The arguments may hold passwords; the log names only the command.
            log.write(b"### strom-broker format\n")
            log.flush()
            done = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, timeout=60
            )
        if done.returncode != 0:
            raise HarnessError(f"strom-broker format exited with status {done.returncode} (see the broker log)")

    def _launch(self):
        self.starts += 1
        cmd = [self.binary]
        listeners = ",".join(
            [f"PLAINTEXT://127.0.0.1:{self.port}"]
            + [f"{name}://127.0.0.1:{port}" for name, port in self.listener_ports.items()]
        )
        settings = {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "log.dirs": self.data_dir,
            "admin.listener": f"127.0.0.1:{self.admin_port}",
            "node.id": "0",
            **self.overrides,
        }
        for key, value in settings.items():
            cmd += ["--override", f"{key}={value}"]
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain text in broker.log
        with open(self.log_path, "ab") as log:
            log.write(f"### start {self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,  # anything written to ./ lands in the temp dir
                env=env,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self):
        url = f"http://127.0.0.1:{self.admin_port}/ready"
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise HarnessError(f"broker exited with status {code} before it was ready")
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
                raise HarnessError(f"broker not ready after {self.ready_timeout}s: GET {url}: {last}")
            time.sleep(0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_problem(self):
        """Why the broker is not running when it should be, or None if it is running."""
        if self.alive():
            return None
        if self.proc is None:
            return "broker never started"
        return f"broker exited with status {self.proc.returncode}"

    def stop(self):
        """SIGTERM, then SIGKILL after stop_timeout; always leaves the process reaped."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=self.stop_timeout)
                if code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                    self.problems.append(f"broker exited with status {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                self.problems.append(f"broker still running {self.stop_timeout}s after SIGTERM; sent SIGKILL")
                self.proc.kill()
                self.proc.wait()

    def log(self):
        return read_text(self.log_path)


@dataclass
class ProgramResult:
    returncode: int | None  # None: killed at the timeout
    lines: list  # (stream, line) in arrival order; stream is "out" or "err"
    seconds: float

    def stdout_lines(self):
        return [line for stream, line in self.lines if stream == "out"]

    def combined(self):
        """stdout and stderr interleaved as they arrived; stderr lines marked."""
        return "\n".join(line if stream == "out" else f"[stderr] {line}" for stream, line in self.lines)


def run_program(argv, *, timeout, cwd, stdin_text=None, env=None):
    """Run argv in a new process group; kill the whole group at the timeout and at the end.

    stdout and stderr are read separately (a program's last stdout line is its
    result) but kept in arrival order for the failure report. stdin_text, if given,
    is written to the program's stdin, which is then closed (else stdin is empty).
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as e:
        raise HarnessError(f"cannot run {argv[0]}: {e}") from None
    lines = []
    lock = threading.Lock()

    def pump(pipe, stream):
        for raw in pipe:
            with lock:
                lines.append((stream, raw.decode("utf-8", "replace").rstrip("\n")))

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True),
    ]
    if stdin_text is not None:
        readers.append(threading.Thread(target=_feed, args=(proc.stdin, stdin_text), daemon=True))
    for r in readers:
        r.start()
    try:
        exited = wait_unreaped(proc.pid, timeout)
    finally:
        # Also ends children the program left behind, which would hold the pipes open.
        kill_group(proc.pid)
        returncode = proc.wait()
        for r in readers:
            r.join()
        proc.stdout.close()
        proc.stderr.close()
    return ProgramResult(returncode if exited else None, lines, time.monotonic() - start)


def _feed(pipe, text):
    """Writes text to a program's stdin and closes it; quiet if the program is gone."""
    try:
        pipe.write(text.encode())
        pipe.close()
    except (BrokenPipeError, ValueError, OSError):
        pass
