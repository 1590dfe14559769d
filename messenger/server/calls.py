"""Call signalling: the dial-in system that starts 1:1 calls and ends them.

A call exists from the first ``call_dial`` until it ends. Its states:

* RINGING: one side dialled; the other got ``call_ring``. Dialling back accepts; a
  ``call_hangup`` from either side ends it (declined / cancelled); no answer within the
  ring timeout ends it too.
* ACTIVE: both dialled. The server minted a call key and one relay token per member,
  registered the call with the UDP relay (`CallTable`) and pushed ``call_start`` to both.
  If the relay has not heard a HELLO from both members within ``media_timeout`` the call
  ends ("media failed"): the server never lets a call look alive on an empty path.
* ENDED: ``call_end`` went to both; the relay forgets the call.

Ring floods: dialling is limited per caller (``dial_limit``) and each user can be rung
only so often (``ring_limit``), whoever dials; past either a 429 with ``retry_after``.
A ring that ends (answered, declined, cancelled, timed out) frees both users at once.

Each user is in at most one call. The transitions are the methods of `CallService`, each
checking the state it starts from; the relay (`messenger.server.relay`) carries the
audio and knows nothing of this.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from messenger.server.ratelimit import RateLimiter
from messenger.server.relay import CallEnded, CallTable
from messenger.server.router import Router
from messenger.wire import media
from messenger.wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    TooManyRequests,
)


class CallState(enum.Enum):
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"


# Why a call ended, as told in call_end.
HANGUP = "hangup"
DECLINED = "declined"
CANCELLED = "cancelled"
NO_ANSWER = "no answer"
DISCONNECTED = "disconnected"
MEDIA_FAILED = "media failed"     # no audio path (a client's verdict, or no HELLOs at all)
MEDIA_LOST = "media lost"         # a client heard nothing from its peer for too long
CLIENT_REASONS = frozenset({MEDIA_FAILED, MEDIA_LOST})   # what call_hangup may give

DIALS_PER_MINUTE = 10             # per caller
RINGS_PER_MINUTE = 6              # per callee, whoever dials
MEDIA_TIMEOUT = 20.0              # both members must reach the relay within this


@dataclass(eq=False)
class Party:
    user_id: int
    name: str
    session: Any
    codecs: list[str] = field(default_factory=list)
    dialled: bool = False


@dataclass(eq=False)
class Call:
    call_id: bytes
    parties: tuple[Party, Party]      # index 0 = the caller, 1 = the callee
    state: CallState = CallState.RINGING
    timer: IDelayedCall | None = None
    media_wait: Any = None

    @property
    def hex_id(self) -> str:
        return self.call_id.hex()

    def party(self, user_id: int) -> Party:
        return self.parties[0] if self.parties[0].user_id == user_id else self.parties[1]

    def other(self, user_id: int) -> Party:
        return self.parties[1] if self.parties[0].user_id == user_id else self.parties[0]


class CallService:
    log = Logger()

    def __init__(self, router: Router, table: CallTable, clock: Any, ring_timeout: float,
                 public_host: str = "", relay_port: int = 0) -> None:
        self._router = router
        self._table = table
        self._clock = clock
        self._ring_timeout = ring_timeout
        self._public_host = public_host
        self.relay_port = relay_port
        self.relay_tcp_port: int | None = None     # set when the TCP relay listens
        self.relay_address: tuple[str, int] | None = None   # --relay-address
        self.media_timeout = MEDIA_TIMEOUT
        self.dial_limit = RateLimiter.per_minute(DIALS_PER_MINUTE, clock)
        self.ring_limit = RateLimiter.per_minute(RINGS_PER_MINUTE, clock)
        self._by_user: dict[int, Call] = {}
        self._by_id: dict[bytes, Call] = {}

    def call_of(self, user_id: int) -> Call | None:
        return self._by_user.get(user_id)

    # -- transitions ----------------------------------------------------------------------

    def dial(self, session: Any, target_id: int, target_name: str,
             codecs: list[str]) -> dict[str, Any]:
        """``session``'s user dials ``target``: ring them, or accept their ring."""
        me = session.account
        if target_id == me.id:
            raise BadRequest("you cannot call yourself")
        mine = self._by_user.get(me.id)
        if mine is not None:
            return self.dial_back(mine, me.id, target_id, codecs, session)
        if target_id not in session.contact_ids:
            raise Forbidden(f"'{target_name}' is not in your contacts; add them first")
        if not self.reachable(target_id):
            raise Gone(f"'{target_name}' is offline")
        if target_id in self._by_user:
            raise Conflict(f"'{target_name}' is busy in another call")
        allowed, wait = self.dial_limit.check(me.id, update=False)
        if not allowed:
            raise TooManyRequests("you are calling too often; try again later", wait)
        allowed, wait = self.ring_limit.check(target_id, update=False)
        if not allowed:
            raise TooManyRequests(f"'{target_name}' was called too often just now; try"
                                  " again later", wait)
        self.dial_limit.check(me.id)
        self.ring_limit.check(target_id)
        call = Call(media.new_call_id(), (
            Party(me.id, me.name, session, list(codecs), dialled=True),
            Party(target_id, target_name, self._router.session(target_id))))
        self._by_user[me.id] = self._by_user[target_id] = call
        self._by_id[call.call_id] = call
        call.timer = self._clock.callLater(self._ring_timeout, self._end, call, NO_ANSWER,
                                           None)
        self._router.push(target_id, {"action": "call_ring", "call_id": call.hex_id,
                                      "from": me.name, "time": self._clock.seconds()})
        self.log.info("{caller} is calling {callee}", caller=me.name, callee=target_name)
        return {"response": 200, "call_id": call.hex_id, "state": call.state.value}

    def dial_back(self, mine: Call, user_id: int, target_id: int, codecs: list[str],
                  session: Any) -> dict[str, Any]:
        """The user, in ``mine`` already, dials again: accept a ring from the target (or
        repeat one's own dial); ``session`` None when the user is on another node."""
        if mine.other(user_id).user_id != target_id:
            raise Conflict("you are already in a call; hang up first")
        party = mine.party(user_id)
        if mine.state is CallState.RINGING and not party.dialled:
            party.dialled = True
            party.codecs = codecs
            party.session = session
            self._activate(mine)
        return {"response": 200, "call_id": mine.hex_id, "state": mine.state.value}

    def reachable(self, user_id: int) -> bool:
        """Can the user be rung? (online here; a cluster asks its presence)"""
        return self._router.session(user_id) is not None

    def hangup(self, session: Any, call_id: str | None,
               reason: str | None = None) -> dict[str, Any]:
        """End the user's call (decline a ring, cancel a dial, or hang up).

        ``reason`` (an active call only): the client's verdict on the media, one of
        `CLIENT_REASONS`, passed on to both in ``call_end``.
        """
        return self.hangup_user(session.account.id, call_id, reason)

    def hangup_user(self, user_id: int, call_id: str | None,
                    reason: str | None = None) -> dict[str, Any]:
        if reason is not None and reason not in CLIENT_REASONS:
            raise BadRequest("reason must be one of: " + ", ".join(sorted(CLIENT_REASONS)))
        call = self._by_user.get(user_id)
        if call is None or (call_id is not None and call_id != call.hex_id):
            raise NotFound("no such call")
        if call.state is CallState.ACTIVE:
            reason = reason or HANGUP
        else:
            reason = CANCELLED if call.party(user_id).dialled else DECLINED
        self._end(call, reason, call.party(user_id).name)
        return {"response": 200, "call_id": call.hex_id}

    def user_gone(self, user_id: int) -> None:
        """The user's connection ended: their call ends for both."""
        call = self._by_user.get(user_id)
        if call is not None:
            self._end(call, DISCONNECTED, call.party(user_id).name)

    def _activate(self, call: Call) -> None:
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        key = media.new_call_key()
        tokens = (media.new_token(), media.new_token())
        caller, callee = call.parties
        self._table.add_call(call.call_id, key, (caller.name, callee.name), tokens)
        call.state = CallState.ACTIVE
        codec = media.choose_codec(caller.codecs, callee.codecs)
        now = self._clock.seconds()
        for index, party in enumerate(call.parties):
            peer = call.parties[1 - index]
            start = {
                "action": "call_start", "call_id": call.hex_id, "member": index,
                "peer": peer.name, "key": _b64(key), "token": _b64(tokens[index]),
                "relay": self._relay_for(party),
                "codec": codec, "time": now}
            if self.relay_tcp_port:
                start["relay_tcp"] = self.relay_tcp_port
            self._router.push(party.user_id, start)
        self._watch_media(call)
        self.log.info("Call {call_id} between {a} and {b} started ({codec})",
                      call_id=call.hex_id, a=caller.name, b=callee.name, codec=codec)

    def _watch_media(self, call: Call) -> None:
        """End the call if the relay does not hear both members in time: peers that
        cannot reach the relay have no working path, whatever else they try."""
        wait = self._table.wait_ready(call.call_id)
        call.media_wait = wait
        timer = self._clock.callLater(self.media_timeout, wait.cancel)

        def ready(_: Any) -> None:
            if timer.active():
                timer.cancel()
            call.media_wait = None

        def failed(failure: Any) -> None:
            if timer.active():
                timer.cancel()
            call.media_wait = None
            if not failure.check(CallEnded) and call.state is CallState.ACTIVE:
                self.log.info("Call {call_id}: the relay did not hear both members",
                              call_id=call.hex_id)
                self._end(call, MEDIA_FAILED, None)

        wait.addCallbacks(ready, failed)

    def _end(self, call: Call, reason: str, by: str | None) -> None:
        if call.state is CallState.ENDED:
            return
        was_active = call.state is CallState.ACTIVE
        call.state = CallState.ENDED
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        wait, call.media_wait = call.media_wait, None
        if wait is not None:
            wait.cancel()
        for party in call.parties:
            if self._by_user.get(party.user_id) is call:
                del self._by_user[party.user_id]
        self._by_id.pop(call.call_id, None)
        if was_active:
            self._table.remove_call(call.call_id)
        self.ended(call)
        message = {"action": "call_end", "call_id": call.hex_id, "reason": reason, "by": by,
                   "time": self._clock.seconds()}
        for party in call.parties:
            self._router.push(party.user_id, message)
        self.log.info("Call {call_id} ended: {reason}", call_id=call.hex_id, reason=reason)

    def ended(self, call: Call) -> None:
        """A call is over (a cluster frees its parties' reservations here)."""

    def _relay_for(self, party: Party) -> list[Any]:
        """Where this party reaches the relay: ``--relay-address`` when set, else the
        public host (or the address its connection came in at) and the UDP port."""
        if self.relay_address is not None:
            return list(self.relay_address)
        return [self._relay_host(party.session), self.relay_port]

    def _relay_host(self, session: Any) -> str:
        if self._public_host:
            return self._public_host
        if session is None:
            return "127.0.0.1"
        host = getattr(session.transport.getHost(), "host", "")
        return host or "127.0.0.1"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
