"""Calls as a person sees them: dial a contact, ring, accept, decline, hang up.

`CallController` joins the two halves of a call: the JIM signalling of the client core
(``request`` of ``call_dial`` and ``call_hangup``; the pushes ``call_ring``,
``call_start`` and ``call_end``, heard through ``subscribe``; docs/PROTOCOL.md and
docs/CALLS.md) and the media of a `CallEngine`
(one engine per call: an engine runs one call only). A front end calls `dial`, `accept`,
`decline`, `hangup` and `set_muted`, reads `status` and `stats()`, and hears every change
through `subscribe`. No Qt here: the desktop client's call window and any other front end
build on it.

The states of the one call a user can be in, and what moves between them::

    idle/ended --dial--> outgoing --call_start--> connecting --audio both ways--> active
    idle/ended --call_ring--> incoming --accept--> accepting --call_start--> connecting
    active --nothing from the peer for 5 s--> reconnecting --heard again--> active
    any live state --hang up / decline / call_end / server connection lost--> ended
    connecting --no audio both ways within 15 s--> ended ("media failed", with why)
    reconnecting --nothing for 20 s--> ended ("media lost")

A call is *active* only when the engine has seen audio flow both ways; a call whose media
fails or is lost ends on both sides: this side tells the server (``call_hangup`` with a
``reason``), which tells the peer.
The server is the judge of a call: ``call_end`` (from either side's hang-up, a decline, a
ring timeout or a dropped connection) ends it here too. A local hang-up ends the call at
once on this side and tells the server, which tells the peer. When the connection to the
server goes, the server ends the call for the peer, and this side ends it as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.calls.codec import available_codecs
from messenger.client.calls.media import call_params_from_jim
from messenger.client.errors import NotConnected
from messenger.wire.errors import Conflict

# -- states -------------------------------------------------------------------------------

IDLE = "idle"              # no call yet
OUTGOING = "outgoing"      # we dialled; the peer's client is ringing
INCOMING = "incoming"      # the peer dialled; we are ringing
ACCEPTING = "accepting"    # we accepted (dialled back); waiting for call_start
CONNECTING = "connecting"  # call_start arrived; waiting for audio both ways
ACTIVE = "active"          # audio flows both ways
RECONNECTING = "reconnecting"  # nothing heard from the peer for a while
ENDED = "ended"            # over; ``end_reason`` says why

LIVE = frozenset({OUTGOING, INCOMING, ACCEPTING, CONNECTING, ACTIVE, RECONNECTING})

TRANSITIONS: dict[str, frozenset[str]] = {
    IDLE: frozenset({OUTGOING, INCOMING}),
    OUTGOING: frozenset({CONNECTING, ENDED}),
    INCOMING: frozenset({ACCEPTING, ENDED}),
    ACCEPTING: frozenset({CONNECTING, ENDED}),
    CONNECTING: frozenset({ACTIVE, ENDED}),
    ACTIVE: frozenset({RECONNECTING, ENDED}),
    RECONNECTING: frozenset({ACTIVE, ENDED}),
    ENDED: frozenset({OUTGOING, INCOMING}),
}

# -- why a call ended (``CallStatus.end_reason``) -------------------------------------------
# The first five are the server's reasons in call_end; ``by`` names who did it.
HANGUP = "hangup"
DECLINED = "declined"
CANCELLED = "cancelled"
NO_ANSWER = "no answer"
DISCONNECTED = "disconnected"
CONNECTION_LOST = "connection lost"   # our own connection to the server went
FAILED = "failed"                     # refused (busy, offline, ...) or media failed: error
MEDIA_FAILED = "media failed"         # no audio both ways within the setup time
MEDIA_LOST = "media lost"             # nothing from the peer for 20 s during the call


class MediaFailure(Exception):
    """The call's audio could not flow; the message says which part failed."""


@dataclass(frozen=True)
class CallStatus:
    """One observation of the call, for a front end."""

    state: str = IDLE
    peer: str | None = None
    call_id: str | None = None            # hex, once the server named the call
    incoming: bool = False                # the peer dialled
    started: float | None = None          # clock time when audio began (ACTIVE)
    ended: float | None = None            # clock time when it ended
    end_reason: str | None = None         # ENDED: one of the reasons above
    ended_by: str | None = None           # ENDED: who hung up / declined (account name)
    error: BaseException | None = None    # ENDED with FAILED: what failed
    path: str = "connecting"              # media path: connecting, direct or relay
    muted: bool = False

    @property
    def live(self) -> bool:
        return self.state in LIVE


