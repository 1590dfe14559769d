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
import getpass
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import psycopg2

from messenger.admin import certs, control, dbcmd, mailcmd
from messenger.admin.dbcmd import CommandError
from messenger.admin.table import format_record, format_table, when
from messenger.server.config import ServerConfig
from messenger.store import adminops, audit, groupchanges, groups, logins, premium, users
from messenger.store.errors import LastAdmin, Missing

# -- opening the database (messenger.admin.dbcmd) -----------------------------------------

open_database = dbcmd.open_database


def operator() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"operator:{name}"


def change(args: argparse.Namespace, fn: Callable[..., Any], *fn_args: Any) -> Any:
    """Run one adminops change as the operator, in one write transaction."""
    connection = open_database(args, write=True)
    try:
        return connection.write(fn, operator(), *fn_args, time.time())
    except Missing as error:
        raise CommandError(f"no user named '{error}'") from None
    except LastAdmin:
        raise CommandError("refused: that would leave no administrator; make another"
                           " administrator first") from None
    finally:
        connection.close()


def read(args: argparse.Namespace, fn: Callable[..., Any], *fn_args: Any) -> Any:
    connection = open_database(args, write=False)
    try:
        return connection.read(fn, *fn_args)
    except Missing as error:
        raise CommandError(f"no user named '{error}'") from None
    finally:
        connection.close()


# -- users --------------------------------------------------------------------------------

def _locked(row: users.UserRow, now: float) -> str:
    if row.admin_locked:
        return "until unlocked"
    if row.locked_until is not None and row.locked_until > now:
        return "until " + when(row.locked_until)
    return ""


def cmd_users_list(args: argparse.Namespace, out: TextIO) -> None:
    rows = read(args, users.list_txn, args.query, args.offset, args.limit + 1)
    now = time.time()
    shown = rows[:args.limit]
    if not shown:
        out.write("No users.\n")
        return
    out.write(format_table(
        ("id", "name", "email", "admin", "premium", "locked", "created"),
        [(r.id, r.name, r.email, r.is_admin, r.is_premium, _locked(r, now), when(r.created))
         for r in shown]) + "\n")
    more = f"; more after --offset {args.offset + args.limit}" if len(rows) > args.limit else ""
    out.write(f"\n{len(shown)} user(s){more}\n")


def cmd_users_show(args: argparse.Namespace, out: TextIO) -> None:
    summary = read(args, adminops.summary_txn, args.name)
    row: users.UserRow = summary["user"]
    last = summary["last_login"]
    out.write(format_record([
        ("Name", row.name), ("Id", row.id), ("E-mail", row.email),
        ("Admin", "yes" if row.is_admin else "no"),
        ("Premium", "yes" if row.is_premium else "no"),
        ("Locked", _locked(row, time.time()) or "no"),
        ("Failed logins", row.failed_logins),
        ("Created", when(row.created) + " UTC"),
        ("Password set", when(row.password_changed) + " UTC"),
        ("Last login", f"{when(last[0])} UTC from {last[1]}" if last else "never"),
        ("Contacts", summary["contacts"]), ("In contacts of", summary["contact_of"]),
        ("Messages sent", summary["sent"]), ("Messages received", summary["received"]),
        ("Broadcasts", summary["broadcasts"]), ("Resume tokens", summary["tokens"]),
    ]) + "\n")


_LIVE = {"closed": "; disconnected from the running server",
         "refreshed": "; the running server updated the live session"}


def _changed(out: TextIO, row: users.UserRow, what: str,
             args: argparse.Namespace | None = None) -> None:
    """Report a change, after telling the running server (if any) about it."""
    live = ""
    if args is not None:
        try:
            outcome = control.account_changed(_socket_path(args), row.id)
            live = _LIVE.get(outcome or "", "")
        except (control.ControlError, OSError, ValueError) as error:
            live = (f"; the running server did not confirm it ({error}): it applies"
                    " within 10 s")
    out.write(f"{row.name}: {what}{live}\n")


def _socket_path(args: argparse.Namespace) -> Path:
    return ServerConfig(data_dir=Path(args.data_dir)).control_socket_path


