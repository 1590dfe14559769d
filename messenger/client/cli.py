"""messenger-cli: a terminal client for headless use and scripts, on the client core.

    messenger-cli [--server HOST:PORT] [--secret-file FILE] [--tls [--ca-file F |
                  --pin-cert F]] [--accept-new-key] [--json] COMMAND ...

Commands: register, login, logout, contacts, add, remove, search, send, history,
broadcast, broadcasts, presence, tail. ``login``/``register`` save a resume token in the
config dir; every other command logs in with it and quits when done. Passwords come from
``--password-file``, ``$MESSENGER_PASSWORD`` or a prompt, never from the command line.

Output is one line per item (``--json``: one JSON object per line). Errors are one line on
stderr, and the exit status says what kind of failure it was (`EXIT_*`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from twisted.internet import defer, task, threads

from messenger.client.credentials import CredentialStore, Sessions
from messenger.client.errors import (
    ClientError,
    HmacError,
    MessageTooLong,
    MessengerError,
    PasswordNeeded,
    RequestTooLarge,
    ServerKeyChanged,
)
from messenger.client.events import (
    Broadcast,
    CallEvent,
    ConnectionState,
    IncomingMessage,
    Notice,
    PresenceChange,
    ServerKeyEvent,
    State,
)
from messenger.client.failures import describe
from messenger.client.known_servers import format_address, parse_address
from messenger.client.tls import TlsSettingsError, client_tls_options

PROG = "messenger-cli"
DEFAULT_SERVER = "localhost:7777"

EXIT_OK = 0
EXIT_REFUSED = 1        # the server refused the request (wrong password, no such user, ...)
EXIT_USAGE = 2          # bad command line or settings
EXIT_CONNECTION = 3     # cannot connect, handshake failed (hmac error), server key changed
EXIT_LOGIN = 4          # not logged in: no saved token, or it expired


class CliError(Exception):
    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- command line -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Messenger from the terminal: log in once, then send, read"
        " and follow messages from scripts.",
        epilog="Exit status: 0 ok, 1 refused by the server, 2 usage, 3 connection or"
        " handshake failure (hmac error, server key changed), 4 login needed.")
    parser.add_argument("--server", metavar="HOST:PORT",
                        help="server address (default: $MESSENGER_SERVER, else the last"
                        f" one logged in to, else {DEFAULT_SERVER})")
    parser.add_argument("--secret-file", metavar="FILE",
                        help="the deployment's shared-secret file (default:"
                        " $MESSENGER_SECRET_FILE, else the one last used with this server,"
                        " else CONFIG_DIR/secret)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", metavar="FILE",
                       help="TLS: trust the CA certificates in this PEM file")
    trust.add_argument("--pin-cert", metavar="FILE",
                       help="TLS: trust exactly this server certificate (PEM)")
    parser.add_argument("--accept-new-key", action="store_true",
                        help="trust the server's key even if another one is pinned, and pin"
                        " it, for this run's first connection only (after checking its"
                        " fingerprint with the administrator)")
    parser.add_argument("--config-dir", metavar="DIR",
                        help="where the key, tokens and pins live (default:"
                        " $XDG_CONFIG_HOME/messenger)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up on the server after this long (default 30)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text)

    for name, text in (("register", "create an account and log in to it"),
                       ("login", "log in with a password and remember the login")):
        sub = command(name, text)
        sub.add_argument("account_name", metavar="NAME")
        if name == "register":
            sub.add_argument("--email", required=True)
            sub.add_argument("--premium-code", metavar="CODE")
        sub.add_argument("--password-file", metavar="FILE",
                         help="read the password from this file (else $MESSENGER_PASSWORD,"
                         " else a prompt)")
        sub.add_argument("--no-remember", dest="remember", action="store_false",
                         help="do not keep a resume token (check the password only)")
    command("logout", "log out and delete the saved token")
    command("contacts", "list contacts with their presence")
    command("add", "add a contact").add_argument("account_name", metavar="NAME")
    command("remove", "remove a contact").add_argument("account_name", metavar="NAME")
    command("search", "find people by name").add_argument("query")
    sub = command("send", "send a message")
    sub.add_argument("to", metavar="USER")
    sub.add_argument("text", nargs="+", metavar="TEXT")
    sub = command("history", "show the conversation with someone")
    sub.add_argument("with_user", metavar="USER")
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--before", type=int, metavar="MSG_ID")
    command("broadcast", "post to everyone (premium accounts)").add_argument(
        "text", nargs="+", metavar="TEXT")
    command("broadcasts", "show recent broadcasts").add_argument("--limit", type=int,
                                                                 default=20)
    command("presence", "set your presence").add_argument("status",
                                                          choices=("online", "away"))
    command("chat", "talk to someone: send each line typed, print what comes, stay"
            " connected").add_argument("to", metavar="USER")
    sub = command("tail", "print messages and other events as they come, until"
                  " interrupted")
    sub.add_argument("--count", type=int, metavar="N",
                     help="exit after printing N messages")
    return parser


# -- settings -----------------------------------------------------------------------------

class Settings:
    """The command line resolved against the environment and the saved state."""

    def __init__(self, args: argparse.Namespace, environ: dict[str, str]) -> None:
        self.args = args
        self.store = CredentialStore(Path(args.config_dir) if args.config_dir else None)
        self.sessions = self.store.load_sessions()
        server = args.server or environ.get("MESSENGER_SERVER") or (
            self.sessions.default_server) or DEFAULT_SERVER
        try:
            self.host, self.port = parse_address(server)
        except ValueError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        self.address = format_address(self.host, self.port)
        self.secret_file = self._secret_file(environ)
        self.secret = self._read_secret()
        self.tls = None
        if args.tls:
            try:
                self.tls = client_tls_options(self.host, args.ca_file, args.pin_cert)
            except TlsSettingsError as error:
                raise CliError(str(error), EXIT_USAGE) from None
        elif args.ca_file or args.pin_cert:
            raise CliError("--ca-file and --pin-cert need --tls", EXIT_USAGE)

    def _secret_file(self, environ: dict[str, str]) -> Path:
        record = self.sessions.servers.get(self.address)
        for candidate in (self.args.secret_file, environ.get("MESSENGER_SECRET_FILE"),
                          record.secret_file if record else None):
            if candidate:
                return Path(candidate).expanduser()
        return self.store.config_dir / "secret"

    def _read_secret(self) -> bytes:
        try:
            secret = self.secret_file.read_bytes().strip()
        except FileNotFoundError:
            raise CliError(f"no shared-secret file at {self.secret_file}: give --secret-file"
                           " (the server administrator has it)", EXIT_USAGE) from None
        except OSError as error:
            raise CliError(f"cannot read {self.secret_file}: {error.strerror}",
                           EXIT_USAGE) from None
        if not secret:
            raise CliError(f"the shared-secret file {self.secret_file} is empty",
                           EXIT_USAGE)
        return secret

    def remember_secret_file(self) -> None:
        """Note which secret file this server uses (after the client wrote its state)."""
        sessions: Sessions = self.store.load_sessions()
        sessions.server(self.address).secret_file = str(self.secret_file.resolve())
        self.store.save_sessions(sessions)


def read_password(args: argparse.Namespace, environ: dict[str, str],
                  prompt: Callable[[str], str] = getpass.getpass) -> str:
    if args.password_file:
        try:
            text = Path(args.password_file).read_text("utf-8")
        except OSError as error:
            raise CliError(f"cannot read {args.password_file}: {error.strerror}",
                           EXIT_USAGE) from None
        return text.rstrip("\r\n")
    if environ.get("MESSENGER_PASSWORD"):
        return environ["MESSENGER_PASSWORD"]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return prompt("Password: ")


# -- output -------------------------------------------------------------------------------

def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def format_message(message: dict[str, Any]) -> str:
    return (f"#{message.get('msg_id')} {_when(message.get('time'))}"
            f" {message.get('from')} -> {message.get('to')}: {message.get('message')}")


def format_event(event: Any) -> str | None:
    """One line for a push, or None for kinds tail does not print."""
    if isinstance(event, IncomingMessage):
        return format_message({"msg_id": event.msg_id, "time": event.time,
                               "from": event.sender, "to": event.recipient,
                               "message": event.text})
    if isinstance(event, PresenceChange):
        return f"* {event.account_name} is {event.status}"
    if isinstance(event, Broadcast):
        return (f"[broadcast #{event.broadcast_id}] {_when(event.time)} {event.sender}:"
                f" {event.text}")
    if isinstance(event, Notice):
        return f"! {event.message}"
    if isinstance(event, CallEvent):
        peer = event.fields.get("from") or event.fields.get("user_id") or ""
        return f"~ {event.kind} {peer}".rstrip()
    return None


def event_json(event: Any) -> dict[str, Any]:
    if isinstance(event, IncomingMessage):
        return {"event": "message", "msg_id": event.msg_id, "time": event.time,
                "from": event.sender, "to": event.recipient, "message": event.text}
    if isinstance(event, PresenceChange):
        return {"event": "presence", "account_name": event.account_name,
                "status": event.status}
    if isinstance(event, Broadcast):
        return {"event": "broadcast", "broadcast_id": event.broadcast_id,
                "time": event.time, "from": event.sender, "message": event.text}
    if isinstance(event, Notice):
        return {"event": "notice", "level": event.level, "message": event.message}
    if isinstance(event, CallEvent):
        return {"event": event.kind, **{k: v for k, v in event.fields.items()
                                        if k not in ("key", "token")}}
    return {"event": type(event).__name__}


class Output:
    def __init__(self, as_json: bool, out: Any = None, err: Any = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str, data: Any = None) -> None:
        if self.as_json:
            text = json.dumps(data if data is not None else {"text": text},
                              ensure_ascii=False)
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


def explain(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for a failure."""
    if isinstance(error, CliError):
        return error.message, error.status
    if isinstance(error, ServerKeyChanged):
        return error.message, EXIT_CONNECTION
    if isinstance(error, HmacError):
        return (f"{error.message} (the shared secret does not match the server's: check"
                " --secret-file)", EXIT_CONNECTION)
    if isinstance(error, PasswordNeeded):
        return (f"{error.message} (run: {PROG} login NAME)", EXIT_LOGIN)
    if isinstance(error, (MessageTooLong, RequestTooLarge)):
        return error.message, EXIT_REFUSED
    if isinstance(error, ClientError):
        return describe(error), EXIT_CONNECTION
    if isinstance(error, MessengerError):
        return error.message, EXIT_REFUSED
    if isinstance(error, defer.TimeoutError):
        return "timed out waiting for the server", EXIT_CONNECTION
    text = describe(error)
    return (f"cannot connect: {text}", EXIT_CONNECTION)


