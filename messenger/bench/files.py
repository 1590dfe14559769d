"""``messenger-bench files``: file transfer throughput, and message latency beside it.

Phases, in order (``--phases`` picks a subset), each bounded by --max-seconds:

1. ``baseline``: P pairs of accounts; the senders send ``--rate`` msg/s in all (open
   loop) for ``--seconds``; latency from the write of each message to its arrival at the
   partner (as ``delivery``).
2. ``upload``: a ``--size-mib`` file (random bytes, fresh per upload so that nothing is
   deduplicated) is uploaded alone: MiB/s from the start request to the finish reply,
   which comes once the server has verified, flushed and recorded the file.
3. ``download``: a file posted to the downloader is downloaded alone: MiB/s from
   ``file_get`` to the last byte (its SHA-256 is checked after the clock stops).
4. ``during_upload``, ``during_download``: the message load again while such a transfer
   runs flat out, from its first byte to its last: do transfers starve the reactor or
   the database writer? The transfer's own MiB/s is reported too.
5. ``paced_upload``, ``paced_download``: the same with the transfer held to
   ``--pace-mib-s`` (50 MiB/s, the target): on a 2-core machine a transfer flat out
   also takes the CPU from the generator and the server alike, which a real client on
   another machine does not.

Each transfer runs in a child process (`messenger.bench.transfer`), so that sealing and
copying megabytes in the generator does not delay the connections whose latency is
measured. With ``--server-pid`` each phase reports the server's CPU use (all threads and
the reactor thread alone). The exit status is 1 when a transfer failed or a message was
lost. docs/BENCHMARKS.md has the figures and how they were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from array import array
from typing import Any

from twisted.internet import defer, protocol, task

from messenger.bench.conn import LEN, BenchConnection, Launcher
from messenger.bench.proc import ServerSample
from messenger.bench.transfer import MIB, Conn, child_main
from messenger.wire import binary

MSG_RE = re.compile(rb'"message":"(\d+) (\d+) ')
PHASES = ("baseline", "upload", "download", "during_upload", "during_download",
          "paced_upload", "paced_download")


class MessageLoad:
    """P senders send to their P receivers at ``rate`` msg/s in all (open loop, a 1 ms
    tick that catches up, the messages dealt round robin), until stopped; receivers
    record each latency."""

    def __init__(self, reactor: Any, pairs: list[tuple[Conn, Conn]], rate: float,
                 body_bytes: int) -> None:
        self.reactor = reactor
        self.pairs = pairs
        self.rate = rate
        self.body_bytes = body_bytes
        self.sent = 0               # this phase's messages
        self.first = 0              # sequence number of this phase's first message
        self.received = 0
        self.errors = 0
        self.lat = array("q")
        self.t0 = 0.0
        self.loop = task.LoopingCall(self._tick)
        self.loop.clock = reactor
        for _, receiver in pairs:
            receiver.on_msg = self._arrived
        self._prefix = os.urandom(4).hex()

    def start(self) -> None:
        """A new phase; sequence numbers (and so request ids) go on from the last one."""
        self.t0 = time.monotonic()
        self.first += self.sent
        self.sent = self.received = 0
        self.lat = array("q")
        self.loop.start(0.001, now=True)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def _tick(self) -> None:
        due = int((time.monotonic() - self.t0) * self.rate)
        if due <= self.sent:
            return
        pairs, count = self.pairs, len(self.pairs)
        out: list[list[bytes]] = [[] for _ in range(count)]
        now, wall = time.monotonic_ns(), time.time()
        for seq in range(self.first + self.sent, self.first + due):
            sender, receiver = pairs[seq % count]
            body = f"{seq} {now} "
            body += "x" * max(0, self.body_bytes - len(body))
            payload = (f'{{"action":"msg","id":"{self._prefix}{seq:024x}","time":{wall},'
                       f'"to":"{receiver.user}","message":"{body}"}}').encode()
            sealed = sender.seal(payload)
            out[seq % count].append(LEN(len(sealed)) + sealed)
        for (sender, _), frames in zip(pairs, out, strict=True):
            if frames:
                sender.transport.write(b"".join(frames))
        self.sent = due

    def _arrived(self, plaintext: bytes) -> None:
        match = MSG_RE.search(plaintext)
        if match is None:
            self.errors += 1
            return
        self.received += 1
        self.lat.append(time.monotonic_ns() - int(match.group(2)))

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.lat)
        return {"rate": self.rate, "sent": self.sent, "received": self.received,
                "lost": self.sent - self.received, "p50_ms": _pct(ordered, 0.50),
                "p99_ms": _pct(ordered, 0.99), "max_ms": _pct(ordered, 1.0)}


def _pct(ordered: list[int], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))
    return round(ordered[index] / 1e6, 3)


def _server_cpu(before: ServerSample, after: ServerSample, seconds: float) -> dict[str, Any]:
    """The server's CPU over a phase (utime + stime, and the reactor thread alone)."""
    from messenger.bench.proc import CLK_TCK
    if before.ticks is None or after.ticks is None or seconds <= 0:
        return {}
    total = sum(after.ticks) - sum(before.ticks)
    main = after.threads.get(after.pid, 0) - before.threads.get(before.pid, 0)
    return {"server_cpu_util": round(total / CLK_TCK / seconds, 3),
            "server_reactor_util": round(main / CLK_TCK / seconds, 3),
            "server_hwm_kib": after.mem.get("VmHWM")}


