"""The mail queue under a flood: the cap, security mails first, few spool writes, and
at most one log line per delivery attempt (issue 23, bounded disk)."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.server.config import MailConfig
from messenger.server.mail import spool as spool_module
from messenger.server.mail.mailer import Mailer, persist_attempt
from tests.server.mail.test_mailer import (
    PENDING,
    START,
    EventLog,
    FakeDeliverer,
    sync_io,
    temporary,
)
from tests.support.smtp import SMTPRelay


class _Writes:
    """Counts spool writes per mail id (patched into SpoolDirectory.write)."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.counts: dict[str, int] = {}
        original = spool_module.SpoolDirectory.write

        def write(directory, mail_id, data):
            self.counts[mail_id] = self.counts.get(mail_id, 0) + 1
            return original(directory, mail_id, data)
        case.patch(spool_module.SpoolDirectory, "write", write)


class QueueTests(SynchronousTestCase):
    """The cap, priorities and spool writes, with task.Clock and a fake deliverer."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(START)
        self.root = Path(self.mktemp())
        self.deliverer = FakeDeliverer()
        self.log = EventLog(self)

    def make_mailer(self, **options) -> Mailer:
        settings = dict(retry_initial=1.0, retry_max=8.0, from_address="noreply@example.org",
                        give_up_after=0.0)
        settings.update(options)
        mailer = Mailer(MailConfig(**settings), self.root / "spool", self.root / "Maildir",
                        self.clock, deliverer=self.deliverer, run_io=sync_io,
                        random=lambda: 0.0)
        mailer.startService()
        self.addCleanup(mailer.stopService)
        return mailer

    def welcome(self, mailer: Mailer, n: int):
        return self.successResultOf(mailer.send_template(
            f"u{n}@example.org", "welcome", account_name=f"u{n}", address="192.0.2.1"))

    def lockout(self, mailer: Mailer, n: int):
        return self.successResultOf(mailer.send_template(
            f"v{n}@example.org", "lockout", account_name=f"v{n}", address="192.0.2.1",
            unlock_time=START + 900))

    def test_full_queue_drops_new_mail_counted_and_logged_once(self) -> None:
        """Past queue_max a new mail is dropped: counted each time, logged once a minute."""
        self.deliverer.outcomes = [PENDING] * 10
        mailer = self.make_mailer(queue_max=3)
        ids = [self.welcome(mailer, n) for n in range(6)]
        self.assertEqual(ids[3:], [None, None, None])
        self.assertEqual(len(self.successResultOf(mailer.pending())), 3)
        stats = mailer.stats()
        self.assertEqual((stats["queued"], stats["dropped"]), (3, 3))
        self.assertEqual(len(self.log.of("dropped")), 1)
        self.clock.advance(60)
        (first, summary) = self.log.of("dropped")
        self.assertEqual(summary["throttled_count"], 2)
        self.assertEqual(first["limit"], 3)

    def test_security_mail_pushes_out_the_newest_welcome_mail(self) -> None:
        """A lockout mail into a full queue takes the place of the newest welcome mail."""
        self.deliverer.outcomes = [PENDING] * 10
        mailer = self.make_mailer(queue_max=4)
        ids = [self.welcome(mailer, n) for n in range(4)]
        lockout_id = self.lockout(mailer, 0)
        self.assertIsNotNone(lockout_id)
        waiting = {entry.mail_id for entry in self.successResultOf(mailer.pending())}
        self.assertEqual(waiting, {*ids[:3], lockout_id})
        self.assertFalse((self.root / "spool" / f"{ids[3]}.json").exists())
        self.assertEqual(mailer.stats()["dropped"], 1)

    def test_queue_full_of_security_mails_drops_the_new_one(self) -> None:
        """When only security mails wait, a new one is dropped, none pushed out."""
        self.deliverer.outcomes = [PENDING] * 10
        mailer = self.make_mailer(queue_max=2)
        kept = [self.lockout(mailer, n) for n in range(2)]
        self.assertIsNone(self.lockout(mailer, 2))
        waiting = {entry.mail_id for entry in self.successResultOf(mailer.pending())}
        self.assertEqual(waiting, set(kept))

    def test_security_mail_has_a_slot_of_its_own(self) -> None:
        """With every ordinary slot busy and welcome mails waiting, a lockout mail starts
        at once; freed slots then go to security mails before welcome mails."""
        self.deliverer.outcomes = [PENDING] * 20
        mailer = self.make_mailer()
        welcome = [self.welcome(mailer, n) for n in range(8)]
        slots = Mailer.max_parallel - 1
        self.assertEqual(self.deliverer.calls, welcome[:slots])
        first = self.lockout(mailer, 0)
        self.assertEqual(self.deliverer.calls[-1], first)       # the reserved slot
        second = self.lockout(mailer, 1)                        # waits: all slots busy
        self.deliverer.waiting[0].callback(None)
        self.assertEqual(self.deliverer.calls[-1], second)      # ahead of 5 welcome mails

    def test_retries_rewrite_the_spool_file_rarely(self) -> None:
        """100 failed attempts of each of 50 mails cost at most 8 writes per mail (not
        100); the error and count are in pending() all along and on disk after a stop."""
        writes = _Writes(self)
        self.deliverer.outcomes = [temporary()] * 5000
        mailer = self.make_mailer()
        ids = [self.successResultOf(mailer.send(f"u{n}@example.org", "Hi", "x"))
               for n in range(50)]
        while len(self.deliverer.calls) < 5000:
            self.clock.advance(1.0)
        entries = self.successResultOf(mailer.pending())
        self.assertTrue(all(entry.attempts >= 99 for entry in entries))
        self.assertLessEqual(max(writes.counts[mail_id] for mail_id in ids), 8)
        self.successResultOf(mailer.stopService())
        on_disk = spool_module.SpoolDirectory(self.root / "spool").pending()
        self.assertEqual(sorted(e.attempts for e in on_disk),
                         sorted(e.attempts for e in entries))

    def test_changed_error_is_written(self) -> None:
        """A new error text reaches the spool file at once (an operator reads it there)."""
        self.deliverer.outcomes = [temporary("a"), temporary("a"), temporary("a"),
                                   temporary("b"), PENDING]
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("u@example.org", "Hi", "x"))
        for _ in range(20):
            self.clock.advance(1.0)
        (entry,) = spool_module.SpoolDirectory(self.root / "spool").pending()
        self.assertEqual((entry.mail_id, entry.attempts, entry.last_error), (mail_id, 4, "b"))

    def test_persist_rule(self) -> None:
        """Attempts 1, 2, 4, 8 ... are written, and any attempt whose error changed."""
        self.assertEqual([n for n in range(1, 40) if persist_attempt(n, False)],
                         [1, 2, 4, 8, 16, 32])
        self.assertTrue(persist_attempt(7, True))


class FloodWithRelayTests(TestCase):
    """A real relay that answers 451 to every recipient, on the real reactor."""

    timeout = 60

    @defer.inlineCallbacks
    def test_one_log_line_per_attempt(self) -> None:
        """Every failed attempt logs exactly one line: no factory start/stop noise."""
        relay = SMTPRelay(reject=(451, "try again later"))
        yield relay.start()
        self.addCleanup(relay.stop)
        lines: list[dict] = []
        globalLogPublisher.addObserver(lines.append)
        self.addCleanup(globalLogPublisher.removeObserver, lines.append)
        root = Path(self.mktemp())
        mailer = Mailer(MailConfig(relay_host="127.0.0.1", relay_port=relay.port,
                                   retry_initial=0.05, retry_max=0.1, relay_timeout=5.0,
                                   from_address="noreply@example.org"),
                        root / "spool", root / "Maildir", reactor)
        mailer.startService()
        for n in range(5):
            yield mailer.send(f"u{n}@example.org", "Hi", "x")
        while mailer.stats()["deferred"] < 20:
            yield task.deferLater(reactor, 0.05, lambda: None)
        yield mailer.stopService()
        attempts = mailer.stats()["deferred"]
        deferred = [e for e in lines if e.get("mail_event") == "deferred"]
        queued = [e for e in lines if e.get("mail_event") == "queued"]
        self.assertEqual(len(deferred), attempts)
        self.assertIn("451", deferred[0]["error"])
        # Everything else logged meanwhile: the start line and the five "queued" lines.
        others = [e for e in lines if e.get("mail_event") not in ("deferred", "queued")]
        self.assertEqual(len(queued), 5)
        self.assertLessEqual(len(others), 1, [e.get("log_format") for e in others])
