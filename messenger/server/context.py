"""The components one server shares between its connections.

`ServerContext` is built once by the service and handed to every connection. It holds the
components themselves (router, presence, directory, store, hasher, crypto pool, limits,
admission, mailer), each built with only what it needs, the set of open connections
(whatever their state, so that a shutdown closes them all), and the moments that span
components: a connection admitted or gone, a session that starts or ends, an account
deleted, an e-mail to queue, the keepalive sweep. It knows no handlers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer, task
from twisted.logger import Logger

from messenger.server.admission import Admission, total_cap_for
from messenger.server.blocks import Blocks
from messenger.server.calls import CallService
from messenger.server.config import ServerConfig
from messenger.server.crypto import CryptoPool
from messenger.server.directory import Directory
from messenger.server.directwrite import CORK
from messenger.server.files.service import FilesService
from messenger.server.limits import Limits, lockout_policy
from messenger.server.maintenance import Maintenance
from messenger.server.memory import Trimmer
from messenger.server.metrics import Metrics
from messenger.server.passwords import PasswordHasher
from messenger.server.presence import Presence
from messenger.server.refusals import RefusalLog
from messenger.server.relay import CallTable
from messenger.server.router import Router
from messenger.server.searchindex import SearchIndexer
from messenger.server.session import Account, Session
from messenger.server.typing import GroupMembers
from messenger.store import groupmsgs, groups, messages, receipts, users
from messenger.store.bounded import BoundedDatabase
from messenger.store.db import Database
from messenger.store.errors import Unavailable
from messenger.store.groupcommit import GroupCommit, fire_token
from messenger.wire.errors import MessengerError

__all__ = ["Account", "ServerContext"]

# Seconds between checks for accounts deleted or locked with messenger-admin.
ACCOUNT_CHECK_INTERVAL = 10.0
# The keepalive sweep checks its snapshot of the connections in slices, one slice every
# SWEEP_TICK seconds, spread over the sweep interval: with 50,000 connections no reactor
# turn checks (and perhaps probes) more than a few hundred, and probes that fall due
# together (clients that logged in together) go out, and are answered, over seconds.
SWEEP_TICK = 0.02
DELETED_BY_ADMIN = "Your account was deleted by an administrator."
LOCKED_BY_ADMIN = "Your account was locked by an administrator."


class ServerContext:
    log = Logger()

    def __init__(self, config: ServerConfig, clock: Any, db: Database, secret: bytes,
                 server_key: rsa.RSAPrivateKey, mailer: Any = None, crypto: Any = None,
                 open_files: int = 1024) -> None:
        self.config = config
        self.clock = clock
        self.db = BoundedDatabase(db, config.limits.db_queue)
        self.secret = secret
        self.server_key = server_key
        self.mailer = mailer
        self.metrics = Metrics()
        self.cluster: Any = None
        self._routing(db)
        limits = config.limits
        self.hasher = PasswordHasher(config.scrypt_n, clock, capacity=limits.hash_queue,
                                     decoy_capacity=limits.decoy_queue)
        self.crypto = crypto if crypto is not None else CryptoPool(clock)
        self._writers(db)
        self.limits = Limits(limits, clock)
        self.admission = Admission(limits, clock,
                                   limits.max_connections or total_cap_for(open_files))
        self.refusals = RefusalLog(clock)
        self.counters: Counter[str] = Counter()
        self._since: dict[int, float] = {}         # user id -> when its session logged in
        self.lockout_policy = lockout_policy(limits)
        self.maintenance = Maintenance(db, clock, config.retention_days)
        self.call_table = CallTable()
        if self.cluster is not None:
            self.calls: CallService = self.cluster.make_calls(self.call_table, config)
        else:
            self.calls = CallService(self.router, self.call_table, clock,
                                     config.call_ring_timeout, config.public_host)
        self.next_volatile_id = 1  # message ids when persistence is off (benchmarks only)
        self.connections: set[Any] = set()     # every open connection, in any state
        self.trimmer = Trimmer()               # memory back to the system after a crowd
        self._drain_waiters: list[defer.Deferred[None]] = []
        self._sweeper: task.LoopingCall | None = None
        self._account_check: task.LoopingCall | None = None
        sweep_interval = max(0.05, min(config.probe_interval, config.probe_timeout) / 3)
        self._sweep_ticks = max(1, int(sweep_interval / SWEEP_TICK))  # slices per sweep
        self._sweep_list: list[Any] = []    # the current sweep's snapshot of the connections
        self._sweep_pos = 0                 # ... and how far it got
        self._sweep_slice_size = 1
        self._sweep_next: Any = None        # the pending slice (an IDelayedCall)

    def _routing(self, db: Database) -> None:
        """Who is where: the router and presence (a cluster's over Redis, in cluster mode:
        docs/SCALING.md; the embedded default never imports it), names, blocks."""
        if self.config.cluster.redis:
            from messenger.server.cluster.node import ClusterNode
            self.cluster = ClusterNode(self, db)
            self.router: Router = self.cluster.router
            self.presence: Presence = self.cluster.presence
        else:
            self.router = Router(self.clock)
            self.presence = Presence(self.router, self.clock)
        self.directory = Directory(db)
        # who refuses whom (msg, call_dial); a cluster keeps every node's set in step
        self.blocks = (self.cluster.make_blocks(self.db) if self.cluster is not None
                       else Blocks(self.db))

    def _writers(self, db: Database) -> None:
        """The batched writers: direct and group messages, files, receipts; the search
        index, written after the messages (each message batch nudges it)."""
        self.search_index = SearchIndexer(db, self.clock)
        self.messages: GroupCommit[Any, Any] = self.group_commit(
            db, messages.insert_batch_txn, self.metrics.batch_committed)
        # Group messages commit apart, so the direct path stays as it was; one writer
        # orders both, and their callbacks (pushes) follow the id order (in a cluster:
        # the message stream orders them with everyone's).
        self.group_messages: GroupCommit[Any, Any] = self.group_commit(
            db, groupmsgs.MemberCache().insert_batch_txn)
        self.files = FilesService(self.config, self.clock, db, self.db, self.group_commit)
        # Receipts commit in batches of their own, off the message path (issue 15);
        # typing is never stored, but needs a group's members (cached).
        self.receipts: GroupCommit[Any, Any] = GroupCommit(
            db, receipts.apply_batch_txn, on_result=fire_token)
        self.typing_members = GroupMembers(self.db, self.clock)

    def group_commit(self, db: Database, batch_txn: Any,
                     on_batch: Any = None) -> GroupCommit[Any, Any]:
        """A group commit for message rows; in a cluster its batches keep their place in
        the cluster's id order (`messenger.server.cluster.stream`)."""
        on_batch = self.search_index.after_batch(on_batch)
        window = self.config.commit_window
        if self.cluster is not None:
            return self.cluster.stream.group_commit(db, batch_txn, on_batch, window, self.clock)
        return GroupCommit(db, batch_txn, on_batch=on_batch, settling=CORK, window=window,
                           clock=self.clock)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.hasher.start()
        self.crypto.start()
        self.maintenance.start()
        self.search_index.start()
        self.files.start()
        self._sweeper = task.LoopingCall(self.sweep)
        self._sweeper.clock = self.clock
        self._sweeper.start(self._sweep_ticks * SWEEP_TICK, now=False)
        self._account_check = task.LoopingCall(self.check_accounts)
        self._account_check.clock = self.clock
        self._account_check.start(ACCOUNT_CHECK_INTERVAL, now=False)

    def stop(self) -> None:
        for loop in (self._sweeper, self._account_check):
            if loop is not None and loop.running:
                loop.stop()
        if self._sweep_next is not None and self._sweep_next.active():
            self._sweep_next.cancel()
        self.maintenance.stop()
        self.search_index.stop()
        self.hasher.stop()
        self.crypto.stop()
        self.refusals.flush()

    def count(self, name: str, amount: int = 1) -> None:
        """Count an event for the metrics (a dict increment: cheap on any path)."""
        self.counters[name] += amount

    def check_accounts(self) -> Any:
        """End the sessions of accounts that were deleted or admin-locked behind the
        server's back (by messenger-admin on the data dir). Timed lockouts are left alone:
        whoever triggers one must not be able to kick the owner off."""
        online = self.router.user_ids()
        if not online:
            return None
        d = self.db.read(users.barred_txn, online)
        d.addCallback(self._end_barred)
        d.addErrback(self._check_failed)
        return d

    def _check_failed(self, failure: Any) -> None:
        if not failure.check(Unavailable):  # an outage is logged once, by the store
            self.log.failure("Account check failed", failure)

    def _end_barred(self, barred: list[tuple[int, bool]]) -> None:
        for user_id, deleted in barred:
            session = self.router.session(user_id)
            if session is None or session.account is None:
                continue
            self.log.info("Closing the session of {account}: account {how}",
                          account=session.account_name,
                          how="deleted" if deleted else "locked")
            if deleted:
                self.account_deleted(user_id, session.account.name, DELETED_BY_ADMIN)
            else:
                self.router.end_session(user_id, LOCKED_BY_ADMIN)

    # -- live account changes (messenger-admin, later the cluster) ---------------------

    def account_changed(self, user_id: int, here_only: bool = False) -> Any:
        """An account was changed behind the server's back: apply it to its live session.

        The one entry point for changes made outside a request (the control channel of
        ``messenger-admin``; in a cluster, the same call arriving over the bus). Reads
        the account again and fires with what was done: ``"offline"`` (no live session
        here), ``"closed"`` (deleted or locked: the session is told why and closed) or
        ``"refreshed"`` (roles pushed to the session). In a cluster, a session held by
        another node is handled there (``here_only``: the call came from the bus).
        """
        if self.router.session(user_id) is None:
            if self.cluster is not None and not here_only:
                return self.cluster.account_changed(user_id)
            return defer.succeed("offline")
        d = self.db.read(users.get_by_id_txn, user_id)
        d.addCallback(self._apply_account, user_id)
        return d

    def operator_deleted_account(self, user_id: int, name: str,
                                 left_groups: list[tuple[int, str | None]]) -> Any:
        """``messenger-admin delete`` removed an account: forget it here and on every node
        (`account_deleted`), whether or not it was online, and tell the members of the
        groups it was in (`account_left_groups`). Fires with ``"closed"`` when its session
        was on this node, else ``"forgotten"``; refuses (`ValueError`) while the account
        still exists, so a wrong id cannot end someone's session."""
        d = self.db.read(users.get_by_id_txn, user_id)

        def forget(row: users.UserRow | None) -> str:
            if row is not None:
                raise ValueError(f"account {user_id} still exists")
            here = self.router.session(user_id) is not None
            self.log.info("Forgetting account {account} (#{user_id}): deleted by the"
                          " operator", account=name, user_id=user_id)
            self.account_deleted(user_id, name, DELETED_BY_ADMIN)
            self.account_left_groups(name, left_groups)
            return "closed" if here else "forgotten"
        return d.addCallback(forget)

    def account_left_groups(self, name: str,
                            left_groups: list[tuple[int, str | None]]) -> defer.Deferred[Any]:
        """A deleted account's groups that remain: their members online, on any node, get
        ``group_member_removed`` (reason ``deleted``) and, where it was the owner,
        ``group_role_changed`` naming the new owner; ``by`` is empty (no member did it).
        Called once, by the node that deleted the account."""
        if not left_groups:
            return defer.succeed(None)
        for group_id, _ in left_groups:
            self.typing_members.forget(group_id)
        d = self.db.read(groups.member_ids_of_txn, [group_id for group_id, _ in left_groups])

        def tell(members: dict[int, list[int]]) -> None:
            now = self.clock.seconds()
            for group_id, owner in left_groups:
                member_ids = members.get(group_id, [])
                self.router.push_many(member_ids, {
                    "action": "group_member_removed", "group_id": group_id,
                    "account_name": name, "reason": "deleted", "by": "", "time": now})
                if owner is not None:
                    self.router.push_many(member_ids, {
                        "action": "group_role_changed", "group_id": group_id,
                        "account_name": owner, "role": "owner", "by": "", "time": now})
        d.addCallback(tell)
        d.addErrback(lambda failure: self.log.failure(
            "Could not tell the groups of deleted account {account}", failure, account=name))
        return d

    def operator_deleted_group(self, group_id: int, name: str, member_ids: list[int]) -> Any:
        """``messenger-admin groups delete`` removed a group: its members online (on any
        node: the router knows where) get ``group_deleted`` with ``by`` empty, which says
        the server's operator did it. Fires with how many got it on this node; refuses
        (`ValueError`) while the group still exists."""
        d = self.db.read(groups.group_txn, group_id)

        def tell(group: Any) -> int:
            if group is not None:
                raise ValueError(f"group {group_id} still exists")
            self.typing_members.forget(group_id)
            self.log.info("Group #{group} {name!r} deleted by the operator; telling its"
                          " {count} members", group=group_id, name=name, count=len(member_ids))
            return self.router.push_many(member_ids, {
                "action": "group_deleted", "group_id": group_id, "name": name, "by": "",
                "time": self.clock.seconds()})
        return d.addCallback(tell)

    def _apply_account(self, row: users.UserRow | None, user_id: int) -> str:
        session = self.router.session(user_id)
        if session is None or session.account is None:
            return "offline"
        if row is None or row.admin_locked or (row.locked_until or 0.0) > self.clock.seconds():
            why = DELETED_BY_ADMIN if row is None else LOCKED_BY_ADMIN
            self.log.info("Closing the session of {account}: {why}",
                          account=session.account.name, why=why)
            if row is None:
                self.account_deleted(user_id, session.account.name, why)
            else:
                self.router.end_session(user_id, why)
            return "closed"
        account = session.account
        account.is_admin, account.is_premium = row.is_admin, row.is_premium
        self.router.push(user_id, {"action": "account", "time": self.clock.seconds(),
                                   "user": {"account_name": account.name,
                                            "email": account.email,
                                            "admin": account.is_admin,
                                            "premium": account.is_premium}})
        return "refreshed"

    def online(self) -> list[dict[str, Any]]:
        """Who is logged in on this node: name, address, since when, presence status."""
        return sorted(
            ({"account_name": session.account.name, "address": session.address,
              "since": self._since.get(session.account.id), "status": session.status}
             for session in self.router.sessions() if session.account is not None),
            key=lambda entry: entry["account_name"].lower())

    def sweep(self) -> None:
        """Keepalive: probe silent sessions and drop those that stopped answering.

        Every connection is checked once per sweep, in slices (`SWEEP_TICK`): a sweep
        starts with the first slice and the rest follow over the interval. A connection
        that closed meanwhile is skipped by its own ``check_alive``."""
        now = self.clock.seconds()
        self.refusals.flush_if_due(now)
        self.limits.prune()
        self.admission.prune()
        self.trimmer.check(len(self.connections))
        if self._sweep_next is not None and self._sweep_next.active():
            self._sweep_next.cancel()   # the last sweep has not finished: this one restarts it
        self._sweep_list, self._sweep_pos = list(self.connections), 0
        self._sweep_slice_size = -(-len(self._sweep_list) // self._sweep_ticks)
        self._sweep_slice()

    def _sweep_slice(self) -> None:
        self._sweep_next = None
        start = self._sweep_pos
        end = self._sweep_pos = start + self._sweep_slice_size
        now = self.clock.seconds()
        for connection in self._sweep_list[start:end]:
            connection.check_alive(now)
        if end < len(self._sweep_list):
            self._sweep_next = self.clock.callLater(SWEEP_TICK, self._sweep_slice)
        else:
            self._sweep_list = []

    # -- connections ----------------------------------------------------------------------

    def connection_made(self, connection: Any) -> MessengerError | None:
        """Count a new connection in; the error to refuse it with, if it may not stay."""
        self.connections.add(connection)
        self.trimmer.opened(len(self.connections))
        refusal = self.admission.admit(connection)
        if refusal is not None:
            self.refusals.note(refusal.message, connection.address)
            self.count("connections_refused")
        return refusal

    def connection_lost(self, connection: Any) -> None:
        self.admission.gone(connection)
        self.connections.discard(connection)
        if not self.connections and self._drain_waiters:
            waiters, self._drain_waiters = self._drain_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def close_connections(self, message: str = "The server is shutting down.",
                          grace: float = 2.0) -> defer.Deferred[None]:
        """Close every connection (logged-in users get ``message`` first); fires when all
        are gone. Connections that have not closed after ``grace`` seconds are aborted."""
        for connection in list(self.connections):
            connection.shutdown(message)
        if not self.connections:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._drain_waiters.append(waiter)
        timer = self.clock.callLater(grace, self._abort_connections)

        def drained(result: None) -> None:
            if timer.active():
                timer.cancel()
            return result
        return waiter.addBoth(drained)

    def _abort_connections(self) -> None:
        for connection in list(self.connections):
            self.log.info("Aborting {address}: it did not close in time",
                          address=connection.address)
            connection.transport.abortConnection()

    # -- sessions -------------------------------------------------------------------------

    def session_started(self, session: Session) -> None:
        """A connection logged in: it no longer counts as a cheap pre-login one."""
        self.admission.logged_in(session)
        if session.account is not None:
            self._since[session.account.id] = self.clock.seconds()

    def session_ended(self, session: Session) -> None:
        """A logged-in session closed (quit, drop, timeout): offline for everyone."""
        account = session.account
        assert account is not None
        self.router.detach(account.id, session)
        if not self.router.is_online(account.id):
            self._since.pop(account.id, None)
            self.presence.went_offline(account.id, account.name)
            self.calls.user_gone(account.id)

    def account_deleted(self, user_id: int, name: str, why: str) -> None:
        """Drop everything kept in memory about a deleted account: its live session (told
        ``why``), its place in others' presence and contact lists, the directory entry,
        its call and what the limits count for it. Ids are never reused, but nothing
        keyed by a dead id should outlive it. In a cluster every node does the same."""
        if self.cluster is not None:
            self.cluster.account_deleted(user_id, name, why)
        self.forget_account(user_id, name, why)

    def forget_account(self, user_id: int, name: str, why: str) -> None:
        """`account_deleted`, on this node only."""
        Router.end_session(self.router, user_id, why)   # here; the others were told
        self.presence.forget(user_id)
        self.directory.forget(name)
        self.calls.user_gone(user_id)
        self.limits.forget_account(user_id)
        contacts = []
        for session in self.router.sessions():
            if user_id in session.contact_ids:
                session.contact_ids.remove(user_id)
                if session.account is not None:
                    contacts.append(session.account.id)
        # Those who had it as a contact (online here) see it gone, not just offline.
        self.router.push_many(contacts, {"action": "contact_deleted", "account_name": name,
                                         "time": self.clock.seconds()})

    def notify_mail(self, template: str, to: str, **fields: Any) -> None:
        """Queue one e-mail; a failure to queue is logged, never raised into a request.

        Addresses under ``.invalid`` (auto-registered accounts) get nothing: that domain
        never exists (RFC 2606), the mail would only wait in the spool for days.
        """
        if self.mailer is None or not to or to.lower().endswith(".invalid"):
            return
        d = self.mailer.send_template(to, template, **fields)
        d.addErrback(lambda f: self.log.failure("Could not queue the {template} e-mail", f,
                                                template=template))
