"""The durable mail queue: one JSON file per mail in a spool directory.

Layout under the spool directory (``<data_dir>/mail-spool`` by default)::

    <mail_id>.json          a mail waiting for delivery (attempts, next attempt, last error)
    failed/<mail_id>.json   a mail that failed for good, with the error
    .tmp-*                  a write in progress; left over only by a crash, removed at start

Every write is atomic and durable: the JSON goes to a temporary file in the same
directory, is fsynced, renamed over the final name, and the directory is fsynced. A reader
(the mailer after a restart, or ``messenger-admin mail list``) therefore sees either the old
or the new version of a file, never a torn one. The content is JSON, never pickle.

`SpoolDirectory` does the blocking file work and is what the admin tool reads; `Spool` is
the same for the reactor: each call runs in a thread (``deferToThread`` unless another
runner is injected) and returns a Deferred. Calls run one at a time, in the order made, so
a scan never races a write; entries are serialised on the calling thread, so no mutable
object crosses a thread boundary.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.threads import deferToThread

SPOOL_VERSION = 1
FAILED_DIR = "failed"
TEMP_PREFIX = ".tmp-"
_MAIL_ID = re.compile(r"^[0-9a-f]{32}$")

RunIO = Callable[..., Deferred]


def new_mail_id() -> str:
    """A fresh random spool id (128 bits, hex); it also names the Message-ID."""
    return secrets.token_hex(16)


class SpoolFormatError(ValueError):
    """A spool file that is not a mail entry this version understands."""


@dataclass
class SpoolEntry:
    """One queued mail: the message itself and the state of its delivery."""

    mail_id: str
    created: float            # POSIX seconds when queued
    sender: str               # envelope sender (MAIL FROM), an addr-spec
    to: str                   # envelope recipient (RCPT TO), an addr-spec
    subject: str              # for listings; the message carries its own header
    message: str              # the RFC 5322 text, "\n" line ends
    attempts: int = 0         # delivery attempts that failed so far
    next_attempt: float = 0.0
    last_attempt: float | None = None
    last_error: str | None = None
    failed_at: float | None = None   # set when moved to failed/
    template: str = ""        # the template it was made from ("" for a plain mail)

    def to_json(self) -> bytes:
        record = {"version": SPOOL_VERSION, **asdict(self)}
        return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SpoolEntry:
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpoolFormatError(f"not JSON: {exc}") from None
        if not isinstance(record, dict) or record.get("version") != SPOOL_VERSION:
            raise SpoolFormatError("not a version 1 spool entry")
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name in record:
                values[spec.name] = record[spec.name]
        try:
            entry = cls(**values)
        except TypeError as exc:
            raise SpoolFormatError(str(exc)) from None
        entry._check()
        return entry

    def _check(self) -> None:
        if not isinstance(self.mail_id, str) or not _MAIL_ID.match(self.mail_id):
            raise SpoolFormatError("bad mail_id")
        for name in ("sender", "to", "subject", "message"):
            if not isinstance(getattr(self, name), str):
                raise SpoolFormatError(f"{name} must be a string")
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) \
                or self.attempts < 0:
            raise SpoolFormatError("attempts must be a count")
        for name in ("created", "next_attempt", "last_attempt", "failed_at"):
            value = getattr(self, name)
            if value is None and name in ("last_attempt", "failed_at"):
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise SpoolFormatError(f"{name} must be a number")
        if self.last_error is not None and not isinstance(self.last_error, str):
            raise SpoolFormatError("last_error must be a string")
        if not isinstance(self.template, str):
            raise SpoolFormatError("template must be a string")


def make_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) if needed; a new `path` itself is 0700."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, temp_dir: Path | None = None,
                  temp_name: str | None = None) -> None:
    """Write `data` to `path` atomically: temp file, fsync, rename, fsync the directory.

    The temporary file lives in `temp_dir` (default: next to `path`; it must be on the
    same file system). Files are created 0600: mails name people and addresses.
    """
    temp_dir = temp_dir if temp_dir is not None else path.parent
    temp = temp_dir / (temp_name or f"{TEMP_PREFIX}{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


class SpoolDirectory:
    """The spool on disk, with blocking calls (run them in a thread from the reactor)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.failed_path = self.path / FAILED_DIR

    def ensure(self) -> None:
        make_private_dir(self.path)
        make_private_dir(self.failed_path)

    def entry_path(self, mail_id: str) -> Path:
        return self.path / f"{mail_id}.json"

    def write(self, mail_id: str, data: bytes) -> None:
        """Create or replace the pending entry `mail_id` with serialised `data`."""
        self.ensure()
        write_durably(self.entry_path(mail_id), data)

    def remove(self, mail_id: str) -> None:
        """Delete the pending entry `mail_id` (delivered); no error if already gone."""
        self.entry_path(mail_id).unlink(missing_ok=True)
        fsync_directory(self.path)

    def fail(self, mail_id: str, data: bytes) -> None:
        """Move entry `mail_id` to failed/ with serialised `data` (which holds the error).

        The failed copy is durable before the pending one goes, so a crash in between
        leaves both, and `recover` then drops the pending one.
        """
        self.ensure()
        write_durably(self.failed_path / f"{mail_id}.json", data)
        self.remove(mail_id)

    def pending(self) -> list[SpoolEntry]:
        """The entries waiting for delivery, oldest first (unreadable files skipped)."""
        return scan(self.path)[0]

    def failed(self) -> list[SpoolEntry]:
        """The entries that failed for good, oldest first."""
        return scan(self.failed_path)[0]

    def unreadable(self) -> list[Path]:
        """Files in the spool that are not entries we understand (left alone, listed)."""
        return scan(self.path)[1] + scan(self.failed_path)[1]

    def recover(self) -> list[SpoolEntry]:
        """Clean up after a crash and return the pending entries.

        Removes temporary files (writes that never completed, so never acknowledged) and
        pending entries that also exist in failed/ (a crash in the middle of `fail`).
        """
        self.ensure()
        for directory in (self.path, self.failed_path):
            for temp in directory.glob(TEMP_PREFIX + "*"):
                temp.unlink(missing_ok=True)
        failed_ids = {entry.mail_id for entry in self.failed()}
        entries = []
        for entry in self.pending():
            if entry.mail_id in failed_ids:
                self.remove(entry.mail_id)
            else:
                entries.append(entry)
        return entries


