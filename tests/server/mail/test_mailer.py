"""Tests for messenger.server.mail.mailer: back-off, the delivery loop, and end to end."""

from __future__ import annotations

import json
import os
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.server.config import MailConfig
from messenger.server.mail.delivery import DeliveryError
from messenger.server.mail.mailer import JITTER, Mailer, backoff_delay
from messenger.server.mail.spool import SpoolDirectory
from messenger.server.mail.templates import TemplateError
from tests.support.smtp import SMTPRelay, make_certificate

START = 1_800_000_000.0
PENDING = object()


def sync_io(function, *args):
    return defer.maybeDeferred(function, *args)


class FakeDeliverer:
    """Answers each delivery from `outcomes` (None: success, an exception, or PENDING)."""

    description = "fake"

    def __init__(self) -> None:
        self.outcomes: list[object] = []
        self.calls: list[str] = []
        self.waiting: list[defer.Deferred] = []

    def deliver(self, entry) -> defer.Deferred:
        self.calls.append(entry.mail_id)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is PENDING:
            d: defer.Deferred = defer.Deferred()
            self.waiting.append(d)
            return d
        if isinstance(outcome, BaseException):
            return defer.fail(outcome)
        return defer.succeed(None)


def temporary(text: str = "relay unavailable: refused") -> DeliveryError:
    return DeliveryError(text, permanent=False)


class EventLog:
    """Collects the mailer's structured log events; can wait for one to happen."""

    def __init__(self, case: TestCase | SynchronousTestCase) -> None:
        self.events: list[dict] = []
        self._waiters: list[tuple[object, defer.Deferred]] = []
        globalLogPublisher.addObserver(self._observe)
        case.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event: dict) -> None:
        if "mail_event" not in event:
            return
        self.events.append(event)
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(self.events):
                self._waiters.remove(waiter)
                d.callback(list(self.events))

    def of(self, kind: str, mail_id: str | None = None) -> list[dict]:
        return [event for event in self.events if event["mail_event"] == kind
                and (mail_id is None or event.get("mail_id") == mail_id)]

    def wait(self, kind: str, count: int = 1, timeout: float = 10.0) -> defer.Deferred:
        """Fires once `count` events of `kind` were logged (TimeoutError after `timeout`)."""
        def predicate(events: list[dict]) -> bool:
            return len([e for e in events if e["mail_event"] == kind]) >= count

        d: defer.Deferred = defer.Deferred()
        if predicate(self.events):
            d.callback(list(self.events))
            return d
        self._waiters.append((predicate, d))
        return d.addTimeout(timeout, reactor)


class BackoffDelayTests(SynchronousTestCase):
    """backoff_delay: doubling from retry_initial up to retry_max, with jitter."""

    def test_doubles_then_caps(self) -> None:
        """Without jitter the delays are initial, 2x, 4x, ... up to the maximum."""
        delays = [backoff_delay(n, 5.0, 600.0, 0.0) for n in range(1, 10)]
        self.assertEqual(delays, [5, 10, 20, 40, 80, 160, 320, 600, 600])

    def test_jitter_shortens_by_at_most_twenty_percent(self) -> None:
        """Jitter takes off up to JITTER of the delay and never adds to it."""
        self.assertEqual(backoff_delay(3, 1.0, 100.0, 0.5), 4.0 * (1 - JITTER / 2))
        for sample in (0.0, 0.25, 0.999):
            delay = backoff_delay(10, 1.0, 60.0, sample)
            self.assertLessEqual(delay, 60.0)
            self.assertGreater(delay, 60.0 * (1 - JITTER) - 1e-9)

    def test_huge_attempt_count(self) -> None:
        """Thousands of attempts do not overflow: the delay stays at the maximum."""
        self.assertEqual(backoff_delay(100_000, 5.0, 600.0, 0.0), 600.0)

    def test_zero_attempts(self) -> None:
        """Attempt counts below one are treated as the first."""
        self.assertEqual(backoff_delay(0, 2.0, 600.0, 0.0), 2.0)


