"""Issue 23: the attacks of the issue's table, each against the real server (a ``twistd``
child whose memory, CPU and sockets are read from /proc) with a bystander watching: one
user asking for its contacts every 0.25 s, another logging in every 2 s, both from
127.0.0.1. Attackers come from other loopback addresses (127.N.M.1: each its own host
and network, as Linux routes all of 127/8 to ``lo``).

Numbers are scaled down where the same mechanism shows: enough decoy logins to keep the
hasher saturated, enough connections to reach the caps set for the test. Figures go to
the test log as ``[figures]`` lines.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.server.calls import RINGS_PER_MINUTE
from messenger.server.config import LimitsConfig
from messenger.server.requests import MAX_HEAVY
from messenger.wire import jim
from messenger.wire.handshake import HandshakeError
from tests.server.people import count, no_limits, server_with
from tests.support import jimclient
from tests.support.abuse import (
    MIB,
    PASSWORD,
    Bystander,
    ProcessProbe,
    RssSampler,
    addresses,
    log_lines,
    logged_in,
    register_users,
)
from tests.support.server import start_server
from tests.support.twistd_server import start_twistd_server, wait_for

FRAME = 16 * 1024   # the frame limit before login


def pause(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, max(0.0, seconds), lambda: None)


@defer.inlineCallbacks
def watched(testcase: Any, *args: str, login_every: float = 2.0) -> Any:
    """A twistd server with the bystander's two accounts, the bystander started:
    (server, probe, bystander)."""
    server = yield start_twistd_server(testcase, *args)
    yield register_users(testcase, server.port, "watcher", "visitor")
    probe = ProcessProbe(server.pid())
    probe.resting_sockets = probe.sockets()  # type: ignore[attr-defined]
    bystander = Bystander(testcase, server.port, "watcher", "visitor",
                          login_every=login_every)
    yield bystander.start()
    return server, probe, bystander


def released(probe: ProcessProbe) -> defer.Deferred[None]:
    """Fires once the server holds no more sockets than before the test's clients came
    (every connection of the attacker and the bystander gone)."""
    resting = probe.resting_sockets  # type: ignore[attr-defined]
    return wait_for(lambda: probe.sockets() <= resting, 10, "the server's sockets at rest")


class DecoyLoginTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_decoy_logins_from_many_addresses(self):
        """40 addresses, two connections each, log in for unknown names as fast as their
        own rate limit lets them, with real scrypt cost (n = 2^14): every attempt is
        answered within seconds (402, or 429 with retry_after), never after a silence,
        and the bystander's logins still succeed within seconds."""
        server, probe, bystander = yield watched(self, "--scrypt-n", str(2**14))
        outcomes: list[tuple[int, float]] = []
        deadline = time.monotonic() + 6.0
        cpu_before = probe.cpu()

        @defer.inlineCallbacks
        def attacker(address: str, number: int) -> Any:
            client = yield jimclient.connect(self, server.port, bind=address)
            attempt = 0
            while time.monotonic() < deadline and client.connected_:
                attempt += 1
                started = time.monotonic()
                reply = yield client.request("authenticate", user={
                    "account_name": f"ghost{number}x{attempt}", "password": "guess-guess"})
                outcomes.append((reply["response"], time.monotonic() - started))
                if reply["response"] == 429:
                    yield pause(min(reply["retry_after"], deadline - time.monotonic()))
            yield client.close()
        yield defer.gatherResults([attacker(address, number) for number, address in
                                   enumerate(list(addresses(40)) * 2)])
        cpu = probe.cpu() - cpu_before
        yield bystander.stop()
        yield released(probe)
        codes = sorted({code for code, _ in outcomes})
        slowest = max(latency for _, latency in outcomes)
        decoys = sum(1 for code, _ in outcomes if code == 402)
        print(f"[figures] decoy logins: {len(outcomes)} attempts ({decoys} answered 402),"
              f" slowest answer {slowest * 1000:.0f} ms, server CPU {cpu:.1f} s")
        bystander.report("decoy logins")
        self.assertEqual(codes, [402, 429])
        self.assertGreater(decoys, 500)
        self.assertLess(slowest, 5.0)
        bystander.assert_served(p99=0.5, login=3.0, min_logins=3)


class PipelinedHistoryTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_pipelined_history_on_a_big_conversation(self):
        """An attacker pipelines 'history' on its own 40,000-message conversation (two
        attackers, 100 requests in flight each): the bystander's requests stay fast and
        every attacker request is answered."""
        server = yield start_twistd_server(self, "--requests-per-second", "0")
        yield register_users(self, server.port, "watcher", "visitor", "mallory", "accomplice",
                             "mallet", "partner")
        yield server.stop()
        _store_conversation(server.data_dir / "messenger.sqlite", "mallory", "accomplice",
                            40_000)
        _store_conversation(server.data_dir / "messenger.sqlite", "mallet", "partner", 40_000)
        yield server.start()
        bystander = Bystander(self, server.port, "watcher", "visitor", login_every=2.0)
        yield bystander.start()
        answered = []

        @defer.inlineCallbacks
        def attacker(name: str, other: str, address: str) -> Any:
            client = yield logged_in(self, server.port, name, bind=address)
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                started = time.monotonic()
                replies = yield defer.gatherResults([
                    client.request("history", limit=200, **{"with": other})
                    for _ in range(100)])
                self.assertEqual({reply["response"] for reply in replies}, {202})
                answered.append((len(replies), time.monotonic() - started))
        yield defer.gatherResults([attacker("mallory", "accomplice", "127.1.1.1"),
                                   attacker("mallet", "partner", "127.2.1.1")])
        yield bystander.stop()
        requests = sum(count for count, _ in answered)
        spent = sum(seconds for _, seconds in answered) / 2
        print(f"[figures] pipelined history: {requests} pages of 200 answered in"
              f" {spent:.1f} s per attacker ({spent / requests * 2000:.1f} ms a page)")
        bystander.report("pipelined history")
        bystander.assert_served(p99=0.5, login=3.0, min_logins=2)


class PipelinedSyncTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_pipelined_sync_of_a_big_inbox(self):
        """Two attackers pipeline 'sync' with limit 1000 on inboxes of 1,000 messages of
        16,000 bytes: each page is about 1 MiB however many rows were asked for and the
        server reads about that much for it, so its memory stays within the pages in
        flight (4 per connection, each a few copies of 1 MiB while it is read, encoded,
        sealed and written: under 24 MiB a connection) and the bystander is served.
        (Reading all 1,001 rows asked for took 57 ms a page and 68 MiB here.)"""
        server = yield start_twistd_server(self, "--requests-per-second", "0")
        yield register_users(self, server.port, "watcher", "visitor", "hog1", "hog2",
                             "filler")
        yield server.stop()
        for name in ("hog1", "hog2"):
            _store_inbox(server.data_dir / "messenger.sqlite", "filler", name, 1000,
                         16_000)
        yield server.start()
        probe = ProcessProbe(server.pid())
        bystander = Bystander(self, server.port, "watcher", "visitor", login_every=1.0)
        yield bystander.start()
        yield pause(0.5)
        resting = probe.rss()
        sampler = RssSampler(probe)
        pages = []

        @defer.inlineCallbacks
        def attacker(name: str, address: str) -> Any:
            client = yield logged_in(self, server.port, name, bind=address)
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                started = time.monotonic()
                replies = yield defer.gatherResults([
                    client.request("sync", since=0, limit=1000) for _ in range(8)])
                for reply in replies:
                    self.assertEqual(reply["response"], 202)
                    self.assertTrue(reply["more"])
                    self.assertLessEqual(len(jim.encode(reply)), jim.MAX_SERVER_PAYLOAD)
                pages.append((len(replies), time.monotonic() - started))
        yield defer.gatherResults([attacker("hog1", "127.1.2.1"),
                                   attacker("hog2", "127.2.2.1")])
        sampler.stop()
        yield bystander.stop()
        count = sum(n for n, _ in pages)
        spent = sum(t for _, t in pages) / 2
        print(f"[figures] pipelined sync: {count} pages of 1 MiB in {spent:.1f} s per"
              f" attacker ({spent / count * 2000:.0f} ms a page), RSS growth"
              f" {(sampler.peak - resting) / MIB:.1f} MiB")
        bystander.report("pipelined sync")
        self.assertLess(sampler.peak - resting, 2 * 24 * MIB)
        bystander.assert_served(p99=0.5, login=3.0)


def _store_conversation(path: Any, one: str, other: str, count: int) -> None:
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


class IdleConnectionTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_idle_handshaken_connections_up_to_the_caps(self):
        """Idle handshaken connections from 24 addresses fill every cap (per host 8, per
        network 24, 120 in total, so 60 before login): the 9th from one host and the 25th
        from one network are refused, new users still connect and log in (the oldest
        idle connections are evicted), and when the attacker leaves the server's sockets
        are back to their resting number."""
        server, probe, bystander = yield watched(
            self, "--max-connections-per-host", "8", "--max-connections-per-network", "24",
            "--max-connections", "120", login_every=1.0)
        resting_sockets = probe.sockets()
        attackers: list[Any] = []
        refused: list[str] = []

        @defer.inlineCallbacks
        def open_idle(address: str) -> Any:
            client = jimclient.JimTestClient()
            reactor.connectTCP("127.0.0.1", server.port, jimclient._Factory(client),
                               bindAddress=(address, 0))
            self.addCleanup(client.close)
            try:
                yield client.ready
            except Exception:
                refused.append(client.plain_frames[-1]["error"] if client.plain_frames
                               else "closed")
                return
            attackers.append(client)
        # One network: three hosts of 10 -> per-host and per-network caps.
        for host, tries in ((1, 10), (2, 8), (3, 8), (4, 2)):
            for _ in range(tries):
                yield open_idle(f"127.9.9.{host}")
        self.assertEqual(sorted(set(refused)), [
            "too many open connections from your address",
            "too many open connections from your network"])
        self.assertEqual(len([c for c in attackers if c.connected_]), 24)
        # Many networks: the pre-login share fills, the oldest are evicted.
        for address in addresses(20, first=30):
            for _ in range(5):
                yield open_idle(address)
        open_now = [c for c in attackers if c.connected_]
        print(f"[figures] idle connections: {len(attackers)} handshaken, {len(refused)}"
              f" refused, {len(open_now)} still open, server sockets"
              f" {probe.sockets()} (resting {resting_sockets})")
        self.assertLessEqual(len(open_now), 60)
        # New real users still get in (the bystander logs in every second meanwhile).
        yield pause(3.0)
        yield register_users(self, server.port, "newcomer")
        newcomer = yield logged_in(self, server.port, "newcomer")
        yield newcomer.close()
        yield bystander.stop()
        bystander.report("idle connections")
        bystander.assert_served(p99=0.5, login=3.0, min_logins=2)
        # The attacker leaves: everything is released.
        yield defer.gatherResults([c.close() for c in attackers])
        yield wait_for(lambda: probe.sockets() <= resting_sockets, 10,
                       "the server's sockets back at rest")


class HalfSentFrameTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_half_sent_frames_before_login(self):
        """400 connections from 20 addresses each announce a 16 KiB frame and send all but
        its last byte, twice over: the server holds what 16 KiB frames cost, no more (the
        second crowd reuses the first one's memory); a 1 MiB frame is refused at once;
        when they leave, the sockets are back at rest and the memory near it."""
        # Probes every 3 s: the keepalive sweep (which gives memory back) runs every 1 s.
        server, probe, bystander = yield watched(self, "--probe-interval", "3",
                                                 "--probe-timeout", "3")
        resting_sockets = probe.sockets()
        yield pause(1.5)
        resting = probe.rss()
        big = yield jimclient.raw_connect(self, server.port, bind="127.5.5.5")
        big.transport.write(struct.pack(">I", MIB) + b"{" * 4096)
        yield jimclient.wait_closed(big)
        self.assertIn(b"frame too large", big.received)
        peaks, afters = [], []
        for _ in range(2):
            sampler = RssSampler(probe)
            clients = []
            for address in addresses(20, first=60):
                for _ in range(20):
                    client = yield jimclient.raw_connect(self, server.port, bind=address)
                    client.transport.write(struct.pack(">I", FRAME - 1) + b"{" * (FRAME - 2))
                    clients.append(client)
            yield wait_for(lambda: probe.sockets() >= resting_sockets + 400, 10,
                           "400 connections open")
            yield pause(0.5)
            sampler.stop()
            peaks.append(sampler.peak)
            yield defer.gatherResults([client.close() for client in clients])
            yield wait_for(lambda: probe.sockets() <= resting_sockets, 10,
                           "the server's sockets back at rest")
            yield pause(1.5)
            afters.append(probe.rss())
        yield bystander.stop()
        held = peaks[0] - resting
        print(f"[figures] half-sent frames: RSS at rest {resting / MIB:.1f} MiB, 400"
              f" connections {held / MIB:.1f} MiB ({held / 400 / 1024:.0f} KiB each),"
              f" second crowd peak {(peaks[1] - resting) / MIB:.1f} MiB over rest; after"
              f" they left {(afters[0] - resting) / MIB:.1f} and"
              f" {(afters[1] - resting) / MIB:.1f} MiB over rest")
        bystander.report("half-sent frames")
        self.assertLess(held / 400, 64 * 1024)
        self.assertLess(peaks[1] - peaks[0], held / 2)
        for after in afters:
            self.assertLess(after - resting, held * 0.7 + MIB)
        bystander.assert_served(p99=0.5, login=3.0)


class JunkFrameTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_frames_of_nested_arrays_before_login(self):
        """16 connections send 16 KiB frames of ``[[],[],...]`` (and of a JSON object full
        of them) before login, reconnecting when closed, for 4 s: each connection is
        closed after its allowance of bad requests, the reactor stays responsive and the
        bystander stays served."""
        server, probe, bystander = yield watched(self)
        junk = b"[" + b"[]," * (16 * 1024 // 3 - 2) + b"[]]"
        wrapped = b'{"a":' + junk[: 16 * 1024 - 100] .rsplit(b",", 1)[0] + b"]}"
        sent = closed = 0
        refused: list[str] = []
        deadline = time.monotonic() + 4.0
        cpu_before = probe.cpu()

        @defer.inlineCallbacks
        def attacker(address: str) -> Any:
            nonlocal sent, closed
            while time.monotonic() < deadline:
                try:
                    client = yield jimclient.connect(self, server.port, bind=address)
                except HandshakeError:  # over the connection rate: back off a little
                    refused.append(address)
                    yield pause(0.5)
                    continue
                while client.connected_ and time.monotonic() < deadline:
                    for _ in range(20):
                        client.send_plaintext(junk if sent % 2 else wrapped)
                        sent += 1
                    yield pause(0.01)
                if not client.connected_:
                    closed += 1
                yield client.close()
        yield defer.gatherResults([attacker(address) for address in addresses(16, first=90)])
        cpu = probe.cpu() - cpu_before
        yield bystander.stop()
        yield released(probe)
        print(f"[figures] junk frames: {sent} frames of 16 KiB sent, {closed} connections"
              f" closed by the server, {len(refused)} refused, server CPU {cpu:.1f} s"
              f" in 4 s")
        bystander.report("junk frames")
        self.assertGreater(closed, 16)
        bystander.assert_served(p99=0.5, login=3.0)


class LogFloodTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_refusals_are_logged_once_per_interval(self):
        """One address opens 600 connections (past its rate), another 200 with a wrong
        secret, and four more 200 that send a frame failing its MAC or stay silent until
        their timeout: the log grows by a few lines, not one per refusal."""
        server, probe, bystander = yield watched(self, "--handshake-timeout", "1",
                                                 "--login-timeout", "1")
        size_before = server.log_path.stat().st_size
        for _ in range(600):
            client = yield jimclient.raw_connect(self, server.port, bind="127.7.7.7")
            yield wait_for(lambda: client.received or not client.connected_, 5, "an answer")
            yield client.close()
        for _ in range(200):
            client = jimclient.JimTestClient(secret=b"not the secret")
            reactor.connectTCP("127.0.0.1", server.port, jimclient._Factory(client),
                               bindAddress=("127.7.8.7", 0))
            try:
                yield client.ready
            except Exception:
                pass
            yield client.closed

        @defer.inlineCallbacks
        def misbehave(number: int) -> Any:
            client = yield jimclient.connect(self, server.port,
                                             bind=f"127.7.9.{number // 50 + 1}")
            if number % 2:
                client.sendString(b"\x00" * 64)   # a frame that fails its MAC
            # else: silent until the login timeout
            yield jimclient.wait_closed(client, timeout=30)
        yield defer.gatherResults([misbehave(number) for number in range(200)])
        yield bystander.stop()
        yield released(probe)
        grown = server.log_path.stat().st_size - size_before
        print(f"[figures] log flood: 1000 refusals, the log grew by {grown} bytes")
        bystander.report("log flood")
        self.assertLess(grown, 8 * 1024)
        self.assertEqual(log_lines(server.log_path, "Traceback"), [])
        bystander.assert_served(p99=0.5, login=3.0)



# -- in-process servers: the mechanisms seen from inside --------------------------------

def open_limits(**overrides: Any) -> LimitsConfig:
    """Login and request rates off (many logins from 127.0.0.1), the rest as given."""
    limits = no_limits()
    for name, value in overrides.items():
        setattr(limits, name, value)
    return limits


class HashingQueueTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_full_hashing_queue_answers_503_at_once(self):
        """20 logins of existing accounts at once against two hashing threads and a queue
        of two: the ones that do not fit are answered 503 with retry_after at once (all
        before the last accepted login is answered), never after a silence."""
        server = yield start_server(self, scrypt_n=2**14,
                                    limits=open_limits(hash_queue=2, decoy_queue=1))
        names = [f"user{i:02d}" for i in range(20)]
        yield register_users(self, server.tcp_port, *names)
        clients = []
        for _ in names:
            clients.append((yield jimclient.connect(self, server.tcp_port)))
        arrived: list[tuple[float, dict[str, Any]]] = []

        def note(reply: dict[str, Any]) -> None:
            arrived.append((time.monotonic(), reply))
        yield defer.gatherResults([
            client.request("authenticate", user={"account_name": name, "password": PASSWORD}
                           ).addCallback(note) for client, name in zip(clients, names)])
        busy = [(at, r) for at, r in arrived if r["response"] == 503]
        served = [(at, r) for at, r in arrived if r["response"] == 200]
        print(f"[figures] hashing queue: {len(served)} logins served, {len(busy)} answered"
              f" 503 (retry_after {busy[0][1]['retry_after'] if busy else '-'} s)")
        self.assertEqual(len(busy) + len(served), 20)
        self.assertGreaterEqual(len(busy), 10)
        self.assertGreaterEqual(len(served), 2)
        self.assertTrue(all(r["retry_after"] > 0 and "busy" in r["error"] for _, r in busy))
        self.assertLess(max(at for at, _ in busy), max(at for at, _ in served))
        self.assertEqual(server.ctx.hasher.refused, len(busy))

    @defer.inlineCallbacks
    def test_jobs_of_closed_connections_are_dropped(self):
        """30 logins sent by connections that close at once: their password checks are
        dropped before they run (the hasher does not work for nobody), and the bystander
        logs in meanwhile."""
        server = yield start_server(self, scrypt_n=2**14, limits=open_limits())
        names = [f"user{i:02d}" for i in range(30)]
        yield register_users(self, server.tcp_port, "watcher", "visitor", *names)
        hasher = server.ctx.hasher
        clients = []
        for _ in names:
            clients.append((yield jimclient.connect(self, server.tcp_port)))
        for client, name in zip(clients, names):
            client.request("authenticate", user={"account_name": name,
                                                 "password": PASSWORD}).addErrback(
                lambda _: None)
        yield wait_for(lambda: hasher.waiting > 0, 5, "logins queued for hashing")
        for client in clients:
            client.transport.abortConnection()
        yield wait_for(lambda: hasher.waiting == 0 and not hasher._running, 10,
                       "the hashing queue to drain")
        print(f"[figures] closed connections: {hasher.dropped} of 30 password checks"
              f" dropped unrun")
        self.assertGreaterEqual(hasher.dropped, 20)
        watcher = yield logged_in(self, server.tcp_port, "watcher")
        self.assertTrue(watcher.connected_)


class QuotaTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_storage_quota(self):
        """A user past its daily storage quota gets 429 with retry_after for messages and
        broadcasts, and nothing of what was refused is stored; the bystander is
        served."""
        server = yield start_server(self, limits=open_limits(
            stored_bytes_per_day=256 * 1024))
        yield register_users(self, server.tcp_port, "boss", "watcher", "visitor", "sink")
        bystander = Bystander(self, server.tcp_port, "watcher", "visitor", login_every=1.0)
        yield bystander.start()
        boss = yield logged_in(self, server.tcp_port, "boss")   # first account: admin
        stored = refused = 0
        last: dict[str, Any] = {}
        for number in range(40):
            action = ("broadcast", {}) if number % 4 == 3 else ("msg", {"to": "sink"})
            last = yield boss.request(action[0], message="q" * 16_000, **action[1])
            if last["response"] == 429:
                refused += 1
                self.assertGreater(last["retry_after"], 0)
            else:
                self.assertIn(last["response"], (200,))
                stored += 1
        yield bystander.stop()
        rows = (yield count(server, "messages")) + (yield count(server, "broadcasts"))
        print(f"[figures] quota 256 KiB/day: {stored} stored, {refused} refused 429")
        bystander.report("storage quota")
        self.assertEqual(rows, stored)
        self.assertEqual(stored, 16)          # 16 x 16,000 bytes fit in 256 KiB
        self.assertEqual(refused, 24)
        self.assertIn("too many messages today", last["error"])
        bystander.assert_served(p99=0.5, login=3.0)


CAP = LimitsConfig().max_contacts


class ManyContactsTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_many_contacts_then_get_contacts(self):
        """A user with as many contacts as the cap allows (5,000 by default) pipelines
        get_contacts: every reply stays within 1 MiB, the bystander is served, following
        pages of 1,000 gives every contact once, and adding one more is refused (403)."""
        server = yield start_twistd_server(self)
        yield register_users(self, server.port, "hoarder", "watcher", "visitor", "another")
        yield server.stop()
        connection = sqlite3.connect(server.data_dir / "messenger.sqlite")
        try:
            _many_contacts_txn(connection.cursor(), "hoarder", CAP)
            connection.commit()
        finally:
            connection.close()
        yield server.start()
        bystander = Bystander(self, server.port, "watcher", "visitor", login_every=1.0)
        yield bystander.start()
        hoarder = yield logged_in(self, server.port, "hoarder", bind="127.3.3.3")
        started = time.monotonic()
        replies = []
        for _ in range(5):
            replies += (yield defer.gatherResults([hoarder.request("get_contacts")
                                                   for _ in range(8)]))
        elapsed = time.monotonic() - started
        yield bystander.stop()
        sizes = {len(jim.encode(reply)) for reply in replies}
        print(f"[figures] {CAP} contacts: 40 get_contacts in {elapsed:.1f} s, replies of"
              f" {max(sizes)} bytes with {len(replies[0]['alert'])} contacts")
        bystander.report("many contacts")
        self.assertLessEqual(max(sizes), jim.MAX_SERVER_PAYLOAD)
        self.assertEqual({len(reply["alert"]) for reply in replies}, {CAP})
        bystander.assert_served(p99=0.5, login=3.0)
        names: list[str] = []
        after = None
        while True:
            reply = yield hoarder.request("get_contacts", limit=1000,
                                          **({"after": after} if after else {}))
            self.assertLessEqual(len(jim.encode(reply)), jim.MAX_SERVER_PAYLOAD)
            names += [contact["account_name"] for contact in reply["alert"]]
            if not reply["more"]:
                break
            after = names[-1]
        self.assertEqual(names, [f"contact{n:06d}" for n in range(CAP)])
        reply = yield hoarder.request("add_contact", user_id="another")
        self.assertEqual(reply["response"], 403, reply)


def _many_contacts_txn(txn: Any, owner: str, count: int) -> None:
    txn.execute("SELECT id FROM users WHERE name = ?", (owner,))
    owner_id = txn.fetchone()[0]
    txn.executemany("INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                    " created, password_changed) VALUES (?, ?, ?, ?, 'x', 0, 0)",
                    [(f"contact{n:06d}", f"contact{n:06d}", f"c{n}@example.org",
                      f"c{n}@example.org") for n in range(count)])
    txn.execute("INSERT INTO contacts (owner_id, contact_id, added) SELECT ?, id, 0"
                " FROM users WHERE name LIKE 'contact%'", (owner_id,))


class InFlightCapTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_pipelined_pages_are_capped_per_connection(self):
        """200 history requests pipelined on one connection: at most `MAX_HEAVY` of them
        are in flight at once (the connection is not read meanwhile), and every one is
        answered in order."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        for n in range(30):
            yield alice.request("msg", to="bob", message=f"m{n}")
        session = server.ctx.router.session(server.ctx.directory.cached("alice").id)
        most = [0, 0]

        def sample() -> None:
            most[0] = max(most[0], session.requests.heavy)
            most[1] = max(most[1], server.ctx.db.reads)
        sampler = task.LoopingCall(sample)
        sampler.start(0.001)
        try:
            replies = yield defer.gatherResults([
                alice.request("history", limit=10, **{"with": "bob"}) for _ in range(200)])
        finally:
            sampler.stop()
        self.assertEqual({reply["response"] for reply in replies}, {202})
        self.assertEqual(most[0], MAX_HEAVY)
        self.assertLessEqual(most[1], MAX_HEAVY)


class DeletedAccountStateTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_deleting_an_account_drops_its_state(self):
        """An account deleted by an admin while it is online, in a call, in others'
        contact lists and counted by the limits leaves nothing in memory: router,
        presence, directory, calls, limits and other sessions' contact ids (issue 24)."""
        server, (admin, victim, friend) = yield server_with(
            self, "admin", "victim", "friend",
            limits=open_limits(stored_bytes_per_day=MIB))
        ctx = server.ctx
        yield friend.request("add_contact", user_id="victim")
        yield victim.request("add_contact", user_id="friend")
        yield victim.request("msg", to="friend", message="hello")
        reply = yield victim.request("call_dial", user_id="friend")
        self.assertEqual(reply["response"], 200, reply)
        victim_id = ctx.directory.cached("victim").id
        friend_session = ctx.router.session(ctx.directory.cached("friend").id)
        self.assertIn(victim_id, friend_session.contact_ids)
        self.assertIsNotNone(ctx.calls.call_of(victim_id))
        self.assertIn(victim_id, ctx.limits._stored._buckets)
        reply = yield admin.request("admin_delete_user", user_id="victim")
        self.assertEqual(reply["response"], 200, reply)
        yield jimclient.wait_closed(victim)
        self.assertFalse(ctx.router.is_online(victim_id))
        self.assertIsNone(ctx.directory.cached("victim"))
        self.assertIsNone(ctx.calls.call_of(victim_id))
        self.assertNotIn(victim_id, ctx.limits._stored._buckets)
        self.assertNotIn(victim_id, friend_session.contact_ids)
        self.assertEqual(ctx.presence.status_of(victim_id), "offline")
        self.assertNotIn(victim_id, ctx.presence._watchers)
        self.assertNotIn(victim_id, ctx.presence._following)
        self.assertFalse(any(victim_id in ids for ids in ctx.presence._watchers.values()))
        self.assertFalse(any(victim_id in ids
                             for ids in ctx.presence._following.values()))


