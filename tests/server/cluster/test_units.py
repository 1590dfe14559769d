"""Unit tests of the cluster's pure parts: settings, the bus and batch codecs (network
input from Redis), and the message stream's chain, driven by a task.Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.python import usage
from twisted.trial import unittest

from messenger.server.cluster import bus, settings
from messenger.server.cluster.stream import (
    GAP_WAIT as GAP,
)
from messenger.server.cluster.stream import (
    Batch,
    MessageStream,
    decode_part,
    encode_parts,
)
from messenger.server.tap import Options


class SettingsTests(unittest.TestCase):
    def test_redis_url(self):
        """A Redis URL gives host, port, database and password; bad ones are refused."""
        address = settings.parse_redis_url("redis://:s%40cret@db.example.org:6380/3")
        self.assertEqual((address.host, address.port, address.db, address.password),
                         ("db.example.org", 6380, 3, "s@cret"))
        self.assertNotIn("cret", address.describe())
        self.assertEqual(settings.parse_redis_url("redis://h").port, 6379)
        for bad in ("http://h", "redis://", "redis://h:0", "redis://h/x", "redis://h/1?a=b",
                    "redis://h:99999"):
            self.assertRaises(ValueError, settings.parse_redis_url, bad)

    def test_options(self):
        """--redis needs a PostgreSQL database; --node-name needs --redis; names and relay
        addresses are checked; a missing node name defaults to host and port."""
        pg = ["--database", "postgresql://u@h/db"]
        options = Options()
        options.parseOptions([*pg, "--redis", "redis://r:1/0", "--relay-address",
                              "192.0.2.1:7000"])
        cluster = options.config.cluster
        self.assertEqual(cluster.redis, "redis://r:1/0")
        self.assertTrue(cluster.node_name.endswith("-7777"))
        self.assertEqual(cluster.relay_address, "192.0.2.1:7000")
        for argv in (["--redis", "redis://r/0"], ["--node-name", "a"],
                     [*pg, "--redis", "redis://r/0", "--node-name", "bad name"],
                     [*pg, "--redis", "redis://r/0", "--relay-address", "nohost"],
                     [*pg, "--redis", "mysql://r"]):
            self.assertRaises(usage.UsageError, Options().parseOptions, argv)
        self.assertEqual(Options().parseOptions([]) or "", "")


class CodecTests(unittest.TestCase):
    def test_bus_envelope(self):
        """An event is a JSON header line and raw bytes; anything else decodes to None."""
        data = bus.encode({"k": "push", "n": "a", "i": "1", "u": [3]}, b'{"x":1}\n')
        envelope = bus.decode(data)
        self.assertEqual((envelope["k"], envelope["u"], envelope.payload),
                         ("push", [3], b'{"x":1}\n'))
        for bad in (b"", b"nonsense\n", b'[1]\n', b'{"k": 1, "n": "a", "i": "1"}\n',
                    b'{"k": "x", "n": "a"}\n'):
            self.assertIsNone(bus.decode(bad))

    def test_batch_parts(self):
        """A batch round-trips, split into parts when large; damaged parts are refused."""
        entries = [([1, 2], b"frame one"), ([3], b"x" * 1_100_000), ([4], b"")]
        parts = encode_parts("a", "inc", Batch(10, 13, entries))
        self.assertEqual(len(parts), 2)
        decoded = [decode_part(part) for part in parts]
        self.assertEqual([h["m"] for h, _ in decoded], [True, False])
        self.assertEqual([e for _, es in decoded for e in es], entries)
        whole = parts[-1]
        for bad in (b"", b"{}\n", whole[:-1], whole + b"x", parts[0].replace(b'"p":10', b'"p":99'),
                    b'{"n":"a","i":"b","p":1,"h":2,"c":1,"m":false}\nx y\n'):
            self.assertIsNone(decode_part(bad))


class FakeSession:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def push_encoded(self, frame: bytes) -> None:
        self.frames.append(frame)


class Sessions:
    def __init__(self, **sessions: Any) -> None:
        self.by_id = {int(k[1:]): v for k, v in sessions.items()}

    def session(self, user_id: int) -> Any:
        return self.by_id.get(user_id)

    def user_ids(self) -> list[int]:
        return list(self.by_id)


class FakeDb:
    """Answers the stream's two reads from a list of committed rows."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows                    # as range_txn reads them; recipient None: group
        self.synced: dict[int, list[tuple]] = {}   # user -> rows as sync_txn reads them
        self.reads: list[tuple] = []

    def read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        self.reads.append((fn.__name__, *args))
        if fn.__name__ == "max_id_txn":
            return defer.succeed(max((r[0] for r in self.rows), default=0))
        if fn.__name__ == "has_group_rows_txn":
            after, up_to = args
            return defer.succeed(any(after < r[0] <= up_to and r[3] is None
                                     for r in self.rows))
        if fn.__name__ == "sync_txn":
            user_id, since, limit = args
            return defer.succeed([r for r in self.synced.get(user_id, []) if r[0] > since]
                                 [:limit])
        after, up_to, limit = args
        return defer.succeed([r for r in self.rows if after < r[0] <= up_to
                              and r[3] is not None][:limit])


class StreamTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.bob = FakeSession()
        self.published: list[bytes] = []
        self.up = True
        self.db = FakeDb([])
        self.stream = MessageStream(self.db, self.clock, Sessions(u2=self.bob), "me", "i1",
                                    self.published.append, lambda: self.up)
        self.stream.start()

    def remote(self, prev: int, hi: int, *ids: int) -> bytes:
        entries = [([2], f"m{i}".encode()) for i in ids]
        return encode_parts("other", "i2", Batch(prev, hi, entries))[0]

    def test_batches_delivered_in_chain_order(self):
        """A batch that arrives before the one it follows waits for it; then both go out
        in id order."""
        self.stream.received(self.remote(2, 3, 3))
        self.assertEqual(self.bob.frames, [])
        self.stream.received(self.remote(0, 2, 1, 2))
        self.assertEqual(self.bob.frames, [b"m1", b"m2", b"m3"])

    def test_local_batch_waits_for_a_remote_one(self):
        """This node's own batch is held behind a batch of another node with lower ids;
        its frames for users held elsewhere are published, the rest delivered here."""
        self.stream.begin(1, 2)
        self.stream.add([2], b"m2")
        self.stream.add([9], b"away")
        self.stream.end()
        self.assertEqual(self.bob.frames, [])
        header, entries = decode_part(self.published[0])
        self.assertEqual((header["p"], header["h"], entries), (1, 2, [([9], b"away")]))
        self.stream.received(self.remote(0, 1, 1))
        self.assertEqual(self.bob.frames, [b"m1", b"m2"])

    def test_a_batch_that_never_comes_is_read(self):
        """A gap not filled within GAP_WAIT is read from the database, once; the late
        batch, if it comes, is skipped."""
        self.db.rows = [(1, 1.0, "ann", 2, "bob", "hi", '{"file_id":5}'),
                        (2, 1.0, "ann", 7, "zed", "x", None)]
        self.stream.received(self.remote(2, 3, 3))
        self.clock.advance(1.9)
        self.assertEqual(self.bob.frames, [])
        self.clock.advance(0.2)
        self.assertEqual(len(self.bob.frames), 2)
        self.assertIn(b'"msg_id":1', self.bob.frames[0])
        self.assertIn(b'"attachment":{"file_id":5}', self.bob.frames[0])
        self.assertEqual(self.bob.frames[1], b"m3")
        self.stream.received(self.remote(0, 2, 1))
        self.assertEqual(len(self.bob.frames), 2)

    def test_a_gap_with_group_messages_is_read_per_user(self):
        """A gap holding group messages is read per local user, as its sync would read it
        (membership windows), and pushed in id order with the direct ones."""
        self.db.rows = [(1, 1.0, "ann", 2, "bob", "direct", None),
                        (2, 1.0, "ann", None, None, "g", None)]
        self.db.synced[2] = [(1, 1.0, "ann", "bob", None, "direct", None, None),
                             (2, 1.0, "ann", None, 7, "to the group", "bob",
                              '{"file_id":6}'),
                             (3, 1.0, "ann", "bob", None, "later", None, None)]
        self.stream.received(self.remote(2, 3, 3))
        self.clock.advance(GAP)
        self.assertEqual(len(self.bob.frames), 3)
        self.assertIn(b'"to":"bob"', self.bob.frames[0])
        self.assertIn(b'"group":7', self.bob.frames[1])
        self.assertIn(b'"mentions":["bob"]', self.bob.frames[1])
        self.assertIn(b'"attachment":{"file_id":6}', self.bob.frames[1])
        self.assertEqual(self.bob.frames[2], b"m3")

    def test_without_redis_gaps_are_read_at_once(self):
        """While Redis is away a gap is read at once: local users keep getting messages
        of other nodes, from the database."""
        self.up = False
        self.db.rows = [(1, 1.0, "ann", 2, "bob", "hi", None)]
        self.stream.begin(1, 2)
        self.stream.add([2], b"m2")
        self.stream.end()
        self.clock.advance(0)
        self.assertEqual(len(self.bob.frames), 2)
        self.assertEqual(self.bob.frames[1], b"m2")


