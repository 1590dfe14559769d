"""Accounts: register, authenticate, resume, logout, set_password, quit.

A login ends the same way whatever proved it (`_complete_login`): one live session per
account (a second gets 409 and the first is untouched), a login-history row with the peer
address, an optional resume token (256 random bits; only its SHA-256 is stored), the
new-location e-mail, presence, and the reply.

One login at a time per connection (`_one_login`): a second login request while one is
being processed gets 409. The lockout state is read and written in the same write
transaction as the attempt it accounts for (`messenger.store.accounts`), so parallel
guesses cannot lose counts and a lock set meanwhile is never lifted by a login.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from messenger.server.passwords import QueueFull
from messenger.server.replies import Closing
from messenger.server.session import Account, Session
from messenger.server.states import ANY_ENCRYPTED, BEFORE_LOGIN, LOGGED_IN, State
from messenger.store import accounts, lockout, premium, tokens, users
from messenger.store.errors import Duplicate, InvalidCode, Locked, Missing, Revoked
from messenger.wire import codes, jim
from messenger.wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotAuthorised,
    ServiceUnavailable,
    TooManyRequests,
    WrongCredentials,
)

WRONG_CREDENTIALS = "wrong account name or password"
AUTO_EMAIL_DOMAIN = "auto-registered.invalid"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def user_info(account: Account) -> dict[str, Any]:
    return {"account_name": account.name, "email": account.email, "admin": account.is_admin,
            "premium": account.is_premium}


def locked_error(state: lockout.LockState) -> Forbidden:
    if state.admin_locked or state.locked_until is None:
        return Forbidden("account locked by an administrator", locked_until=None)
    return Forbidden(f"account locked until {format_time(state.locked_until)}",
                     locked_until=state.locked_until)


def limits_info(ctx: Any) -> dict[str, int]:
    """The limits a client must know, announced in every login reply (one source)."""
    return {"max_frame": ctx.config.max_frame, "max_body": ctx.config.max_body,
            "max_payload": jim.MAX_SERVER_PAYLOAD, "max_file_size": ctx.config.files.max_size}


def _alive(session: Session) -> Callable[[], bool]:
    """For the hasher: is the connection that asked still there?"""
    return lambda: session.state is not State.CLOSED


@defer.inlineCallbacks
def _verify(session: Session, password: str, stored: str | None) -> Any:
    """Check a password in the hasher's queue. A full queue: 503 for an existing account;
    for an unknown name, a plain "wrong credentials" without the decoy hash (under load,
    refusing a name that does not exist is made cheap on purpose)."""
    try:
        matches = yield session.ctx.hasher.verify(password, stored, _alive(session))
    except QueueFull as full:
        if stored is None:
            session.ctx.count("decoys_skipped")
            return False
        raise ServiceUnavailable("the server is busy checking passwords; try again"
                                 " shortly", full.retry_after) from None
    return matches


@defer.inlineCallbacks
def _new_hash(session: Session, password: str) -> Any:
    try:
        password_hash = yield session.ctx.hasher.hash(password, _alive(session))
    except QueueFull as full:
        raise ServiceUnavailable("the server is busy; try again shortly",
                                 full.retry_after) from None
    return password_hash


def _rehash_later(session: Session, row: users.UserRow, password: str) -> None:
    """The stored hash has a lower cost than configured: store a new one (after the login,
    which never waits for it; a busy hasher just leaves it for the next login)."""
    ctx = session.ctx
    d = ctx.hasher.hash(password)
    d.addCallback(lambda new: ctx.db.write(users.rehash_txn, row.id, row.password_hash, new))
    d.addErrback(lambda f: None if f.check(QueueFull) else
                 ctx.log.failure("Re-hashing a password failed", f))


def _check_login_rate(session: Session) -> None:
    wait = session.ctx.router.login_wait()
    if wait is not None:    # a cluster whose Redis is away: nothing is done (no account)
        raise ServiceUnavailable("the cluster's session registry (Redis) is unavailable;"
                                 " try again shortly", wait)
    allowed, retry = session.ctx.limits.allow_login(session.address)
    if not allowed:
        session.ctx.metrics.refused("login")
        raise TooManyRequests("too many login attempts from your address; try again later",
                              retry)


def _same_network(address: str, known: list[str], prefix4: int, prefix6: int) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address in known
    prefix = prefix4 if ip.version == 4 else prefix6
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    for other in known:
        try:
            if ipaddress.ip_address(other) in network:
                return True
        except ValueError:
            continue
    return False


def _revoke_quietly(ctx: Any, token_hash: str) -> None:
    """Revoke a token nobody will get to see; a failure is logged, not raised."""
    d = ctx.db.write(tokens.revoke_txn, token_hash)
    d.addErrback(lambda f: ctx.log.failure("Could not revoke an unused resume token", f))


@defer.inlineCallbacks
def _complete_login(session: Session, row: users.UserRow, method: str, remember: bool,
                    code: int = codes.OK, token_hash: str | None = None,
                    token_expires: float | None = None) -> Any:
    ctx = session.ctx
    if ctx.router.is_online(row.id):
        _conflict(session, row.id)
    now = ctx.clock.seconds()
    token = new_token_hash = None
    used_token_hash = token_hash
    if remember and token_hash is None:
        token = secrets.token_urlsafe(32)
        token_hash = new_token_hash = hash_token(token)
        token_expires = now + ctx.config.token_lifetime
    try:
        known, contact_rows = yield ctx.db.write(
            accounts.login_success_txn, row.id, now, session.address, method,
            new_token_hash, token_expires or 0.0, used_token_hash)
    except Missing:
        raise NotAuthorised("this account no longer exists") from None
    except Locked as locked:
        raise locked_error(locked.state) from None
    except Revoked:
        raise NotAuthorised("invalid resume token: log in with your password") from None
    if session.state is not State.UNAUTHENTICATED:
        # The connection went away meanwhile: nobody will see the token.
        if new_token_hash is not None:
            _revoke_quietly(ctx, new_token_hash)
        return None
    try:
        # A cluster's router takes the account's lease in Redis: a Deferred there.
        attached = yield ctx.router.attach(row.id, session)
    except ServiceUnavailable:
        if new_token_hash is not None:
            _revoke_quietly(ctx, new_token_hash)
        raise
    if session.state is not State.UNAUTHENTICATED:
        if attached:
            ctx.router.detach(row.id, session)
        if new_token_hash is not None:
            _revoke_quietly(ctx, new_token_hash)
        return None
    if not attached:
        if new_token_hash is not None:
            _revoke_quietly(ctx, new_token_hash)
        _conflict(session, row.id)
    account = Account(row.id, row.name, row.email, row.is_admin, row.is_premium)
    session.token_hash = token_hash
    session.contact_ids = [contact_id for contact_id, _ in contact_rows]
    session.logged_in(account)
    ctx.directory.remember(row.id, row.name)
    ctx.presence.went_online(row.id, row.name, session.contact_ids)
    if known and method != "register" and not _same_network(
            session.address, known, ctx.config.mail.new_location_prefix,
            ctx.config.mail.new_location_prefix6):
        session.log.info("Account {account} logged in from a new address {address}",
                         account=row.name, address=session.address)
        ctx.notify_mail("new_location", row.email, account_name=row.name, email=row.email,
                        address=session.address, time=format_time(now))
    reply: dict[str, Any] = {"response": code, "user": user_info(account),
                             "limits": limits_info(ctx)}
    if token is not None:
        reply["token"] = token
    if token_expires:
        reply["token_expires"] = token_expires
    return reply


def _conflict(session: Session, user_id: int) -> None:
    holder = session.ctx.router.session(user_id)
    if holder is not None and holder is not session and holder.probe_id is None:
        # Ask the holder whether it is still there: a half-open connection is dropped
        # after the probe timeout, and the next attempt then succeeds.
        holder.probe(session.ctx.clock.seconds())
    raise Conflict("already connected: this account has a live session elsewhere")


def _one_login(handler: Callable[[Any, dict[str, Any]], Any]) -> Callable[..., Any]:
    """Refuse a login request while another one on the same connection is in flight."""
    @functools.wraps(handler)
    def guarded(session: Session, request: dict[str, Any]) -> Any:
        if session.login_request is not None:
            raise Conflict("a login is already in progress on this connection")
        session.login_request = request["id"]

        def done(result: Any) -> Any:
            session.login_request = None
            return result
        return handler(session, request).addBoth(done)
    return guarded


# -- handlers -----------------------------------------------------------------------------

@defer.inlineCallbacks
def register(session: Session, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    _check_login_rate(session)
    user = request["user"]
    name, email = user["account_name"], user["email"]
    code = request.get("premium_code")
    existing = yield ctx.db.read(users.get_by_name_txn, name)
    if existing is not None:
        raise Conflict("account name already taken")
    password_hash = yield _new_hash(session, user["password"])
    try:
        row = yield ctx.db.write(users.create_txn, name, email, password_hash,
                                 ctx.clock.seconds(), premium.hash_code(code) if code else None)
    except Duplicate as error:
        raise Conflict(f"{error.field} already taken") from None
    except InvalidCode:
        raise BadRequest("invalid or already used premium code") from None
    session.log.info("Registered account {account} from {address} (admin={admin},"
                     " premium={premium})", account=row.name, address=session.address,
                     admin=row.is_admin, premium=row.is_premium)
    ctx.notify_mail("welcome", row.email, account_name=row.name, email=row.email,
                    address=session.address, time=format_time(row.created))
    reply = yield _complete_login(session, row, "register", bool(request.get("remember")),
                                  codes.CREATED)
    return reply


@defer.inlineCallbacks
def authenticate(session: Session, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    _check_login_rate(session)
    user = request["user"]
    name, password = user["account_name"], user["password"]
    remember = bool(request.get("remember"))
    row = yield ctx.db.read(users.get_by_name_txn, name)
    if row is None:
        if ctx.config.auto_register:
            reply = yield _auto_register(session, name, password, remember)
            return reply
        yield _verify(session, password, None)
        raise WrongCredentials(WRONG_CREDENTIALS)
    now = ctx.clock.seconds()
    state = accounts.lock_state(row)
    if lockout.is_locked(state, now):
        raise locked_error(state)
    matches = yield _verify(session, password, row.password_hash)
    if not matches:
        now = ctx.clock.seconds()
        new_state, locked_now = yield ctx.db.write(
            accounts.login_failure_txn, row.id, now, session.address, "password",
            ctx.lockout_policy)
        if locked_now:
            ctx.metrics.locked_out()
            session.log.warn("Account {account} locked after {count} failed logins",
                             account=row.name, count=new_state.failed_count)
            ctx.notify_mail("lockout", row.email, account_name=row.name, email=row.email,
                            address=session.address, time=format_time(now),
                            unlock_time=format_time(new_state.locked_until or now))
        raise WrongCredentials(WRONG_CREDENTIALS)
    reply = yield _complete_login(session, row, "password", remember)
    if reply is not None and ctx.hasher.needs_rehash(row.password_hash):
        _rehash_later(session, row, password)
    return reply


@defer.inlineCallbacks
def _auto_register(session: Session, name: str, password: str, remember: bool) -> Any:
    ctx = session.ctx
    if len(password) < 8:
        raise BadRequest("a new account needs a password of at least 8 characters")
    password_hash = yield _new_hash(session, password)
    try:
        row = yield ctx.db.write(users.create_txn, name, f"{name.lower()}@{AUTO_EMAIL_DOMAIN}",
                                 password_hash, ctx.clock.seconds())
    except Duplicate:
        raise Conflict("account name already taken") from None
    session.log.info("Auto-registered account {account} from {address}", account=row.name,
                     address=session.address)
    reply = yield _complete_login(session, row, "register", remember, codes.CREATED)
    return reply


@defer.inlineCallbacks
def resume(session: Session, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    _check_login_rate(session)
    token_hash = hash_token(request["token"])
    found = yield ctx.db.read(tokens.lookup_txn, token_hash)
    if found is None:
        raise NotAuthorised("invalid resume token: log in with your password")
    user_id, expires = found
    now = ctx.clock.seconds()
    if expires <= now:
        yield ctx.db.write(tokens.revoke_txn, token_hash)
        raise NotAuthorised("resume token expired: log in with your password")
    row = yield ctx.db.read(users.get_by_id_txn, user_id)
    if row is None or row.name.lower() != request["user"]["account_name"].lower():
        raise NotAuthorised("invalid resume token: log in with your password")
    state = accounts.lock_state(row)
    if lockout.is_locked(state, now):
        raise locked_error(state)
    reply = yield _complete_login(session, row, "token", False, token_hash=token_hash,
                                  token_expires=expires)
    return reply


def quit_(session: Session, request: dict[str, Any]) -> Closing:
    return Closing({"response": codes.OK, "alert": "bye"})


@defer.inlineCallbacks
def logout(session: Session, request: dict[str, Any]) -> Any:
    """Revoke this session's resume token and close."""
    if session.token_hash is not None:
        yield session.ctx.db.write(tokens.revoke_txn, session.token_hash)
        session.token_hash = None
    return Closing({"response": codes.OK, "alert": "logged out"})


