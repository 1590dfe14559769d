"""Issue 23: the server's limits seen from inside, each over real sockets against an
in-process server (tests/support/server.py), whose components a test can read: the
hashing queues (503 at once when full, jobs of closed connections dropped), the storage
quota, the cap on requests in flight per connection, and ring floods. The attacks of the
issue's table against a ``twistd`` child are in test_abuse.py.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.server.calls import RINGS_PER_MINUTE
from messenger.server.config import LimitsConfig
from messenger.server.requests import MAX_HEAVY
from tests.server.people import count, no_limits, server_with
from tests.support import jimclient
from tests.support.abuse import PASSWORD, Bystander, logged_in, register_users
from tests.support.server import start_server
from tests.support.twistd_server import wait_for


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
