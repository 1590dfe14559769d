"""Pinned server keys per address, like SSH's ``known_hosts`` (docs/PROTOCOL.md section 11).

The file holds one ``host:port sha256:<hex>`` line per server; comments and blank lines
are kept when it is rewritten. The first connection to an address records the key the
server proved it holds (trust on first use); a later connection presenting another key is
refused with `ServerKeyChanged`, whose message names the address, both fingerprints, this
file and how to accept the new key on purpose (``accept_new_key`` /
``messenger-cli --accept-new-key``).

`KnownServers` is an in-memory table with a ``load``/``save`` pair of blocking file
functions; the client core runs those off the reactor thread and calls `check` (pure,
synchronous) from inside the handshake.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.logger import Logger

from messenger.client.credentials import tighten_permissions, write_private_file
from messenger.client.errors import ServerKeyChanged
from messenger.wire import keys

FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{64}")
HEADER = "# Messenger known servers: host:port fingerprint (see docs/PROTOCOL.md, 11)\n"

log = Logger()


def format_address(host: str, port: int) -> str:
    """The key of a server in the file: lowercase host (IPv6 in brackets), colon, port."""
    host = host.strip().strip("[]").lower()
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        host = host.rstrip(".")
    return f"{host}:{port}"


def parse_address(text: str, default_port: int = 7777) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad server address {text!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""     # a name, an IPv4 address or a bare IPv6 address
    if not host:
        raise ValueError(f"bad server address {text!r}: no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad server address {text!r}: the port must be 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class PinOutcome:
    """What `KnownServers.check` did with a key it accepted."""

    address: str
    fingerprint: str
    first_use: bool = False
    replaced: str | None = None

    @property
    def changed_file(self) -> bool:
        return self.first_use or self.replaced is not None


class KnownServers:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._pins: dict[str, str] = {}
        self._lines: list[str] = []     # the file as read, for a faithful rewrite

    # -- blocking file I/O (run off the reactor thread) -----------------------------------

    def load(self) -> KnownServers:
        """Read the file (absent: nothing is pinned). Returns self."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            text = ""
        else:
            tighten_permissions(self.path, 0o600)
        self._lines = text.splitlines(keepends=True)
        self._pins = {}
        for number, line in enumerate(self._lines, 1):
            entry = line.split("#", 1)[0].split()
            if not entry:
                continue
            if len(entry) != 2 or not FINGERPRINT_RE.fullmatch(entry[1]):
                log.warn("Ignoring line {number} of {path}: not 'host:port sha256:...'",
                         number=number, path=str(self.path))
                continue
            self._pins[entry[0].lower()] = entry[1]
        return self

    def save(self) -> None:
        """Write the table back, atomically, mode 0600."""
        write_private_file(self.path, self.render())

    def render(self) -> bytes:
        """The file's new content: the lines as read (comments kept, changed pins updated,
        removed ones dropped), then the new pins. Cheap; it runs on the reactor thread so
        that a writer thread gets a finished snapshot."""
        lines: list[str] = []
        written: set[str] = set()
        for line in self._lines or [HEADER]:
            entry = line.split("#", 1)[0].split()
            if len(entry) == 2 and FINGERPRINT_RE.fullmatch(entry[1]):
                address = entry[0].lower()
                if address not in self._pins or address in written:
                    continue            # removed, or a duplicate line
                lines.append(f"{address} {self._pins[address]}\n")
                written.add(address)
            else:
                lines.append(line if line.endswith("\n") else line + "\n")
        for address, fingerprint in self._pins.items():
            if address not in written:
                lines.append(f"{address} {fingerprint}\n")
        self._lines = lines
        return "".join(lines).encode("utf-8")

    # -- the table ------------------------------------------------------------------------

    def pinned(self, address: str) -> str | None:
        return self._pins.get(address.lower())

    def pin(self, address: str, fingerprint: str) -> None:
        if not FINGERPRINT_RE.fullmatch(fingerprint):
            raise ValueError(f"not a fingerprint: {fingerprint!r}")
        self._pins[address.lower()] = fingerprint

    def forget(self, address: str) -> bool:
        return self._pins.pop(address.lower(), None) is not None

    def check(self, address: str, server_key: rsa.RSAPublicKey,
              accept_new_key: bool = False) -> PinOutcome:
        """Accept ``server_key`` for ``address`` or raise `ServerKeyChanged`.

        Call it only once the key has proved itself (the handshake signature verified):
        an unknown address gets the key pinned (in memory; `save` writes it).
        """
        address = address.lower()
        presented = keys.fingerprint(server_key)
        pinned = self._pins.get(address)
        if pinned is None:
            self._pins[address] = presented
            return PinOutcome(address, presented, first_use=True)
        if pinned == presented:
            return PinOutcome(address, presented)
        if accept_new_key:
            self._pins[address] = presented
            return PinOutcome(address, presented, replaced=pinned)
        raise ServerKeyChanged(address, pinned, presented, str(self.path))