def cmd_usage(args: argparse.Namespace, out: TextIO) -> None:
    """The accounts that store the most messages (for the storage quota, issue 23)."""
    rows = read(args, adminops.usage_txn, args.top, time.time() - 24 * 3600)
    if not rows:
        out.write("No messages stored.\n")
        return
    out.write(format_table(("name", "messages", "characters", "last 24 h"),
                           [tuple(row) for row in rows]) + "\n")


def cmd_online(args: argparse.Namespace, out: TextIO) -> None:
    try:
        sessions = control.online(_socket_path(args))
    except control.ServerNotRunning:
        raise CommandError(f"no server is running on {args.data_dir} (its control socket"
                           " does not answer)") from None
    except (control.ControlError, OSError, ValueError) as error:
        raise CommandError(f"the server did not answer: {error}") from None
    if not sessions:
        out.write("Nobody is online.\n")
        return
    out.write(format_table(("name", "address", "since (utc)", "status"),
                           [(s["account_name"], s["address"],
                             when(s["since"], "%Y-%m-%d %H:%M:%S") if s["since"] else "",
                             s["status"]) for s in sessions]) + "\n")
    out.write(f"\n{len(sessions)} online\n")


def cmd_set_admin(args: argparse.Namespace, out: TextIO) -> None:
    row = change(args, adminops.set_admin_txn, args.name, args.value)
    _changed(out, row, "administrator" if args.value else "no longer an administrator", args)


def cmd_set_premium(args: argparse.Namespace, out: TextIO) -> None:
    row = change(args, adminops.set_premium_txn, args.name, args.value)
    _changed(out, row, "premium" if args.value else "no longer premium", args)


def cmd_lock(args: argparse.Namespace, out: TextIO) -> None:
    until = time.time() + args.minutes * 60 if args.minutes else None
    row = change(args, adminops.lock_txn, args.name, until)
    _changed(out, row, f"locked until {when(until)} UTC" if until else
             "locked until unlocked", args)


def cmd_unlock(args: argparse.Namespace, out: TextIO) -> None:
    row = change(args, adminops.unlock_txn, args.name)
    _changed(out, row, "unlocked", args)


def cmd_history(args: argparse.Namespace, out: TextIO) -> None:
    def history_txn(txn: Any) -> list[Any]:
        row = users.get_by_name_txn(txn, args.name)
        if row is None:
            raise Missing(args.name)
        return logins.history_txn(txn, row.id, None, args.limit)
    rows = read(args, history_txn)
    if not rows:
        out.write(f"No logins recorded for {args.name}.\n")
        return
    out.write(format_table(("id", "time (utc)", "address", "method", "result"),
                           [(r[0], when(r[1], "%Y-%m-%d %H:%M:%S"), r[2], r[3],
                             "ok" if r[4] else "FAILED") for r in rows]) + "\n")


