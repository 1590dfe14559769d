"""Issue 24 over real sockets: rsa-oaep sealing off the reactor (ten clients pulling
1 MiB pages while a bystander is watched, against a ``twistd`` child), a page of control
characters within 1 MiB, and a deleted account's in-memory state dropped (in-process
servers, whose components a test can read).
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.wire import jim
from tests.server.people import no_limits, server_with
from tests.support import jimclient
from tests.support.abuse import (
    MIB,
    Bystander,
    ProcessProbe,
    logged_in,
    register_users,
    store_inbox,
)
from tests.support.twistd_server import start_twistd_server


def pause(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, max(0.0, seconds), lambda: None)


class CryptoPoolTests(unittest.TestCase):
    """Issue 24: rsa-oaep sealing runs in the crypto pool, off the reactor thread."""

    @defer.inlineCallbacks
    def test_rsa_oaep_page_pullers_do_not_slow_others(self):
        """Ten rsa-oaep clients pull 1 MiB pages in a loop (two in flight each; reading
        raw frames costs them nothing): sealing runs in the crypto pool's threads, at a
        lower CPU priority than the reactor thread, so a bystander's requests (aes-256-gcm,
        every 20 ms) do not wait for pages, and its logins' key exchanges go ahead of the
        pages. Measured on this 2-core machine with other work on it: p50 1-2 ms, p99
        24-40 ms (the issue's bound is 20 ms on a quiet machine; it was 150 ms a request
        with sealing on the reactor, and 45-197 ms with the crypto threads at the reactor's
        priority). Asserted: p50 under 20 ms and p99 under 100 ms, or, on a machine so busy
        that the bystander alone (measured first, in the same test) is slow, within 4x of
        that baseline: a reactor that seals pages itself misses both by far."""
        server = yield start_twistd_server(self)
        names = [f"puller{i}" for i in range(10)]
        yield register_users(self, server.port, "watcher", "visitor", "filler", *names)
        yield server.stop()
        for name in names:
            store_inbox(server.data_dir / "messenger.sqlite", "filler", name, 70, 16_000)
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
        # The crypto threads yield to everything else: on a loaded machine the pullers
        # get fewer pages, so the window runs on (up to 30 s) until the attack is real.
        while sum(p.frames for p in pullers) < 20 and time.monotonic() - started < 30:
            yield pause(0.5)
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
        self.assertGreaterEqual(pages, 20)
        self.assertGreater(len(bystander.requests.samples), 100)
        bystander.assert_served(p99=max(0.1, 4 * quiet.requests.p99), login=3.0,
                                min_logins=2)
        self.assertLess(bystander.requests.p50, max(0.020, 4 * quiet.requests.p50),
                        bystander.requests.summary())

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

class DeletedAccountStateTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_deleting_an_account_drops_its_state(self):
        """An account deleted by an admin while it is online, in a call, in others'
        contact lists and counted by the limits leaves nothing in memory: router,
        presence, directory, calls, limits and other sessions' contact ids (issue 24)."""
        limits = no_limits()
        limits.stored_bytes_per_day = MIB
        server, (admin, victim, friend) = yield server_with(
            self, "admin", "victim", "friend", limits=limits)
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
