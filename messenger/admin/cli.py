"""messenger-admin: the operator's tool on a server's data directory.

    messenger-admin [--data-dir DIR] [--database FILE_OR_URL] COMMAND ...

It opens the server's database directly (SQLite: WAL mode and a 30 s busy timeout, so it
runs beside a live server; PostgreSQL: ``--database postgresql://...``, see
`messenger.admin.dbcmd`) and changes accounts with the same store functions as the
server's ``admin_*`` actions (`messenger.store.adminops`): the same rules (the last
administrator stays one) and the same audit rows, with the actor
``operator:<login name>``. Commands that only look open the database read-only.

Changes reach a running server at once: after its transaction, a command that changes
an account tells the server through its control socket in the data dir
(`messenger.admin.control`), and the server applies it to the live session (a locked or
deleted user is disconnected with a notice; changed roles are pushed). ``online`` asks
the server who is connected. Without a running server the change simply waits in the
database.

This is not reactor code: plain connections on the calling thread.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import psycopg2

from messenger.admin.commands import (
    cmd_audit,
    cmd_backup,
    cmd_code_create,
    cmd_code_list,
    cmd_delete,
    cmd_gen_cert,
    cmd_groups_delete,
    cmd_groups_list,
    cmd_groups_show,
    cmd_history,
    cmd_lock,
    cmd_mail_list,
    cmd_mail_show,
    cmd_migrate,
    cmd_online,
    cmd_set_admin,
    cmd_set_premium,
    cmd_sql,
    cmd_unlock,
    cmd_usage,
    cmd_users_list,
    cmd_users_show,
)
from messenger.admin.dbcmd import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger-admin",
        description="Look at and change a Messenger server's data directory (safe while"
                    " the server runs).")
    parser.add_argument("--data-dir", "-d", default="var",
                        help="the server's data directory (default: var)")
    parser.add_argument("--database", default="",
                        help="the database: a SQLite file (default DATA_DIR/messenger.sqlite)"
                             " or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    command = _Commands(commands)
    _account_commands(commands, command)
    _data_commands(commands, command)
    _group_and_mail_commands(commands, command)
    return parser


class _Commands:
    """Adds one command (with its handler and help) to a group of subcommands."""

    def __init__(self, top: Any) -> None:
        self.top = top

    def __call__(self, name: str, handler: Callable[..., None], help_: str,
                 group: Any = None) -> argparse.ArgumentParser:
        sub = (group or self.top).add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        return sub


def _account_commands(commands: Any, command: _Commands) -> None:
    """users, roles, lock, online, usage, history, delete."""
    users_parser = commands.add_parser("users", help="list or show accounts")
    users_commands = users_parser.add_subparsers(dest="users_command", metavar="ACTION",
                                                 required=True)
    sub = command("list", cmd_users_list, "list accounts (paged)", users_commands)
    sub.add_argument("--query", "-q", help="only names containing this (any case)")
    sub.add_argument("--offset", type=int, default=0)
    sub.add_argument("--limit", type=int, default=100)
    command("show", cmd_users_show, "one account in detail", users_commands
            ).add_argument("name")

    for name, handler, value, text in (
            ("set-admin", cmd_set_admin, True, "make an account an administrator"),
            ("clear-admin", cmd_set_admin, False, "take the administrator role away"),
            ("set-premium", cmd_set_premium, True, "make an account premium"),
            ("clear-premium", cmd_set_premium, False, "make an account ordinary")):
        sub = command(name, handler, text)
        sub.add_argument("name")
        sub.set_defaults(value=value)
    sub = command("lock", cmd_lock, "lock an account (until unlocked, or for --minutes)")
    sub.add_argument("name")
    sub.add_argument("--minutes", type=int, default=0)
    command("unlock", cmd_unlock, "unlock an account and clear its failed logins"
            ).add_argument("name")
    command("online", cmd_online, "who is connected to the running server, from where,"
            " since when")
    command("usage", cmd_usage, "the accounts storing the most messages (characters in"
            " all and in the last 24 h; the server's quota is --stored-mib-per-day)"
            ).add_argument("--top", type=int, default=20)
    sub = command("history", cmd_history, "login history of an account, newest first")
    sub.add_argument("name")
    sub.add_argument("--limit", type=int, default=50)
    sub = command("delete", cmd_delete, "delete an account and what it owns")
    sub.add_argument("name")
    sub.add_argument("--yes", action="store_true", help="do not ask")


def _data_commands(commands: Any, command: _Commands) -> None:
    """premium codes, audit, migrate, backup, sql."""
    codes_parser = commands.add_parser("premium-code", help="create or list premium codes")
    codes_commands = codes_parser.add_subparsers(dest="code_command", metavar="ACTION",
                                                 required=True)
    sub = command("create", cmd_code_create, "make single-use premium codes", codes_commands)
    sub.add_argument("--count", "-n", type=int, default=1)
    sub = command("list", cmd_code_list, "list premium codes, newest first", codes_commands)
    sub.add_argument("--offset", type=int, default=0)
    sub.add_argument("--limit", type=int, default=100)

    sub = command("audit", cmd_audit, "the audit log of admin actions, newest first")
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--before", type=int, default=None, help="only entries below this id")
    command("migrate", cmd_migrate, "create the database or bring its schema up to date")
    sub = command("backup", cmd_backup, "copy the database to FILE (online backup; pg_dump"
                  " on PostgreSQL)")
    sub.add_argument("file")
    sub.add_argument("--force", action="store_true", help="replace FILE if it exists")
    sub = command("sql", cmd_sql, "run one SQL statement (read-only unless --write)")
    sub.add_argument("statement")
    sub.add_argument("--write", action="store_true", help="allow changes (audited)")


def _group_and_mail_commands(commands: Any, command: _Commands) -> None:
    """groups, mail, gen-cert."""
    groups_parser = commands.add_parser("groups", help="list, show or delete group"
                                                          " conversations")
    groups_commands = groups_parser.add_subparsers(dest="groups_command", metavar="ACTION",
                                                   required=True)
    sub = command("list", cmd_groups_list, "list groups by id (paged)", groups_commands)
    sub.add_argument("--query", "-q", help="only names containing this (any case)")
    sub.add_argument("--offset", type=int, default=0)
    sub.add_argument("--limit", type=int, default=100)
    sub = command("show", cmd_groups_show, "one group with its members and their roles",
                  groups_commands)
    sub.add_argument("group_id", type=int)
    sub = command("delete", cmd_groups_delete, "delete a group with its messages (audited)",
                  groups_commands)
    sub.add_argument("group_id", type=int)
    sub.add_argument("--yes", action="store_true", help="do not ask")

    mail_parser = commands.add_parser("mail", help="the server's outgoing mail")
    mail_commands = mail_parser.add_subparsers(dest="mail_command", metavar="ACTION",
                                               required=True)
    command("list", cmd_mail_list, "queued, failed and delivered mail", mail_commands)
    command("show", cmd_mail_show, "one mail by (a unique start of) its key",
            mail_commands).add_argument("key")

    sub = command("gen-cert", cmd_gen_cert, "make a self-signed TLS certificate for HOST")
    sub.add_argument("host")
    sub.add_argument("--cert", help="certificate file (default: DATA_DIR/tls-cert.pem)")
    sub.add_argument("--key", help="key file (default: DATA_DIR/tls-key.pem)")
    sub.add_argument("--days", type=int, default=825)
    sub.add_argument("--bits", type=int, default=2048)
    sub.add_argument("--force", action="store_true", help="replace existing files")


def _check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name, low in (("limit", 1), ("offset", 0), ("count", 1), ("minutes", 0)):
        value = getattr(args, name, None)
        if value is not None and value < low:
            parser.error(f"--{name} must be at least {low}")
    if getattr(args, "count", 1) > 1000:
        parser.error("--count may be at most 1000")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 failed, 2 usage)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
            _check_numbers(parser, args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        args.handler(args, out)
    except CommandError as error:
        err.write(f"messenger-admin: {error}\n")
        return 1
    except (sqlite3.Error, psycopg2.Error, OSError) as error:
        err.write(f"messenger-admin: {type(error).__name__}: {' '.join(str(error).split())}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
