"""The `Mailer` service: queue durably, deliver, retry with back-off, never lose a mail.

`send` composes the message, writes it to the spool (`spool.py`) and fires once the file is
durable; delivery happens afterwards, in the background:

* a new mail is attempted at once; at start every spooled mail is picked up again;
* success removes the spool file;
* a temporary failure (relay down, 4xx, TLS/AUTH set-up problems) records the attempt in
  the spool file and schedules the next one `backoff_delay` later: `retry_initial`,
  doubling up to `retry_max`, minus up to 20 % jitter so a queue does not retry in step;
* a permanent failure (5xx for the recipient or the message), or temporary failures for
  longer than `give_up_after`, moves the file to ``failed/`` and logs an error.

At most `Mailer.max_parallel` deliveries run at once; due mails beyond that wait in line,
security mails (lockout, new location) ahead of the others, and one of the slots is kept
for them: a flood of welcome mails to a slow relay cannot hold back a lockout warning.

The queue is capped (``queue_max`` mails waiting, ``--mail-queue-max``). Past it a new
mail is dropped, except a security mail, which takes the place of the newest waiting
mail that is not one (dropped instead); each drop is counted (``stats()["dropped"]``,
the ``messenger_mail_dropped_total`` metric) and logged, one line per minute at most.

A retry does not rewrite the spool file every time: the attempt count, next attempt and
error live in memory and reach the file at the 1st, 2nd, 4th, 8th ... failed attempt,
when the error text changes, and at a clean stop. After a crash, a mail therefore
resumes with an attempt count that is at most half too low; the give-up time is counted
from its creation, which is always on disk. (Before, every retry of every mail was an
fsynced rewrite: 871 queued mails behind a relay answering 451 were each rewritten about
730 times over their five days.)

Delivery is at least once. Within one process a mail has at most one attempt in flight and
at most one timer, so retries never overlap. A crash after the relay accepted a mail but
before its spool file is removed sends it again at the next start, with the same
Message-ID (taken from the spool id), which lets receiving systems spot the copy. The
Maildir deliverer uses the spool id in the file name and skips a mail already there, so
local delivery is exactly once.

Scheduling goes through the injected reactor (`IReactorTime`); file work runs in threads.
Log events are structured and carry ``mail_event`` (queued, delivered, deferred, failed,
dropped) and ``mail_id``; at most one line per delivery attempt, never a message body or
the relay password.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from pathlib import Path

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.server.config import MailConfig
from messenger.server.logs.throttle import ThrottledLogger
from messenger.server.mail.compose import compose, split_sender, to_text
from messenger.server.mail.delivery import Deliverer, DeliveryError, make_deliverer
from messenger.server.mail.line import SECURITY_TEMPLATES, DeliveryLine
from messenger.server.mail.retry import JITTER, backoff_delay, persist_attempt
from messenger.server.mail.spool import RunIO, Spool, SpoolEntry, new_mail_id
from messenger.server.mail.templates import TemplateError, render

__all__ = ["JITTER", "Mailer", "backoff_delay"]

class Mailer(Service):
    """Outgoing mail for the server: ``send``/``send_template`` and the delivery loop."""

    log = Logger()
    name = "mailer"
    max_parallel = 4        # deliveries at once; more wait their turn (after an outage)

    def __init__(self, config: MailConfig, spool_dir: Path, maildir: Path, reactor=None, *,
                 deliverer: Deliverer | None = None, run_io: RunIO | None = None,
                 random: Callable[[], float] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        if not 0 < config.retry_initial <= config.retry_max:
            raise ValueError("need 0 < retry_initial <= retry_max")
        self._config = config
        self._reactor = reactor
        self._sender = split_sender(config.from_address)[1]   # ValueError if unusable
        self._spool = Spool(Path(spool_dir), run_io)
        self._deliverer = deliverer if deliverer is not None else make_deliverer(
            config, Path(maildir), reactor, run_io)
        self._random = random if random is not None else _random.random
        self._entries: dict[str, SpoolEntry] = {}     # pending mails known to this run
        self._timers: dict[str, IDelayedCall] = {}    # at most one per mail
        self._in_flight: set[str] = set()             # at most one attempt per mail
        self._line = DeliveryLine(self.max_parallel)  # due mails waiting for a slot
        self._dirty: set[str] = set()                 # retry state newer than the file
        self._reserved = 0                            # mails being written to the spool
        self._operations: set[Deferred] = set()       # what stopService waits for
        self._loading = False                         # the start-up scan is running
        self._queued_during_load: dict[str, SpoolEntry] = {}
        self._counts = dict.fromkeys(("delivered", "deferred", "failed", "dropped"), 0)
        self._drops = ThrottledLogger(self.log, reactor)

    # -- the public API -----------------------------------------------------------------

    def send(self, to: str, subject: str, body: str, template: str = "") -> Deferred:
        """Queue a mail; fires with its spool id once it is durably spooled.

        Fails at once (nothing queued) with ValueError for a bad address or subject.
        Fires with None when the queue is full and the mail was dropped (logged and
        counted). Delivery follows in the background.
        """
        try:
            entry = self._new_entry(to, subject, body, template)
        except ValueError:
            return fail()
        if not self._make_room(entry):
            return succeed(None)
        self._reserved += 1
        d = self._spool.write(entry)
        d.addBoth(self._written)
        d.addCallbacks(self._queued, self._queue_failed, callbackArgs=(entry,),
                       errbackArgs=(entry,))
        return self._track(d)

    def send_template(self, to: str, template: str, **fields: object) -> Deferred:
        """Queue template `template` (welcome, new_location, lockout) for `to`.

        `fields` fill the template (see `templates.FIELDS`); ``server_name`` defaults to the
        configured one, ``email`` to `to`, ``time`` to now. Times may be POSIX seconds.
        Fails at once with TemplateError (a ValueError) for unknown or missing fields.
        """
        values: dict[str, object] = {
            "server_name": self._config.server_name,
            "email": to,
            "time": self._reactor.seconds(),
        }
        values.update(fields)
        try:
            subject, body = render(template, **values)
        except TemplateError:
            return fail()
        return self.send(to, subject, body, template)

    def pending(self) -> Deferred:
        """Fires with the spooled mails waiting for delivery (`SpoolEntry`, oldest first),
        with the retry state this process knows (newer than the files between writes)."""
        d = self._spool.pending()
        d.addCallback(lambda entries: [self._entries.get(entry.mail_id, entry)
                                       for entry in entries])
        return d

    def stats(self) -> dict[str, int]:
        """Counters for the metrics: mails queued now; delivered, deferred (failed
        attempts to retry), failed (given up) and dropped (queue full) since start."""
        return {"queued": len(self._entries) + self._reserved
                + len(self._queued_during_load), **self._counts}

    def failed(self) -> Deferred:
        """Fires with the mails that failed for good (`SpoolEntry`, oldest first)."""
        return self._spool.failed()

    # -- service ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        config = self._config
        self.log.info("mail delivery: {destination}, spool {spool}",
                      destination=self._deliverer.description, spool=str(self._spool.path))
        if config.relay_host and config.username and not config.starttls:
            self.log.warn("SMTP AUTH without STARTTLS: the relay password crosses the "
                          "network in clear text; set starttls")
        self._loading = True
        d = self._spool.recover()
        d.addCallbacks(self._loaded, self._load_failed)
        self._track(d)

    def stopService(self) -> Deferred:
        """Cancel the retry timers; fires when in-flight deliveries and writes are done."""
        super().stopService()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self._line = DeliveryLine(self.max_parallel)
        waiting = list(self._operations)
        d = gatherResults(waiting) if waiting else succeed(None)
        d.addCallback(self._write_dirty)
        d.addCallback(lambda _: self._entries.clear())
        return d

    def _write_dirty(self, _: object) -> Deferred:
        """At a clean stop: the retry state kept in memory goes to the spool files."""
        writes = [self._spool.write(self._entries[mail_id]).addErrback(
                      self._update_failed, self._entries[mail_id])
                  for mail_id in sorted(self._dirty) if mail_id in self._entries]
        self._dirty.clear()
        return gatherResults(writes) if writes else succeed(None)

    # -- queueing -----------------------------------------------------------------------

    def _new_entry(self, to: str, subject: str, body: str, template: str) -> SpoolEntry:
        now = self._reactor.seconds()
        mail_id = new_mail_id()
        message = compose(sender=self._config.from_address, to=to, subject=subject,
                          body=body, date=now, mail_id=mail_id)
        return SpoolEntry(mail_id=mail_id, created=now, sender=self._sender, to=to,
                          subject=subject, message=to_text(message), next_attempt=now,
                          template=template)

    # -- the cap ------------------------------------------------------------------------

    def _make_room(self, entry: SpoolEntry) -> bool:
        """True when `entry` may be queued (after pushing out a lesser mail if need be)."""
        waiting = len(self._entries) + self._reserved + len(self._queued_during_load)
        if waiting < self._config.queue_max:
            return True
        if entry.template in SECURITY_TEMPLATES:
            victims = [other for other in self._entries.values()
                       if other.template not in SECURITY_TEMPLATES
                       and other.mail_id not in self._in_flight]
            if victims:
                victim = max(victims, key=lambda other: (other.created, other.mail_id))
                self._drop_queued(victim)
                self._dropped(victim, "pushed out by a security mail")
                return True
        self._dropped(entry, "not queued")
        return False

    def _drop_queued(self, entry: SpoolEntry) -> None:
        mail_id = entry.mail_id
        self._entries.pop(mail_id, None)
        self._dirty.discard(mail_id)
        timer = self._timers.pop(mail_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._line.remove(mail_id)
        self._track(self._spool.remove(mail_id).addErrback(self._update_failed, entry))

    def _dropped(self, entry: SpoolEntry, what: str) -> None:
        self._counts["dropped"] += 1
        self._drops.warn("queue-full", "mail queue full ({limit} mails waiting): the"
                         " {kind} mail to {to} was dropped ({what})", mail_event="dropped",
                         limit=self._config.queue_max, kind=entry.template or "plain",
                         to=entry.to, what=what, mail_id=entry.mail_id)

    def _written(self, result: object) -> object:
        self._reserved -= 1
        return result

    def _queued(self, _: object, entry: SpoolEntry) -> str:
        self.log.info("queued mail {mail_id} to {to}: {subject}", mail_event="queued",
                      mail_id=entry.mail_id, to=entry.to, subject=entry.subject)
        if not self.running:
            pass                    # the next startService finds it in the spool
        elif self._loading:
            # The start-up scan may or may not list it: `_loaded` takes it either way,
            # once. Nothing is delivered before the scan is in, so nothing goes twice.
            self._queued_during_load[entry.mail_id] = entry
        elif entry.mail_id not in self._entries:
            self._entries[entry.mail_id] = entry
            self._attempt(entry.mail_id)
        return entry.mail_id

    def _queue_failed(self, failure: Failure, entry: SpoolEntry) -> Failure:
        self.log.error("could not queue mail {mail_id} to {to}: {error}",
                       mail_event="queue_failed", mail_id=entry.mail_id, to=entry.to,
                       error=str(failure.value))
        return failure

    def _loaded(self, entries: list[SpoolEntry]) -> None:
        self._loading = False
        fresh, self._queued_during_load = self._queued_during_load, {}
        if not self.running:
            return
        if entries:
            self.log.info("{count} mail(s) waiting in the spool", count=len(entries))
        for entry in [*entries, *fresh.values()]:
            if entry.mail_id not in self._entries:
                self._entries[entry.mail_id] = entry
                self._schedule(entry)

    def _load_failed(self, failure: Failure) -> None:
        self._loaded([])
        self.log.failure("could not read the mail spool {spool}", failure,
                         spool=str(self._spool.path))

    # -- delivery loop ------------------------------------------------------------------

    def _schedule(self, entry: SpoolEntry) -> None:
        """One timer for `entry` at its next_attempt (at most retry_max from now)."""
        mail_id = entry.mail_id
        if (not self.running or mail_id not in self._entries or mail_id in self._in_flight
                or mail_id in self._line):
            return
        old = self._timers.pop(mail_id, None)
        if old is not None and old.active():
            old.cancel()
        delay = min(max(0.0, entry.next_attempt - self._reactor.seconds()),
                    self._config.retry_max)
        self._timers[mail_id] = self._reactor.callLater(delay, self._attempt, mail_id)

    def _attempt(self, mail_id: str) -> None:
        timer = self._timers.pop(mail_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        entry = self._entries.get(mail_id)
        if entry is None or mail_id in self._in_flight or not self.running:
            return
        urgent = entry.template in SECURITY_TEMPLATES
        if len(self._in_flight) >= self._line.slots(urgent):
            self._line.wait(mail_id, urgent)
            return
        self._in_flight.add(mail_id)
        entry.last_attempt = self._reactor.seconds()
        d = maybeDeferred(self._deliverer.deliver, entry)
        d.addCallbacks(self._delivered, self._not_delivered, callbackArgs=(entry,),
                       errbackArgs=(entry,))
        d.addErrback(self._bookkeeping_failed, entry)
        d.addBoth(self._attempt_finished, entry)
        self._track(d)

    # Each outcome is logged once it is settled (in the spool, or in memory for a retry
    # that is not written): one line per attempt.

    def _delivered(self, _: object, entry: SpoolEntry) -> Deferred:
        self._entries.pop(entry.mail_id, None)
        self._dirty.discard(entry.mail_id)
        self._counts["delivered"] += 1
        d = self._spool.remove(entry.mail_id)
        d.addCallbacks(self._log_delivered, self._remove_failed, callbackArgs=(entry,),
                       errbackArgs=(entry,))
        return d

    def _log_delivered(self, _: object, entry: SpoolEntry) -> None:
        self.log.info("delivered mail {mail_id} to {to} via {destination}",
                      mail_event="delivered", mail_id=entry.mail_id, to=entry.to,
                      attempts=entry.attempts + 1, destination=self._deliverer.description)

    def _remove_failed(self, failure: Failure, entry: SpoolEntry) -> None:
        self._log_delivered(None, entry)
        self.log.error("mail {mail_id} was delivered but its spool file could not be "
                       "removed ({error}); it will be sent again after a restart",
                       mail_id=entry.mail_id, error=str(failure.value))

    def _not_delivered(self, failure: Failure, entry: SpoolEntry) -> Deferred:
        if failure.check(DeliveryError):
            error: DeliveryError = failure.value
        else:
            self.log.failure("unexpected error delivering mail {mail_id}", failure,
                             mail_id=entry.mail_id)
            error = DeliveryError(f"internal error: {failure.type.__name__}",
                                  permanent=False)
        now = self._reactor.seconds()
        entry.attempts += 1
        error_changed = entry.last_error != error.message
        entry.last_error = error.message
        give_up = self._config.give_up_after
        expired = give_up > 0 and now - entry.created >= give_up
        if error.permanent or expired:
            if expired and not error.permanent:
                entry.last_error = (f"gave up after {entry.attempts} attempts in "
                                    f"{(now - entry.created) / 3600:.1f} h: {error.message}")
            return self._give_up(entry, now)
        delay = backoff_delay(entry.attempts, self._config.retry_initial,
                              self._config.retry_max, self._random())
        entry.next_attempt = now + delay
        self._counts["deferred"] += 1
        if persist_attempt(entry.attempts, error_changed):
            self._dirty.discard(entry.mail_id)
            d = self._spool.write(entry)
            d.addErrback(self._update_failed, entry)
        else:
            self._dirty.add(entry.mail_id)
            d = succeed(None)
        d.addCallback(lambda _: self.log.warn(
            "mail {mail_id} to {to} not delivered (attempt {attempts}): {error}; "
            "next attempt in {delay:.1f} s", mail_event="deferred",
            mail_id=entry.mail_id, to=entry.to, attempts=entry.attempts,
            error=error.message, code=error.code, delay=delay))
        return d

    def _give_up(self, entry: SpoolEntry, now: float) -> Deferred:
        self._entries.pop(entry.mail_id, None)
        self._dirty.discard(entry.mail_id)
        self._counts["failed"] += 1
        entry.failed_at = now
        d = self._spool.fail(entry)
        d.addErrback(self._update_failed, entry)
        d.addCallback(lambda _: self.log.error(
            "mail {mail_id} to {to} failed for good: {error}", mail_event="failed",
            mail_id=entry.mail_id, to=entry.to, attempts=entry.attempts,
            error=entry.last_error))
        return d

    def _update_failed(self, failure: Failure, entry: SpoolEntry) -> None:
        self.log.error("could not update the spool file of mail {mail_id}: {error}",
                       mail_id=entry.mail_id, error=str(failure.value))

    def _bookkeeping_failed(self, failure: Failure, entry: SpoolEntry) -> None:
        self.log.failure("mail {mail_id}: delivery bookkeeping failed", failure,
                         mail_id=entry.mail_id)

    def _attempt_finished(self, _: object, entry: SpoolEntry) -> None:
        self._in_flight.discard(entry.mail_id)
        self._schedule(entry)      # no-op unless the mail is still pending and we run
        while self.running:
            mail_id = self._line.next(len(self._in_flight))
            if mail_id is None:
                break
            self._attempt(mail_id)

    def _track(self, d: Deferred) -> Deferred:
        """Remember `d` until it fires, so stopService can wait for it; returns `d`."""
        finished: Deferred = Deferred()
        self._operations.add(finished)

        def done(result: object) -> object:
            self._operations.discard(finished)
            finished.callback(None)
            return result

        d.addBoth(done)
        return d
