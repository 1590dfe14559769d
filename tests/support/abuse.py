"""Tools for the abuse and buffer tests: a watching bystander, a server's memory and
descriptors read from /proc, attacker addresses, and clients that misbehave on purpose.

* `Bystander`: a logged-in user asking for its contacts every ``period`` seconds and
  another one logging in (handshake + authenticate + quit) every ``login_every``
  seconds; both record their latencies, so a test can assert that others stay served
  while an attack runs (`Bystander.assert_served`).
* `ProcessProbe`: resident memory (VmRSS), CPU seconds and open sockets of a process (a
  ``twistd`` child), and `RssSampler`, which keeps the peak while an attack runs.
* `addresses`: loopback source addresses, each its own host or its own network
  (Linux routes all of 127/8 to ``lo``), for separate attackers.
* `pause_reading` / `small_receive_buffer`: a client that stops reading its socket, with
  a small kernel buffer so that the server feels it soon.
* `store_conversation`, `store_inbox`, `many_contacts_txn`: big data sets written straight
  into a stopped server's SQLite file (a second of setup instead of a minute of sending).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor, task

from tests.support import jimclient
from tests.support.twistd_server import ROOT

PASSWORD = "correct horse"
MIB = 1024 * 1024


# -- measuring a process -----------------------------------------------------------------

class ProcessProbe:
    """Reads a process's memory, CPU time and open sockets from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def rss(self) -> int:
        """Resident memory in bytes (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for process {self.pid}")

    def cpu(self) -> float:
        """User + system CPU seconds used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sockets(self) -> int:
        """Open socket descriptors (listeners and connections)."""
        count = 0
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for entry in fd_dir.iterdir():
            try:
                if os.readlink(entry).startswith("socket:"):
                    count += 1
            except OSError:
                continue  # closed meanwhile
        return count

    def sockets_from(self, hosts: set[str]) -> int:
        """The process's TCP sockets whose peer is one of ``hosts`` (IPv4): connections it
        has accepted from those clients. Unlike `sockets`, other clients coming and going
        (a bystander logging in every few seconds) do not change the count."""
        inodes = set()
        for entry in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                target = os.readlink(entry)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        peers = {socket.inet_aton(host)[::-1].hex().upper() for host in hosts}
        count = 0
        for line in Path(f"/proc/{self.pid}/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[2].split(":")[0] in peers:
                count += 1
        return count


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds; keeps the first and the peak."""

    def __init__(self, probe: ProcessProbe, interval: float = 0.05) -> None:
        self.probe = probe
        self.start_rss = probe.rss()
        self.peak = self.start_rss
        self.samples = 0
        self._loop = task.LoopingCall(self.sample)
        self._loop.start(interval)

    def sample(self) -> int:
        rss = self.probe.rss()
        self.samples += 1
        if rss > self.peak:
            self.peak = rss
        return rss

    @property
    def growth(self) -> int:
        return self.peak - self.start_rss

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        self.sample()


# -- addresses ---------------------------------------------------------------------------

def addresses(count: int, own_network: bool = True, first: int = 1) -> Iterator[str]:
    """``count`` loopback addresses for separate attackers: each in its own /24
    (``own_network``: 127.N.1.1) or all in 127.200.0.0/16 as separate hosts."""
    for index in range(first, first + count):
        if own_network:
            yield f"127.{index % 250 + 1}.{index // 250 + 1}.1"
        else:
            yield f"127.200.{index // 250}.{index % 250 + 1}"


# -- clients that misbehave ----------------------------------------------------------------

def small_receive_buffer(client: Any, size: int = 64 * 1024) -> None:
    """Shrink the kernel's receive buffer of a connected client (no autotuning)."""
    client.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def small_send_buffer(client: Any, size: int = 64 * 1024) -> None:
    """Shrink the kernel's send buffer of a connected client: what the peer does not read
    backs up in the client's own transport soon."""
    client.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def pause_reading(client: Any) -> None:
    """Stop reading the socket: what the server sends waits in the kernel, then in the
    server."""
    client.transport.pauseProducing()


def unsent(client: Any) -> int:
    """Bytes a client has written that its transport could not hand to the kernel yet."""
    transport = client.transport
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def log_lines(path: Path, text: str) -> list[str]:
    """The lines of a server log that contain ``text``."""
    return [line for line in path.read_text("utf-8", "replace").splitlines() if text in line]


# -- latency -------------------------------------------------------------------------------

def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


@dataclass
class Latencies:
    samples: list[float] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    @property
    def worst(self) -> float:
        return max(self.samples, default=0.0)

    def summary(self) -> str:
        return (f"n={len(self.samples)} p50={self.p50 * 1000:.1f} ms"
                f" p99={self.p99 * 1000:.1f} ms max={self.worst * 1000:.1f} ms"
                f" failures={len(self.failures)}")


class Watch:
    """The bystander's two loops, run in its own process (`tests.support.bystander`).

    ``reader`` is logged in and asks for its contacts every ``period`` seconds (the next
    request goes out when the previous one is answered, or on the next tick); ``login``
    logs in and quits every ``login_every`` seconds over a new connection (the first
    time at once).
    """

    def __init__(self, testcase: Any, port: int, reader: str, login: str,
                 period: float = 0.25, login_every: float = 3.0,
                 bind: str | None = None, **client_kwargs: Any) -> None:
        self.testcase = testcase
        self.port = port
        self.reader_name = reader
        self.login_name = login
        self.period = period
        self.login_every = login_every
        self.bind = bind
        self.client_kwargs = client_kwargs
        self.requests = Latencies()
        self.logins = Latencies()
        self.client: Any = None
        self._running = False
        self._loops: list[defer.Deferred[None]] = []

    @defer.inlineCallbacks
    def start(self) -> Any:
        """Log the reader in and start both loops."""
        self.client = yield jimclient.connect(self.testcase, self.port, bind=self.bind,
                                              **self.client_kwargs)
        reply = yield self.client.request("authenticate", user={
            "account_name": self.reader_name, "password": PASSWORD})
        if reply["response"] != 200:
            raise AssertionError(f"the bystander could not log in: {reply}")
        self._running = True
        self._loops = [self._ask_loop(), self._login_loop()]

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """Stop the loops (waiting for what is under way) and log the reader out."""
        self._running = False
        yield defer.DeferredList(self._loops)
        if self.client is not None and self.client.connected_:
            yield self.client.close()

    @defer.inlineCallbacks
    def _ask_loop(self) -> Any:
        while self._running:
            started = time.monotonic()
            try:
                reply = yield self.client.request("get_contacts").addTimeout(30, reactor)
                if reply["response"] != 202:
                    raise AssertionError(f"get_contacts: {reply}")
                self.requests.samples.append(time.monotonic() - started)
            except Exception as error:  # recorded; assert_served fails on it
                self.requests.failures.append(repr(error))
                if not self.client.connected_:
                    return
            yield _sleep(max(0.0, self.period - (time.monotonic() - started)))

    @defer.inlineCallbacks
    def _login_loop(self) -> Any:
        while self._running:
            started = time.monotonic()
            try:
                client = yield jimclient.connect(self.testcase, self.port, bind=self.bind,
                                                 **self.client_kwargs)
                reply = yield client.request("authenticate", user={
                    "account_name": self.login_name, "password": PASSWORD}
                ).addTimeout(30, reactor)
                if reply["response"] != 200:
                    raise AssertionError(f"authenticate: {reply}")
                self.logins.samples.append(time.monotonic() - started)
                yield client.request("quit")
                yield client.closed
            except Exception as error:
                self.logins.failures.append(repr(error))
            yield _sleep(max(0.0, self.login_every - (time.monotonic() - started)),
                         lambda: not self._running)


class _Child(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if not self.ready.called and b"ready\n" in self.output:
            self.ready.callback(None)

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"the bystander failed: {self.output[-2000:]!r}"))
        self.ended.callback(None)


