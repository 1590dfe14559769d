"""GET a URL on loopback with twisted.web's Agent: (status, body) for the metrics tests."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.web.client import Agent, readBody


@defer.inlineCallbacks
def get(url: str) -> Any:
    """Fires with (HTTP status, body text)."""
    response = yield Agent(reactor).request(b"GET", url.encode())
    body = yield readBody(response)
    return response.code, body.decode("utf-8")


def samples(text: str) -> dict[str, float]:
    """Prometheus text as {"name{labels}": value} (comments left out)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found