@defer.inlineCallbacks
def set_password(session: Session, request: dict[str, Any]) -> Any:
    """Change the password; every resume token is revoked (this session gets a new one)."""
    ctx = session.ctx
    _check_login_rate(session)  # each try proves or disproves a password, like a login
    row = yield ctx.db.read(users.get_by_id_txn, session.account.id)
    if row is None:
        raise NotAuthorised("account no longer exists")
    matches = yield _verify(session, request["old_password"], row.password_hash)
    if not matches:
        raise WrongCredentials("wrong password")
    password_hash = yield _new_hash(session, request["new_password"])
    now = ctx.clock.seconds()
    token = token_hash = None
    expires = now + ctx.config.token_lifetime
    if session.token_hash is not None:
        token = secrets.token_urlsafe(32)
        token_hash = hash_token(token)
    yield ctx.db.write(accounts.set_password_txn, row.id, password_hash, now, token_hash,
                       expires)
    session.token_hash = token_hash
    reply: dict[str, Any] = {"response": codes.OK, "alert": "password changed"}
    if token is not None:
        reply.update(token=token, token_expires=expires)
    return reply


def presence(session: Session, request: dict[str, Any]) -> dict[str, Any]:
    account = session.account
    session.status = request["status"]
    session.ctx.presence.set_status(account.id, account.name, request["status"])
    return {"response": codes.OK}


ROUTES = {
    "register": (_one_login(register), BEFORE_LOGIN, True),
    "authenticate": (_one_login(authenticate), BEFORE_LOGIN, True),
    "resume": (_one_login(resume), BEFORE_LOGIN, True),
    "quit": (quit_, ANY_ENCRYPTED),
    "logout": (logout, LOGGED_IN),
    "set_password": (set_password, LOGGED_IN, True),
    "presence": (presence, LOGGED_IN),
}
