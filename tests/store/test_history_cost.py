"""One page of history costs one page: the query plan of `messages.history_txn` reads
only the page through the index, on SQLite (EXPLAIN QUERY PLAN, and the number of
virtual-machine steps, the same for a short and a long conversation) and on PostgreSQL
(EXPLAIN ANALYZE: every scan of messages is an index scan that returns at most the page)."""

from __future__ import annotations

import json
import re

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store import messages, users
from tests.store.test_queries import store_connection
from tests.support.services import OnPostgres

LONG, SHORT, PAGE = 4000, 200, 20


class Explaining:
    """A cursor that runs EXPLAIN of each statement instead of the statement."""

    def __init__(self, txn, prefix):
        self._txn = txn
        self._prefix = prefix

    def execute(self, sql, args=()):
        return self._txn.execute(self._prefix + sql, args)

    def __getattr__(self, name):
        return getattr(self._txn, name)


class HistoryCostCase(unittest.TestCase):
    store_engine = "sqlite"

    @defer.inlineCallbacks
    def setUp(self):
        self.connection = yield store_connection(self)
        ids = [self.connection.write(users.create_txn, name, f"{name}@x.org", "h", 1.0).id
               for name in ("alice", "bob", "carol", "dave")]
        self.alice, self.bob, self.carol, self.dave = ids
        rows = []
        for i in range(LONG):
            sender, to = (self.alice, self.bob) if i % 3 else (self.bob, self.alice)
            rows.append((sender, to, f"l{i}", "x" * 20, float(i)))
            if i < SHORT:
                sender, to = (self.carol, self.dave) if i % 3 else (self.dave, self.carol)
                rows.append((sender, to, f"s{i}", "y" * 20, float(i)))
            rows.append((self.alice, self.carol, f"o{i}", "z", float(i)))
        for start in range(0, len(rows), 2000):
            self.connection.write(messages.insert_batch_txn, rows[start:start + 2000])

    def explain(self, prefix, user, other, before=None):
        return self.connection.read(lambda txn: messages.history_txn(
            Explaining(txn, prefix), user, other, before, PAGE + 1))


class SqliteHistoryCostTests(HistoryCostCase):

    def test_plan_searches_the_pair_index(self):
        """Every access to messages is an index search on messages_pair (or by id); no
        table scan, and no sort of anything but the merged page."""
        plan = [row[-1] for row in self.explain("EXPLAIN QUERY PLAN ", self.alice, self.bob)]
        searches = [line for line in plan if "messages_pair" in line]
        self.assertEqual(len(searches), 2, plan)
        self.assertTrue(all(line.startswith("SEARCH") and "id<?" in line
                            for line in searches), plan)
        self.assertFalse([line for line in plan if re.match(r"SCAN (m|messages)\b", line)],
                         plan)

    def test_steps_do_not_grow_with_the_conversation(self):
        """The same page costs the same number of SQLite VM steps in a conversation of
        4,000 messages as in one of 200 (a sort of the conversation would cost 20x)."""
        raw = self.connection.raw

        def steps(user, other):
            counted = [0]

            def tick():
                counted[0] += 1
                return 0
            raw.set_progress_handler(tick, 1)
            try:
                rows = self.connection.read(messages.history_txn, user, other, None, PAGE + 1)
            finally:
                raw.set_progress_handler(None, 1)
            self.assertEqual(len(rows), PAGE + 1)
            return counted[0]
        long_steps, short_steps = steps(self.alice, self.bob), steps(self.carol, self.dave)
        self.assertLess(long_steps, short_steps * 1.2)


class PostgresHistoryCostTests(OnPostgres, HistoryCostCase):

    def plan_nodes(self, user, other, before=None):
        self.connection.write(lambda txn: txn.execute("ANALYZE messages"))
        (row,) = self.explain("EXPLAIN (ANALYZE, FORMAT JSON) ", user, other, before)
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        nodes, stack = [], [plan[0]["Plan"]]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(node.get("Plans", ()))
        return nodes

    def test_every_scan_of_messages_touches_about_a_page(self):
        """For a long conversation and for a short one among many other messages, each
        scan of messages is an index scan that reads about one page of rows (returned
        or filtered out); no sequential scan; any sort sorts at most the two pages."""
        for user, other, before in ((self.alice, self.bob, None), (self.alice, self.bob, LONG),
                                    (self.carol, self.dave, None)):
            nodes = self.plan_nodes(user, other, before)
            scans = [n for n in nodes if n.get("Relation Name") == "messages"]
            self.assertTrue(scans)
            for node in scans:
                self.assertIn(node["Node Type"], ("Index Scan", "Index Only Scan"), node)
                touched = (node["Actual Rows"] * node["Actual Loops"]
                           + node.get("Rows Removed by Filter", 0))
                self.assertLessEqual(touched, 3 * (PAGE + 1), node)
            for node in nodes:
                if node["Node Type"] == "Sort":
                    self.assertLessEqual(node["Actual Rows"], 2 * (PAGE + 1), node)
