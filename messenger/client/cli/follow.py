"""The two messenger-cli commands that stay connected: ``tail`` and ``chat``.

Both print what comes (messages, presence, notices) as it comes, say when the client is
reconnecting, and stop with the session's error when it cannot go on (a changed server
key, a login that is needed again). ``chat`` also sends each line typed; lines typed
while the server is away wait in the outbox and go out once after the reconnect.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.protocols.basic import LineReceiver

from messenger.client.cli.options import EXIT_OK, PROG
from messenger.client.cli.output import event_json, explain, format_event
from messenger.client.errors import ClientError, MessengerError
from messenger.client.events import ConnectionState, IncomingMessage, State

if TYPE_CHECKING:
    from messenger.client.cli.commands import Session


def _ends_with_the_session(done: defer.Deferred[int]) -> Any:
    """A state observer failing ``done`` when the session cannot go on by itself."""
    def on_state(state: ConnectionState) -> None:
        if state.name in (State.FAILED, State.LOGIN_REQUIRED) and not done.called:
            done.errback(state.error or ClientError(state.reason or state.name))
    return on_state


async def cmd_tail(session: Session, args: argparse.Namespace, _: Any) -> int:
    """Print pushes until interrupted (or ``--count`` messages); reconnects by itself."""
    client, output = session.client, session.output
    done: defer.Deferred[int] = defer.Deferred()
    seen = 0

    def show(event: Any) -> None:
        nonlocal seen
        text = format_event(event)
        if text is None:
            return
        output.line(text, event_json(event))
        if isinstance(event, IncomingMessage):
            seen += 1
            if args.count is not None and seen >= args.count and not done.called:
                done.callback(EXIT_OK)

    def on_state(state: ConnectionState) -> None:
        if state.name == State.RECONNECTING:
            output.note(f"{PROG}: {state}")

    for kind in ("message", "presence", "broadcast", "notice", "call", "message_changed",
                 "group"):
        client.subscribe(kind, show)
    client.subscribe("state", on_state)
    client.subscribe("state", _ends_with_the_session(done))
    # Patient, like chat: a server that is restarting (even before the first sync has
    # finished) is waited for, up to --timeout, not a reason to give up.
    await session.start(patient=True)
    return await done


class _Keyboard(LineReceiver):
    """Each line typed goes to the outbox; the end of input waits for the last ones to
    be acknowledged (within --timeout) and ends the chat."""

    delimiter = b"\n"

    def __init__(self, session: Session, to: str, done: defer.Deferred[int]) -> None:
        self.session = session
        self.to = to
        self.done = done

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            entry = self.session.client.queue_message(self.to, text)
        except MessengerError as error:     # too long for the server, ...
            self._refused(error)
            return
        entry.when_done().addCallbacks(self._acked, self._refused)

    def _acked(self, reply: dict[str, Any]) -> None:
        self.session.output.note(f"  sent #{reply.get('msg_id')}")

    def _refused(self, failure: Any) -> None:
        error = getattr(failure, "value", failure)      # a Failure, or the exception
        self.session.output.note(f"{PROG}: not sent: {explain(error)[0]}")

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        pending = [message.when_done() for message in self.session.client.pending_messages()]
        finished = defer.DeferredList(pending, consumeErrors=True)
        self.session.limit(finished).addBoth(
            lambda _: self.done.called or self.done.callback(EXIT_OK))


async def cmd_chat(session: Session, args: argparse.Namespace, _: Any) -> int:
    """Talk to one person: each line typed is sent, messages are printed as they come.

    Stays connected through server restarts: lines typed meanwhile wait in the outbox and
    go out (once) after the reconnect. End of input (Ctrl-D) waits for the last messages
    to be acknowledged, then quits.
    """
    from twisted.internet import stdio

    client, output = session.client, session.output
    done: defer.Deferred[int] = defer.Deferred()

    def show(event: Any) -> None:
        text = format_event(event)
        if text is not None:
            output.line(text, event_json(event))

    def on_state(state: ConnectionState) -> None:
        if state.name == State.RECONNECTING:
            output.note(f"{PROG}: {state} (lines you type are kept and sent after it)")
        elif state.name == State.ONLINE:
            output.note(f"{PROG}: online")

    for kind in ("message", "presence", "notice", "message_changed"):
        client.subscribe(kind, show)
    client.subscribe("state", on_state)
    client.subscribe("state", _ends_with_the_session(done))
    await session.start(patient=True)
    output.note(f"{PROG}: chatting with {args.to}; type a line and press Enter to send,"
                " Ctrl-D to quit")
    stdio.StandardIO(_Keyboard(session, args.to, done), reactor=session.reactor)
    return await done
