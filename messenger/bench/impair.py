"""A bad network in user space: a UDP proxy that loses, delays, jitters, reorders and
black-holes datagrams, for call tests and ``messenger-bench calls``.

This kernel has no netem, so the impairment sits in front of the relay: a client is told
the proxy's address as its relay, and the proxy forwards both ways between that client
and the real relay, each direction with its own `Impairment`:

* ``loss``: the share of datagrams dropped. With ``burst`` > 1 the losses come in bursts
  of that mean length (a Gilbert-Elliott chain: in the bad state everything is lost, it
  is left with probability 1 / burst, entered so that the mean loss is ``loss``);
* ``delay`` + a uniform ``jitter`` (seconds) per datagram; jitter reorders datagrams by
  itself, and ``reorder`` holds that share of datagrams back ``reorder_gap`` seconds more;
* ``blackholes``: (start, end) windows, in seconds from the proxy's start, in which
  everything is dropped; `ImpairmentProxy.blackhole` opens one from now.

Random choices come from a seeded generator, so a case is repeatable. Everything runs on
the injected reactor; the proxy never blocks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.protocol import DatagramProtocol

Address = tuple[str, int]


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.0
    burst: float = 1.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder: float = 0.0
    reorder_gap: float = 0.06
    blackholes: tuple[tuple[float, float], ...] = ()


CLEAN = Impairment()


class ImpairedDirection:
    """The fate of each datagram in one direction: None (dropped) or a delay."""

    def __init__(self, impairment: Impairment, rng: random.Random) -> None:
        self.impairment = impairment
        self._rng = rng
        self._bad = False
        self.passed = 0
        self.dropped = 0

    def _lost(self) -> bool:
        spec, rng = self.impairment, self._rng
        if spec.loss <= 0:
            return False
        if spec.burst <= 1:
            return rng.random() < spec.loss
        leave = 1.0 / spec.burst
        enter = spec.loss * leave / max(1e-9, 1.0 - spec.loss)
        if self._bad:
            self._bad = rng.random() >= leave
        else:
            self._bad = rng.random() < enter
        return self._bad

    def fate(self, elapsed: float, extra_blackholes: list[tuple[float, float]]) -> float | None:
        spec = self.impairment
        for start, end in (*spec.blackholes, *extra_blackholes):
            if start <= elapsed < end:
                self.dropped += 1
                return None
        if self._lost():
            self.dropped += 1
            return None
        self.passed += 1
        wait = spec.delay
        if spec.jitter:
            wait += self._rng.uniform(0.0, spec.jitter)
        if spec.reorder and self._rng.random() < spec.reorder:
            wait += spec.reorder_gap
        return wait


class ImpairmentProxy(DatagramProtocol):
    """client <-> proxy <-> target (the relay), impaired each way."""

    def __init__(self, target: Address, up: Impairment = CLEAN, down: Impairment = CLEAN,
                 reactor: Any = None, seed: int = 1,
                 drop: Callable[[bytes, bool], bool] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415
        self.target = target
        self.reactor = reactor
        rng = random.Random(seed)
        self.up = ImpairedDirection(up, rng)        # client -> target
        self.down = ImpairedDirection(down, rng)    # target -> client
        self.drop = drop
        self.client: Address | None = None
        self.started = reactor.seconds()
        self._holes: list[tuple[float, float]] = []
        self._pending: list[Any] = []

    def blackhole(self, seconds: float) -> None:
        """Drop everything, both ways, for ``seconds`` from now."""
        now = self.reactor.seconds() - self.started
        self._holes.append((now, now + seconds))

    @property
    def address(self) -> Address:
        host = self.transport.getHost()
        return (host.host, host.port)

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        source = (addr[0], addr[1])
        upward = source != self.target
        if upward:
            self.client = source
            destination: Address | None = self.target
            direction = self.up
        else:
            destination = self.client
            direction = self.down
        if destination is None or (self.drop is not None and self.drop(data, upward)):
            return
        wait = direction.fate(self.reactor.seconds() - self.started, self._holes)
        if wait is None:
            return
        if wait <= 0:
            self.transport.write(data, destination)
            return
        self._pending = [call for call in self._pending if call.active()]
        self._pending.append(self.reactor.callLater(wait, self._later, data, destination))

    def _later(self, data: bytes, destination: Address) -> None:
        if self.transport is not None:
            self.transport.write(data, destination)

    def stopProtocol(self) -> None:  # noqa: N802
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending = []

    def stats(self) -> dict[str, int]:
        return {"up_passed": self.up.passed, "up_dropped": self.up.dropped,
                "down_passed": self.down.passed, "down_dropped": self.down.dropped}
