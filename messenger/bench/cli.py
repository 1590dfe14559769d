"""messenger-bench: load generator for a Messenger server started separately.

    messenger-bench [delivery] --server 127.0.0.1:7777 --secret-file DATA/secret -P 100 ...
    messenger-bench connections -N 10000 ...   idle authenticated connections held
    messenger-bench logins --login password|resume ...   logins per second
    messenger-bench relay -K 50 ...            UDP relay packets per second (own relay process)
    messenger-bench groups -N 100 -G 10 ...    group fan-out: deliveries per second
    messenger-bench calls [--simulated]         PESQ-WB, mouth-to-ear delay and CPU per network
    messenger-bench files --size-mib 100        upload/download MiB/s, message p99 beside them
    messenger-bench report FILE.jsonl           Markdown table of the JSON lines

Every figure prints one JSON line (appended to --json-out FILE too) and a readable line on
stderr. The exit status is non-zero when the run failed: for ``delivery``, when any message
was lost, duplicated or reordered, or an ack was missing or not 200. Loopback only: the
server must be on 127.0.0.0/8 or ::1. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from messenger.wire.suites import AES_GCM, SUITES

SUBCOMMANDS = ("delivery", "connections", "logins", "relay", "groups", "calls", "files",
               "report")


def server_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("--server must be HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError("--server must be a loopback IP address") from None
    if not address.is_loopback:
        raise argparse.ArgumentTypeError("messenger-bench only targets loopback addresses")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("--server port must be a number") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError("--server port must be 1..65535")
    return host, number


def add_common(ap: argparse.ArgumentParser, server: bool = True) -> None:
    if server:
        ap.add_argument("--server", type=server_address, default=("127.0.0.1", 7777),
                        help="HOST:PORT of the server (loopback only; default 127.0.0.1:7777)")
        ap.add_argument("--secret-file", required=True,
                        help="the server's shared-secret file (DATA_DIR/secret)")
        ap.add_argument("--cipher", choices=SUITES, default=AES_GCM,
                        help="the one suite this client offers (default aes-256-gcm)")
        ap.add_argument("--login", choices=("register", "authenticate"), default="register",
                        help="create accounts with register (default; falls back to"
                             " authenticate if taken) or authenticate (for --auto-register)")
        ap.add_argument("--user-prefix", default="bench", help="account names PREFIX<n>")
        ap.add_argument("--user-offset", type=int, default=0)
        ap.add_argument("--connect-concurrency", type=int, default=50,
                        help="handshakes and logins in progress at once")
    ap.add_argument("--server-pid", type=int, default=0,
                    help="PID of the server process, for /proc CPU and memory accounting")
    ap.add_argument("--max-seconds", type=float, default=120, help="hard limit for the run")
    ap.add_argument("--label", default="")
    ap.add_argument("--json-out", help="append the result as one JSON line to this file")


def delivery_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="messenger-bench [delivery]",
        description="One-to-one delivery: P pairs, W in flight, M timed messages per sender.")
    add_common(ap)
    ap.add_argument("--pairs", "-P", type=int, default=1)
    ap.add_argument("--messages", "-M", type=int, default=10000, help="timed messages per sender")
    ap.add_argument("--window", "-W", type=int, default=50, help="in-flight messages per sender")
    ap.add_argument("--warmup", type=int, default=50, help="untimed messages per sender first")
    ap.add_argument("--rate", type=float, default=0,
                    help="open loop: total timed msg/s over all senders (0: closed loop)")
    ap.add_argument("--quickack", type=int, default=1,
                    help="1: re-arm TCP_QUICKACK after every read (default); 0: kernel default")
    ap.add_argument("--body-bytes", type=int, default=64, help="body length (padded with 'x')")
    ap.add_argument("--alternate-pairs", action="store_true",
                    help="odd pairs connect the recipient first: behind a round-robin"
                         " balancer over two nodes, each node then has half the senders")
    ap.add_argument("--also-pids", type=pid_list, default=(),
                    help="PID,PID,...: more serving processes whose CPU (with their"
                         " children's) is added up with the server's (a cluster: the"
                         " other nodes, PostgreSQL, Redis, HAProxy)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait after the last login before the warm-up")
    ap.add_argument("--read-receipts", type=float, default=0.0, metavar="SECONDS",
                    help="each receiver sends a read receipt for its conversation (up to"
                         " the newest message) at most every SECONDS, as a client with"
                         " the chat open does (0: none)")
    ap.add_argument("--typing", type=float, default=0.0, metavar="SECONDS",
                    help="each sender sends a typing notice at most every SECONDS while"
                         " it sends (0: none)")
    return ap


def pid_list(text: str) -> tuple[int, ...]:
    try:
        pids = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("--also-pids takes PID,PID,...") from None
    if any(pid < 1 for pid in pids):
        raise argparse.ArgumentTypeError("--also-pids takes positive PIDs")
    return pids


def read_secret(path: str) -> bytes:
    secret = Path(path).read_text("utf-8").strip().encode("utf-8")
    if not secret:
        raise SystemExit(f"messenger-bench: the secret file {path} is empty")
    return secret


def install_reactor() -> Any:
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import reactor
    return reactor


def client_key() -> Any:
    """One 2048-bit key for every connection of this process (a client MAY share one)."""
    from messenger.wire import keys
    return keys.generate(2048)


def emit(out: dict[str, Any], json_out: str | None, line: str) -> None:
    text = json.dumps(out)
    if json_out:
        with open(json_out, "a") as f:
            f.write(text + "\n")
    print(text)
    print(line, file=sys.stderr)


def main_delivery(argv: list[str]) -> int:
    ap = delivery_parser()
    args = ap.parse_args(argv)
    if args.window < 1 or args.messages < 1 or args.pairs < 1:
        ap.error("pairs, messages and window must be >= 1")
    if args.body_bytes < 40:
        ap.error("--body-bytes must be at least 40 (the body carries pair, seq and time)")
    args.host, args.port = args.server
    from messenger.bench import delivery
    from messenger.bench.proc import raise_nofile
    raise_nofile(2 * args.pairs + 64)
    secret = read_secret(args.secret_file)
    reactor = install_reactor()
    res, lat, ack_lat = delivery.run(args, reactor, secret, client_key())
    out = delivery.summarize(args, res, lat, ack_lat)
    emit(out, args.json_out, delivery.summary_line(out))
    return 0 if out["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "delivery"
    if argv and argv[0] == command:
        argv = argv[1:]
    if command == "delivery":
        return main_delivery(argv)
    if command == "connections":
        from messenger.bench import idle
        return idle.main(argv)
    if command == "logins":
        from messenger.bench import logins
        return logins.main(argv)
    if command == "relay":
        from messenger.bench import relayload
        return relayload.main(argv)
    if command == "groups":
        from messenger.bench import groups
        return groups.main(argv)
    if command == "files":
        from messenger.bench import files
        return files.main(argv)
    if command == "calls":
        from messenger.bench import calls
        return calls.main(argv)
    from messenger.bench import report
    return report.main(argv)


if __name__ == "__main__":
    sys.exit(main())
