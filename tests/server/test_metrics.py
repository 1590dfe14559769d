"""Metrics: Prometheus text on --metrics-port shows traffic while two clients chat."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.metrics import Histogram, Metrics, buffered_bytes
from tests.server.people import server_with
from tests.support.httpget import get, samples
from tests.support.twistd_server import free_port


class MetricsEndpointTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_two_clients_chat(self) -> Any:
        """While alice and bob chat, /metrics shows them online, the requests by action,
        the replies by code, the stored messages, the commit histograms, the mail queue
        and the process's CPU and memory."""
        port = free_port()
        server, (alice, bob) = yield server_with(self, "alice", "bob", metrics_port=port)
        for n in range(3):
            reply = yield alice.request("msg", to="bob", message=f"hello {n}")
            self.assertEqual(reply["response"], 200)
            yield bob.wait_push("msg")
        reply = yield bob.request("msg", to="nobody-here", message="x")
        self.assertEqual(reply["response"], 404)
        status, text = yield get(f"http://127.0.0.1:{port}/metrics")
        self.assertEqual(status, 200)
        found = samples(text)
        self.assertEqual(found["messenger_users_online"], 2)
        self.assertEqual(found['messenger_connections{state="ready"}'], 2)
        self.assertEqual(found['messenger_requests_total{action="msg"}'], 4)
        self.assertEqual(found['messenger_requests_total{action="register"}'], 2)
        self.assertEqual(found['messenger_replies_total{code="200"}'], 3)
        self.assertEqual(found['messenger_replies_total{code="201"}'], 2)
        self.assertEqual(found['messenger_replies_total{code="404"}'], 1)
        self.assertEqual(found["messenger_messages_stored_total"], 3)
        self.assertEqual(found["messenger_db_commit_batch_rows_sum"], 3)
        self.assertGreaterEqual(found["messenger_db_commit_seconds_count"], 1)
        self.assertEqual(found['messenger_db_commit_seconds_bucket{le="+Inf"}'],
                         found["messenger_db_commit_seconds_count"])
        self.assertEqual(found["messenger_mail_queue"] + found["messenger_mail_delivered_total"],
                         2)  # the two welcome mails
        self.assertIn('messenger_ratelimit_refusals_total{kind="login"}', found)
        self.assertIn("messenger_lockouts_total", found)
        self.assertIn('messenger_relay_dropped_packets_total{reason="auth"}', found)
        self.assertGreater(found["process_resident_memory_bytes"], 1e6)
        self.assertGreater(found["process_cpu_seconds_total"], 0)
        self.assertEqual(server.config.metrics_interface, "127.0.0.1")

    @defer.inlineCallbacks
    def test_messages_waiting_for_the_search_index(self) -> Any:
        """Messages stored but not indexed for search yet show as a gauge (SQLite indexes
        in batches); a pass takes the gauge to 0 and counts them as indexed."""
        port = free_port()
        server, (alice, bob) = yield server_with(self, "alice", "bob", metrics_port=port)
        indexer = server.ctx.search_index
        yield indexer.idle()
        indexer.interval = 3600.0                   # no pass unless the test asks
        for n in range(3):
            reply = yield alice.request("msg", to="bob", message=f"hello {n}")
            self.assertEqual(reply["response"], 200)
        status, text = yield get(f"http://127.0.0.1:{port}/metrics")
        found = samples(text)
        self.assertEqual(found["messenger_search_index_waiting"], 3)
        self.assertEqual(found["messenger_search_indexed_total"], 0)
        yield indexer.index_now()
        status, text = yield get(f"http://127.0.0.1:{port}/metrics")
        found = samples(text)
        self.assertEqual(found["messenger_search_index_waiting"], 0)
        self.assertEqual(found["messenger_search_indexed_total"], 3)

    @defer.inlineCallbacks
    def test_unknown_actions_add_no_series(self) -> Any:
        """An action name a client makes up is refused and never becomes a label."""
        port = free_port()
        server, (alice,) = yield server_with(self, "alice", metrics_port=port)
        reply = yield alice.request("made_up_action")
        self.assertEqual(reply["response"], 400)
        _, text = yield get(f"http://127.0.0.1:{port}/metrics")
        self.assertNotIn("made_up_action", text)
        self.assertEqual(samples(text)['messenger_replies_total{code="400"}'], 1)

    @defer.inlineCallbacks
    def test_off_by_default(self) -> Any:
        """Without --metrics-port nothing listens for metrics."""
        server, _ = yield server_with(self)
        self.assertIsNone(server.metrics_port)


class MetricsUnitTests(unittest.SynchronousTestCase):
    def test_counts(self) -> None:
        """Each recording call is one increment."""
        metrics = Metrics()
        for action in ("msg", "msg", "sync"):
            metrics.request(action)
        metrics.reply(200)
        metrics.refused("login")
        metrics.locked_out()
        metrics.batch_committed(3, 0.002)
        self.assertEqual(metrics.requests, {"msg": 2, "sync": 1})
        self.assertEqual(metrics.replies, {200: 1})
        self.assertEqual(metrics.refusals["login"], 1)
        self.assertEqual(metrics.lockouts, 1)
        self.assertEqual(metrics.batch_rows.sum, 3)

    def test_histogram_buckets_are_cumulative(self) -> None:
        """Bucket counts come out cumulative with +Inf equal to the count."""
        histogram = Histogram((1, 10))
        for value in (0.5, 1, 5, 50):
            histogram.observe(value)
        family = histogram.family("x", "doc")
        buckets = {s.labels["le"]: s.value for s in family.samples
                   if s.name == "x_bucket"}
        self.assertEqual(buckets, {"1.0": 2, "10.0": 3, "+Inf": 4})

    def test_buffered_bytes_of_odd_transports(self) -> None:
        """A transport without a write buffer counts as empty."""
        self.assertEqual(buffered_bytes(object()), 0)
