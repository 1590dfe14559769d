"""messenger-cli's file commands: ``send-file USER PATH``, ``group send-file ID PATH`` and
``download FILE_ID PATH``.

Both wait for the transfer however long it takes while it moves, and give up when it
makes no progress for ``--timeout`` seconds (a lost connection is survived: the client
reconnects and the transfer goes on from where the server says it stopped). Progress
goes to stderr; ``send-file`` prints the file id alone on its last line (scripts read
it), ``download`` the path written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twisted.internet import defer

from messenger.client.cli.options import EXIT_OK, EXIT_USAGE, CliError
from messenger.client.filesapi import safe_file_name
from messenger.client.transfers import Transfer

REPORT_STEP = 0.25     # a progress line on stderr each quarter


class Watch:
    """Waits for a transfer; fails with a timeout when it stalls for ``timeout`` s."""

    def __init__(self, session: Any, transfer: Transfer) -> None:
        self.session = session
        self.transfer = transfer
        self.reported = 0.0
        self.done = transfer.when_done()
        self._timer = session.reactor.callLater(session.timeout, self._stalled)
        self._unsubscribe = session.client.subscribe("transfer_progress", self._moved)
        self.done.addBoth(self._over)

    def _moved(self, transfer: Transfer) -> None:
        if transfer is not self.transfer:
            return
        if self._timer.active():
            self._timer.reset(self.session.timeout)
        if transfer.size and transfer.fraction - self.reported >= REPORT_STEP:
            self.reported = transfer.fraction
            self.session.output.note(f"{transfer.name}: {transfer.done} of {transfer.size}"
                                     f" bytes ({transfer.fraction:.0%})")

    def _stalled(self) -> None:
        self.session.client.cancel_transfer(self.transfer)
        if not self.done.called:
            self.done.errback(defer.TimeoutError())

    def _over(self, result: Any) -> Any:
        self._unsubscribe()
        if self._timer.active():
            self._timer.cancel()
        return result


async def cmd_send_file(session: Any, args: argparse.Namespace, _: Any) -> int:
    return await _send(session, args, lambda client, path: client.send_file(
        args.to, path, args.caption or ""), args.to, {"to": args.to})


async def cmd_group_send_file(session: Any, args: argparse.Namespace) -> int:
    """``group send-file ID PATH``: as ``send-file``, to a group's members."""
    return await _send(session, args, lambda client, path: client.send_group_file(
        args.group_id, path, args.caption or ""), f"group #{args.group_id}",
        {"group": args.group_id})


async def _send(session: Any, args: argparse.Namespace, start: Any, where: str,
                target: dict[str, Any]) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise CliError(f"{path}: not a file", EXIT_USAGE)
    await session.start(patient=True)
    transfer = start(session.client, path)
    await Watch(session, transfer).done
    message = transfer.message or {}
    session.output.note(f"sent {transfer.name} ({transfer.size} bytes) to {where}:"
                        f" message #{message.get('msg_id')}, file")
    session.output.line(str(transfer.file_id),
                        {"file_id": transfer.file_id, "msg_id": message.get("msg_id"),
                         **target, "name": transfer.name, "size": transfer.size})
    return EXIT_OK


async def cmd_download(session: Any, args: argparse.Namespace, _: Any) -> int:
    target = Path(args.path)
    reply = await session.ask(lambda client: client.request("file_get",
                                                            {"file_id": args.file_id}))
    if target.is_dir():
        target = target / safe_file_name(str(reply.get("file", {}).get("name", "")),
                                         f"file-{args.file_id}")
    transfer = session.client.download_file(args.file_id, target)
    await Watch(session, transfer).done
    session.output.note(f"downloaded {transfer.size} bytes")
    session.output.line(str(target), {"file_id": args.file_id, "path": str(target),
                                      "size": transfer.size})
    return EXIT_OK
