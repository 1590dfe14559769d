"""The commands of messenger-admin (`messenger.admin.cli` parses the command line and
calls one of these with the parsed arguments and the output stream).

Each ``cmd_*`` opens the database (read-only when it only looks), does its work with the
store's functions, and writes what it did; a change to an account is also told to the
running server (`messenger.admin.control`). Not reactor code.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

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
             args: argparse.Namespace | None = None, tell: Callable[[Path], Any] | None = None
             ) -> None:
    """Report a change, after telling the running server (if any) about it: by
    ``tell(socket_path)`` (its outcome), else as `control.account_changed`."""
    live = ""
    if args is not None:
        try:
            path = _socket_path(args)
            outcome = (tell(path) if tell is not None
                       else control.account_changed(path, row.id))
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
    deleted = change(args, adminops.delete_user_txn, args.name)
    row = deleted.row
    _changed(out, row, "deleted", args, lambda path: control.account_deleted(
        path, row.id, row.name, deleted.groups))


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


ROLE_ORDER = {"owner": 0, "admin": 1}


def cmd_groups_show(args: argparse.Namespace, out: TextIO) -> None:
    """One group: what it is and who is in it, the owner and admins first."""
    def show_txn(txn: Any) -> tuple[groups.GroupRow | None, list[groups.Member]]:
        group = groups.group_txn(txn, args.group_id)
        return group, groups.all_members_txn(txn, args.group_id) if group else []
    group, members = read(args, show_txn)
    if group is None:
        raise CommandError(f"no group with id {args.group_id}")
    out.write(format_record([
        ("Group", f"#{group.id} {group.name!r}"),
        ("Kind", "announcement channel" if group.announce_only else "group"),
        ("Topic", group.topic or "—"),
        ("Created", f"{when(group.created)} UTC by {group.created_by}"),
        ("Messages", f"up to #{group.last_msg_id}" if group.last_msg_id else "none yet"),
        ("Members", len(members)),
    ]) + "\n\n")
    members.sort(key=lambda m: (ROLE_ORDER.get(m.role, 2), m.name.lower()))
    out.write(format_table(("id", "name", "role"),
                           [(m.user_id, m.name, m.role) for m in members]) + "\n")


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
    live = ""
    try:
        told = control.group_deleted(_socket_path(args), group.id, group.name, member_ids)
        if told is not None:
            live = f"; the members online were told ({told} on this server)"
    except (control.ControlError, OSError, ValueError) as error:
        live = f"; the running server did not confirm telling the members ({error})"
    out.write(f"Deleted group #{group.id} {group.name!r} ({len(member_ids)} members){live}.\n")


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