class TransferProcess(protocol.ProcessProtocol):
    """One transfer child: ``ready`` fires when it is prepared, ``result`` with its JSON
    result line once it is done (``go()`` starts the timed transfer)."""

    def __init__(self) -> None:
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.result: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._buffer = b""
        self._last: dict[str, Any] = {}

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            message = json.loads(line)
            if message.get("ready") and not self.ready.called:
                self.ready.callback(None)
            else:
                self._last = message

    def errReceived(self, data: bytes) -> None:
        sys.stderr.write(data.decode("utf-8", "replace"))

    def go(self) -> None:
        self.transport.write(b"GO\n")

    def processEnded(self, reason: Any) -> None:
        result = self._last or {"fail": f"the transfer process ended: {reason.value}"}
        if not self.ready.called:
            self.ready.errback(RuntimeError(result.get("fail", "no ready line")))
        if not self.result.called:
            self.result.callback(result)


def spawn_transfer(reactor: Any, args: Any, mode: str, pace: float) -> TransferProcess:
    child = TransferProcess()
    argv = [sys.executable, "-m", "messenger.bench.cli", "files", "--transfer", mode,
            "--server", f"{args.host}:{args.port}", "--secret-file", args.secret_file,
            "--cipher", args.cipher, "--login", args.login, "--user-prefix",
            args.user_prefix + "t", "--size-mib", str(args.size_mib), "--chunk",
            str(args.chunk), "--read-size", str(args.read_size), "--window",
            str(args.window), "--max-seconds", str(args.max_seconds),
            "--pace-mib-s", str(pace)]
    reactor.spawnProcess(child, sys.executable, argv, env=dict(os.environ))
    return child


class Run:
    """The phases, one after the other."""

    def __init__(self, args: Any, reactor: Any, pairs: list[tuple[Conn, Conn]]) -> None:
        self.args = args
        self.reactor = reactor
        self.out: dict[str, Any] = {}
        self.load = MessageLoad(reactor, pairs, args.rate, args.body_bytes)

    def sample(self) -> ServerSample:
        return ServerSample(self.args.server_pid)

    @defer.inlineCallbacks
    def run(self) -> Any:
        for phase in [p.strip() for p in self.args.phases.split(",") if p.strip()]:
            if phase not in PHASES:
                raise RuntimeError(f"unknown phase {phase!r}")
            if phase == "baseline":
                yield self.baseline()
            else:
                yield self.transfer(phase)
        return self.out

    @defer.inlineCallbacks
    def settle(self) -> Any:
        """Wait until the messages sent have arrived (at most 5 s)."""
        deadline = time.monotonic() + 5.0
        while self.load.received < self.load.sent and time.monotonic() < deadline:
            yield task.deferLater(self.reactor, 0.01, lambda: None)

    @defer.inlineCallbacks
    def baseline(self) -> Any:
        before = self.sample()
        self.load.start()
        yield task.deferLater(self.reactor, self.args.seconds, lambda: None)
        self.load.stop()
        after = self.sample()
        yield self.settle()
        self.out["baseline"] = {**self.load.figures(),
                                **_server_cpu(before, after, self.args.seconds)}

    @defer.inlineCallbacks
    def transfer(self, phase: str) -> Any:
        with_messages = phase.startswith(("during_", "paced_"))
        pace = self.args.pace_mib_s if phase.startswith("paced_") else 0.0
        child = spawn_transfer(self.reactor, self.args, phase.split("_")[-1], pace)
        yield child.ready
        before, t0 = self.sample(), time.monotonic()
        if with_messages:
            self.load.start()
        child.go()
        result = yield child.result
        seconds = time.monotonic() - t0
        after = self.sample()
        if result.get("fail"):
            raise RuntimeError(f"{phase}: {result['fail']}")
        figures = {"mib_s": result["mib_s"], "seconds": result["seconds"]}
        if with_messages:
            self.load.stop()
            yield self.settle()
            figures = {**self.load.figures(), "transfer_mib_s": result["mib_s"],
                       "transfer_seconds": result["seconds"]}
        self.out[phase] = {**figures, **_server_cpu(before, after, seconds)}


