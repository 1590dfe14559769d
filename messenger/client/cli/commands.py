"""messenger-cli's commands: one run logs in (with the saved token, or a password for
``login``/``register``), does one thing, says quit and exits with a status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from twisted.internet import defer, task, threads

from messenger.client.cli import edits, files, follow, groups, receipts
from messenger.client.cli.options import (
    EXIT_OK,
    PROG,
    CliError,
    Settings,
    build_parser,
    read_password,
)
from messenger.client.cli.output import (
    Output,
    _when,
    explain,
    format_message,
)
from messenger.client.errors import PasswordNeeded
from messenger.client.events import ServerKeyEvent


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

    async def ask(self, action: Callable[[Any], defer.Deferred],
                  patient: bool = False) -> dict[str, Any]:
        """Log in, then ``action(client)``'s reply, within --timeout."""
        await self.start(patient)
        return await self.limit(action(self.client))


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
    reply = await session.ask(lambda client: client.get_contacts())
    for contact in reply.get("alert", []):
        session.output.line(f"{contact.get('account_name')}\t{contact.get('status')}",
                            contact)
    return EXIT_OK


async def cmd_add(session: Session, args: argparse.Namespace, _: Any) -> int:
    reply = await session.ask(lambda client: client.add_contact(args.account_name))
    contact = reply.get("contact", {})
    session.output.line(f"added {contact.get('account_name')} ({contact.get('status')})",
                        contact)
    return EXIT_OK


async def cmd_remove(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.ask(lambda client: client.del_contact(args.account_name))
    session.output.line(f"removed {args.account_name}", {"removed": args.account_name})
    return EXIT_OK


async def cmd_search(session: Session, args: argparse.Namespace, _: Any) -> int:
    reply = await session.ask(lambda client: client.search_users(args.query))
    for user in reply.get("alert", []):
        session.output.line(str(user.get("account_name")), user)
    return EXIT_OK


async def cmd_send(session: Session, args: argparse.Namespace, _: Any) -> int:
    text = " ".join(args.text)
    reply = await session.ask(lambda client: client.send_message(args.to, text,
                                                                 args.reply_to),
                              patient=True)
    session.output.line(f"sent #{reply.get('msg_id')} to {args.to}",
                        {"msg_id": reply.get("msg_id"), "time": reply.get("time"),
                         "to": args.to})
    return EXIT_OK


async def cmd_history(session: Session, args: argparse.Namespace, _: Any) -> int:
    reply = await session.ask(lambda client: client.history(
        args.with_user, before=args.before, limit=args.limit))
    for message in reply.get("alert", []):
        session.output.line(format_message(message), message)
    return EXIT_OK


async def cmd_broadcast(session: Session, args: argparse.Namespace, _: Any) -> int:
    reply = await session.ask(lambda client: client.broadcast(" ".join(args.text)))
    session.output.line(f"broadcast #{reply.get('broadcast_id')}",
                        {"broadcast_id": reply.get("broadcast_id")})
    return EXIT_OK


async def cmd_broadcasts(session: Session, args: argparse.Namespace, _: Any) -> int:
    reply = await session.ask(lambda client: client.get_broadcasts(limit=args.limit))
    for item in reply.get("alert", []):
        session.output.line(f"#{item.get('broadcast_id')} {_when(item.get('time'))}"
                            f" {item.get('from')}: {item.get('message')}", item)
    return EXIT_OK


async def cmd_presence(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.ask(lambda client: client.set_presence(args.status))
    session.output.line(f"presence: {args.status}", {"status": args.status})
    return EXIT_OK


COMMANDS: dict[str, Callable[..., Any]] = {
    "chat": follow.cmd_chat,
    "register": cmd_login,
    "login": cmd_login,
    "logout": cmd_logout,
    "contacts": cmd_contacts,
    "add": cmd_add,
    "remove": cmd_remove,
    "search": cmd_search,
    "send": cmd_send,
    "send-file": files.cmd_send_file,
    "download": files.cmd_download,
    "history": cmd_history,
    "broadcast": cmd_broadcast,
    "broadcasts": cmd_broadcasts,
    "presence": cmd_presence,
    "tail": follow.cmd_tail,
    "group": groups.cmd_group,
    "receipts": receipts.cmd_receipts,
    "read": receipts.cmd_read,
    "settings": receipts.cmd_settings,
    **edits.COMMANDS,
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
