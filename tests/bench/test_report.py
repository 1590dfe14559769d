"""messenger-bench report: the three harnesses' JSON lines in one table, and the ratios."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.bench import report


def line(label: str, server: str | None, msgs: float, us: float, **extra) -> dict:
    row = {"date": "2026-11-23T18:00:00+0000", "label": label, "pairs": 100, "window": 50,
           "rate": 0, "messages_per_sender": 1600, "delivered": 160000, "expected": 160000,
           "ok": True, "fail": None, "duration_s": 160000 / msgs, "msgs_per_s": msgs,
           "lat_ms_p50": 1.0, "lat_ms_p95": 2.0, "lat_ms_p99": 3.0, "lat_ms_max": 4.0,
           "server_cpu_us_per_msg": us, "server_user_s": us * 0.16, "server_sys_s": 0.0,
           "server_cpu_util": 0.9, "server_rss_kib_after": 2048, "server_hwm_kib": 4096,
           "gen_cpu_us_per_msg": 5.0, "machine_busy_2cores": 0.6, **extra}
    if server is not None:
        row["server"] = server
    return row


class ReportTests(unittest.TestCase):
    def test_side_by_side_and_ratios(self):
        """Messenger, Prosody, ejabberd (no 'server' key) and floor lines share one table and
        the ratios: each against the peers' mean at the same P, whatever their label."""
        rows = [
            line("messenger-aes-persist", "messenger", 20000.0, 40.0, cipher="aes-256-gcm",
                 persist=True, ack_ms_p50=1.5, ack_ms_p99=3.5, server_main_thread_s=4.0,
                 server_other_threads_s=2.4),
            line("prosody", None, 10000.0, 100.0),
            line("ejabberd", None, 40000.0, 40.0, server_cpu_util=1.6),
            line("ejabberd-again", None, 40000.0, 60.0),
            line("floor", "relay_server.py", 50000.0, 16.0),
        ]
        text = report.render(rows)
        self.assertIn("messenger aes-256-gcm persist", text)
        self.assertIn("prosody 0.12", text)
        self.assertIn("ejabberd 23.01", text)
        self.assertIn("floor (relay_server.py)", text)
        self.assertIn("25.0+15.0", text)  # main thread + other threads, µs per message
        ratio = [r for r in text.splitlines() if r.startswith("| messenger-aes-persist | 100")]
        self.assertEqual(len(ratio), 1)
        # cores, then msg/s and µs/msg against Prosody, against ejabberd (mean of two runs:
        # 40,000 msg/s, 50 µs), and µs/msg against the floor
        self.assertIn("| 0.90 | 2.00 | 0.40 | 0.50 | 0.80 | 2.50 |", ratio[0])
        peer = [r for r in text.splitlines() if r.startswith("| ejabberd | 100")]
        self.assertIn("| 1.60 | 4.00 | 0.40 | 1.00 | 0.80 |", peer[0])

    def test_other_figures(self):
        """Connection, login and relay lines get their own tables."""
        rows = [{"kind": "connections", "date": "2026-11-23T18:00:00+0000", "label": "c",
                 "connections": 10000, "server_kib_per_conn": 10.5, "ok": True},
                {"kind": "relay", "date": "2026-11-23T18:00:00+0000", "label": "r",
                 "calls": 200, "loss_pct": 0.0, "ok": False, "fail": "x"}]
        text = report.render(rows)
        self.assertIn("### connections", text)
        self.assertIn("10.5", text)
        self.assertIn("### relay", text)
        self.assertIn("NO: x", text)
