"""Run the real server as a child process: ``twistd -n messenger`` on loopback.

`TwistdServer` spawns ``.venv/bin/twistd -n --pidfile= messenger`` with ``PYTHONPATH`` at
the project root, a data dir under the test's temp dir (shared secret and a 2048-bit
server key written beforehand, so start-up makes no key) and a free TCP port. `start`
fires once the "Messenger listening" log line appears; `kill` sends SIGKILL (a crash:
no clean shutdown, no flushed buffers) and `start` again brings it back on the same port
and data dir. The log goes to ``server.log`` next to the data dir, for post-mortems.

    server = yield start_twistd_server(self, "--token-days", "0.00001")
    ... server.port, server.secret, server.secret_file ...
    yield server.kill(); yield server.start()

`wait_for(condition)` polls until a condition holds (for what happens in other processes).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.error import ProcessExitedAlready
from twisted.python.failure import Failure

from messenger.wire import keys
from tests.support.keys import rsa_key
from tests.support.server import SECRET

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = b"Messenger listening on"
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def twistd_command() -> list[str]:
    twistd = ROOT / ".venv" / "bin" / "twistd"
    if twistd.exists():
        return [str(twistd)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class _ServerProcess(protocol.ProcessProtocol):
    def __init__(self, log_file: Any) -> None:
        self.log_file = log_file
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[Any] = defer.Deferred()
        self._seen = b""

    def outReceived(self, data: bytes) -> None:
        self._output(data)

    def errReceived(self, data: bytes) -> None:
        self._output(data)

    def _output(self, data: bytes) -> None:
        self.log_file.write(data)
        self.log_file.flush()
        if not self.ready.called:
            self._seen = (self._seen + data)[-4096:]
            if READY_LINE in self._seen:
                self.ready.callback(None)

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"the server exited before listening: {reason}"))
        self.ended.callback(reason.value)


class TwistdServer:
    """One server data dir and port, run (and re-run) as a child process."""

    def __init__(self, base: Path, extra_args: tuple[str, ...] = (),
                 server_key: rsa.RSAPrivateKey | None = None) -> None:
        self.base = Path(base).resolve()
        self.data_dir = self.base / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.secret = SECRET
        self.secret_file = self.data_dir / "secret"
        if not self.secret_file.exists():
            self.secret_file.write_bytes(SECRET + b"\n")
            self.secret_file.chmod(0o600)
        if server_key is not None or not (self.data_dir / "server_key.pem").exists():
            self.set_server_key(server_key or rsa_key("server", 2048))
        self.port = free_port()
        self.extra_args = tuple(extra_args)
        self.log_path = self.base / "server.log"
        self.starts = 0
        self.pythonpath: str | None = str(ROOT)   # None: what the interpreter has alone
        self._process: _ServerProcess | None = None
        self._transport: Any = None

    def set_server_key(self, key: rsa.RSAPrivateKey) -> None:
        """Give the server another long-term key (takes effect at the next start)."""
        keys.write_private_key(self.data_dir / "server_key.pem", key)

    @property
    def running(self) -> bool:
        return self._process is not None and not self._process.ended.called

    def args(self) -> list[str]:
        return [*twistd_command(), "-n", "--pidfile=", "messenger",
                "--data-dir", str(self.data_dir), "--interface", "127.0.0.1",
                "--port", str(self.port), "--udp-port", "0", "--scrypt-n", "16",
                "--rsa-bits", "2048", *self.extra_args]

    def start(self, timeout: float = START_TIMEOUT) -> defer.Deferred[TwistdServer]:
        """Spawn the server; fires once it listens."""
        if self.running:
            raise RuntimeError("the server is already running")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("PYTHON")}
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        log_file = open(self.log_path, "ab")  # closed in _ended
        log_file.write(f"--- start {self.starts + 1}: {' '.join(self.args())}\n".encode())
        process = self._process = _ServerProcess(log_file)
        process.ended.addBoth(self._ended, log_file)
        self._transport = reactor.spawnProcess(process, self.args()[0], self.args(),
                                               env=env, path=str(self.base))
        self.starts += 1
        d = process.ready
        d.addTimeout(timeout, reactor)
        d.addErrback(self._failed_to_start)
        d.addCallback(lambda _: self)
        return d

    def _failed_to_start(self, failure: Failure) -> Failure:
        if self.running:
            with contextlib.suppress(ProcessExitedAlready):  # it may be exiting by itself
                self._transport.signalProcess("KILL")
        tail = self.log_path.read_text("utf-8", "replace")[-3000:]
        raise RuntimeError(f"twistd did not start listening ({failure.value!r});"
                           f" log tail:\n{tail}")

    @staticmethod
    def _ended(result: Any, log_file: Any) -> Any:
        log_file.close()
        return result

    def _signal(self, name: str) -> defer.Deferred[Any]:
        process = self._process
        if process is None or process.ended.called:
            return defer.succeed(None)
        ended: defer.Deferred[Any] = defer.Deferred()

        def gone(result: Any) -> Any:
            ended.callback(None)
            return result
        process.ended.addBoth(gone)
        with contextlib.suppress(ProcessExitedAlready):  # exited; processEnded is on its way
            self._transport.signalProcess(name)
        return ended

    def kill(self) -> defer.Deferred[Any]:
        """SIGKILL: the server dies at once, mid-whatever. Fires once it is gone."""
        return self._signal("KILL")

    def stop(self, timeout: float = 10.0) -> defer.Deferred[Any]:
        """SIGTERM (a clean shutdown), SIGKILL if that takes longer than ``timeout``."""
        if not self.running:
            return defer.succeed(None)
        d = self._signal("TERM")

        def too_slow() -> None:
            if self.running:
                self._transport.signalProcess("KILL")
        timer = reactor.callLater(timeout, too_slow)

        def stopped(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result
        return d.addBoth(stopped)

    def pid(self) -> int | None:
        return self._transport.pid if self.running else None


@defer.inlineCallbacks
def start_twistd_server(testcase: Any, *extra_args: str,
                        server_key: rsa.RSAPrivateKey | None = None) -> Any:
    """Start a child-process server for ``testcase`` (stopped in cleanup)."""
    server = TwistdServer(Path(testcase.mktemp()), extra_args, server_key)
    testcase.addCleanup(server.stop)
    yield server.start()
    return server


@defer.inlineCallbacks
def wait_for(condition: Any, timeout: float = 30.0, what: str = "condition",
             detail: Any = None) -> Any:
    """Poll ``condition()`` every 20 ms until true; fail after ``timeout`` seconds (saying
    ``detail()`` too, when given: what the state was instead)."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            found = f" ({detail()})" if detail is not None else ""
            raise AssertionError(f"timed out waiting for {what}{found}")
        yield task.deferLater(reactor, 0.02, lambda: None)