def run(args: Any, reactor: Any, secret: bytes, client_key: Any) -> dict[str, Any]:
    """Log in the message pairs, run the phases; the result (``fail`` says why not)."""
    tag = os.urandom(3).hex()
    result: dict[str, Any] = {"fail": None}
    conns: list[Conn] = []

    def failed(conn: BenchConnection | None, why: str) -> None:
        if result["fail"] is None:
            result["fail"] = why
        stop()

    def stop() -> None:
        for conn in conns:
            conn.phase = "closing"
        if reactor.running:
            reactor.stop()

    def ready(conn: BenchConnection) -> None:
        launcher.done()
        if all(c.phase == "ready" for c in conns):
            pairs = [(conns[i], conns[i + 1]) for i in range(0, len(conns), 2)]
            d = Run(args, reactor, pairs).run()
            d.addCallbacks(lambda out: (result.update(out), stop()),
                           lambda f: failed(None, str(f.value)))

    for i in range(args.pairs):
        for kind in "sr":
            conns.append(Conn(f"{args.user_prefix}{tag}{kind}{i}", secret, client_key,
                              args.cipher, on_ready=ready, on_fail=failed, login=args.login))
    launcher = Launcher(reactor, args.host, args.port, conns)
    launcher.start()
    reactor.callLater(args.max_seconds, failed, None, f"deadline of {args.max_seconds} s")
    reactor.run()
    for conn in conns:
        conn.close()
    return result


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--size-mib", type=float, default=100.0, help="file size (default 100)")
    ap.add_argument("--chunk", type=int, default=0,
                    help="upload bytes per frame (default: the server's max_frame less 64)")
    ap.add_argument("--read-size", type=int, default=binary.MAX_READ,
                    help="bytes asked for per read frame (default the most, 1 MiB - 17)")
    ap.add_argument("--window", type=int, default=4 * MIB,
                    help="bytes in flight per transfer (default 4 MiB)")
    ap.add_argument("--rate", type=float, default=2000.0, help="messages per second, in all")
    ap.add_argument("--pairs", "-P", type=int, default=10,
                    help="sender/receiver pairs sharing the message rate (default 10)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the baseline")
    ap.add_argument("--body-bytes", type=int, default=64)
    ap.add_argument("--phases", default=",".join(PHASES),
                    help="comma-separated subset, in this order")
    ap.add_argument("--pace-mib-s", type=float, default=50.0,
                    help="MiB/s of the transfers of the paced_* phases (default 50)")
    ap.add_argument("--transfer", choices=("upload", "download"), help=argparse.SUPPRESS)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: one line per run (``messenger-bench report`` prints it)."""
    out = ["| date (UTC) | label | upload MiB/s | download MiB/s | baseline p50 / p99 ms |"
           " during upload: MiB/s, p50 / p99 ms | during download: MiB/s, p50 / p99 ms |"
           " paced upload | paced download | srv reactor util (base / up / down) | ok |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]

    def lat(fig: dict[str, Any] | None, with_rate: bool = True) -> str:
        if not fig:
            return "-"
        rate = f"{fig.get('transfer_mib_s')}: " if with_rate and "transfer_mib_s" in fig else ""
        return f"{rate}{fig.get('p50_ms')} / {fig.get('p99_ms')}"

    for r in rows:
        util = " / ".join(str(r.get(name, {}).get("server_reactor_util", "-"))
                          for name in ("baseline", "upload", "download"))
        out.append(f"| {r.get('date', '')[5:16].replace('T', ' ')} | {r.get('label') or '-'}"
                   f" | {r.get('upload', {}).get('mib_s', '-')}"
                   f" | {r.get('download', {}).get('mib_s', '-')}"
                   f" | {lat(r.get('baseline'), False)} | {lat(r.get('during_upload'))}"
                   f" | {lat(r.get('during_download'))} | {lat(r.get('paced_upload'))}"
                   f" | {lat(r.get('paced_download'))} | {util}"
                   f" | {'yes' if r.get('ok') else 'NO: ' + str(r.get('fail'))} |")
    return out


def summary_line(out: dict[str, Any]) -> str:
    if out.get("fail"):
        return f"files: FAILED: {out['fail']}"
    parts = []
    for name in ("upload", "download"):
        if name in out:
            parts.append(f"{name} {out[name]['mib_s']} MiB/s")
    for name in ("baseline", "during_upload", "during_download", "paced_upload",
                 "paced_download"):
        if name in out:
            fig = out[name]
            extra = f" ({fig['transfer_mib_s']} MiB/s)" if "transfer_mib_s" in fig else ""
            parts.append(f"{name}{extra}: p50 {fig['p50_ms']} ms p99 {fig['p99_ms']} ms"
                         f" lost {fig['lost']}")
    return "files: " + "; ".join(parts)


def main(argv: list[str]) -> int:
    from messenger.bench.cli import add_common, client_key, emit, install_reactor, read_secret
    ap = argparse.ArgumentParser(prog="messenger-bench files",
                                 description=__doc__.split("\n\n")[0])
    add_common(ap)
    add_arguments(ap)
    args = ap.parse_args(argv)
    args.host, args.port = args.server
    secret = read_secret(args.secret_file)
    reactor = install_reactor()
    if args.transfer:
        return child_main(args, reactor, secret, client_key())
    out = run(args, reactor, secret, client_key())
    out = {"kind": "files", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "label": args.label, "size_mib": args.size_mib,
           "pairs": args.pairs, "rate": args.rate, "read_size": args.read_size,
           "window": args.window, "cipher": args.cipher, **out}
    lost = any(out.get(name, {}).get("lost") for name in
               ("baseline", "during_upload", "during_download", "paced_upload",
                "paced_download"))
    out["ok"] = not out.get("fail") and not lost
    emit(out, args.json_out, summary_line(out))
    return 0 if out["ok"] else 1
