"""File actions of `MessengerClient`: send, upload, download, cancel, and images.

A mixin, as `messenger.client.actions` is: it needs the core's transfers coordinator
(``_transfers``), its outbox (``_sender``), its limits and its thread runner. Transfers
run by themselves across reconnects (`messenger.client.transfers`); front ends follow
them through the ``transfer_*`` events. docs/CLIENT.md, "Files", is the guide.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from messenger.client import images
from messenger.client.downloads import DownloadJob
from messenger.client.errors import LocalFileError, MessageTooLong
from messenger.client.events import Attachment, ServerLimits
from messenger.client.sender import MessageSender
from messenger.client.transfers import Transfer, Transfers
from messenger.client.uploads import UploadJob

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_file_name(name: str, fallback: str = "download") -> str:
    """A name someone else chose, made safe to save under in a folder of one's own: no
    path separators or control characters, no leading dots (no hidden files, no
    ``..``), at most 200 characters; ``fallback`` when nothing is left."""
    cleaned = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    return cleaned[:200] or fallback


class FilesMixin:
    """Needs ``_transfers``, ``_sender``, ``_run_blocking``, ``limits`` and ``_owner()``."""

    _transfers: Transfers
    _sender: MessageSender
    _run_blocking: Any
    limits: ServerLimits

    def _owner(self) -> str:
        raise NotImplementedError

    def send_file(self, to: str, path: str | Path, caption: str = "",
                  name: str | None = None, mime: str | None = None) -> Transfer:
        """Upload a file and send it to ``to`` in a message (``caption`` may be empty);
        images get their width, height and thumbnail. Returns the `Transfer` at once;
        ``transfer_*`` events follow, and ``when_done()`` fires once the message is
        stored (``transfer.message`` is its acknowledgement). Survives reconnects.
        Raises `NotConnected` before any login, `MessageTooLong` for a long caption."""
        owner = self._caption_owner(caption)
        return self._upload(Path(path), name, mime, self._poster(owner, to, None, caption),
                            to, None)

    def send_group_file(self, group_id: int, path: str | Path, caption: str = "",
                        name: str | None = None, mime: str | None = None) -> Transfer:
        """`send_file` to a group: the message goes to group ``group_id``
        (``transfer.group``); its members may then download the file. A refusal of the
        message (not a member, an announcement channel) fails the transfer with it."""
        if type(group_id) is not int or group_id < 1:
            raise ValueError("group_id must be a positive integer")
        owner = self._caption_owner(caption)
        return self._upload(Path(path), name, mime,
                            self._poster(owner, None, group_id, caption), None, group_id)

    def _caption_owner(self, caption: str) -> str:
        owner = self._owner()
        size = len(caption.encode("utf-8"))
        if size > self.limits.max_body:
            raise MessageTooLong(size, self.limits.max_body)
        return owner

    def upload_file(self, path: str | Path, name: str | None = None,
                    mime: str | None = None) -> Transfer:
        """Upload a file without sending it: ``when_done()`` fires with the transfer,
        whose ``file_id`` may then be attached to messages (a file nobody posts is
        deleted by the server after a day)."""
        self._owner()
        return self._upload(Path(path), name, mime, None, None, None)

    def download_file(self, file_id: int, path: str | Path) -> Transfer:
        """Download a file into ``path`` (through ``path.part``, verified by SHA-256,
        renamed at the end). Fails with `FileNotReadable` when this user may not."""
        self._owner()
        if type(file_id) is not int or file_id < 1:
            raise ValueError("file_id must be a positive integer")
        if file_id in self._transfers.downloads:
            raise LocalFileError(f"file {file_id} is being downloaded already")
        job = DownloadJob(self._transfers, file_id, Path(path))
        transfer = self._transfers.add(job)
        job.begin()
        return transfer

    def cancel_transfer(self, transfer: Transfer) -> None:
        """Stop a transfer: it fails with `TransferCancelled`; an upload's partial data
        is deleted on the server, a download's ``.part`` file here."""
        self._transfers.cancel(transfer)

    def transfers(self) -> list[Transfer]:
        """Transfers under way (done ones are forgotten)."""
        return self._transfers.all()

    def image_info(self, path: str | Path) -> defer.Deferred[images.ImageInfo | None]:
        """An image file's width, height and thumbnail (decoded in a thread), or None."""
        return self._run_blocking(images.image_info, Path(path))

    def load_image(self, source: bytes | str | Path,
                   max_pixels: int = images.MAX_PIXELS) -> defer.Deferred[Any]:
        """Decode an image (bytes or a file) in a thread, with the decompression-bomb
        limit ``max_pixels``: a Pillow image, or None for a placeholder."""
        return self._run_blocking(images.open_image, source, max_pixels)

    def load_thumbnail(self, attachment: Attachment) -> defer.Deferred[Any]:
        """An attachment's thumbnail as a Pillow image (in a thread), or None."""
        return self._run_blocking(images.decode_thumbnail, attachment.thumbnail)

    def _upload(self, path: Path, name: str | None, mime: str | None, post: Any,
                to: str | None, group: int | None) -> Transfer:
        job = UploadJob(self._transfers, path, name, mime, post, self.limits.max_file_size)
        job.transfer.to = to
        job.transfer.group = group
        transfer = self._transfers.add(job)
        job.begin()
        return transfer

    def _poster(self, owner: str, to: str | None, group: int | None, caption: str) -> Any:
        """What a finished upload of ``send_file`` (or ``send_group_file``) does: queue
        the message with it, to ``to`` or to ``group``."""
        def post(job: UploadJob) -> None:
            transfer, local = job.transfer, job.local
            attachment: dict[str, Any] = {"file_id": transfer.file_id, "name": transfer.name}
            if local is not None and local.image is not None:
                attachment.update(local.image.fields())
            transfer.attachment = attachment
            entry = self._sender.queue(owner, to, caption, group=group, attachment=attachment)
            entry.when_done().addCallbacks(self._posted, self._not_posted,
                                           callbackArgs=(job,), errbackArgs=(job,))
        return post

    def _posted(self, reply: dict[str, Any], job: UploadJob) -> None:
        job.transfer.message = reply
        self._transfers.finished(job)

    def _not_posted(self, failure: Failure, job: UploadJob) -> None:
        self._transfers.finished(job, failure.value)

