"""messenger-cli's commands for issue 15: ``edit``, ``delete`` and ``search-messages``
(replies are ``send --reply-to`` and ``group send --reply-to``). Each logs in with the
saved token, does one thing and says quit; ``--json`` prints the server's records."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from messenger.client.cli.options import EXIT_OK
from messenger.client.cli.output import _when
from messenger.client.edits import MessageChange, SearchResult

if TYPE_CHECKING:
    from messenger.client.cli.commands import Session

HIGHLIGHT = ("\x1b[1m", "\x1b[0m")  # bold on a terminal; brackets otherwise


def add_parsers(command: Any) -> None:
    """The commands, under the top-level ``command(name, text)`` factory."""
    sub = command("edit", "change the text of a message you sent (within the server's"
                  " edit window)")
    sub.add_argument("msg_id", type=int, metavar="MSG_ID")
    sub.add_argument("text", nargs="+", metavar="TEXT")
    command("delete", "delete a message for everyone (yours, or any in a group you"
            " own or administer)").add_argument("msg_id", type=int, metavar="MSG_ID")
    sub = command("search-messages", "search your conversations for messages holding"
                  " every word of QUERY, best match first")
    sub.add_argument("query", nargs="+", metavar="QUERY")
    sub.add_argument("--with", dest="with_user", metavar="USER",
                     help="only the conversation with USER")
    sub.add_argument("--group", type=int, metavar="ID", help="only this group")
    sub.add_argument("--limit", type=int, default=20)
    sub.add_argument("--offset", type=int, default=0)


def change_line(change: MessageChange) -> str:
    what = "deleted" if change.is_deleted else f"edited: {change.text}"
    return f"~ #{change.msg_id} {what} (by {change.by})"


def change_json(change: MessageChange) -> dict[str, Any]:
    return {"event": "message_changed", "change_id": change.change_id,
            "msg_id": change.msg_id, "kind": change.kind, "message": change.text,
            "from": change.sender, "to": change.recipient, "group": change.group,
            "by": change.by, "edited": change.edited, "deleted": change.deleted}


async def cmd_edit(session: Session, args: argparse.Namespace, _: Any) -> int:
    change = await session.ask(lambda client: client.edit_message(args.msg_id,
                                                                  " ".join(args.text)))
    session.output.line(change_line(change), change_json(change))
    return EXIT_OK


async def cmd_delete(session: Session, args: argparse.Namespace, _: Any) -> int:
    change = await session.ask(lambda client: client.delete_message(args.msg_id))
    session.output.line(change_line(change), change_json(change))
    return EXIT_OK


def result_line(result: SearchResult, bold: bool) -> str:
    message = result.message
    to = message.recipient if message.group is None else f"group #{message.group}"
    text = result.highlighted(*HIGHLIGHT) if bold else result.highlighted()
    return f"#{message.msg_id} {_when(message.time)} {message.sender} -> {to}: {text}"


async def cmd_search_messages(session: Session, args: argparse.Namespace, _: Any) -> int:
    page = await session.ask(lambda client: client.search_messages(
        " ".join(args.query), with_user=args.with_user, group=args.group,
        offset=args.offset, limit=args.limit))
    bold = session.output.out.isatty() if hasattr(session.output.out, "isatty") else False
    for result in page.results:
        message = result.message
        session.output.line(result_line(result, bold), {
            "msg_id": message.msg_id, "time": message.time, "from": message.sender,
            "to": message.recipient, "group": message.group, "message": message.text,
            "matches": [list(span) for span in result.matches]})
    if page.more:
        session.output.note(f"more: --offset {page.next_offset}")
    return EXIT_OK


COMMANDS = {"edit": cmd_edit, "delete": cmd_delete, "search-messages": cmd_search_messages}
