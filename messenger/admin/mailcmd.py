"""``messenger-admin mail list`` / ``mail show``: the server's outgoing mail, read from disk.

Pure functions on a data directory; they read files and change nothing, so they are safe
to run next to a live server. Four places are looked at:

* ``<data_dir>/mail-spool/*.json``: mails waiting for delivery (state ``pending``), with
  their attempt count, next attempt and last error;
* ``<data_dir>/mail-spool/failed/*.json``: mails that failed for good (``failed``);
* ``<data_dir>/Maildir/new`` and ``cur``: mails delivered locally when no relay is
  configured (``new``, or ``read`` once a mail client moved them to cur/);
* anything in the spool that cannot be read is listed as ``unreadable``.

Every row has a ``key``: the spool id (also in the Maildir file name of a mail we
delivered), or the Maildir file name. `show_mail` accepts any unique prefix of a key.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from messenger.server.config import ServerConfig
from messenger.server.mail.spool import SpoolEntry, SpoolFormatError, scan

_OUR_MAILDIR_NAME = re.compile(r"^\d+\.([0-9a-f]{32})\.")
_HEADER_PARSER = BytesParser(policy=policy.default)
_WIDTHS = {"key": 12, "state": 10, "date": 16, "to": 28, "subject": 36, "info": 100}


def list_mail(data_dir: Path) -> list[dict[str, Any]]:
    """Every mail the server has queued, failed or delivered locally, oldest first.

    Each row: key, state, date (POSIX seconds or None), to, subject, attempts,
    next_attempt, last_error (None where they do not apply) and path.
    """
    config = ServerConfig(data_dir=Path(data_dir))
    spool_dir = config.mail_spool_path
    rows = _spool_rows(spool_dir, "pending") + _spool_rows(spool_dir / "failed", "failed")
    maildir = config.maildir_path
    rows += _maildir_rows(maildir / "new", "new") + _maildir_rows(maildir / "cur", "read")
    rows.sort(key=lambda row: (row["date"] is None, row["date"] or 0.0, row["key"]))
    return rows


def _row(**values: Any) -> dict[str, Any]:
    row = dict.fromkeys(("key", "state", "date", "to", "subject", "attempts",
                         "next_attempt", "last_error", "path"))
    row.update(values)
    return row


def _spool_rows(directory: Path, state: str) -> list[dict[str, Any]]:
    entries, unreadable = scan(directory)
    rows = [_row(key=entry.mail_id, state=state,
                 date=entry.failed_at if state == "failed" and entry.failed_at else
                 entry.created,
                 to=entry.to, subject=entry.subject, attempts=entry.attempts,
                 next_attempt=entry.next_attempt if state == "pending" else None,
                 last_error=entry.last_error, path=str(directory / f"{entry.mail_id}.json"))
            for entry in entries]
    rows += [_row(key=path.stem, state="unreadable", path=str(path),
                  last_error="not a spool entry this version understands")
             for path in unreadable]
    return rows


def _maildir_rows(directory: Path, state: str) -> list[dict[str, Any]]:
    if not directory.is_dir():
        return []
    rows = []
    for name in sorted(os.listdir(directory)):
        path = directory / name
        if name.startswith(".") or not path.is_file():
            continue
        base = name.split(":", 1)[0]
        match = _OUR_MAILDIR_NAME.match(base)
        to = subject = ""
        date: float | None = None
        try:
            with path.open("rb") as handle:
                headers = _HEADER_PARSER.parse(handle, headersonly=True)
            to, subject = str(headers.get("To", "")), str(headers.get("Subject", ""))
            if headers.get("Date"):
                date = parsedate_to_datetime(str(headers["Date"])).timestamp()
        except (OSError, ValueError, TypeError):
            pass
        if date is None:
            try:
                date = path.stat().st_mtime
            except OSError:
                date = None
        rows.append(_row(key=match.group(1) if match else base, state=state, date=date,
                         to=to, subject=subject, path=str(path)))
    return rows


def _when(seconds: float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime(fmt)


def _info(row: dict[str, Any]) -> str:
    if row["state"] == "pending":
        text = f"{row['attempts']} failed attempt(s)"
        if row["attempts"]:
            text += f", next {_when(row['next_attempt'], '%Y-%m-%d %H:%M:%S')}"
        if row["last_error"]:
            text += f"; {row['last_error']}"
        return text
    if row["state"] in ("failed", "unreadable"):
        return row["last_error"] or ""
    return ""


def _cell(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_mail_table(rows: list[dict[str, Any]]) -> str:
    """`list_mail` rows as an aligned text table (dates in UTC).

    Keys are shown by their first 12 characters, enough for `show_mail`.
    """
    if not rows:
        return "No mail in the spool or the Maildir."
    header = {"key": "KEY", "state": "STATE", "date": "DATE (UTC)", "to": "TO",
              "subject": "SUBJECT", "info": "ATTEMPTS / ERROR"}
    cells = [header] + [
        {"key": row["key"][:_WIDTHS["key"]], "state": row["state"], "date": _when(row["date"]),
         "to": row["to"] or "", "subject": row["subject"] or "", "info": _info(row)}
        for row in rows]
    cells = [{name: _cell(value, _WIDTHS[name]) for name, value in line.items()}
             for line in cells]
    widths = {name: max(len(line[name]) for line in cells) for name in _WIDTHS}
    lines = ["  ".join(line[name].ljust(widths[name]) for name in _WIDTHS).rstrip()
             for line in cells]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    return "\n".join(lines + ["", f"{len(rows)} mail(s): {summary}"])


def show_mail(data_dir: Path, key: str) -> str:
    """The mail whose key starts with `key`: its state and the full message text.

    LookupError if nothing matches, ValueError if the prefix names several mails.
    """
    key = key.strip()
    if not key:
        raise ValueError("give the key (or a unique start of it) of a mail")
    matches = [row for row in list_mail(data_dir) if row["key"].startswith(key)]
    if not matches:
        raise LookupError(f"no mail with a key starting with {key!r}")
    keys = sorted({row["key"] for row in matches})
    if len(keys) > 1:
        raise ValueError(f"{key!r} matches {len(keys)} mails: {', '.join(keys)}")
    return "\n\n".join(_describe(row) for row in matches)


def _describe(row: dict[str, Any]) -> str:
    lines = [f"Key:      {row['key']}", f"State:    {row['state']}",
             f"File:     {row['path']}"]
    if row["to"]:
        lines.append(f"To:       {row['to']}")
    if row["date"] is not None:
        lines.append(f"Date:     {_when(row['date'], '%Y-%m-%d %H:%M:%S')} UTC")
    if row["attempts"] is not None:
        lines.append(f"Attempts: {row['attempts']} failed")
    if row["next_attempt"] is not None and row["attempts"]:
        lines.append(f"Next:     {_when(row['next_attempt'], '%Y-%m-%d %H:%M:%S')} UTC")
    if row["last_error"]:
        lines.append(f"Error:    {row['last_error']}")
    path = Path(row["path"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        return "\n".join(lines + ["", f"(cannot read the file: {exc})"])
    message = data.decode("utf-8", "replace")
    if row["state"] in ("pending", "failed"):
        try:
            message = SpoolEntry.from_json(data).message
        except SpoolFormatError:
            pass
    return "\n".join(lines + ["", message.rstrip("\n")])
