"""Blocks kept the same on every node: a change committed through one node is applied
there at once and published; the others apply it when they hear it (a few milliseconds;
a message sent through another node within that window still passes). When Redis comes
back after an outage each node reads every pair again (`ClusterNode`)."""

from __future__ import annotations

from typing import Any

from messenger.server.blocks import Blocks
from messenger.server.cluster.bus import Envelope, NodeBus


class ClusterBlocks(Blocks):
    def __init__(self, db: Any, bus: NodeBus) -> None:
        super().__init__(db)
        self.bus = bus
        bus.handlers["block"] = self._remote

    def added(self, owner_id: int, blocked_id: int) -> None:
        super().added(owner_id, blocked_id)
        self.bus.send("block", o=owner_id, b=blocked_id, on=True)

    def removed(self, owner_id: int, blocked_id: int) -> None:
        super().removed(owner_id, blocked_id)
        self.bus.send("block", o=owner_id, b=blocked_id, on=False)

    def _remote(self, envelope: Envelope) -> None:
        owner_id, blocked_id, on = envelope["o"], envelope["b"], envelope["on"]
        if type(owner_id) is not int or type(blocked_id) is not int or type(on) is not bool:
            raise ValueError("bad block event")
        (Blocks.added if on else Blocks.removed)(self, owner_id, blocked_id)
