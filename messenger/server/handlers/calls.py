"""Call signalling actions: call_dial and call_hangup (the state lives in server/calls.py)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.states import LOGGED_IN
from messenger.wire.errors import BadRequest


@defer.inlineCallbacks
def call_dial(session: Any, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    target = yield ctx.directory.require(request["user_id"])
    ctx.blocks.check(target.id, session.account.id, target.name)
    # A cluster's call service answers with a Deferred (the call may live on another node).
    result = yield ctx.calls.dial(session, target.id, target.name,
                                  list(request.get("codecs") or []))
    return result


def call_hangup(session: Any, request: dict[str, Any]) -> dict[str, Any]:
    reason = request.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("reason must be a string")
    return session.ctx.calls.hangup(session, request.get("call_id"), reason)


ROUTES = {
    "call_dial": (call_dial, LOGGED_IN),
    "call_hangup": (call_hangup, LOGGED_IN),
}
