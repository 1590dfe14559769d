"""Cluster settings read from the command line: the Redis URL, the node name, the relay
address. Pure parsing (no Redis client imported), so `tap` can check them up front.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int
    password: str | None = None
    username: str | None = None

    def describe(self) -> str:
        """For logs: never the password."""
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`` (port 6379, DB 0 by default)."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError("the Redis URL must start with redis://")
    if parts.query or parts.fragment:
        raise ValueError("the Redis URL takes no query or fragment")
    host = parts.hostname
    if not host:
        raise ValueError("the Redis URL needs a host")
    try:
        port = parts.port if parts.port is not None else 6379
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError("the Redis URL's port must be 1..65535")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the Redis URL's database must be a number (redis://HOST:PORT/0)")
    db = int(path or 0)
    if db > 1023:
        raise ValueError("the Redis URL's database must be 0..1023")
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    return RedisAddress(host, port, db, password, username or None)


def check_node_name(name: str) -> str:
    if not NODE_NAME.match(name):
        raise ValueError("--node-name must be 1-64 letters, digits, '.', '_' or '-'"
                         " (starting with a letter or digit)")
    return name


def default_node_name(port: int) -> str:
    """The host's name and the client port: unique as long as each host runs each port
    once."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:50] or "node"
    return f"{host}-{port}"


def parse_host_port(text: str, what: str = "--relay-address") -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{what} must be HOST:PORT (port 1..65535)")
    return host, int(port)