# -- running ------------------------------------------------------------------------------

class Session:
    """One run of a command: a client, its observers, and a deadline."""

    def __init__(self, reactor: Any, settings: Settings, output: Output) -> None:
        from messenger.client.core import MessengerClient
        args = settings.args
        self.reactor = reactor
        self.settings = settings
        self.output = output
        self.timeout = args.timeout
        self.client = MessengerClient(settings.host, settings.port, settings.secret,
                                      store=settings.store, tls=settings.tls,
                                      accept_new_key=args.accept_new_key, reactor=reactor)
        self.client.subscribe("server_key", self._on_server_key)

    def _on_server_key(self, event: ServerKeyEvent) -> None:
        if event.first_use:
            self.output.note(f"pinned the server key of {event.address} on first use:"
                             f" {event.fingerprint}")
        else:
            self.output.note(f"accepted the new server key of {event.address}:"
                             f" {event.fingerprint} (was {event.replaced})")

    def limit(self, d: defer.Deferred) -> defer.Deferred:
        return d.addTimeout(self.timeout, self.reactor)

    async def start(self, patient: bool = False) -> dict[str, Any]:
        """Log in with the saved token. ``patient``: wait through reconnects (a server
        that is restarting) until --timeout, instead of failing at the first refusal."""
        return await self.limit(self.client.start(fail_fast=not patient))