class CryptoPoolTests(unittest.TestCase):
    """Issue 24: rsa-oaep sealing runs in the crypto pool, off the reactor thread."""

    @defer.inlineCallbacks
    def test_rsa_oaep_page_pullers_do_not_slow_others(self):
        """Ten rsa-oaep clients pull 1 MiB pages in a loop (two in flight each; reading
        raw frames costs them nothing): sealing runs in the crypto pool, so a bystander's
        requests (aes-256-gcm, every 20 ms) do not wait for pages (median under 50 ms,
        p99 under 500 ms, where sealing on the reactor made each of them wait for pages
        of 150 ms), and its logins' key exchanges go ahead of the pages.

        The issue's p99 under 20 ms is not met on a loaded 2-core machine: cryptography
        holds the GIL during RSA operations, so the crypto threads compete with the
        reactor thread for it (measured: p99 45-90 ms under attack, 5-20 ms at rest).
        Meeting it needs the RSA work in worker processes."""
        server = yield start_twistd_server(self)
        names = [f"puller{i}" for i in range(10)]
        yield register_users(self, server.port, "watcher", "visitor", "filler", *names)
        yield server.stop()
        for name in names:
            _store_inbox(server.data_dir / "messenger.sqlite", "filler", name, 70, 16_000)
        yield server.start()
        probe = ProcessProbe(server.pid())
        quiet = Bystander(self, server.port, "watcher", "visitor", period=0.02,
                          login_every=2.0)
        yield quiet.start()
        yield pause(3.0)
        yield quiet.stop()
        quiet.report("rsa-oaep pullers, before they start")
        bystander = Bystander(self, server.port, "watcher", "visitor", period=0.02,
                              login_every=2.0)
        yield bystander.start()
        pullers = []
        for number, name in enumerate(names):
            client = yield logged_in(self, server.port, name, bind=f"127.4.{number}.1",
                                     suites=("rsa-oaep",))
            pullers.append(PagePuller(client))
        cpu_before = probe.cpu()
        started = time.monotonic()
        for puller in pullers:
            puller.start()
        yield pause(6.0)
        for puller in pullers:
            puller.stop()
        elapsed = time.monotonic() - started
        cpu = probe.cpu() - cpu_before
        yield bystander.stop()
        pages = sum(puller.frames for puller in pullers)
        pulled = sum(puller.bytes for puller in pullers)
        print(f"[figures] rsa-oaep pullers: {pages} pages ({pulled / MIB:.0f} MiB sealed)"
              f" in {elapsed:.1f} s, server CPU {cpu / elapsed:.2f} cores")
        bystander.report("rsa-oaep pullers")
        self.assertGreater(pages, 10)
        self.assertGreater(len(bystander.requests.samples), 100)
        bystander.assert_served(p99=0.5, login=3.0, min_logins=2)
        self.assertLess(bystander.requests.p50, 0.050, bystander.requests.summary())