class MailerLoopTests(SynchronousTestCase):
    """The delivery loop with task.Clock, a fake deliverer and synchronous file I/O."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(START)
        self.root = Path(self.mktemp())
        self.spool_dir = self.root / "mail-spool"
        self.deliverer = FakeDeliverer()
        self.log = EventLog(self)

    def make_mailer(self, start: bool = True, **options) -> Mailer:
        settings = dict(retry_initial=1.0, retry_max=8.0, from_address="noreply@example.org")
        settings.update(options)
        mailer = Mailer(MailConfig(**settings), self.spool_dir, self.root / "Maildir",
                        self.clock, deliverer=self.deliverer, run_io=sync_io,
                        random=lambda: 0.0)
        if start:
            mailer.startService()
            self.addCleanup(mailer.stopService)
        return mailer

    def spool_file(self, mail_id: str) -> dict:
        return json.loads((self.spool_dir / f"{mail_id}.json").read_text())

    def test_send_spools_then_fires(self) -> None:
        """send fires with the spool id once the JSON file is in the spool."""
        mailer = self.make_mailer(start=False)
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "Body text"))
        record = self.spool_file(mail_id)
        self.assertEqual(record["to"], "alice@example.org")
        self.assertEqual(record["subject"], "Hi")
        self.assertEqual(record["attempts"], 0)
        self.assertIn("Body text", record["message"])
        self.assertIn(f"Message-ID: <{mail_id}@example.org>", record["message"])

    def test_bad_address_queues_nothing(self) -> None:
        """A bad recipient fails send at once with ValueError and spools nothing."""
        mailer = self.make_mailer()
        self.failureResultOf(mailer.send("not an address", "Hi", "x"), ValueError)
        self.failureResultOf(mailer.send("a@b.org\nBcc: c@d.org", "Hi", "x"), ValueError)
        self.assertEqual(self.successResultOf(mailer.pending()), [])
        self.assertEqual(self.deliverer.calls, [])

    def test_bad_from_address_refused_at_construction(self) -> None:
        """A from_address that is not an address stops the Mailer from being built."""
        self.assertRaises(ValueError, self.make_mailer, start=False,
                          from_address="nobody")

    def test_unknown_template(self) -> None:
        """send_template with an unknown template fails with TemplateError."""
        mailer = self.make_mailer()
        self.failureResultOf(mailer.send_template("a@example.org", "nope",
                                                  account_name="a"), TemplateError)

    def test_missing_template_field(self) -> None:
        """send_template without a field the template needs fails with TemplateError."""
        mailer = self.make_mailer()
        failure = self.failureResultOf(
            mailer.send_template("a@example.org", "lockout", account_name="a",
                                 address="198.51.100.7"), TemplateError)
        self.assertIn("unlock_time", str(failure.value))
        self.assertEqual(self.deliverer.calls, [])

    def test_template_defaults(self) -> None:
        """send_template fills server_name, email and time (now) by itself."""
        self.deliverer.outcomes = [PENDING]
        mailer = self.make_mailer(server_name="Class 5b Chat")
        mail_id = self.successResultOf(mailer.send_template(
            "alice@example.org", "welcome", account_name="alice", address="192.0.2.4"))
        self.assertEqual(self.deliverer.calls, [mail_id])
        record = self.spool_file(mail_id)
        self.assertEqual(record["subject"], "Welcome to Class 5b Chat, alice")
        self.assertIn("created on 2027-01-15 08:00 UTC", record["message"])
        self.assertIn("(alice@example.org)", record["message"])
        self.deliverer.waiting[0].callback(None)

    def test_new_mail_attempted_at_once(self) -> None:
        """A new mail is handed to the deliverer as soon as it is spooled."""
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.assertEqual(self.deliverer.calls, [mail_id])

    def test_success_removes_spool_file(self) -> None:
        """A delivered mail leaves the spool and is logged as delivered."""
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.assertEqual(self.successResultOf(mailer.pending()), [])
        self.assertEqual(len(self.log.of("delivered", mail_id)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_temporary_failure_is_recorded_and_retried(self) -> None:
        """A temporary failure stores attempts/next attempt and retries at that time."""
        self.deliverer.outcomes = [temporary()]
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        record = self.spool_file(mail_id)
        self.assertEqual(record["attempts"], 1)
        self.assertEqual(record["next_attempt"], START + 1.0)
        self.assertEqual(record["last_error"], "relay unavailable: refused")
        self.clock.advance(0.99)
        self.assertEqual(len(self.deliverer.calls), 1)
        self.clock.advance(0.01)
        self.assertEqual(len(self.deliverer.calls), 2)
        self.assertFalse((self.spool_dir / f"{mail_id}.json").exists())

    def test_backoff_sequence(self) -> None:
        """Successive failures wait 1, 2, 4, 8, 8 s (retry_initial doubling to retry_max)."""
        self.deliverer.outcomes = [temporary()] * 5
        mailer = self.make_mailer()
        self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        times = [self.clock.seconds()]
        for _ in range(5):
            (call,) = self.clock.getDelayedCalls()
            self.clock.advance(call.getTime() - self.clock.seconds())
            times.append(self.clock.seconds())
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        self.assertEqual(gaps, [1.0, 2.0, 4.0, 8.0, 8.0])
        self.assertEqual(len(self.deliverer.calls), 6)
        self.assertEqual(self.successResultOf(mailer.pending()), [])

    def test_one_timer_per_mail(self) -> None:
        """However many failures, a queued mail never has more than one timer."""
        self.deliverer.outcomes = [temporary()] * 4
        mailer = self.make_mailer()
        self.successResultOf(mailer.send("a@example.org", "Hi", "x"))
        self.successResultOf(mailer.send("b@example.org", "Hi", "x"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.clock.advance(1.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)

    def test_one_attempt_in_flight(self) -> None:
        """While an attempt is in flight no second one starts, however long it takes."""
        self.deliverer.outcomes = [PENDING]
        mailer = self.make_mailer()
        self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.clock.advance(3600)
        self.assertEqual(len(self.deliverer.calls), 1)
        self.deliverer.waiting[0].callback(None)
        self.assertEqual(self.successResultOf(mailer.pending()), [])
        self.assertEqual(len(self.deliverer.calls), 1)

    def test_parallel_limit(self) -> None:
        """At most max_parallel - 1 ordinary deliveries run at once (one slot is kept for
        security mails); the others start as slots free up."""
        self.deliverer.outcomes = [PENDING] * 6
        mailer = self.make_mailer()
        ids = [self.successResultOf(mailer.send(f"u{n}@example.org", "Hi", "x"))
               for n in range(6)]
        slots = Mailer.max_parallel - 1
        self.assertEqual(self.deliverer.calls, ids[:slots])
        self.deliverer.waiting[0].callback(None)
        self.assertEqual(self.deliverer.calls, ids[:slots + 1])
        self.deliverer.waiting[1].errback(temporary())
        self.assertEqual(self.deliverer.calls, ids[:slots + 2])
        self.deliverer.waiting[2].callback(None)
        self.assertEqual(self.deliverer.calls, ids)
        for d in self.deliverer.waiting[3:]:
            d.callback(None)
        self.clock.advance(1.0)
        self.assertEqual(self.deliverer.calls, ids + [ids[1]])
        self.assertEqual(self.successResultOf(mailer.pending()), [])

    def test_bad_retry_settings_refused(self) -> None:
        """retry_initial must be positive and no larger than retry_max."""
        self.assertRaises(ValueError, self.make_mailer, start=False, retry_initial=0.0)
        self.assertRaises(ValueError, self.make_mailer, start=False, retry_initial=10.0,
                          retry_max=5.0)

    def test_permanent_failure_moves_to_failed(self) -> None:
        """A permanent failure moves the mail to failed/ with the error, no retry."""
        self.deliverer.outcomes = [DeliveryError("relay refused recipient: 550 no such user",
                                                 permanent=True, code=550)]
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.assertEqual(self.successResultOf(mailer.pending()), [])
        (entry,) = self.successResultOf(mailer.failed())
        self.assertEqual(entry.mail_id, mail_id)
        self.assertEqual(entry.last_error, "relay refused recipient: 550 no such user")
        self.assertEqual(entry.failed_at, START)
        self.assertEqual(entry.attempts, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.log.of("failed", mail_id)), 1)

    def test_gives_up_after_give_up_after(self) -> None:
        """Temporary failures for longer than give_up_after move the mail to failed/."""
        self.deliverer.outcomes = [temporary()] * 10
        mailer = self.make_mailer(give_up_after=10.0)
        self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.clock.pump([1.0] * 20)
        self.assertEqual(self.successResultOf(mailer.pending()), [])
        (entry,) = self.successResultOf(mailer.failed())
        self.assertTrue(entry.last_error.startswith("gave up after"), entry.last_error)
        self.assertIn("relay unavailable", entry.last_error)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_give_up_zero_means_never(self) -> None:
        """give_up_after=0 keeps retrying however old the mail is."""
        self.deliverer.outcomes = [temporary()] * 50
        mailer = self.make_mailer(give_up_after=0.0)
        self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.clock.pump([8.0] * 40)
        (entry,) = self.successResultOf(mailer.pending())
        self.assertEqual(entry.attempts, 41)

    def test_unexpected_error_is_temporary(self) -> None:
        """A deliverer bug (not a DeliveryError) is logged and the mail retried."""
        self.deliverer.outcomes = [RuntimeError("bug")]
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.spool_file(mail_id)["last_error"], "internal error: RuntimeError")
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(mailer.pending()), [])

    def test_start_picks_up_spooled_mail(self) -> None:
        """A mail spooled while the service was stopped is delivered when it starts."""
        mailer = self.make_mailer(start=False)
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        self.assertEqual(self.deliverer.calls, [])
        mailer.startService()
        self.addCleanup(mailer.stopService)
        self.clock.advance(0)
        self.assertEqual(self.deliverer.calls, [mail_id])
        self.assertEqual(self.successResultOf(mailer.pending()), [])

    def test_restart_keeps_schedule_and_count(self) -> None:
        """After a restart the stored attempt count and next-attempt time are honoured."""
        self.deliverer.outcomes = [temporary(), temporary(), temporary()]
        first = self.make_mailer(start=False)
        first.startService()
        mail_id = self.successResultOf(first.send("alice@example.org", "Hi", "x"))
        self.clock.advance(1.0)                      # second attempt fails: next in 2 s
        self.successResultOf(first.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.spool_file(mail_id)["attempts"], 2)
        second = self.make_mailer()
        self.clock.advance(1.99)
        self.assertEqual(len(self.deliverer.calls), 2)
        self.clock.advance(0.01)
        self.assertEqual(len(self.deliverer.calls), 3)
        # The third failure is kept in memory (files are rewritten at the 1st, 2nd, 4th,
        # 8th ... failure); pending() shows it, a clean stop writes it.
        self.assertEqual(self.spool_file(mail_id)["attempts"], 2)
        (entry,) = self.successResultOf(second.pending())
        self.assertEqual(entry.attempts, 3)
        self.assertEqual(entry.next_attempt, self.clock.seconds() + 4.0)
        self.successResultOf(second.stopService())
        self.assertEqual(self.spool_file(mail_id)["attempts"], 3)

    def test_restart_clamps_far_future(self) -> None:
        """A next attempt far in the future (clock change) waits at most retry_max."""
        self.deliverer.outcomes = [temporary()]
        first = self.make_mailer(start=False)
        first.startService()
        mail_id = self.successResultOf(first.send("alice@example.org", "Hi", "x"))
        self.successResultOf(first.stopService())
        path = self.spool_dir / f"{mail_id}.json"
        record = json.loads(path.read_text())
        record["next_attempt"] = START + 10 * 365 * 86400
        path.write_text(json.dumps(record))
        self.make_mailer()
        self.clock.advance(8.0)
        self.assertEqual(len(self.deliverer.calls), 2)

    def test_stop_cancels_timers(self) -> None:
        """stopService cancels every retry timer."""
        self.deliverer.outcomes = [temporary(), temporary()]
        mailer = self.make_mailer(start=False)
        mailer.startService()
        self.successResultOf(mailer.send("a@example.org", "Hi", "x"))
        self.successResultOf(mailer.send("b@example.org", "Hi", "x"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.successResultOf(mailer.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.successResultOf(mailer.pending())), 2)

    def test_stop_waits_for_in_flight(self) -> None:
        """stopService fires only once the delivery in flight has finished."""
        self.deliverer.outcomes = [PENDING]
        mailer = self.make_mailer(start=False)
        mailer.startService()
        self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        stopped = mailer.stopService()
        self.assertNoResult(stopped)
        self.deliverer.waiting[0].errback(temporary())
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        (entry,) = self.successResultOf(mailer.pending())
        self.assertEqual(entry.attempts, 1)

    def test_send_during_start_scan_delivered_once(self) -> None:
        """A mail queued while the start-up scan runs is delivered exactly once."""
        scans: list[defer.Deferred] = []
        real = sync_io

        def slow_recover(function, *args):
            if function.__name__ == "recover":
                d = defer.Deferred()
                scans.append(d)
                return d.addCallback(lambda _: function(*args))
            return real(function, *args)

        mailer = Mailer(MailConfig(from_address="noreply@example.org"), self.spool_dir,
                        self.root / "Maildir", self.clock, deliverer=self.deliverer,
                        run_io=slow_recover)
        before = self.successResultOf(mailer.send("a@example.org", "Hi", "x"))
        mailer.startService()
        self.addCleanup(mailer.stopService)
        during = mailer.send("b@example.org", "Hi", "x")   # waits behind the scan
        scans[0].callback(None)
        during_id = self.successResultOf(during)
        self.clock.advance(0)
        self.assertEqual(sorted(self.deliverer.calls), sorted([before, during_id]))

    def test_crash_leftovers_cleaned(self) -> None:
        """At start, half-written temp files go and a mail in both places stays failed."""
        directory = SpoolDirectory(self.spool_dir)
        mailer = self.make_mailer(start=False)
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        data = (self.spool_dir / f"{mail_id}.json").read_bytes()
        directory.ensure()
        (directory.failed_path / f"{mail_id}.json").write_bytes(data)
        (self.spool_dir / ".tmp-0123abcd").write_bytes(b"{half")
        mailer.startService()
        self.addCleanup(mailer.stopService)
        self.assertEqual(self.deliverer.calls, [])
        self.assertEqual(sorted(os.listdir(self.spool_dir)), ["failed"])

    def test_unreadable_file_left_alone(self) -> None:
        """A spool file that is not a mail entry is skipped, the others still go out."""
        mailer = self.make_mailer(start=False)
        good = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        (self.spool_dir / "garbage.json").write_bytes(b"\x80\x04pickle?")
        mailer.startService()
        self.addCleanup(mailer.stopService)
        self.clock.advance(0)
        self.assertEqual(self.deliverer.calls, [good])
        self.assertTrue((self.spool_dir / "garbage.json").exists())

    def test_logs_never_hold_body_or_password(self) -> None:
        """No log event of a queued, retried and delivered mail holds the body or password."""
        self.deliverer.outcomes = [temporary("relay unavailable: x")]
        mailer = self.make_mailer(password="hunter2-pw", username="mailer")
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        mailer.stopService()
        mailer.startService()
        self.successResultOf(mailer.send("alice@example.org", "Hi", "SECRET-BODY-TEXT"))
        self.clock.advance(1.0)
        self.assertTrue(self.log.of("delivered"))
        self.assertTrue(events)
        for event in events:
            text = formatEvent(event) + repr(sorted(event.items(), key=lambda kv: kv[0]))
            self.assertNotIn("SECRET-BODY-TEXT", text)
            self.assertNotIn("hunter2-pw", text)

    def test_structured_fields(self) -> None:
        """Log events carry mail_event, mail_id and the attempt count as fields."""
        self.deliverer.outcomes = [temporary()]
        mailer = self.make_mailer()
        mail_id = self.successResultOf(mailer.send("alice@example.org", "Hi", "x"))
        (deferred_event,) = self.log.of("deferred", mail_id)
        self.assertEqual(deferred_event["attempts"], 1)
        self.assertEqual(deferred_event["delay"], 1.0)
        self.assertEqual(deferred_event["to"], "alice@example.org")
        self.assertEqual([e["mail_event"] for e in self.log.events],
                         ["queued", "deferred"])


class MailerSMTPTests(TestCase):
    """The Mailer end to end with a real SMTP relay on loopback and the real reactor."""

    timeout = 60

    def setUp(self) -> None:
        self.root = Path(self.mktemp())
        self.spool_dir = self.root / "mail-spool"
        self.log = EventLog(self)

    @defer.inlineCallbacks
    def start_relay(self, **options):
        relay = SMTPRelay(**options)
        yield relay.start()
        self.addCleanup(relay.stop)
        return relay

    def make_mailer(self, start: bool = True, **options) -> Mailer:
        settings = dict(relay_host="127.0.0.1", retry_initial=0.05, retry_max=0.2,
                        relay_timeout=5.0, from_address="Messenger <noreply@example.org>",
                        server_name="Test Messenger")
        settings.update(options)
        mailer = Mailer(MailConfig(**settings), self.spool_dir, self.root / "Maildir",
                        reactor)
        if start:
            mailer.startService()
            self.addCleanup(self.stop_mailer, mailer)
        return mailer

    def stop_mailer(self, mailer: Mailer) -> defer.Deferred | None:
        return mailer.stopService() if mailer.running else None

    @defer.inlineCallbacks
    def test_welcome_mail(self):
        """The welcome mail reaches the relay with recipient, subject and filled-in body."""
        relay = yield self.start_relay()
        mailer = self.make_mailer(relay_port=relay.port)
        yield mailer.send_template("alice@example.org", "welcome", account_name="alice",
                                   address="192.0.2.10", time=START)
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.rcpt_to, ["alice@example.org"])
        self.assertEqual(mail.mail_from, "noreply@example.org")
        self.assertEqual(mail.message["To"], "alice@example.org")
        self.assertEqual(mail.message["From"], "Messenger <noreply@example.org>")
        self.assertEqual(mail.message["Subject"], "Welcome to Test Messenger, alice")
        self.assertIn("your account on Test Messenger is ready", mail.body)
        self.assertIn("created on 2027-01-15 08:00 UTC", mail.body)
        self.assertIn("for this e-mail address (alice@example.org)", mail.body)
        self.assertIn("the registration came from 192.0.2.10", " ".join(mail.body.split()))

    @defer.inlineCallbacks
    def test_new_location_mail(self):
        """The new-location mail says when, from which address, and what to do."""
        relay = yield self.start_relay()
        mailer = self.make_mailer(relay_port=relay.port)
        yield mailer.send_template("bob@example.org", "new_location", account_name="bob",
                                   address="2001:db8::7", time=START + 60)
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.rcpt_to, ["bob@example.org"])
        self.assertEqual(mail.message["Subject"],
                         "New login to your Test Messenger account from 2001:db8::7")
        self.assertIn("When:  2027-01-15 08:01 UTC", mail.body)
        self.assertIn("From:  2001:db8::7", mail.body)
        self.assertIn("If this was not you, someone else knows your password", mail.body)
        self.assertIn("ask them to lock the", mail.body)

    @defer.inlineCallbacks
    def test_lockout_mail(self):
        """The lockout mail says when the lock lifts and where the attempts came from."""
        relay = yield self.start_relay()
        mailer = self.make_mailer(relay_port=relay.port)
        yield mailer.send_template("carol@example.org", "lockout", account_name="carol",
                                   address="198.51.100.23", time=START,
                                   unlock_time=START + 900)
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.rcpt_to, ["carol@example.org"])
        self.assertEqual(mail.message["Subject"],
                         "Your Test Messenger account is locked until 2027-01-15 08:15 UTC")
        self.assertIn("was locked at 2027-01-15 08:00 UTC", mail.body)
        self.assertIn("The last failed attempt came from 198.51.100.23", mail.body)
        self.assertIn("The lock lifts by itself at 2027-01-15 08:15 UTC", mail.body)

    @defer.inlineCallbacks
    def test_relay_outage(self):
        """Relay down: the mail stays spooled, attempts counted; back up: delivered once."""
        relay = yield self.start_relay()
        port = relay.port
        yield relay.stop()
        mailer = self.make_mailer(relay_port=port)
        mail_id = yield mailer.send("alice@example.org", "Outage", "Sent during an outage.")
        yield self.log.wait("deferred", 3)
        (entry,) = yield mailer.pending()
        self.assertEqual(entry.mail_id, mail_id)
        self.assertGreaterEqual(entry.attempts, 3)
        self.assertIn("relay unavailable", entry.last_error)
        self.assertIn("refused", entry.last_error.lower())

        relay = yield self.start_relay(port=port)
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.message["Subject"], "Outage")
        yield self.log.wait("delivered", 1)
        # Let several retry periods pass: no stray timer may send it again.
        yield task.deferLater(reactor, 5 * 0.2, lambda: None)
        self.assertEqual(len(relay.received), 1)
        self.assertEqual((yield mailer.pending()), [])
        self.assertEqual(len(self.log.of("delivered", mail_id)), 1)

    @defer.inlineCallbacks
    def test_server_restart(self):
        """Mail spooled by a stopped Mailer is delivered once by the next one."""
        relay = yield self.start_relay()
        port = relay.port
        yield relay.stop()
        first = self.make_mailer(relay_port=port)
        mail_id = yield first.send("alice@example.org", "Restart", "Across a restart.")
        yield self.log.wait("deferred", 2)
        yield first.stopService()
        (entry,) = SpoolDirectory(self.spool_dir).pending()
        attempts_before = entry.attempts
        self.assertGreaterEqual(attempts_before, 2)

        relay = yield self.start_relay(port=port)
        second = self.make_mailer(relay_port=port)
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.message["Message-ID"], f"<{mail_id}@example.org>")
        yield self.log.wait("delivered", 1)
        yield task.deferLater(reactor, 5 * 0.2, lambda: None)
        self.assertEqual(len(relay.received), 1)
        self.assertEqual((yield second.pending()), [])
        self.assertEqual(os.listdir(self.spool_dir), ["failed"])

    @defer.inlineCallbacks
    def test_restart_with_unattempted_mail(self):
        """Mail queued while the service is stopped is delivered by the next start."""
        relay = yield self.start_relay()
        stopped = self.make_mailer(start=False, relay_port=relay.port)
        yield stopped.send("alice@example.org", "Queued", "Queued while stopped.")
        self.assertEqual(relay.received, [])
        self.make_mailer(relay_port=relay.port)
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.message["Subject"], "Queued")

    @defer.inlineCallbacks
    def test_starttls(self):
        """With STARTTLS required and offered the relay receives the mail over TLS."""
        cert_pem, key_pem = make_certificate("127.0.0.1")
        ca_file = self.root / "relay-ca.pem"
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        ca_file.write_bytes(cert_pem)
        relay = yield self.start_relay(tls=(cert_pem, key_pem))
        mailer = self.make_mailer(relay_port=relay.port, starttls=True,
                                  relay_ca_file=str(ca_file))
        yield mailer.send("alice@example.org", "Secure", "Over TLS.")
        (mail,) = yield relay.wait_for(1)
        self.assertTrue(mail.tls)

    @defer.inlineCallbacks
    def test_starttls_not_offered(self):
        """STARTTLS required but not offered: never sent in clear, stays spooled (temporary)."""
        cert_pem, _ = make_certificate("127.0.0.1")
        ca_file = self.root / "relay-ca.pem"
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        ca_file.write_bytes(cert_pem)
        relay = yield self.start_relay()
        mailer = self.make_mailer(relay_port=relay.port, starttls=True,
                                  relay_ca_file=str(ca_file))
        yield mailer.send("alice@example.org", "Secure", "Must not go in clear.")
        yield self.log.wait("deferred", 2)
        self.assertEqual(relay.received, [])
        (entry,) = yield mailer.pending()
        self.assertGreaterEqual(entry.attempts, 2)
        self.assertIn("does not offer STARTTLS", entry.last_error)
        self.assertEqual((yield mailer.failed()), [])

    @defer.inlineCallbacks
    def test_auth(self):
        """With username and password the mailer authenticates to the relay."""
        cert_pem, key_pem = make_certificate("127.0.0.1")
        ca_file = self.root / "relay-ca.pem"
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        ca_file.write_bytes(cert_pem)
        relay = yield self.start_relay(tls=(cert_pem, key_pem), users={"mailer": "pw-123"})
        mailer = self.make_mailer(relay_port=relay.port, starttls=True,
                                  relay_ca_file=str(ca_file), username="mailer",
                                  password="pw-123")
        yield mailer.send("alice@example.org", "Authenticated", "Hello.")
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.username, "mailer")
        self.assertTrue(mail.tls)

    @defer.inlineCallbacks
    def test_auth_without_starttls_warns(self):
        """AUTH without STARTTLS works but logs a clear-text warning at start."""
        relay = yield self.start_relay(users={"mailer": "pw-123"})
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        mailer = self.make_mailer(relay_port=relay.port, username="mailer",
                                  password="pw-123")
        yield mailer.send("alice@example.org", "Authenticated", "Hello.")
        (mail,) = yield relay.wait_for(1)
        self.assertEqual(mail.username, "mailer")
        texts = [formatEvent(event) for event in events]
        self.assertTrue(any("clear text" in text for text in texts), texts)
        self.assertFalse(any("pw-123" in text for text in texts))

    @defer.inlineCallbacks
    def test_permanent_rejection(self):
        """A 5xx from the relay moves the mail to failed/ with the relay's answer."""
        relay = yield self.start_relay(reject=(550, "Mailbox unavailable"))
        mailer = self.make_mailer(relay_port=relay.port)
        mail_id = yield mailer.send("nobody@example.org", "Rejected", "Bounce me.")
        yield self.log.wait("failed", 1)
        self.assertEqual((yield mailer.pending()), [])
        (entry,) = yield mailer.failed()
        self.assertEqual(entry.mail_id, mail_id)
        self.assertIn("550 Mailbox unavailable", entry.last_error)
        self.assertEqual(relay.received, [])
        self.assertTrue((self.spool_dir / "failed" / f"{mail_id}.json").exists())

    @defer.inlineCallbacks
    def test_no_relay_uses_maildir(self):
        """With no relay the message file appears in Maildir/new with correct headers."""
        mailer = self.make_mailer(relay_host="")
        mail_id = yield mailer.send_template("dave@example.org", "welcome",
                                             account_name="dave", address="192.0.2.99",
                                             time=START)
        yield self.log.wait("delivered", 1)
        (name,) = os.listdir(self.root / "Maildir" / "new")
        self.assertIn(mail_id, name)
        data = (self.root / "Maildir" / "new" / name).read_bytes()
        message = BytesParser(policy=policy.default).parsebytes(data)
        self.assertEqual(message["To"], "dave@example.org")
        self.assertEqual(message["From"], "Messenger <noreply@example.org>")
        self.assertEqual(message["Subject"], "Welcome to Test Messenger, dave")
        self.assertEqual(message["Message-ID"], f"<{mail_id}@example.org>")
        sent = parsedate_to_datetime(message["Date"]).timestamp()
        self.assertLess(abs(sent - reactor.seconds()), 60)
        self.assertEqual(message["Delivered-To"], "dave@example.org")
        self.assertEqual(message.get_content_type(), "text/plain")
        self.assertEqual(message.get_content_charset(), "utf-8")
        self.assertIn("Hello dave,", message.get_content())
        self.assertEqual(os.listdir(self.root / "Maildir" / "tmp"), [])
        self.assertEqual((yield mailer.pending()), [])