class Bystander:
    """Two users who watch the server while a test attacks it, from a process of their
    own (so that what they measure is the server, not the attackers sharing the test's
    reactor): see `Watch`. Both come from ``bind`` (127.0.0.1 by default), away from the
    attackers' addresses. `stop` collects their latencies.
    """

    def __init__(self, testcase: Any, port: int, reader: str, login: str,
                 period: float = 0.25, login_every: float = 3.0, bind: str | None = None,
                 suites: tuple[str, ...] | None = None) -> None:
        self.testcase = testcase
        self.args = {"port": port, "reader": reader, "login": login, "period": period,
                     "login_every": login_every, "bind": bind,
                     "suites": list(suites) if suites else None}
        self.requests = Latencies()
        self.logins = Latencies()
        self._child: _Child | None = None
        self._transport: Any = None

    def start(self) -> defer.Deferred[None]:
        """Start the bystander's process; fires once its reader is logged in."""
        child = self._child = _Child()
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT)
        self._transport = reactor.spawnProcess(
            child, sys.executable, [sys.executable, "-m", "tests.support.bystander",
                                    json.dumps(self.args)], env=env, path=str(ROOT))
        self.testcase.addCleanup(self._kill)
        return child.ready

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """Stop the loops and read the figures."""
        child = self._child
        assert child is not None
        self._transport.closeStdin()
        yield child.ended
        lines = [line for line in child.output.decode("utf-8", "replace").splitlines()
                 if line.startswith("{")]
        if not lines:
            raise AssertionError(f"the bystander said nothing: {child.output[-2000:]!r}")
        figures = json.loads(lines[-1])
        self.requests = Latencies(figures["requests"], figures["request_failures"])
        self.logins = Latencies(figures["logins"], figures["login_failures"])

    def _kill(self) -> None:
        if self._child is not None and not self._child.ended.called:
            self._transport.signalProcess("KILL")
            return self._child.ended

    def assert_served(self, p99: float, login: float, min_logins: int = 1) -> None:
        """Every request and login answered, requests' p99 and every login within the
        bounds (seconds)."""
        tc = self.testcase
        tc.assertEqual(self.requests.failures, [], self.requests.summary())
        tc.assertEqual(self.logins.failures, [], self.logins.summary())
        tc.assertGreaterEqual(len(self.logins.samples), min_logins, self.logins.summary())
        tc.assertGreater(len(self.requests.samples), 0)
        tc.assertLess(self.requests.p99, p99, self.requests.summary())
        tc.assertLess(self.logins.worst, login, self.logins.summary())

    def report(self, label: str) -> str:
        """One line of figures, also printed to the test log (for the report)."""
        line = (f"[figures] {label}: requests {self.requests.summary()};"
                f" logins {self.logins.summary()}")
        print(line)
        return line


