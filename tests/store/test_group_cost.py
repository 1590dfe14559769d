"""A page of a group's history, and a sync, cost a page: every read of the messages table
is an indexed range (EXPLAIN QUERY PLAN of each statement the store runs), and the SQLite
VM steps of a page do not grow with the group's history or with groups that had nothing
new (messenger.store.groupmsgs.history_txn, messenger.store.messages.sync_txn)."""

from __future__ import annotations

import json
import re

from messenger.store import groupchanges, groupmsgs, groups, messages
from tests.store.test_queries import StoreCase
from tests.support.services import OnPostgres

LONG, SHORT, PAGE = 4000, 200, 20
MANY = groups.Limits(max_members=0, max_groups=0)


class Recording:
    """A cursor that runs each statement, and first records the query plan of each one
    that reads the messages table."""

    def __init__(self, txn):
        self._txn = txn
        self.plans: list[list[str]] = []

    def execute(self, sql, args=()):
        if sql.startswith("SELECT") and "messages" in sql:
            self._txn.execute("EXPLAIN QUERY PLAN " + sql, args)
            self.plans.append([row[-1] for row in self._txn.fetchall()])
        return self._txn.execute(sql, args)

    def __getattr__(self, name):
        return getattr(self._txn, name)


def fill_txn(txn, rows, *group_ids):
    txn.executemany("INSERT INTO messages (sender_id, recipient_id, group_id, client_id,"
                    " body, created) VALUES (?, ?, ?, ?, ?, 1.0)", rows)
    for group_id in group_ids:
        txn.execute("UPDATE chat_groups SET last_msg_id = (SELECT MAX(id) FROM messages"
                    " WHERE group_id = ?) WHERE id = ?", (group_id, group_id))


class GroupCostCase(StoreCase):
    """A long group, a short one and many direct messages."""

    def prepare(self):
        self.alice, self.bob, self.carol = (self.user(n).id for n in ("alice", "bob", "carol"))
        self.long = self.group(("bob",))
        self.short = self.group(("bob",))
        # Group and direct messages interleaved, as they come in real life (one
        # transaction, plain rows: the store's own inserts are tested elsewhere).
        rows = []
        for i in range(LONG):
            rows.append((self.alice, None, self.long, f"l{i}", "x" * 20))
            if i < SHORT:
                rows.append((self.alice, None, self.short, f"s{i}", "y" * 20))
            rows.append((self.alice, self.bob, None, f"d{i}", "z"))
        self.write(fill_txn, rows, self.long, self.short)

    def group(self, members):
        group, _ = self.write(groupchanges.create_txn, self.alice, "alice", "G", "", False,
                              list(members), 1.0, MANY)
        return group.id

    def plans(self, fn, *args):
        recorder = []

        def run(txn):
            cursor = Recording(txn)
            result = fn(cursor, *args)
            recorder.extend(cursor.plans)
            return result
        rows = self.read(run)
        return rows, [line for plan in recorder for line in plan]

    def steps(self, fn, *args):
        counted = [0]

        def tick():
            counted[0] += 1
            return 0
        self.connection.raw.set_progress_handler(tick, 1)
        try:
            self.read(fn, *args)
        finally:
            self.connection.raw.set_progress_handler(None, 1)
        return counted[0]