def cmd_delete(args: argparse.Namespace, out: TextIO) -> None:
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("deleting an account cannot be undone: add --yes")
        answer = input(f"Delete {args.name} with its contacts, messages and login history?"
                       " [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("not deleted")
    row = change(args, adminops.delete_user_txn, args.name)
    _changed(out, row, "deleted", args)


# -- premium codes and audit --------------------------------------------------------------

def cmd_code_create(args: argparse.Namespace, out: TextIO) -> None:
    connection = open_database(args, write=True)
    actor = operator()

    def create_txn(txn: Any) -> list[tuple[int, str]]:
        made = []
        for _ in range(args.count):
            code = premium.new_code()
            made.append((adminops.create_code_txn(txn, actor, premium.hash_code(code),
                                                  premium.hint(code), time.time()), code))
        return made
    try:
        made = connection.write(create_txn)
    finally:
        connection.close()
    for code_id, code in made:
        out.write(f"#{code_id}  {code}\n")
    out.write("\nEach code works once. Only a hash is stored: copy them now.\n")


def cmd_code_list(args: argparse.Namespace, out: TextIO) -> None:
    rows = read(args, premium.list_txn, args.offset, args.limit)
    if not rows:
        out.write("No premium codes.\n")
        return
    out.write(format_table(("id", "hint", "created by", "created", "used by", "used"),
                           [(r[0], r[1], r[2], when(r[3]), r[4], when(r[5])) for r in rows])
              + "\n")


def cmd_audit(args: argparse.Namespace, out: TextIO) -> None:
    rows = read(args, audit.list_txn, args.before, args.limit)
    if not rows:
        out.write("The audit log is empty.\n")
        return
    out.write(format_table(("id", "time (utc)", "actor", "action", "target", "detail"),
                           [(r[0], when(r[1], "%Y-%m-%d %H:%M:%S"), r[2], r[3], r[4], r[5])
                            for r in rows]) + "\n")


# -- groups -------------------------------------------------------------------------------

def cmd_groups_list(args: argparse.Namespace, out: TextIO) -> None:
    rows = read(args, groupchanges.list_all_txn, args.query, args.offset, args.limit)
    if not rows:
        out.write("No groups.\n")
        return
    out.write(format_table(
        ("id", "name", "owner", "members", "announce only", "created", "created by"),
        [(g.id, g.name, owner, members, g.announce_only, when(g.created), g.created_by)
         for g, owner, members in rows]) + "\n")


def cmd_groups_delete(args: argparse.Namespace, out: TextIO) -> None:
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("deleting a group cannot be undone: add --yes")
        answer = input(f"Delete group #{args.group_id} with all its messages? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("not deleted")
    try:
        group, member_ids = change(args, groupchanges.operator_delete_txn, args.group_id)
    except groups.NoSuchGroup:
        raise CommandError(f"no group with id {args.group_id}") from None
    out.write(f"Deleted group #{group.id} {group.name!r} ({len(member_ids)} members).\n")


# -- database -----------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace, out: TextIO) -> None:
    out.write(dbcmd.migrate(args))


def cmd_backup(args: argparse.Namespace, out: TextIO) -> None:
    out.write(dbcmd.backup(args))


def cmd_sql(args: argparse.Namespace, out: TextIO) -> None:
    statement = args.statement.strip()
    if not statement:
        raise CommandError("give one SQL statement")

    def audit_txn(txn: Any, text: str) -> None:
        adminops.record_txn(txn, operator(), "sql", None, text[:500], time.time())
    headers, rows, changed = dbcmd.run_sql(args, statement, audit_txn)
    if headers:
        out.write(format_table(headers, rows, null="NULL") + "\n")
        out.write(f"\n{len(rows)} row(s)\n")
    if args.write and changed >= 0:
        out.write(f"{changed} row(s) changed\n")


# -- mail and certificates ----------------------------------------------------------------

def cmd_mail_list(args: argparse.Namespace, out: TextIO) -> None:
    out.write(mailcmd.format_mail_table(mailcmd.list_mail(Path(args.data_dir))) + "\n")


def cmd_mail_show(args: argparse.Namespace, out: TextIO) -> None:
    try:
        out.write(mailcmd.show_mail(Path(args.data_dir), args.key) + "\n")
    except (LookupError, ValueError) as error:
        raise CommandError(str(error)) from None


def cmd_gen_cert(args: argparse.Namespace, out: TextIO) -> None:
    data_dir = Path(args.data_dir)
    cert = Path(args.cert) if args.cert else data_dir / "tls-cert.pem"
    key = Path(args.key) if args.key else data_dir / "tls-key.pem"
    try:
        fingerprint = certs.generate_self_signed(args.host, cert, key, days=args.days,
                                                 bits=args.bits, overwrite=args.force)
    except FileExistsError as error:
        raise CommandError(f"{error} (--force replaces it)") from None
    except ValueError as error:
        raise CommandError(str(error)) from None
    out.write(f"Certificate: {cert}\nKey:         {key} (mode 0600)\n"
              f"Fingerprint: {fingerprint}\n\n"
              f"Start the server with: --tls-port PORT --tls-cert {cert} --tls-key {key}\n"
              "Clients can pin this fingerprint or use the certificate as their CA file.\n")


# -- the command line ---------------------------------------------------------------------

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

    def command(name: str, handler: Callable[..., None], help_: str,
                group: Any = commands) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        return sub

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

    groups_parser = commands.add_parser("groups", help="list or delete group conversations")
    groups_commands = groups_parser.add_subparsers(dest="groups_command", metavar="ACTION",
                                                   required=True)
    sub = command("list", cmd_groups_list, "list groups by id (paged)", groups_commands)
    sub.add_argument("--query", "-q", help="only names containing this (any case)")
    sub.add_argument("--offset", type=int, default=0)
    sub.add_argument("--limit", type=int, default=100)
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
    return parser


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