def scan(directory: Path) -> tuple[list[SpoolEntry], list[Path]]:
    """(entries sorted by creation, unreadable paths) of the ``*.json`` in `directory`."""
    entries: list[SpoolEntry] = []
    unreadable: list[Path] = []
    if not directory.is_dir():
        return entries, unreadable
    for path in sorted(directory.glob("*.json")):
        try:
            entry = SpoolEntry.from_json(path.read_bytes())
        except (OSError, SpoolFormatError):
            unreadable.append(path)
            continue
        if path.stem != entry.mail_id:
            unreadable.append(path)
            continue
        entries.append(entry)
    entries.sort(key=lambda entry: (entry.created, entry.mail_id))
    return entries, unreadable


class Spool:
    """The spool for reactor code: every call returns a Deferred and blocks no one.

    Calls are serialised (one file operation at a time, in call order).
    """

    def __init__(self, path: Path, run_io: RunIO | None = None) -> None:
        self.directory = SpoolDirectory(path)
        self._run_io: RunIO = run_io if run_io is not None else deferToThread
        self._lock = DeferredLock()

    def _run(self, function: Callable[..., Any], *args: Any) -> Deferred:
        return self._lock.run(self._run_io, function, *args)

    @property
    def path(self) -> Path:
        return self.directory.path

    def write(self, entry: SpoolEntry) -> Deferred:
        """Store `entry` (new or updated); fires once it is durable."""
        return self._run(self.directory.write, entry.mail_id, entry.to_json())

    def remove(self, mail_id: str) -> Deferred:
        return self._run(self.directory.remove, mail_id)

    def fail(self, entry: SpoolEntry) -> Deferred:
        """Move `entry` to failed/; fires once that is durable."""
        return self._run(self.directory.fail, entry.mail_id, entry.to_json())

    def recover(self) -> Deferred:
        """Fires with the pending entries after crash clean-up (see `SpoolDirectory`)."""
        return self._run(self.directory.recover)

    def pending(self) -> Deferred:
        return self._run(self.directory.pending)

    def failed(self) -> Deferred:
        return self._run(self.directory.failed)
