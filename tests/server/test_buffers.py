"""Issue 18: a client that stops reading never grows the server's memory (real sockets,
the real server as a ``twistd`` child whose resident memory is read from /proc).

* a client that never reads while 300 MiB is pushed to it is dropped once what waits for
  it passes ``--max-queued-bytes``, the server's memory stays flat, and after it comes
  back it syncs every message exactly once;
* a slow reader that keeps up on average (bursts bigger than the kernel's buffers) is
  never dropped;
* while a connection's replies are held back, the server stops reading its requests;
* a broadcast to many online users of whom many never read keeps the memory bounded and
  reaches every reader.

A bystander (one user asking for its contacts every 0.25 s, another logging in every few
seconds) is watched throughout; its figures go to the test log (``[figures]`` lines).
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.server.people import server_with
from tests.support.abuse import (
    MIB,
    Bystander,
    ProcessProbe,
    RssSampler,
    log_lines,
    logged_in,
    pause_reading,
    register_users,
    small_receive_buffer,
    small_send_buffer,
    unsent,
)
from tests.support.twistd_server import start_twistd_server, wait_for

DROPPED = "bytes queued for a client that is not reading"
BIG_BODY = 64 * 1024
# Big bodies (64 KiB: fewer messages for the same bytes), no rate limits or quota (a busy
# sender, or many senders within their limits), SQLite without a sync per commit (the
# test is about memory, not durability).
PUSH_ARGS = ("--max-body", str(BIG_BODY), "--max-frame", str(400_000),
             "--requests-per-second", "0", "--stored-mib-per-day", "0",
             "--db-sync", "normal")
# Many users log in from 127.0.0.1 at once.
NO_LOGIN_LIMITS = ("--logins-per-minute", "0", "--logins-per-minute-network", "0",
                   "--connections-per-minute", "0", "--connections-per-minute-network", "0")


def body(index: int, size: int = BIG_BODY) -> str:
    """A body of ``size`` bytes that says which message it is."""
    head = f"{index:08d}:"
    return head + "x" * (size - len(head))


@defer.inlineCallbacks
def send_many(sender: Any, to: str, total: int, size: int = BIG_BODY, window: int = 32,
              first: int = 0) -> Any:
    """Send ``total`` bytes of messages to ``to``, ``window`` in flight; fires with the
    acknowledged message ids in sending order."""
    count = -(-total // size)
    acks: list[int | None] = [None] * count
    next_index = 0

    @defer.inlineCallbacks
    def worker() -> Any:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            reply = yield sender.request("msg", to=to, message=body(first + index, size))
            if reply["response"] != 200:
                raise AssertionError(f"message {index}: {reply}")
            acks[index] = reply["msg_id"]
    yield defer.gatherResults([worker() for _ in range(window)], consumeErrors=True)
    return acks


@defer.inlineCallbacks
def sync_all(client: Any, limit: int = 16) -> Any:
    """Every message in the inbox, by following the sync pages: [(msg_id, body head)]."""
    seen: list[tuple[int, str]] = []
    since = 0
    while True:
        reply = yield client.request("sync", since=since, limit=limit)
        assert reply["response"] == 202, reply
        seen += [(m["msg_id"], m["message"][:9]) for m in reply["alert"]]
        if not reply["more"]:
            return seen
        since = reply["alert"][-1]["msg_id"]


@defer.inlineCallbacks
def rest(probe: ProcessProbe, seconds: float = 0.3) -> Any:
    """Let the server settle, then read its resting memory."""
    yield task.deferLater(reactor, seconds, lambda: None)
    return probe.rss()


class NonReaderTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_client_that_never_reads(self):
        """300 MiB pushed to a client that never reads: the server's memory grows by less
        than 32 MiB, the client is dropped with a log line naming the limit, and after it
        logs in again a sync gives every message exactly once, in order; the bystander
        stays served meanwhile."""
        server = yield start_twistd_server(self, *PUSH_ARGS)
        probe = ProcessProbe(server.pid())
        yield register_users(self, server.port, "sender", "sleeper", "watcher", "visitor")
        sender = yield logged_in(self, server.port, "sender")
        sleeper = yield logged_in(self, server.port, "sleeper")
        # Warm up the push path and the allocator with what a reader takes away.
        watcher_inbox = yield send_many(sender, "watcher", 4 * MIB)
        self.assertNotIn(None, watcher_inbox)
        small_receive_buffer(sleeper)
        pause_reading(sleeper)
        bystander = Bystander(self, server.port, "watcher", "visitor")
        yield bystander.start()
        resting = yield rest(probe)
        sampler = RssSampler(probe)
        started = time.monotonic()
        try:
            acks = yield send_many(sender, "sleeper", 300 * MIB)
        finally:
            sampler.stop()
            yield bystander.stop()
        elapsed = time.monotonic() - started
        print(f"[figures] non-reader: 300 MiB in {elapsed:.1f} s, RSS at rest"
              f" {resting / MIB:.1f} MiB, peak {sampler.peak / MIB:.1f} MiB, growth"
              f" {(sampler.peak - resting) / MIB:.1f} MiB ({sampler.samples} samples)")
        bystander.report("non-reader 300 MiB")
        self.assertLess(sampler.peak - resting, 32 * MIB)
        dropped = log_lines(server.log_path, DROPPED)
        self.assertEqual(len(dropped), 1, dropped)
        self.assertIn("sleeper", dropped[0])
        self.assertIn("--max-queued-bytes", dropped[0])
        bystander.assert_served(p99=0.5, login=5.0)
        # Back again: every message once, in the order it was sent.
        sleeper.transport.abortConnection()
        again = yield logged_in(self, server.port, "sleeper")
        inbox = yield sync_all(again)
        self.assertEqual([msg_id for msg_id, _ in inbox], acks)
        self.assertEqual([head for _, head in inbox],
                         [f"{index:08d}:" for index in range(len(acks))])


class SlowReaderTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_slow_reader_that_keeps_up_is_not_dropped(self):
        """A reader draining 1 MiB/s while bursts of 1 MiB arrive at about that pace (each
        burst bigger than the kernel's buffers) gets every message and is not dropped;
        the bystander stays served."""
        server = yield start_twistd_server(self, *PUSH_ARGS)
        yield register_users(self, server.port, "sender", "slow", "watcher", "visitor")
        sender = yield logged_in(self, server.port, "sender")
        slow = yield logged_in(self, server.port, "slow")
        small_receive_buffer(slow)
        reader = Drainer(slow, rate=MIB)
        bystander = Bystander(self, server.port, "watcher", "visitor")
        yield bystander.start()
        total, burst = 8 * MIB, MIB
        started = time.monotonic()
        acks: list[int] = []
        try:
            for number in range(total // burst):
                # Bursts at about the reader's own pace: ahead of it, then behind it.
                yield _until(started + number * burst / MIB)
                acks += (yield send_many(sender, "slow", burst, first=len(acks)))
            yield wait_for(lambda: len(reader.pushes(slow)) >= len(acks), 30,
                           "the slow reader to get everything")
        finally:
            reader.stop()
            yield bystander.stop()
        bystander.report("slow reader 1 MiB/s")
        self.assertEqual([push["msg_id"] for push in reader.pushes(slow)], acks)
        self.assertTrue(slow.connected_)
        self.assertEqual(log_lines(server.log_path, DROPPED), [])
        bystander.assert_served(p99=0.5, login=5.0)


class Drainer:
    """Reads a paused client's socket at ``rate`` bytes a second (resumes it for a slice of
    time, then pauses it again)."""

    def __init__(self, client: Any, rate: float, slice_: float = 0.05) -> None:
        self.client = client
        self.rate = rate
        self.slice = slice_
        pause_reading(client)
        self._budget = 0.0
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(slice_)

    def _tick(self) -> None:
        # Reading is all-or-nothing per reactor turn: resume briefly, then pause. The
        # kernel buffer was shrunk, so one turn reads at most about that much.
        self._budget += self.rate * self.slice
        if self._budget >= 64 * 1024:
            self._budget -= 64 * 1024
            self.client.transport.resumeProducing()
            reactor.callLater(0, self.client.transport.pauseProducing)

    def pushes(self, client: Any) -> list[dict[str, Any]]:
        return [p for p in client.pushes if p["action"] == "msg"]

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        self.client.transport.resumeProducing()


def _until(moment: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, max(0.0, moment - time.monotonic()), lambda: None)


class HeldRepliesStopReadingTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_requests_are_not_read_while_replies_wait(self):
        """A client that floods requests but reads no replies: once its replies back up,
        the server stops reading its requests (they wait in the client's own buffers),
        its memory stays flat and the client is not dropped; when it reads again, every
        request is answered."""
        server = yield start_twistd_server(self, *PUSH_ARGS)
        probe = ProcessProbe(server.pid())
        yield register_users(self, server.port, "sender", "flooder")
        sender = yield logged_in(self, server.port, "sender")
        yield send_many(sender, "flooder", 2 * MIB)
        flooder = yield logged_in(self, server.port, "flooder")
        small_receive_buffer(flooder)
        small_send_buffer(flooder)
        pause_reading(flooder)
        resting = yield rest(probe)
        sampler = RssSampler(probe)
        answers = []
        # Big replies first, so that what the server writes backs up ...
        for _ in range(4):
            answers.append(flooder.request("sync", since=0, limit=4))
        # ... then small requests until they back up in the client's own buffers: the
        # server has stopped reading them.
        sent = 0
        flood_started = time.monotonic()
        while unsent(flooder) < MIB and sent < 400_000:
            for _ in range(500):
                answers.append(flooder.request("presence", status="online"))
            sent += 500
            yield task.deferLater(reactor, 0.01, lambda: None)
        held = unsent(flooder)
        flood_time = time.monotonic() - flood_started
        yield task.deferLater(reactor, 0.5, lambda: None)
        sampler.stop()
        print(f"[figures] held replies: {sent} requests written, {held} bytes held back"
              f" in the client, server RSS growth {sampler.growth / MIB:.1f} MiB")
        self.assertGreaterEqual(held, MIB)
        self.assertGreater(unsent(flooder), held // 2)  # still (mostly) not read
        self.assertLess(sampler.peak - resting, 32 * MIB)
        flooder.transport.resumeProducing()
        resumed = time.monotonic()
        replies = yield defer.gatherResults(answers)
        print(f"[figures] flood {flood_time:.1f} s, answered in {time.monotonic() - resumed:.1f} s")
        self.assertEqual({reply["response"] for reply in replies}, {200, 202})
        self.assertTrue(flooder.connected_)
        self.assertEqual(log_lines(server.log_path, DROPPED), [])


class BroadcastTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_broadcast_with_many_non_readers(self):
        """Broadcasts to 80 online users of whom 40 never read: each non-reader is dropped
        at its bound, the server's memory stays within (non-readers x --max-queued-bytes),
        and every reader gets every broadcast."""
        readers_n, sleepers_n = 40, 40
        server = yield start_twistd_server(self, *PUSH_ARGS, *NO_LOGIN_LIMITS,
                                           "--max-queued-bytes",
                                           str(MIB))
        probe = ProcessProbe(server.pid())
        names = [f"reader{i:02d}" for i in range(readers_n)] + [
            f"sleeper{i:02d}" for i in range(sleepers_n)]
        yield register_users(self, server.port, "boss", *names)
        boss = yield logged_in(self, server.port, "boss")
        clients = {}
        for name in names:
            clients[name] = yield logged_in(self, server.port, name)
            if name.startswith("sleeper"):
                small_receive_buffer(clients[name])
                pause_reading(clients[name])
        resting = yield rest(probe)
        sampler = RssSampler(probe)
        sent = 0
        try:
            while len(log_lines(server.log_path, DROPPED)) < sleepers_n and sent < 1000:
                replies = yield defer.gatherResults([
                    boss.request("broadcast", message=body(sent + i, 16 * 1024))
                    for i in range(10)])
                self.assertEqual({reply["response"] for reply in replies}, {200})
                sent += 10
            yield wait_for(lambda: all(
                len([p for p in clients[f"reader{i:02d}"].pushes if p["action"] == "broadcast"])
                >= sent for i in range(readers_n)), 30, "every reader to get everything")
        finally:
            sampler.stop()
        growth = sampler.peak - resting
        print(f"[figures] broadcast: {sent} x 16 KiB to {readers_n + sleepers_n} users,"
              f" {sleepers_n} not reading; RSS growth {growth / MIB:.1f} MiB")
        self.assertEqual(len(log_lines(server.log_path, DROPPED)), sleepers_n)
        self.assertLess(growth, sleepers_n * MIB + 32 * MIB)
        for i in range(readers_n):
            got = [p["message"][:9] for p in clients[f"reader{i:02d}"].pushes
                   if p["action"] == "broadcast"]
            self.assertEqual(sorted(got), [f"{n:08d}:" for n in range(sent)])



class PipelinedPagesTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_pipelined_pages_read_slowly_are_answered(self):
        """A client that pipelines eight 1 MiB pages (more than --max-queued-bytes) and
        only then reads is answered in full, not dropped: replies to its own requests
        are bounded by the requests in flight, only pushes by the limit."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        for n in range(70):
            reply = yield alice.request("msg", to="bob", message=body(n, 16_000))
            self.assertEqual(reply["response"], 200)
        small_receive_buffer(bob)
        pause_reading(bob)
        pages = [bob.request("sync", since=0, limit=100) for _ in range(8)]
        session = server.ctx.router.session(server.ctx.directory.cached("bob").id)
        yield wait_for(lambda: session.outbound.queued > server.config.max_queued_bytes,
                       20, "more than the limit queued for bob")
        self.assertTrue(bob.connected_)
        bob.transport.resumeProducing()
        replies = yield defer.gatherResults(pages)
        self.assertEqual([len(reply["alert"]) for reply in replies], [65] * 8)
        self.assertEqual(server.ctx.counters["outbound_overflows"], 0)