EngineFactory = Callable[..., Any]
"""``factory(on_path=callable(path), on_peer_bye=callable(),
on_media=callable(state, reason)) -> CallEngine``."""


class CallController:
    """The user's one call at a time, on one `MessengerClient`."""

    log = Logger()

    def __init__(self, client: Any, engine_factory: EngineFactory, reactor: Any = None,
                 codecs: list[str] | None = None) -> None:
        """``engine_factory`` makes a fresh `CallEngine` for each call (sound devices,
        interface, timing are its business); ``codecs`` defaults to what this machine
        can encode (`available_codecs`)."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self._client = client
        self._engine_factory = engine_factory
        self._reactor = reactor
        self._codecs = list(codecs) if codecs is not None else available_codecs()
        self._status = CallStatus()
        self._engine: Any = None
        self.input_device: Any = None      # None: the engine factory's own choice
        self.output_device: Any = None
        from messenger.client.calls.dsp import AudioSettings  # noqa: PLC0415
        self.processing: Any = AudioSettings()   # echo/noise/gain: on unless switched off
        self._observers: tuple[Callable[[CallStatus], None], ...] = ()
        self._unsubscribe = [client.subscribe("call", self._on_call_event),
                             client.subscribe("state", self._on_client_state)]

    # == observing ==========================================================================

    @property
    def status(self) -> CallStatus:
        return self._status

    @property
    def engine(self) -> Any:
        """The engine of the current (or last) call, or None."""
        return self._engine

    def subscribe(self, callback: Callable[[CallStatus], None]) -> Callable[[], None]:
        """Call ``callback(status)`` on every change; returns an unsubscribe function."""
        self._observers += (callback,)

        def unsubscribe() -> None:
            self._observers = tuple(c for c in self._observers if c is not callback)
        return unsubscribe

    def stats(self) -> Any:
        """The engine's `CallStats` while media runs (and after, frozen), else None."""
        return self._engine.stats() if self._engine is not None else None

    def elapsed(self) -> float:
        """Seconds of conversation so far (0 before the audio began)."""
        started = self._status.started
        if started is None:
            return 0.0
        end = self._status.ended if self._status.ended is not None else self._reactor.seconds()
        return max(0.0, end - started)

    def close(self) -> defer.Deferred[None]:
        """Hang up any live call and stop listening to the client."""
        d = self.hangup() if self._status.live else defer.succeed(None)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        return d

    # == what the user does =================================================================

    def dial(self, account_name: str) -> defer.Deferred[dict[str, Any]]:
        """Call ``account_name`` (a contact). Fires with the server's reply once the other
        side rings; fails (and the status goes ``ended``/``failed``) when refused: 403 not
        a contact, 410 offline, 409 busy, `NotConnected`."""
        if self._status.live:
            return defer.fail(Conflict("you are already in a call; hang up first"))
        self._set(CallStatus(OUTGOING, peer=account_name))
        status = self._status
        d = self._client.request("call_dial", {"user_id": account_name,
                                               "codecs": list(self._codecs)})
        d.addCallbacks(self._dialled, self._dial_failed, callbackArgs=(status,),
                       errbackArgs=(status,))
        return d

    def accept(self) -> defer.Deferred[Any]:
        """Answer the ringing call (by dialling back, as the server's dial-in wants)."""
        status = self._status
        if status.state != INCOMING or status.peer is None:
            return defer.fail(Conflict("no call is ringing"))
        self._set(replace(status, state=ACCEPTING))
        accepting = self._status
        d = self._client.request("call_dial", {"user_id": status.peer,
                                               "codecs": list(self._codecs)})
        d.addCallbacks(self._dialled, self._dial_failed, callbackArgs=(accepting,),
                       errbackArgs=(accepting,))
        return d

    def decline(self) -> defer.Deferred[Any]:
        """Refuse the ringing call; the caller hears "declined"."""
        if self._status.state != INCOMING:
            return defer.fail(Conflict("no call is ringing"))
        return self._end_locally(DECLINED)

    def hangup(self) -> defer.Deferred[Any]:
        """End the call whatever its state: cancel a dial, decline a ring, hang up."""
        state = self._status.state
        if state not in LIVE:
            return defer.succeed(None)
        if state == INCOMING:
            return self._end_locally(DECLINED)
        if state == OUTGOING:
            return self._end_locally(CANCELLED)
        return self._end_locally(HANGUP)

    def set_devices(self, input_device: Any, output_device: Any) -> str:
        """Sound devices for calls (index, name or None for the default); switched at
        once in a running call. Returns the sentence about what does not work, if any."""
        self.input_device, self.output_device = input_device, output_device
        engine = self._engine
        if engine is not None and self._status.state in (CONNECTING, ACTIVE, RECONNECTING):
            return engine.switch_devices(input_device, output_device)
        return ""

    def set_processing(self, on: bool) -> None:
        """Echo cancellation, noise suppression and automatic gain on or off (the
        settings switch); applied at once in a running call."""
        from messenger.client.calls.dsp import OFF, AudioSettings  # noqa: PLC0415
        self.processing = AudioSettings() if on else OFF
        engine = self._engine
        if engine is not None and hasattr(engine, "set_processing"):
            engine.set_processing(self.processing)

    def list_devices(self) -> tuple[list[Any], list[Any]]:
        """(microphones, loudspeakers) for a chooser; empty lists without pyaudio."""
        from messenger.client.calls.engine import CallEngine  # noqa: PLC0415
        return CallEngine.list_devices()

    def check_devices(self) -> Any:
        """What the chosen sound devices allow (`audio.DeviceCheck`), asked before a call
        starts so the user reads a sentence rather than PortAudio's error number."""
        from messenger.client.calls.audio import check_devices  # noqa: PLC0415
        return check_devices(self.input_device, self.output_device)

    def set_muted(self, muted: bool) -> None:
        """Send silence instead of the microphone (or stop doing so)."""
        if self._engine is not None:
            self._engine.set_muted(muted)
        self._set(replace(self._status, muted=muted))

    # == signalling replies =================================================================

    def _dialled(self, reply: dict[str, Any], status: CallStatus) -> dict[str, Any]:
        call_id = reply.get("call_id") if isinstance(reply.get("call_id"), str) else None
        current = self._status
        if current is status or (current.live and current.peer == status.peer
                                 and current.call_id is None):
            if call_id is not None and current.call_id is None:
                self._set(replace(current, call_id=call_id))
        elif (current.state == ENDED and current.call_id is None and call_id is not None
              and current.peer == status.peer):
            # Hung up while the dial was on its way: the server has a call now; end it.
            self._send_hangup(call_id)
        return reply

    def _dial_failed(self, failure: Failure, status: CallStatus) -> Failure:
        if self._status is status or (self._status.live and self._status.peer == status.peer
                                      and self._status.state in (OUTGOING, ACCEPTING)):
            self._finish(FAILED, error=failure.value)
        return failure

    # == pushes =============================================================================

    def _on_call_event(self, event: Any) -> None:
        fields = event.fields
        handler = {"call_ring": self._ring, "call_start": self._start,
                   "call_end": self._end}.get(event.kind)
        if handler is not None:
            handler(fields)

    def _ring(self, fields: dict[str, Any]) -> None:
        caller, call_id = fields.get("from"), fields.get("call_id")
        if not isinstance(caller, str) or not isinstance(call_id, str):
            return
        status = self._status
        if status.live:
            # Both dialled at once: our own dial accepts theirs; the ring is stale news.
            if status.peer is not None and status.peer.lower() == caller.lower():
                if status.call_id is None:
                    self._set(replace(status, call_id=call_id))
            return
        self._set(CallStatus(INCOMING, peer=caller, call_id=call_id, incoming=True))

    def _start(self, fields: dict[str, Any]) -> None:
        status = self._status
        if status.state not in (OUTGOING, ACCEPTING) or not self._matches(fields):
            self.log.warn("Ignoring a call_start for a call not being set up")
            return
        try:
            params = call_params_from_jim(fields)
        except ValueError as error:
            self._finish(FAILED, error=error)
            self._send_hangup(fields.get("call_id"))
            return
        peer = fields.get("peer") if isinstance(fields.get("peer"), str) else status.peer
        self._set(replace(status, state=CONNECTING, peer=peer,
                          call_id=fields.get("call_id")))
        connecting = self._status
        engine = self._engine_factory(on_path=self._path_changed,
                                      on_peer_bye=self._peer_bye, on_media=self._media)
        if self.input_device is not None:
            engine.input_device = self.input_device
        if self.output_device is not None:
            engine.output_device = self.output_device
        if hasattr(engine, "set_processing"):
            engine.set_processing(self.processing)
        self._engine = engine
        if connecting.muted:
            engine.set_muted(True)
        d = defer.maybeDeferred(engine.start, params)
        d.addCallbacks(self._media_up, self._media_failed, callbackArgs=(engine,),
                       errbackArgs=(engine,))

    def _end(self, fields: dict[str, Any]) -> None:
        status = self._status
        if not status.live or not self._matches(fields):
            return
        reason = fields.get("reason")
        by = fields.get("by") if isinstance(fields.get("by"), str) else None
        self._finish(reason if isinstance(reason, str) else HANGUP, by=by)

    def _matches(self, fields: dict[str, Any]) -> bool:
        """Is this push about our call? (By id; before the id is known, by peer.)"""
        status = self._status
        call_id = fields.get("call_id")
        if status.call_id is not None:
            return call_id == status.call_id
        peer = fields.get("peer") or fields.get("from") or fields.get("by")
        return (not isinstance(peer, str) or status.peer is None
                or peer.lower() == status.peer.lower())

    # == media ==============================================================================

    def _media_up(self, _: Any, engine: Any) -> None:
        """The engine runs; the call stays *connecting* until audio flows both ways."""

    def _media(self, state: str, reason: str) -> None:
        """The engine's view of the line changed (see `CallEngine`)."""
        status = self._status
        if state == "active" and status.state in (CONNECTING, RECONNECTING):
            started = status.started if status.started is not None else self._reactor.seconds()
            self._set(replace(status, state=ACTIVE, started=started))
        elif state == "reconnecting" and status.state == ACTIVE:
            self._set(replace(status, state=RECONNECTING))
        elif state in ("failed", "lost") and status.state in (CONNECTING, ACTIVE,
                                                              RECONNECTING):
            why = MEDIA_FAILED if state == "failed" else MEDIA_LOST
            call_id = status.call_id
            self._finish(why, error=MediaFailure(reason))
            self._send_hangup(call_id, why)

    def _media_failed(self, failure: Failure, engine: Any) -> None:
        if engine is not self._engine or not self._status.live:
            return
        self.log.failure("The call's media could not start", failure)
        call_id = self._status.call_id
        self._finish(FAILED, error=failure.value)
        self._send_hangup(call_id)

    def _path_changed(self, path: str) -> None:
        if self._status.state in (CONNECTING, ACTIVE, RECONNECTING):
            self._set(replace(self._status, path=path))

    def _peer_bye(self) -> None:
        """The peer's media said goodbye: the call is over (call_end follows)."""
        status = self._status
        if status.state in (CONNECTING, ACTIVE, RECONNECTING):
            self._finish(HANGUP, by=status.peer)
            self._send_hangup(status.call_id)

    # == the connection =====================================================================

    def _on_client_state(self, state: Any) -> None:
        if not state.logged_in and self._status.live:
            # The server ends the call for the peer when our connection goes.
            self._finish(CONNECTION_LOST)

    # == ending =============================================================================

    def _end_locally(self, reason: str) -> defer.Deferred[Any]:
        call_id = self._status.call_id
        me = self._client.account.account_name if self._client.account else None
        self._finish(reason, by=me)
        return self._send_hangup(call_id)

    def _send_hangup(self, call_id: str | None, reason: str | None = None
                     ) -> defer.Deferred[Any]:
        fields: dict[str, Any] = {}
        if call_id is not None:
            fields["call_id"] = call_id
        if reason is not None:
            fields["reason"] = reason
        d = self._client.request("call_hangup", fields)
        d.addErrback(self._hangup_refused)
        return d

    def _hangup_refused(self, failure: Failure) -> None:
        # 404 "no such call" (it ended meanwhile) or no connection (the server ends the
        # call when our connection goes): nothing left to do either way.
        if not failure.check(NotConnected):
            self.log.debug("call_hangup: {error}", error=failure.value)

    def _finish(self, reason: str, by: str | None = None,
                error: BaseException | None = None) -> None:
        engine = self._engine
        self._set(replace(self._status, state=ENDED, ended=self._reactor.seconds(),
                          end_reason=reason, ended_by=by, error=error))
        if engine is not None:
            d = defer.maybeDeferred(engine.stop)
            d.addErrback(lambda f: self.log.failure("Stopping the call's media failed", f))

    def _set(self, status: CallStatus) -> None:
        if status.state != self._status.state and (
                status.state not in TRANSITIONS[self._status.state]):
            raise RuntimeError(f"no call transition {self._status.state} -> {status.state}")
        if status.state in (OUTGOING, INCOMING) and self._status.state != status.state:
            self._engine = None             # a new call: the last one's engine is done
        self._status = status
        for callback in self._observers:
            try:
                callback(status)
            except Exception:
                self.log.failure("Call observer {callback!r} failed", callback=callback)
