"""The transfer side of ``messenger-bench files``: one process that uploads or downloads.

`messenger.bench.files` runs each timed transfer in a child process of its own (this
module, ``messenger-bench files --transfer upload|download``), so that the transfer's
client work (sealing and opening megabytes, copying them) does not share a reactor with
the connections whose message latency is measured: the latency is the server's, not the
generator's. The child logs in its own accounts, prepares untimed (a fresh 100 MiB
content; for a download, an untimed upload posted to the downloader), prints one JSON
line ``{"ready": true}``, waits for a line on stdin, transfers, and prints one JSON line
with the result (``mib_s``, ``seconds``; ``fail`` when something went wrong).

The protocol is docs/PROTOCOL.md's "Files": binary frames for the bytes, at most
``window`` bytes of upload beyond the server's ``file_progress``, at most ``window``
bytes of reads outstanding.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from typing import Any

from twisted.internet import defer, task

from messenger.bench.conn import LEN, BenchConnection, Launcher, request_id
from messenger.wire import binary

MIB = 1024 * 1024
_HEADER = struct.Struct(">BQQ")


class Conn(BenchConnection):
    """A connection with requests answered by Deferreds, and hooks for pushes, file data
    and message pushes (those parsed by regex on the hot path)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, defer.Deferred[dict[str, Any]]] = {}
        self.on_push: Any = None
        self.on_data: Any = None
        self.on_msg: Any = None

    def request(self, action: str, **fields: Any) -> defer.Deferred[dict[str, Any]]:
        rid = request_id()
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.pending[rid] = d
        self.send_jim({"action": action, "id": rid, "time": time.time(), **fields})
        return d

    def on_other(self, plaintext: bytes) -> None:
        if plaintext[:1] in binary.MARKS:
            if self.on_data is not None:
                self.on_data(plaintext)
            return
        if plaintext.startswith(b'{"action":"msg"') and self.on_msg is not None:
            self.on_msg(plaintext)
            return
        if plaintext.startswith(b'{"response":200,"msg_id"') and not self.pending:
            return                                  # acks of S's messages: not timed here
        message = json.loads(plaintext)
        if "action" in message:
            if self.on_push is not None:
                self.on_push(message)
            return
        d = self.pending.pop(message.get("id"), None)
        if d is not None:
            d.callback(message)


def fresh_content(base: bytearray, counter: int) -> tuple[bytes, str]:
    """``base`` with its first 8 bytes replaced by ``counter``: new content, so no upload
    is deduplicated against an earlier one; and its SHA-256."""
    base[:8] = counter.to_bytes(8, "big")
    data = bytes(base)
    return data, hashlib.sha256(data).hexdigest()


def _allowed(t0: float, pace: float) -> float:
    """Bytes a transfer paced at ``pace`` bytes/s may have moved by now (no pace: all)."""
    return (time.monotonic() - t0) * pace if pace > 0 else float("inf")


@defer.inlineCallbacks
def upload(conn: Conn, data: bytes, sha: str, chunk: int, window: int,
           pace: float = 0.0) -> Any:
    """Upload ``data`` (at most ``pace`` bytes/s when given); fires with (file id,
    seconds)."""
    from twisted.internet import reactor
    t0 = time.monotonic()
    reply = yield conn.request("file_upload", name="bench.bin", size=len(data),
                               mime="application/octet-stream", sha256=sha)
    if reply.get("response") not in (200, 201):
        raise RuntimeError(f"file_upload refused: {reply}")
    upload_id, offset = reply["upload_id"], reply["offset"]
    state = {"confirmed": offset, "waiter": None}

    def progress(push: dict[str, Any]) -> None:
        if push.get("action") == "file_error":
            raise RuntimeError(f"file_error: {push}")
        if push.get("action") == "file_progress" and push.get("upload_id") == upload_id:
            state["confirmed"] = push["offset"]
            waiter, state["waiter"] = state["waiter"], None
            if waiter is not None:
                waiter.callback(None)

    conn.on_push = progress
    view, size, seal, write = memoryview(data), len(data), conn.seal, conn.transport.write
    while offset < size:
        batch = []
        allowed = _allowed(t0, pace)
        while (offset < size and offset - state["confirmed"] < window
               and offset < allowed + chunk):
            piece = view[offset:offset + chunk]
            sealed = seal(_HEADER.pack(binary.UPLOAD_DATA, upload_id, offset) + piece)
            batch.append(LEN(len(sealed)) + sealed)
            offset += len(piece)
        if batch:
            write(b"".join(batch))
        if offset >= size:
            break
        if offset - state["confirmed"] >= window:
            state["waiter"] = defer.Deferred()
            yield state["waiter"]
        else:                                   # held back by the pace
            yield task.deferLater(reactor, max(0.001, (offset - allowed) / pace),
                                  lambda: None)
    done = yield conn.request("file_finish", upload_id=upload_id)
    seconds = time.monotonic() - t0
    conn.on_push = None
    if done.get("response") != 201:
        raise RuntimeError(f"file_finish refused: {done}")
    return done["file"]["file_id"], seconds