class PagePuller:
    """A logged-in rsa-oaep client that asks for its inbox's first page again and again,
    two requests in flight, and never opens what comes back (it only counts frames)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.frames = 0
        self.bytes = 0
        self.running = False
        client.stringReceived = self._frame

    def start(self) -> None:
        self.running = True
        for _ in range(2):
            self._ask()

    def stop(self) -> None:
        self.running = False

    def _ask(self) -> None:
        if self.running and self.client.connected_:
            self.client.send_raw({"action": "sync", "id": os.urandom(16).hex(),
                                  "time": time.time(), "since": 0, "limit": 100})

    def _frame(self, data: bytes) -> None:
        self.frames += 1
        self.bytes += len(data)
        self._ask()


def _store_inbox(path: Any, sender: str, recipient: str, count: int, size: int) -> None:
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


class ControlCharacterPageTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_broadcast_page_of_control_characters(self):
        """A page of broadcasts full of control characters (six bytes each in JSON) stays
        within 1 MiB by its encoded size and says there is more; following the pages
        gives every broadcast once (issue 24: the sync and history pages are in
        test_messaging.py)."""
        server, (boss,) = yield server_with(self, "boss")
        sent = []
        for n in range(40):
            reply = yield boss.request("broadcast", message=f"{n:02d}" + "\x01" * 15_000)
            self.assertEqual(reply["response"], 200, reply)
            sent.append(reply["broadcast_id"])
        seen: list[int] = []
        before = None
        while True:
            reply = yield boss.request("get_broadcasts", limit=100,
                                       **({"before": before} if before else {}))
            self.assertLessEqual(len(jim.encode(reply)), jim.MAX_SERVER_PAYLOAD)
            seen += [item["broadcast_id"] for item in reply["alert"]]
            if not reply["more"]:
                break
            before = seen[-1]
        self.assertEqual(seen, sorted(sent, reverse=True))
        self.assertGreater(len(seen), len(reply["alert"]))


class CallFloodTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_ring_flood(self):
        """Three callers dial the same user and hang up in a loop: the user is rung at most
        RINGS_PER_MINUTE times and each caller dials at most DIALS_PER_MINUTE times, the
        rest are 429 with retry_after; every ring that ends frees the user (never left
        'busy'); the bystander is served meanwhile."""
        server, clients = yield server_with(self, "victim", "caller1", "caller2", "caller3",
                                            "watcher", "visitor")
        victim, callers = clients[0], clients[1:4]
        for caller in callers:
            reply = yield caller.request("add_contact", user_id="victim")
            self.assertEqual(reply["response"], 201)
        yield clients[4].close()
        yield clients[5].close()
        bystander = Bystander(self, server.tcp_port, "watcher", "visitor", login_every=1.0)
        yield bystander.start()
        codes_seen: list[int] = []
        for _ in range(10):
            for caller in callers:
                reply = yield caller.request("call_dial", user_id="victim")
                codes_seen.append(reply["response"])
                if reply["response"] == 200:
                    yield caller.request("call_hangup", call_id=reply["call_id"])
                else:
                    self.assertIn(reply["response"], (409, 429), reply)
                    if reply["response"] == 429:
                        self.assertGreater(reply["retry_after"], 0)
        yield bystander.stop()
        rings = [p for p in victim.pushes if p["action"] == "call_ring"]
        print(f"[figures] ring flood: {len(codes_seen)} dials, {codes_seen.count(200)} rang,"
              f" {codes_seen.count(429)} refused 429")
        bystander.report("ring flood")
        self.assertEqual(codes_seen.count(200), RINGS_PER_MINUTE)
        self.assertLessEqual(len(rings), RINGS_PER_MINUTE)
        self.assertEqual(codes_seen.count(429), len(codes_seen) - RINGS_PER_MINUTE)
        self.assertIsNone(server.ctx.calls.call_of(server.ctx.directory.cached("victim").id))
        bystander.assert_served(p99=0.5, login=3.0)
