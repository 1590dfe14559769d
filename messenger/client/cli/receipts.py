"""messenger-cli's receipts commands: ``receipts`` (a conversation with the ticks of your
own messages: sent, delivered, read; in a group, who has read each), ``read`` (mark a
conversation read up to its newest message: a read receipt) and ``settings`` (turn
sending read receipts off or on)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from messenger.client.cli.options import EXIT_OK, CliError
from messenger.client.cli.output import format_message
from messenger.client.receipts import DELIVERED, READ

if TYPE_CHECKING:
    from messenger.client.cli.commands import Session

TICKS = {"sent": "✓ sent", DELIVERED: "✓✓ delivered", READ: "✓✓ read"}


def add_parser(commands: Any) -> None:
    """``receipts``, ``read`` and ``settings`` under the top-level commands."""
    def conversation(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("with_user", nargs="?", metavar="USER")
        sub.add_argument("--group", type=int, metavar="ID", help="a group instead")
        return sub
    conversation("receipts", "show a conversation with the ticks of your messages"
                 ).add_argument("--limit", type=int, default=20)
    conversation("read", "mark a conversation read up to its newest message")
    sub = commands.add_parser("settings", help="show or change your account settings",
                              description="Show or change your account settings.")
    sub.add_argument("--read-receipts", choices=("on", "off"),
                     help="tell senders when you have read their messages (on by default)")


def _target(args: argparse.Namespace) -> dict[str, Any]:
    if (args.with_user is None) == (args.group is None):
        raise CliError("name a USER or give --group ID (one of them)")
    return {"with_user": args.with_user} if args.group is None else {"group_id": args.group}


async def _page(session: Session, args: argparse.Namespace, limit: int) -> list[dict]:
    client = session.client
    reply = await session.limit(client.history(args.with_user, limit=limit)
                                if args.group is None else
                                client.group_history(args.group, limit=limit))
    return list(reply.get("alert", []))


async def cmd_receipts(session: Session, args: argparse.Namespace, _: Any) -> int:
    _target(args)
    await session.start()
    client = session.client
    await session.limit(client.receipts.sync())
    me = client.account.account_name.lower() if client.account else ""
    for message in await _page(session, args, args.limit):
        if str(message.get("from", "")).lower() != me:
            session.output.line(format_message(message), message)
            continue
        msg_id = message.get("msg_id", 0)
        status = client.receipts.status(msg_id, to=args.with_user, group=args.group)
        extra: dict[str, Any] = {"status": status}
        text = f"{format_message(message)}  [{TICKS[status]}"
        if args.group is not None:
            readers = client.receipts.book.readers(args.group, msg_id)
            extra["read_by"] = readers
            if readers:
                text += f" by {len(readers)}: {', '.join(readers)}"
        session.output.line(text + "]", {**message, **extra})
    return EXIT_OK


async def cmd_read(session: Session, args: argparse.Namespace, _: Any) -> int:
    target = _target(args)
    await session.start()
    page = await _page(session, args, 1)
    if not page:
        session.output.line("nothing to mark read", {"read_up_to": None})
        return EXIT_OK
    up_to = page[-1]["msg_id"]
    client = session.client
    client.receipts.read(up_to, **target)
    client.receipts.flush()                 # now, not after the batching delay
    reply = await session.limit(client.request("get_unread"))
    session.output.line(f"read up to #{up_to}", {"read_up_to": up_to,
                                                 "unread": reply.get("direct", [])})
    return EXIT_OK


async def cmd_settings(session: Session, args: argparse.Namespace, _: Any) -> int:
    await session.start()
    client = session.client
    if args.read_receipts is not None:
        await session.limit(client.set_read_receipts(args.read_receipts == "on"))
    reply = await session.limit(client.get_settings())
    settings = reply.get("settings", {})
    on = "on" if settings.get("read_receipts") else "off"
    session.output.line(f"read receipts: {on}", settings)
    return EXIT_OK
