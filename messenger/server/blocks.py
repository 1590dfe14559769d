"""Who blocked whom, in memory: the message and call paths check it with one set lookup.

A user who blocks another refuses that user's direct messages and calls; the blocked
user is told so (403) and nothing is stored or rung. The pairs live in the `blocks`
table (`messenger.store.blocks`); this component reads them all once before the server
listens (`load`) and keeps its set in step with every change made through this server,
after the change committed. A few thousand pairs cost a few hundred kilobytes; each user
may block at most `MAX_BLOCKS` others.

One server process holds the whole truth. In a cluster every node keeps the same set:
changes made through other nodes arrive over the cluster's bus
(`messenger.server.cluster.blocks`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.store import blocks
from messenger.wire.errors import Forbidden

MAX_BLOCKS = 10_000


def refusal(owner_name: str) -> Forbidden:
    """The documented 403 (docs/PROTOCOL.md, "Blocking")."""
    return Forbidden(f"'{owner_name}' has blocked you: your messages and calls to them are"
                     " refused")


class Blocks:
    def __init__(self, db: Any) -> None:
        self._db = db
        self._pairs: set[tuple[int, int]] = set()

    def load(self) -> defer.Deferred[int]:
        """Read every pair (once, before listening); fires with how many."""
        d = self._db.read(blocks.all_pairs_txn)
        d.addCallback(self._loaded)
        return d

    def _loaded(self, pairs: list[tuple[int, int]]) -> int:
        self._pairs = set(pairs)
        return len(self._pairs)

    def check(self, owner_id: int, sender_id: int, owner_name: str) -> None:
        """Raise the 403 when ``owner_id`` has blocked ``sender_id`` (the hot path)."""
        if (owner_id, sender_id) in self._pairs:
            raise refusal(owner_name)

    def blocked(self, owner_id: int, other_id: int) -> bool:
        return (owner_id, other_id) in self._pairs

    def added(self, owner_id: int, blocked_id: int) -> None:
        """A block was committed."""
        self._pairs.add((owner_id, blocked_id))

    def removed(self, owner_id: int, blocked_id: int) -> None:
        """An unblock was committed."""
        self._pairs.discard((owner_id, blocked_id))