class SqliteGroupCostTests(GroupCostCase):

    def assert_indexed(self, lines, index):
        searches = [line for line in lines if index in line]
        self.assertTrue(searches, lines)
        self.assertTrue(all(line.startswith("SEARCH") for line in searches), lines)
        self.assertFalse([line for line in lines if re.match(r"SCAN (m|messages)\b", line)],
                         lines)

    def test_history_plan_searches_the_group_index(self):
        """Group history reads messages only by ranges of messages_group and by id."""
        rows, lines = self.plans(groupmsgs.history_txn, self.bob, self.long, None, PAGE + 1)
        self.assertEqual(len(rows), PAGE + 1)
        self.assert_indexed(lines, "messages_group")

    def test_history_steps_do_not_grow_with_the_group(self):
        """A page of a 4,000-message group costs the VM steps of a page of a 200-message
        one."""
        long_steps = self.steps(groupmsgs.history_txn, self.bob, self.long, None, PAGE + 1)
        short_steps = self.steps(groupmsgs.history_txn, self.bob, self.short, None, PAGE + 1)
        self.assertLess(long_steps, short_steps * 1.2)

    def test_sync_plan_searches_the_indexes(self):
        """A sync reads direct messages by messages_recipient and each group by
        messages_group, never the whole table."""
        rows, lines = self.plans(messages.sync_txn, self.bob, 0, PAGE)
        self.assertEqual(len(rows), PAGE)
        self.assert_indexed(lines, "messages_group")
        self.assert_indexed(lines, "messages_recipient")

    def test_sync_steps_do_not_grow_with_quiet_groups_messages(self):
        """Groups with nothing new since the cursor cost a sync one membership row each,
        whatever they hold: the steps are the same when each of 100 quiet groups holds
        one message as when each holds 30."""
        quiet = [self.group(("carol",)) for _ in range(100)]

        def fill_then_sync(count):
            self.write(groupmsgs.insert_batch_txn,
                       [(self.alice, gid, f"q{gid}-{count}-{n}", "q", 1.0, ())
                        for gid in quiet for n in range(count)])
            since = self.read(lambda txn: txn.execute("SELECT MAX(id) FROM messages")
                              .fetchone()[0])
            self.write(messages.insert_batch_txn,
                       [(self.alice, self.carol, f"new{count}", "n", 1.0)])
            return self.steps(messages.sync_txn, self.carol, since, PAGE)
        few, many = fill_then_sync(1), fill_then_sync(30)
        self.assertLess(many, few * 1.2)


class Analysing(Recording):
    """Records EXPLAIN (ANALYZE, FORMAT JSON) of each statement that reads messages."""

    def execute(self, sql, args=()):
        if sql.startswith("SELECT") and "messages" in sql:
            self._txn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, args)
            (row,) = self._txn.fetchall()
            plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
            self.plans.append(plan[0]["Plan"])
        return self._txn.execute(sql, args)


class PostgresGroupCostTests(OnPostgres, GroupCostCase):

    def scans(self, fn, *args):
        """Every node of every plan that reads the messages table."""
        self.write(lambda txn: txn.execute("ANALYZE messages"))
        recorded = []

        def run(txn):
            cursor = Analysing(txn)
            result = fn(cursor, *args)
            recorded.extend(cursor.plans)
            return result
        rows = self.read(run)
        nodes, stack = [], list(recorded)
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(node.get("Plans", ()))
        return rows, [n for n in nodes if n.get("Relation Name") == "messages"]

    def assert_about_a_page(self, scans, page):
        self.assertTrue(scans)
        for node in scans:
            self.assertIn(node["Node Type"], ("Index Scan", "Index Only Scan",
                                              "Bitmap Heap Scan"), node)
            touched = (node["Actual Rows"] * node["Actual Loops"]
                       + node.get("Rows Removed by Filter", 0))
            self.assertLessEqual(touched, 3 * page, node)

    def test_history_reads_about_a_page(self):
        """Each scan of messages in a page of group history is an index scan that reads
        about a page, in a long group and a short one."""
        for group in (self.long, self.short):
            rows, scans = self.scans(groupmsgs.history_txn, self.bob, group, None, PAGE + 1)
            self.assertEqual(len(rows), PAGE + 1)
            self.assert_about_a_page(scans, PAGE + 1)

    def test_sync_reads_about_a_page(self):
        """Each scan of messages in a sync page is an index scan that reads about a
        page."""
        rows, scans = self.scans(messages.sync_txn, self.bob, 0, PAGE)
        self.assertEqual(len(rows), PAGE)
        self.assert_about_a_page(scans, PAGE + 1)