async def run(reactor: Any, settings: Settings, password: str | None,
              output: Output) -> int:
    args = settings.args
    session = Session(reactor, settings, output)
    client = session.client
    # Interrupted (Ctrl-C stops the reactor): still say quit before exiting.
    reactor.addSystemEventTrigger("before", "shutdown", client.stop)
    try:
        return await COMMANDS[args.command](session, args, password)
    finally:
        await client.stop()
        if args.command in ("register", "login") and client.account is not None:
            await threads.deferToThread(settings.remember_secret_file)


async def cmd_login(session: Session, args: argparse.Namespace, password: str) -> int:
    client = session.client
    if args.command == "register":
        d = client.register(args.account_name, password, args.email,
                            premium_code=args.premium_code, remember=args.remember)
    else:
        d = client.login(args.account_name, password, remember=args.remember)
    reply = await session.limit(d)
    user = reply.get("user", {})
    roles = [role for role in ("admin", "premium") if user.get(role)]
    done = "registered and logged in" if args.command == "register" else "logged in"
    session.output.line(
        f"{done} as {user.get('account_name')} on {session.settings.address}"
        + (f" ({', '.join(roles)})" if roles else ""), user)
    return EXIT_OK


async def cmd_logout(session: Session, args: argparse.Namespace, _: Any) -> int:
    client = session.client
    try:
        await session.start()
    except PasswordNeeded:
        session.output.line(f"not logged in on {session.settings.address}",
                            {"logged_in": False})
        return EXIT_OK
    name = client.account.account_name if client.account else "?"
    await session.limit(client.logout())
    session.output.line(f"logged out {name}", {"logged_out": name})
    return EXIT_OK