class EmbeddedDefaultTests(unittest.TestCase):
    def test_one_node_imports_no_cluster_code(self):
        """Without --redis a server runs the single-node Router and never imports the
        cluster package or txredisapi (the embedded default stays as it was)."""
        import subprocess
        import sys
        code = ("import sys; from messenger.server import tap, service, context;"
                " o = tap.Options(); o.parseOptions([]);"
                " print(sorted(m for m in sys.modules if 'cluster' in m or 'txredis' in m))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        self.assertEqual(out.stdout.strip(), "['messenger.server.cluster',"
                                             " 'messenger.server.cluster.settings']")


class FakeLink:
    def __init__(self, channels: Any, receive: Any) -> None:
        self.receive = receive
        self.available = True
        self.published: list[tuple[bytes, bytes]] = []

    def publish(self, channel: bytes, payload: bytes) -> bool:
        self.published.append((channel, payload))
        return self.available

    def command(self, *args: Any) -> defer.Deferred[Any]:
        return defer.succeed(None)


class NodeBusTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.bus = bus.NodeBus(FakeLink, 0, "a", self.clock)
        self.gone: list[str] = []
        self.bus.on_node_gone.append(lambda node, incarnation: self.gone.append(node))

    def hear(self, kind: str, node: str = "b", incarnation: str = "1", **fields: Any) -> None:
        self.bus.link.receive(self.bus.events, bus.encode({"k": kind, "n": node,
                                                           "i": incarnation, **fields}))

    def test_silent_node_is_gone_unless_we_are_the_deaf_one(self):
        """A node not heard of for NODE_TIMEOUT is gone; while our own link is down,
        silence says nothing and nobody is declared gone."""
        self.hear("hb")
        self.clock.advance(bus.NODE_TIMEOUT - 1)
        self.bus.heartbeat()
        self.assertEqual(self.gone, [])
        self.bus.link.available = False
        self.clock.advance(10)
        self.bus.heartbeat()
        self.assertEqual(self.gone, [])
        self.bus.link.available = True
        self.bus.listened()
        self.clock.advance(bus.NODE_TIMEOUT + 0.5)
        self.bus.heartbeat()
        self.assertEqual(self.gone, ["b"])

    def test_restart_and_goodbye(self):
        """A new incarnation of a node means the old one is gone; so does its goodbye."""
        self.hear("hb")
        self.hear("hb", incarnation="2")
        self.assertEqual(self.gone, ["b"])
        self.hear("bye", incarnation="2")
        self.assertEqual(self.gone, ["b", "b"])

    def test_bad_events_are_counted_and_dropped(self):
        """Malformed events (and another process using our name) are counted, never
        raised; a handler's bad fields are dropped the same way."""
        self.bus.handlers["push"] = lambda envelope: envelope["missing"]
        self.bus.link.receive(self.bus.events, b"garbage")
        self.hear("push")
        self.hear("hb", node="a", incarnation="not-ours")
        self.assertEqual(self.bus.bad, 3)

    def test_rpc_answer_and_timeout(self):
        """A request is answered by the reply with its id, or fails with 503 after its
        timeout; an error reply becomes the same MessengerError."""
        d = self.bus.rpc("b", "call_dial", {"u": 1})
        header = bus.decode(self.bus.link.published[-1][1]).header
        self.hear("rpc_reply", c=header["c"], r={"response": 200})
        self.assertEqual(self.successResultOf(d), {"response": 200})
        d = self.bus.rpc("b", "call_dial", {"u": 1})
        header = bus.decode(self.bus.link.published[-1][1]).header
        self.hear("rpc_reply", c=header["c"], e=[409, "busy", {}])
        self.assertEqual(self.failureResultOf(d).value.code, 409)
        d = self.bus.rpc("b", "call_dial", {"u": 1})
        self.clock.advance(bus.RPC_TIMEOUT)
        self.assertEqual(self.failureResultOf(d).value.code, 503)
