"""Directory: name lookups that keep the order they were asked in."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from messenger.server.directory import Directory
from messenger.store.users import UserRow


def row(user_id: int, name: str) -> UserRow:
    return UserRow(user_id, name, f"{name}@x", "h", False, False, 0, None, None, False, 0, 0)


class FakeReads:
    """A database whose reads finish when the test says, in any order."""

    def __init__(self) -> None:
        self.pending: list[tuple[defer.Deferred[Any], Any, tuple[Any, ...]]] = []

    def read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.pending.append((d, fn, args))
        return d


class DirectoryTests(SynchronousTestCase):
    def test_concurrent_lookups_share_one_read_in_order(self) -> None:
        """Lookups of a name whose read is in flight share it and fire in asking order."""
        db = FakeReads()
        directory = Directory(db)  # type: ignore[arg-type]
        order: list[str] = []
        for tag in ("first", "second", "third"):
            directory.lookup("Bob").addCallback(lambda ref, tag=tag: order.append(tag))
        self.assertEqual(len(db.pending), 1)
        db.pending[0][0].callback(row(7, "bob"))
        self.assertEqual(order, ["first", "second", "third"])
        self.assertEqual(directory.cached("BOB").id, 7)

    def test_unknown_name_is_not_cached(self) -> None:
        """A name with no account gives None to every waiter and caches nothing."""
        db = FakeReads()
        directory = Directory(db)  # type: ignore[arg-type]
        results: list[Any] = []
        directory.lookup("ghost").addCallback(results.append)
        directory.lookup("ghost").addCallback(results.append)
        db.pending[0][0].callback(None)
        self.assertEqual(results, [None, None])
        self.assertIsNone(directory.cached("ghost"))

    def test_failed_read_fails_every_waiter(self) -> None:
        """A read that fails fails all lookups waiting on it; the next lookup reads again."""
        db = FakeReads()
        directory = Directory(db)  # type: ignore[arg-type]
        failures: list[Any] = []
        for _ in range(2):
            directory.lookup("bob").addErrback(failures.append)
        db.pending[0][0].errback(RuntimeError("disk"))
        self.assertEqual(len(failures), 2)
        directory.lookup("bob")
        self.assertEqual(len(db.pending), 2)

    def test_require_fails_with_the_404_for_an_unknown_name(self) -> None:
        """require() gives the user, or the 404 every action uses for an unknown name."""
        from messenger.wire.errors import NotFound
        db = FakeReads()
        directory = Directory(db)  # type: ignore[arg-type]
        known, unknown = directory.require("Bob"), directory.require("ghost")
        db.pending[0][0].callback(row(7, "bob"))
        db.pending[1][0].callback(None)
        self.assertEqual(self.successResultOf(known).id, 7)
        failure = self.failureResultOf(unknown, NotFound)
        self.assertEqual(failure.value.message, "no user named 'ghost'")