@defer.inlineCallbacks
def download(conn: Conn, file_id: int, size: int, read_size: int, window: int,
             pace: float = 0.0) -> Any:
    """Download a file (at most ``pace`` bytes/s when given); fires with (its bytes,
    seconds)."""
    from twisted.internet import reactor
    t0 = time.monotonic()
    reply = yield conn.request("file_get", file_id=file_id)
    if reply.get("response") != 200:
        raise RuntimeError(f"file_get refused: {reply}")
    buffer = bytearray(size)
    state = {"requested": 0, "received": 0}
    finished: defer.Deferred[None] = defer.Deferred()
    seal, write = conn.seal, conn.transport.write

    def ask() -> None:
        batch = []
        allowed = _allowed(t0, pace)
        while (state["requested"] < size and state["requested"] - state["received"] < window
               and state["requested"] < allowed + read_size):
            length = min(read_size, size - state["requested"])
            sealed = seal(binary.pack_read(file_id, state["requested"], length))
            batch.append(LEN(len(sealed)) + sealed)
            state["requested"] += length
        if batch:
            write(b"".join(batch))

    def data(plaintext: bytes) -> None:
        _, _, offset = _HEADER.unpack_from(plaintext)
        chunk = memoryview(plaintext)[binary.DATA_HEADER_SIZE:]
        buffer[offset:offset + len(chunk)] = chunk
        state["received"] += len(chunk)
        if state["received"] >= size:
            if not finished.called:
                finished.callback(None)
        else:
            ask()

    conn.on_data = data
    conn.on_push = lambda push: (_ for _ in ()).throw(RuntimeError(f"file_error: {push}"))
    ask()
    ticker = task.LoopingCall(ask)
    if pace > 0:
        ticker.clock = reactor
        ticker.start(0.005, now=False)
    yield finished
    if ticker.running:
        ticker.stop()
    seconds = time.monotonic() - t0
    conn.on_data = conn.on_push = None
    return bytes(buffer), seconds




class Child:
    """The child process: log in, prepare, say ready, wait for GO, transfer, report."""

    def __init__(self, args: Any, reactor: Any, secret: bytes, client_key: Any) -> None:
        self.args = args
        self.reactor = reactor
        self.size = int(args.size_mib * MIB)
        tag = os.urandom(3).hex()
        self.conns = {role: Conn(f"{args.user_prefix}{tag}{role}", secret, client_key,
                                 args.cipher, on_ready=self._ready, on_fail=self._failed,
                                 login=args.login) for role in ("u", "d")}
        self.launcher = Launcher(reactor, args.host, args.port, list(self.conns.values()))
        self.result: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        self.launcher.start()
        self.reactor.callLater(self.args.max_seconds, self._failed, None,
                               f"deadline of {self.args.max_seconds} s")
        self.reactor.run()
        return self.result

    def _failed(self, conn: Any, why: str) -> None:
        self.result.setdefault("fail", why)
        self._stop()

    def _stop(self) -> None:
        for conn in self.conns.values():
            conn.phase = "closing"
        if self.reactor.running:
            self.reactor.stop()

    def _ready(self, conn: Any) -> None:
        self.launcher.done()
        if all(c.phase == "ready" for c in self.conns.values()):
            d = self._work()
            d.addCallbacks(self._done, lambda f: self._failed(None, repr(f.value)))

    def _done(self, result: dict[str, Any]) -> None:
        self.result.update(result)
        self._stop()

    @defer.inlineCallbacks
    def _work(self) -> Any:
        args, u, d = self.args, self.conns["u"], self.conns["d"]
        base = bytearray(os.urandom(self.size))
        data, sha = fresh_content(base, int.from_bytes(os.urandom(6), "big"))
        chunk = args.chunk or (u.max_frame - binary.DATA_HEADER_SIZE - 64)
        pace = args.pace_mib_s * MIB
        if args.transfer == "download":
            file_id, _ = yield upload(u, data, sha, chunk, args.window)
            reply = yield u.request("msg", to=d.user, message="bench",
                                    attachment={"file_id": file_id})
            if reply.get("response") != 200:
                raise RuntimeError(f"posting the file failed: {reply}")
        yield self._wait_for_go()
        if args.transfer == "upload":
            _, seconds = yield upload(u, data, sha, chunk, args.window, pace)
        else:
            got, seconds = yield download(d, file_id, self.size, args.read_size, args.window,
                                          pace)
            if hashlib.sha256(got).hexdigest() != sha:
                raise RuntimeError("the downloaded file has the wrong SHA-256")
        return {"mib_s": round(self.size / MIB / seconds, 1), "seconds": round(seconds, 3),
                "chunk": chunk}

    def _wait_for_go(self) -> defer.Deferred[None]:
        print(json.dumps({"ready": True}), flush=True)
        return _read_line(self.reactor)


def _read_line(reactor: Any) -> defer.Deferred[None]:
    """Fires once a line arrives on stdin (the parent's GO)."""
    from twisted.internet import stdio
    from twisted.protocols.basic import LineReceiver

    d: defer.Deferred[None] = defer.Deferred()

    class Go(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            if not d.called:
                d.callback(None)

    stdio.StandardIO(Go(), reactor=reactor)
    return d


def child_main(args: Any, reactor: Any, secret: bytes, client_key: Any) -> int:
    result = Child(args, reactor, secret, client_key).run()
    print(json.dumps(result), flush=True)
    return 1 if result.get("fail") else 0
