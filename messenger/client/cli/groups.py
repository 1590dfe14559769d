"""messenger-cli's ``group`` commands: create, list, info, add, remove, leave, send,
send-file (`messenger.client.cli.files`), history. Each logs in with the saved token,
does one thing and says quit; ``group create`` prints the new group's id alone on its
last line, for scripts (``id=$(messenger-cli group create Team | tail -n 1)``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from messenger.client.cli import files
from messenger.client.cli.options import EXIT_OK
from messenger.client.cli.output import format_message

if TYPE_CHECKING:
    from messenger.client.cli.commands import Session


def add_parser(commands: Any) -> None:
    """``group ACTION ...`` under the top-level commands."""
    group = commands.add_parser("group", help="group conversations",
                                description="Create, list and use group conversations.")
    actions = group.add_subparsers(dest="group_command", metavar="ACTION", required=True)

    def action(name: str, text: str, *ids: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=text, description=text)
        for argument in ids:
            sub.add_argument(argument, type=int, metavar="ID", help="the group's id")
        return sub

    sub = action("create", "create a group (you are its owner); prints its id last")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--members", default="", metavar="A,B,...",
                     help="account names to add, separated by commas")
    sub.add_argument("--topic")
    sub.add_argument("--announce-only", action="store_true",
                     help="only the owner and admins may post (an announcement channel)")
    action("list", "your groups, with unread counts")
    action("info", "a group and its members", "group_id")
    action("add", "add a member (owners and admins)", "group_id").add_argument(
        "account_name", metavar="USER")
    action("remove", "remove a member (owners and admins)", "group_id").add_argument(
        "account_name", metavar="USER")
    action("leave", "leave a group", "group_id")
    sub = action("send", "send a message to a group", "group_id")
    sub.add_argument("text", nargs="+", metavar="TEXT")
    sub.add_argument("--reply-to", type=int, metavar="MSG_ID",
                     help="quote an earlier message of the group")
    sub = action("send-file", "send a file to a group (images with a preview); prints the"
                 " file id last", "group_id")
    sub.add_argument("path", metavar="PATH")
    sub.add_argument("--caption", metavar="TEXT", help="text of the message with the file")
    sub = action("history", "show a group's conversation", "group_id")
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--before", type=int, metavar="MSG_ID")


async def cmd_group(session: Session, args: argparse.Namespace, _: Any) -> int:
    return await ACTIONS[args.group_command](session, args)


async def _create(session: Session, args: argparse.Namespace) -> int:
    members = [name.strip() for name in args.members.split(",") if name.strip()]
    reply = await session.ask(lambda client: client.group_create(
        args.name, members=members or None, topic=args.topic,
        announce_only=True if args.announce_only else None))
    group = reply.get("group", {})
    output = session.output
    if output.as_json:
        output.line("", {**group, "member_names": [m.get("account_name")
                                                   for m in reply.get("members", [])]})
        return EXIT_OK
    kind = "announcement channel" if group.get("announce_only") else "group"
    output.line(f"created {kind} '{group.get('name')}' with {group.get('members')} members")
    output.line(str(group.get("group_id")))
    return EXIT_OK


async def _list(session: Session, args: argparse.Namespace) -> int:
    await session.start()
    after = 0
    while True:
        reply = await session.limit(session.client.group_list(after=after))
        for group in reply.get("alert", []):
            mentions = group.get("mentions") or 0
            session.output.line(
                f"{group.get('group_id')}\t{group.get('name')}\t{group.get('role')}"
                f"\t{group.get('members')} members\t{group.get('unread')} unread"
                + (f", {mentions} mentioning you" if mentions else ""), group)
            after = group.get("group_id", after)
        if not reply.get("more") or not reply.get("alert"):
            return EXIT_OK


async def _info(session: Session, args: argparse.Namespace) -> int:
    reply = await session.ask(lambda client: client.group_info(args.group_id))
    group = reply.get("group", {})
    flags = " (announcement channel)" if group.get("announce_only") else ""
    session.output.line(f"#{group.get('group_id')} {group.get('name')}{flags}:"
                        f" {group.get('members')} members, owner {group.get('owner')},"
                        f" you are {group.get('role')}", group)
    if group.get("topic"):
        session.output.line(f"topic: {group['topic']}", {"topic": group["topic"]})
    for member in reply.get("members", []):
        session.output.line(f"{member.get('account_name')}\t{member.get('role')}", member)
    return EXIT_OK


async def _add(session: Session, args: argparse.Namespace) -> int:
    reply = await session.ask(lambda client: client.group_add(args.group_id,
                                                              args.account_name))
    member = reply.get("member", {})
    session.output.line(f"added {member.get('account_name')} to group #{args.group_id}",
                        member)
    return EXIT_OK


async def _remove(session: Session, args: argparse.Namespace) -> int:
    await session.ask(lambda client: client.group_remove(args.group_id, args.account_name))
    session.output.line(f"removed {args.account_name} from group #{args.group_id}",
                        {"removed": args.account_name, "group_id": args.group_id})
    return EXIT_OK


async def _leave(session: Session, args: argparse.Namespace) -> int:
    await session.ask(lambda client: client.group_leave(args.group_id))
    session.output.line(f"left group #{args.group_id}", {"left": args.group_id})
    return EXIT_OK


async def _send(session: Session, args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    reply = await session.ask(lambda client: client.send_group_message(args.group_id, text,
                                                                       args.reply_to),
                              patient=True)
    session.output.line(f"sent #{reply.get('msg_id')} to group #{args.group_id}",
                        {"msg_id": reply.get("msg_id"), "time": reply.get("time"),
                         "group": args.group_id})
    return EXIT_OK


async def _history(session: Session, args: argparse.Namespace) -> int:
    reply = await session.ask(lambda client: client.group_history(
        args.group_id, before=args.before, limit=args.limit))
    for message in reply.get("alert", []):
        session.output.line(format_message(message), message)
    return EXIT_OK


ACTIONS: dict[str, Callable[..., Any]] = {
    "create": _create, "list": _list, "info": _info, "add": _add, "remove": _remove,
    "leave": _leave, "send": _send, "history": _history,
    "send-file": files.cmd_group_send_file,
}