def _sleep(seconds: float, stop: Any = None) -> defer.Deferred[None]:
    """Wait ``seconds`` (in 0.1 s steps when ``stop()`` may cut it short)."""
    if stop is None:
        return task.deferLater(reactor, seconds, lambda: None)

    @defer.inlineCallbacks
    def steps() -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop():
            yield task.deferLater(reactor, min(0.1, deadline - time.monotonic()),
                                  lambda: None)
    return steps()


@defer.inlineCallbacks
def register_users(testcase: Any, port: int, *names: str, bind: str | None = None) -> Any:
    """Register each name (then quit); fires when all exist."""
    for name in names:
        client, reply = yield jimclient.register(testcase, port, name, bind=bind)
        testcase.assertEqual(reply["response"], 201, reply)
        yield client.request("quit")
        yield client.closed


@defer.inlineCallbacks
def logged_in(testcase: Any, port: int, name: str, bind: str | None = None,
              **kwargs: Any) -> Any:
    """A new connection logged in as ``name``."""
    client = yield jimclient.connect(testcase, port, bind=bind, **kwargs)
    reply = yield client.request("authenticate",
                                 user={"account_name": name, "password": PASSWORD})
    testcase.assertEqual(reply["response"], 200, reply)
    return client


# -- data written straight into a stopped server's database ---------------------------

def store_conversation(path: Any, one: str, other: str, count: int) -> None:
    """Write ``count`` messages between two users straight into the (stopped) server's
    database: the setup of a big conversation in a second, not a minute of sending."""
    connection = sqlite3.connect(path)
    try:
        ids = dict(connection.execute("SELECT name, id FROM users WHERE name IN (?, ?)",
                                      (one, other)).fetchall())
        now = time.time()
        rows = [(ids[one] if n % 2 else ids[other], ids[other] if n % 2 else ids[one],
                 os.urandom(16).hex(), f"message {n} " + "x" * 80, now + n * 1e-3)
                for n in range(count)]
        connection.executemany("INSERT INTO messages (sender_id, recipient_id, client_id,"
                               " body, created) VALUES (?, ?, ?, ?, ?)", rows)
        connection.commit()
    finally:
        connection.close()


def store_inbox(path: Any, sender: str, recipient: str, count: int, size: int) -> None:
    """Write ``count`` messages of ``size`` bytes into a stopped server's database."""
    connection = sqlite3.connect(path)
    try:
        ids = dict(connection.execute("SELECT name, id FROM users WHERE name IN (?, ?)",
                                      (sender, recipient)).fetchall())
        now = time.time()
        connection.executemany(
            "INSERT INTO messages (sender_id, recipient_id, client_id, body, created)"
            " VALUES (?, ?, ?, ?, ?)",
            [(ids[sender], ids[recipient], os.urandom(16).hex(), f"{n:04d}" + "b" * size,
              now + n * 1e-3) for n in range(count)])
        connection.commit()
    finally:
        connection.close()


def many_contacts_txn(txn: Any, owner: str, count: int) -> None:
    txn.execute("SELECT id FROM users WHERE name = ?", (owner,))
    owner_id = txn.fetchone()[0]
    txn.executemany("INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                    " created, password_changed) VALUES (?, ?, ?, ?, 'x', 0, 0)",
                    [(f"contact{n:06d}", f"contact{n:06d}", f"c{n}@example.org",
                      f"c{n}@example.org") for n in range(count)])
    txn.execute("INSERT INTO contacts (owner_id, contact_id, added) SELECT ?, id, 0"
                " FROM users WHERE name LIKE 'contact%'", (owner_id,))
