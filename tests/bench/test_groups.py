"""messenger-bench groups: a small end-to-end run against a real server, checked for
exactly-once, in-order fan-out (messenger.bench.groups)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.bench import report
from tests.bench.test_delivery import no_limits
from tests.bench.test_figures import run_figure
from tests.support.server import start_server


class GroupFigureTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_fan_out_closed_loop(self):
        """Two groups of six, half online: every message reaches the two other online
        members of its group once and in order; the figures are reported."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_figure(self, server.tcp_port, "groups", "-N", "6",
                                             "-G", "2", "-M", "20", "--warmup", "3",
                                             "--label", "g")
        self.assertEqual(code, 0, err)
        self.assertTrue(result["ok"], err)
        self.assertEqual((result["kind"], result["online_per_group"], result["deliveries"],
                          result["expected"], result["errors"]), ("groups", 3, 80, 80, 0))
        for key in ("deliveries_per_s", "server_cpu_us_per_delivery", "server_cpu_us_per_msg",
                    "all_ms_p99", "gen_cpu_us_per_delivery"):
            self.assertIsNotNone(result[key], key)
        text = report.render([result])
        self.assertIn("### groups", text)

    @defer.inlineCallbacks
    def test_open_loop(self):
        """With --rate the timed messages are released on a schedule and still all
        arrive."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_figure(self, server.tcp_port, "groups", "-N", "4",
                                             "-M", "10", "--rate", "200", "--warmup", "2")
        self.assertEqual(code, 0, err)
        self.assertEqual((result["ok"], result["deliveries"], result["rate"]), (True, 10, 200))
