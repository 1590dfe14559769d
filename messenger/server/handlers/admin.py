"""Admin actions over the protocol (``admin_*``).

The role is read from the database on every call, whatever the client shows or the
session remembers: a non-admin gets 403 and nothing happens (the attempt is logged).
Every admin action, reads included, leaves an audit row (who, what, whom, when) in the
same transaction as its effect; the changes themselves live in `messenger.store.adminops`,
shared with the ``messenger-admin`` tool.

Effects on live sessions: a changed role is pushed to that user's session (``account``
push); a locked or deleted account's session gets a ``notice`` push and is closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.handlers.accounts import format_time, user_info
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import adminops, premium, users
from messenger.store.errors import LastAdmin, Missing, NotAdmin
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Conflict, Forbidden, NotFound

PAGE = 50


def user_view(row: users.UserRow, online: bool, now: float) -> dict[str, Any]:
    """An account as the admin panel shows it."""
    locked = row.admin_locked or (row.locked_until is not None and row.locked_until > now)
    return {"account_name": row.name, "email": row.email, "admin": row.is_admin,
            "premium": row.is_premium, "locked": locked,
            "locked_until": row.locked_until if locked and not row.admin_locked else None,
            "created": row.created, "online": online}


def _view(session: Session, row: users.UserRow) -> dict[str, Any]:
    ctx = session.ctx
    # Presence, not the router: in a cluster it also knows the users of other nodes.
    return user_view(row, ctx.presence.status_of(row.id) != "offline", ctx.clock.seconds())


@defer.inlineCallbacks
def _run(session: Session, action: str, txn: Any, *args: Any) -> Any:
    """Run one adminops function as this admin, the role checked in the same transaction
    as the change (a role revoked meanwhile cannot slip through); map store outcomes to
    JIM errors."""
    ctx = session.ctx
    account = session.account
    assert account is not None
    try:
        result = yield ctx.db.write(adminops.as_admin_txn, account.id, txn, account.name,
                                    *args, ctx.clock.seconds())
    except NotAdmin:
        account.is_admin = False
        session.log.warn("Refused {action} to non-admin {account} at {address}",
                         action=action, account=account.name, address=session.address)
        raise Forbidden("administrators only") from None
    except Missing as error:
        raise NotFound(f"no user named '{error}'") from None
    except LastAdmin:
        raise Conflict("the last administrator who can log in cannot lose the admin role,"
                       " be locked or be deleted; make another administrator first") \
            from None
    return result


def _page(rows: list[Any], limit: int, view: Any) -> Page:
    return Page([view(row) for row in rows[:limit]], more=len(rows) > limit)


def _refresh_session(session: Session, row: users.UserRow) -> None:
    """Tell a live session of the changed account about its new roles."""
    ctx = session.ctx
    target = ctx.router.session(row.id)
    if target is not None and target.account is not None:
        target.account.is_admin = row.is_admin
        target.account.is_premium = row.is_premium
        ctx.router.push(row.id, {"action": "account", "user": user_info(target.account),
                                 "time": ctx.clock.seconds()})


@defer.inlineCallbacks
def _not_self(session: Session, request: dict[str, Any], action: str, refusal: str) -> Any:
    """Refuse an action on one's own account (after the role check, so a non-admin hears
    only "administrators only")."""
    account = session.account
    assert account is not None
    if request["user_id"].lower() == account.name.lower():
        yield _run(session, action, adminops.nothing_txn)
        raise BadRequest(refusal)


# -- handlers -----------------------------------------------------------------------------

@defer.inlineCallbacks
def list_users(session: Session, request: dict[str, Any]) -> Any:
    limit = request.get("limit") or PAGE
    rows = yield _run(session, "admin_list_users", adminops.list_users_audited_txn,
                      request.get("query"), request.get("offset") or 0, limit + 1)
    return _page(rows, limit, lambda row: _view(session, row))


@defer.inlineCallbacks
def set_admin(session: Session, request: dict[str, Any]) -> Any:
    row = yield _run(session, "admin_set_admin", adminops.set_admin_txn, request["user_id"],
                     request["value"])
    _refresh_session(session, row)
    return {"response": codes.OK, "user": _view(session, row)}


@defer.inlineCallbacks
def set_premium(session: Session, request: dict[str, Any]) -> Any:
    row = yield _run(session, "admin_set_premium", adminops.set_premium_txn,
                     request["user_id"], request["value"])
    _refresh_session(session, row)
    return {"response": codes.OK, "user": _view(session, row)}


@defer.inlineCallbacks
def lock(session: Session, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    yield _not_self(session, request, "admin_lock", "you cannot lock your own account")
    minutes = request.get("minutes")
    until = ctx.clock.seconds() + minutes * 60 if minutes else None
    row = yield _run(session, "admin_lock", adminops.lock_txn, request["user_id"], until)
    ctx.router.end_session(row.id, "Your account was locked by an administrator"
                           + (f" until {format_time(until)}." if until else "."))
    return {"response": codes.OK, "user": _view(session, row)}


@defer.inlineCallbacks
def unlock(session: Session, request: dict[str, Any]) -> Any:
    row = yield _run(session, "admin_unlock", adminops.unlock_txn, request["user_id"])
    return {"response": codes.OK, "user": _view(session, row)}


@defer.inlineCallbacks
def login_history(session: Session, request: dict[str, Any]) -> Any:
    limit = request.get("limit") or PAGE
    rows = yield _run(session, "admin_login_history", adminops.login_history_audited_txn,
                      request["user_id"], request.get("before"), limit + 1)
    return _page(rows, limit, lambda r: {"login_id": r[0], "time": r[1], "address": r[2],
                                         "method": r[3], "success": r[4]})


@defer.inlineCallbacks
def create_code(session: Session, request: dict[str, Any]) -> Any:
    """A new single-use premium code, shown this once (only its hash is kept)."""
    code = premium.new_code()
    code_id = yield _run(session, "admin_create_code", adminops.create_code_txn,
                         premium.hash_code(code), premium.hint(code))
    return {"response": codes.CREATED, "code": code, "code_id": code_id}


@defer.inlineCallbacks
def list_codes(session: Session, request: dict[str, Any]) -> Any:
    limit = request.get("limit") or PAGE
    rows = yield _run(session, "admin_list_codes", adminops.list_codes_audited_txn,
                      request.get("offset") or 0, limit + 1)
    return _page(rows, limit, lambda r: {"code_id": r[0], "hint": r[1], "created_by": r[2],
                                         "created": r[3], "used_by": r[4], "used": r[5]})


@defer.inlineCallbacks
def delete_user(session: Session, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    yield _not_self(session, request, "admin_delete_user",
                    "you cannot delete your own account here")
    deleted = yield _run(session, "admin_delete_user", adminops.delete_user_txn,
                         request["user_id"])
    row = deleted.row
    ctx.account_deleted(row.id, row.name, "Your account was deleted by an administrator.")
    ctx.account_left_groups(row.name, deleted.groups)
    return {"response": codes.OK}


@defer.inlineCallbacks
def audit_log(session: Session, request: dict[str, Any]) -> Any:
    limit = request.get("limit") or PAGE
    rows = yield _run(session, "admin_audit", adminops.audit_audited_txn,
                      request.get("before"), limit + 1)
    return _page(rows, limit, lambda r: {"audit_id": r[0], "time": r[1], "actor": r[2],
                                         "action": r[3], "target": r[4], "detail": r[5]})


ROUTES = {
    "admin_list_users": (list_users, LOGGED_IN, True),
    "admin_set_admin": (set_admin, LOGGED_IN),
    "admin_set_premium": (set_premium, LOGGED_IN),
    "admin_lock": (lock, LOGGED_IN),
    "admin_unlock": (unlock, LOGGED_IN),
    "admin_login_history": (login_history, LOGGED_IN, True),
    "admin_create_code": (create_code, LOGGED_IN),
    "admin_list_codes": (list_codes, LOGGED_IN, True),
    "admin_delete_user": (delete_user, LOGGED_IN),
    "admin_audit": (audit_log, LOGGED_IN, True),
}
