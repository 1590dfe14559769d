"""Admin actions over the protocol. The role is checked against the database on every
call (whatever the client shows), and every change leaves an audit row."""

from __future__ import annotations

import secrets
from typing import Any

from twisted.internet import defer

from messenger.server.handlers.accounts import format_time, hash_code, user_info
from messenger.server.states import LOGGED_IN
from messenger.store import adminops, audit, logins, premium, users
from messenger.store.errors import LastAdmin, Missing
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Conflict, Forbidden, NotFound

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: easy to read aloud


def new_premium_code() -> str:
    """16 characters in four dash-separated groups (80 bits)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def user_view(row: users.UserRow, online: bool, now: float) -> dict[str, Any]:
    locked = row.admin_locked or (row.locked_until is not None and row.locked_until > now)
    return {"account_name": row.name, "email": row.email, "admin": row.is_admin,
            "premium": row.is_premium, "locked": locked,
            "locked_until": row.locked_until if locked and not row.admin_locked else None,
            "created": row.created, "online": online}


@defer.inlineCallbacks
def _require_admin(session: Any) -> Any:
    row = yield session.ctx.db.read(users.get_by_id_txn, session.account.id)
    if row is None or not row.is_admin:
        session.account.is_admin = False
        raise Forbidden("administrators only")
    return row


@defer.inlineCallbacks
def _change(session: Any, txn: Any, *args: Any) -> Any:
    """Run one adminops change as this admin; map store outcomes to JIM errors."""
    ctx = session.ctx
    try:
        row = yield ctx.db.write(txn, session.account.name, *args, ctx.clock.seconds())
    except Missing as error:
        raise NotFound(f"no user named '{error}'") from None
    except LastAdmin:
        raise Conflict("the last administrator cannot lose the admin role") from None
    return row


def _refresh_session(session: Any, row: users.UserRow) -> None:
    """Tell a live session of the changed account about its new roles."""
    target = session.ctx.router.session(row.id)
    if target is not None and target.account is not None:
        target.account.is_admin = row.is_admin
        target.account.is_premium = row.is_premium
        target.push({"action": "account", "user": user_info(target.account),
                     "time": session.ctx.clock.seconds()})


def _kick(session: Any, user_id: int, why: str) -> None:
    target = session.ctx.router.session(user_id)
    if target is not None:
        target.push({"action": "notice", "level": codes.IMPORTANT_NOTICE, "message": why,
                     "time": session.ctx.clock.seconds()})
        target.close()


@defer.inlineCallbacks
def list_users(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    ctx = session.ctx
    limit = request.get("limit") or 50
    rows = yield ctx.db.read(users.list_txn, request.get("query"), request.get("offset") or 0,
                             limit + 1)
    now = ctx.clock.seconds()
    return {"response": codes.ACCEPTED,
            "alert": [user_view(r, ctx.router.is_online(r.id), now) for r in rows[:limit]],
            "more": len(rows) > limit}


@defer.inlineCallbacks
def set_admin(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    row = yield _change(session, adminops.set_admin_txn, request["user_id"], request["value"])
    _refresh_session(session, row)
    return {"response": codes.OK, "user": user_view(row, True, 0)}


@defer.inlineCallbacks
def set_premium(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    row = yield _change(session, adminops.set_premium_txn, request["user_id"],
                        request["value"])
    _refresh_session(session, row)
    return {"response": codes.OK, "user": user_view(row, True, 0)}


@defer.inlineCallbacks
def lock(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    ctx = session.ctx
    if request["user_id"].lower() == session.account.name.lower():
        raise BadRequest("you cannot lock your own account")
    minutes = request.get("minutes")
    until = ctx.clock.seconds() + minutes * 60 if minutes else None
    row = yield _change(session, adminops.lock_txn, request["user_id"], until)
    _kick(session, row.id, "Your account was locked by an administrator"
          + (f" until {format_time(until)}." if until else "."))
    return {"response": codes.OK, "user": user_view(row, False, ctx.clock.seconds())}


@defer.inlineCallbacks
def unlock(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    row = yield _change(session, adminops.unlock_txn, request["user_id"])
    return {"response": codes.OK, "user": user_view(row, False, session.ctx.clock.seconds())}


@defer.inlineCallbacks
def login_history(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    ctx = session.ctx
    target = yield ctx.db.read(users.get_by_name_txn, request["user_id"])
    if target is None:
        raise NotFound(f"no user named '{request['user_id']}'")
    limit = request.get("limit") or 50
    rows = yield ctx.db.read(logins.history_txn, target.id, request.get("before"), limit + 1)
    return {"response": codes.ACCEPTED,
            "alert": [{"login_id": login_id, "time": when, "address": address,
                       "method": method, "success": success}
                      for login_id, when, address, method, success in rows[:limit]],
            "more": len(rows) > limit}


@defer.inlineCallbacks
def create_code(session: Any, request: dict[str, Any]) -> Any:
    """A new single-use premium code, shown this once (only its hash is kept)."""
    yield _require_admin(session)
    ctx = session.ctx
    code = new_premium_code()
    code_id = yield ctx.db.write(adminops.create_code_txn, session.account.name,
                                 hash_code(code), code[:4] + "-…", ctx.clock.seconds())
    return {"response": codes.CREATED, "code": code, "code_id": code_id}


@defer.inlineCallbacks
def list_codes(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    limit = request.get("limit") or 50
    rows = yield session.ctx.db.read(premium.list_txn, request.get("offset") or 0, limit + 1)
    return {"response": codes.ACCEPTED,
            "alert": [{"code_id": code_id, "hint": hint, "created_by": by, "created": created,
                       "used_by": used_by, "used": used}
                      for code_id, hint, by, created, used_by, used in rows[:limit]],
            "more": len(rows) > limit}


@defer.inlineCallbacks
def delete_user(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    ctx = session.ctx
    if request["user_id"].lower() == session.account.name.lower():
        raise BadRequest("you cannot delete your own account here")
    row = yield _change(session, adminops.delete_user_txn, request["user_id"])
    _kick(session, row.id, "Your account was deleted by an administrator.")
    ctx.directory.forget(row.name)
    return {"response": codes.OK}


@defer.inlineCallbacks
def audit_log(session: Any, request: dict[str, Any]) -> Any:
    yield _require_admin(session)
    limit = request.get("limit") or 50
    rows = yield session.ctx.db.read(audit.list_txn, request.get("before"), limit + 1)
    return {"response": codes.ACCEPTED,
            "alert": [{"audit_id": a_id, "time": when, "actor": actor, "action": action,
                       "target": target, "detail": detail}
                      for a_id, when, actor, action, target, detail in rows[:limit]],
            "more": len(rows) > limit}


ROUTES = {
    "admin_list_users": (list_users, LOGGED_IN),
    "admin_set_admin": (set_admin, LOGGED_IN),
    "admin_set_premium": (set_premium, LOGGED_IN),
    "admin_lock": (lock, LOGGED_IN),
    "admin_unlock": (unlock, LOGGED_IN),
    "admin_login_history": (login_history, LOGGED_IN),
    "admin_create_code": (create_code, LOGGED_IN),
    "admin_list_codes": (list_codes, LOGGED_IN),
    "admin_delete_user": (delete_user, LOGGED_IN),
    "admin_audit": (audit_log, LOGGED_IN),
}
