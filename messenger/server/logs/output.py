"""Where the server's log goes and in what shape: text or JSON lines, bounded on disk.

twistd writes its log to standard output (``-n``) or to a file (``--logfile``) that it
rotates at 1 MB and *never deletes*: under a flood of log lines the disk fills. The server
therefore installs its own observer on the twistd application (`install_observer`, called
from ``makeService``) with the same destination rules as twistd and:

* ``--log-format text`` (default): twistd's classic lines, ``<time> [<namespace>#<level>]
  <text>``;
* ``--log-format json``: one JSON object per line (`json_line`) for log shippers: ``time``
  (ISO 8601, UTC), ``level``, ``namespace``, ``text`` (the formatted line), the event's own
  fields, and ``traceback`` when a failure was logged;
* a log file is rotated at ``--log-max-bytes`` and at most ``--log-max-files`` old files
  are kept (``server.log.1`` is the newest); the oldest is deleted.

Under systemd (``-n``, standard output) the journal does the rotating. twistd's own
``--logger`` and ``--syslog`` options still win: then nothing is installed here.

Nothing here adds secrets: fields are whatever the code logged, and the code never logs a
password, token, key or message body (a test greps a whole session's log for them).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    formatEvent,
    textFileLogObserver,
)
from twisted.python import logfile

LOG_FORMATS = ("text", "json")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 10

# Keys of Twisted's legacy log events: their content is in the formatted text already.
_LEGACY_KEYS = frozenset({"message", "format", "isError", "why", "failure", "time",
                          "system"})


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def json_line(event: dict[str, Any]) -> str | None:
    """One event as one line of JSON (None for an event with nothing to say)."""
    text = formatEvent(event)
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0.0), UTC).isoformat(
            timespec="milliseconds"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", "log_legacy"),
        "text": text,
    }
    for key, value in event.items():
        if not key.startswith("log_") and key not in _LEGACY_KEYS and key not in record:
            record[key] = _json_value(value)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["traceback"] = failure.getTraceback()
        except Exception:
            record["traceback"] = repr(failure)
    return json.dumps(record, ensure_ascii=False, default=str) + "\n"


def open_log_file(path: str, max_bytes: int, max_files: int) -> logfile.LogFile:
    """``path`` opened for appending, rotated at ``max_bytes``, ``max_files`` kept."""
    return logfile.LogFile.fromFullPath(path, rotateLength=max_bytes,
                                        maxRotatedFiles=max_files)


def make_observer(log_format: str, out: IO[str] | Any) -> ILogObserver:
    """An observer writing ``log_format`` lines to ``out`` (a text file or a LogFile)."""
    if log_format == "json":
        return FileLogObserver(out, json_line)
    if log_format == "text":
        return textFileLogObserver(out)
    raise ValueError(f"unknown log format {log_format!r}; choose text or json")


def observer_for_twistd(twistd_options: Any, log_format: str, max_bytes: int,
                        max_files: int) -> ILogObserver | None:
    """The observer twistd should use, following twistd's own destination rules.

    None when twistd's ``--logger`` or ``--syslog`` is given (twistd does it then).
    """
    def option(name: str) -> Any:
        try:
            return twistd_options[name]
        except KeyError:
            return None
    if option("logger") or option("syslog"):
        return None
    path = option("logfile")
    if path == "-" or (not path and option("nodaemon")):
        return make_observer(log_format, sys.stdout)
    return make_observer(log_format, open_log_file(path or "twistd.log", max_bytes,
                                                   max_files))