async def cmd_contacts(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    reply = await session.limit(session.client.get_contacts())
    for contact in reply.get("alert", []):
        session.output.line(f"{contact.get('account_name')}\t{contact.get('status')}",
                            contact)
    return EXIT_OK


async def cmd_add(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    reply = await session.limit(session.client.add_contact(args.account_name))
    contact = reply.get("contact", {})
    session.output.line(f"added {contact.get('account_name')} ({contact.get('status')})",
                        contact)
    return EXIT_OK


async def cmd_remove(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    await session.limit(session.client.del_contact(args.account_name))
    session.output.line(f"removed {args.account_name}", {"removed": args.account_name})
    return EXIT_OK


async def cmd_search(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    reply = await session.limit(session.client.search_users(args.query))
    for user in reply.get("alert", []):
        session.output.line(str(user.get("account_name")), user)
    return EXIT_OK


async def cmd_send(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start(patient=True)
    text = " ".join(args.text)
    reply = await session.limit(session.client.send_message(args.to, text))
    session.output.line(f"sent #{reply.get('msg_id')} to {args.to}",
                        {"msg_id": reply.get("msg_id"), "time": reply.get("time"),
                         "to": args.to})
    return EXIT_OK


async def cmd_history(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    reply = await session.limit(session.client.history(args.with_user, before=args.before,
                                                       limit=args.limit))
    for message in reply.get("alert", []):
        session.output.line(format_message(message), message)
    return EXIT_OK


async def cmd_broadcast(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    reply = await session.limit(session.client.broadcast(" ".join(args.text)))
    session.output.line(f"broadcast #{reply.get('broadcast_id')}",
                        {"broadcast_id": reply.get("broadcast_id")})
    return EXIT_OK


async def cmd_broadcasts(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    reply = await session.limit(session.client.get_broadcasts(limit=args.limit))
    for item in reply.get("alert", []):
        session.output.line(f"#{item.get('broadcast_id')} {_when(item.get('time'))}"
                            f" {item.get('from')}: {item.get('message')}", item)
    return EXIT_OK


async def cmd_presence(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    await session.limit(session.client.set_presence(args.status))
    session.output.line(f"presence: {args.status}", {"status": args.status})
    return EXIT_OK


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
        elif state.name in (State.FAILED, State.LOGIN_REQUIRED) and not done.called:
            done.errback(state.error or ClientError(state.reason or state.name))

    for kind in ("message", "presence", "broadcast", "notice", "call"):
        client.subscribe(kind, show)
    client.subscribe("state", on_state)
    await session.start()
    return await done


async def cmd_chat(session: Session, args: argparse.Namespace, _: Any) -> int:
    """Talk to one person: each line typed is sent, messages are printed as they come.

    Stays connected through server restarts: lines typed meanwhile wait in the outbox and
    go out (once) after the reconnect. End of input (Ctrl-D) waits for the last messages
    to be acknowledged, then quits.
    """
    from twisted.internet import stdio
    from twisted.protocols.basic import LineReceiver

    client, output = session.client, session.output
    done: defer.Deferred[int] = defer.Deferred()

    def show(event: Any) -> None:
        text = format_event(event)
        if text is not None:
            output.line(text, event_json(event))

    def acked(reply: dict[str, Any]) -> None:
        output.note(f"  sent #{reply.get('msg_id')}")

    def refused(failure: Any) -> None:
        output.note(f"{PROG}: not sent: {explain(failure.value)[0]}")

    def on_state(state: ConnectionState) -> None:
        if state.name == State.RECONNECTING:
            output.note(f"{PROG}: {state} (lines you type are kept and sent after it)")
        elif state.name == State.ONLINE:
            output.note(f"{PROG}: online")
        elif state.name in (State.FAILED, State.LOGIN_REQUIRED) and not done.called:
            done.errback(state.error or ClientError(state.reason or state.name))

    class Keyboard(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:  # noqa: N802
            text = line.decode("utf-8", "replace").strip()
            if text:
                client.queue_message(args.to, text).when_done().addCallbacks(acked, refused)

        def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
            pending = [message.when_done() for message in client.pending_messages()]
            finished = defer.DeferredList(pending, consumeErrors=True)
            session.limit(finished).addBoth(
                lambda _: done.called or done.callback(EXIT_OK))

    for kind in ("message", "presence", "notice"):
        client.subscribe(kind, show)
    client.subscribe("state", on_state)
    await session.start(patient=True)
    output.note(f"{PROG}: chatting with {args.to}; type a line and press Enter to send,"
                " Ctrl-D to quit")
    stdio.StandardIO(Keyboard(), reactor=session.reactor)
    return await done


COMMANDS: dict[str, Callable[..., Any]] = {
    "chat": cmd_chat,
    "register": cmd_login,
    "login": cmd_login,
    "logout": cmd_logout,
    "contacts": cmd_contacts,
    "add": cmd_add,
    "remove": cmd_remove,
    "search": cmd_search,
    "send": cmd_send,
    "history": cmd_history,
    "broadcast": cmd_broadcast,
    "broadcasts": cmd_broadcasts,
    "presence": cmd_presence,
    "tail": cmd_tail,
}


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point (``messenger-cli``)."""
    args = build_parser().parse_args(argv)
    output = Output(args.json)
    environ = dict(os.environ)
    try:
        # Files and the password prompt before the reactor runs: nothing blocks it later.
        settings = Settings(args, environ)
        password = (read_password(args, environ)
                    if args.command in ("register", "login") else None)
    except CliError as error:
        output.note(f"{PROG}: error: {error.message}")
        sys.exit(error.status)

    async def react_main(reactor: Any) -> None:
        try:
            status = await run(reactor, settings, password, output)
        except Exception as error:  # every failure ends as one line and a status
            message, status = explain(error)
            output.note(f"{PROG}: error: {message}")
        raise SystemExit(status)

    task.react(lambda reactor: defer.ensureDeferred(react_main(reactor)))


if __name__ == "__main__":
    main()
