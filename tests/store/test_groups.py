"""Groups in the store on a real SQLite file (and, in the ...OnPostgres twins, a real
PostgreSQL database): roles and limits checked in the write
transaction, membership windows, group message inserts (membership, announce-only,
resends, mentions), one sync cursor over direct and group messages, history per group,
read markers and unread counts (messenger.store.groups, groupmsgs, reads, messages)."""

from __future__ import annotations

from messenger.store import adminops, db, groupchanges, groupmsgs, groups, messages, reads, users
from messenger.store.errors import Missing, NotAdmin
from tests.store.test_queries import StoreCase
from tests.support.services import OnPostgres

LIMITS = groups.Limits(max_members=5, max_groups=3)


class GroupCase(StoreCase):
    """Five users (root is a server admin) and helpers for groups and messages."""

    def prepare(self):
        for name in ("root", "alice", "bob", "carol", "dave"):
            setattr(self, name, self.user(name).id)
        self.client = 0

    def create(self, owner="alice", members=("bob", "carol"), announce_only=False,
               limits=LIMITS, name="Class"):
        owner_id = getattr(self, owner)
        group, _ = self.write(groupchanges.create_txn, owner_id, owner, name, "topic",
                              announce_only, list(members), self.now, limits)
        return group.id

    def post(self, sender, group_id, body="hello"):
        """One group message; its result (or the refusal)."""
        self.client += 1
        candidates = tuple(word[1:].lower() for word in body.split() if word[0] == "@")
        (result,) = self.write(groupmsgs.insert_batch_txn,
                               [(getattr(self, sender), group_id, f"c{self.client}", body,
                                 float(self.client), candidates)])
        return result

    def direct(self, sender, recipient, body="psst"):
        self.client += 1
        (result,) = self.write(messages.insert_batch_txn,
                               [(getattr(self, sender), getattr(self, recipient),
                                 f"c{self.client}", body, float(self.client))])
        return result[0]

    def sync(self, name, since=0, limit=100):
        return [(row[5], row[3], row[4])
                for row in self.read(messages.sync_txn, getattr(self, name), since, limit)]


class MembershipTests(GroupCase):

    def test_create_makes_the_creator_owner(self):
        """The creator is the owner and the named members are members, each once; the
        creator's own name in the list and a name in another case change nothing."""
        group, members = self.write(groupchanges.create_txn, self.alice, "alice", "Class", "",
                                    False, ["BOB", "bob", "alice", "carol"], 1.0, LIMITS)
        self.assertEqual([(m.name, m.role) for m in members],
                         [("alice", "owner"), ("bob", "member"), ("carol", "member")])
        self.assertEqual(self.read(groups.member_count_txn, group.id), 3)
        self.assertEqual(self.read(groups.owner_name_txn, group.id), "alice")

    def test_create_refuses_unknown_names_and_limits(self):
        """An unknown member, too many members or a member in too many groups create
        nothing."""
        error = self.assertRaises(Missing, self.write, groupchanges.create_txn, self.alice,
                                  "alice", "G", "", False, ["bob", "Nobody"], 1.0, LIMITS)
        self.assertEqual(str(error), "Nobody")
        self.assertRaises(groups.LimitReached, self.write, groupchanges.create_txn, self.alice,
                          "alice", "G", "", False, ["bob", "carol", "dave", "root"],
                          1.0, groups.Limits(max_members=4))
        self.assertEqual(self.read(groupchanges.list_all_txn, None, 0, 10), [])
        for _ in range(3):
            self.create(members=("bob",))
        error = self.assertRaises(groups.LimitReached, self.create, "carol", ("bob",))
        self.assertEqual(str(error), "'bob' is already in 3 groups, the most allowed")
        error = self.assertRaises(groups.LimitReached, self.create, "alice", ())
        self.assertEqual(str(error), "you are already in 3 groups, the most allowed")

    def test_roles_decide_who_may_do_what(self):
        """Members may not add, remove or update; admins may, but not touch admins or the
        owner; only the owner sets roles; nobody outside learns anything."""
        gid = self.create(members=("bob", "carol"))
        for fn, args in ((groupchanges.add_txn, (self.bob, gid, "dave", 1.0, LIMITS)),
                         (groupchanges.remove_txn, (self.bob, gid, "carol", 1.0)),
                         (groupchanges.update_txn, (self.bob, gid, "x", None, None)),
                         (groupchanges.set_role_txn, (self.bob, gid, "carol", "admin"))):
            self.assertRaises(groups.NotAllowed, self.write, fn, *args)
        for fn, args in ((groupchanges.add_txn, (self.dave, gid, "root", 1.0, LIMITS)),
                         (groupchanges.add_txn, (self.dave, gid + 99, "root", 1.0, LIMITS)),
                         (groupchanges.leave_txn, (self.dave, gid, 1.0)),
                         (groups.info_txn, (gid, self.dave, "", 10))):
            self.assertRaises(groups.NotMember, self.write, fn, *args)
        self.write(groupchanges.set_role_txn, self.alice, gid, "bob", "admin")
        self.write(groupchanges.add_txn, self.bob, gid, "dave", 1.0, LIMITS)
        self.write(groupchanges.set_role_txn, self.alice, gid, "carol", "admin")
        self.assertRaises(groups.NotAllowed, self.write, groupchanges.remove_txn, self.bob, gid,
                          "carol", 1.0)
        self.assertRaises(groups.NotAllowed, self.write, groupchanges.remove_txn, self.bob, gid,
                          "alice", 1.0)
        member, remaining = self.write(groupchanges.remove_txn, self.bob, gid, "dave", 1.0)
        self.assertEqual((member.name, sorted(remaining)),
                         ("dave", sorted([self.alice, self.bob, self.carol])))
        self.assertRaises(groups.AlreadyMember, self.write, groupchanges.add_txn, self.bob, gid,
                          "carol", 1.0, LIMITS)
        self.assertRaises(groups.NotInGroup, self.write, groupchanges.remove_txn, self.alice, gid,
                          "dave", 1.0)
        self.assertRaises(Missing, self.write, groupchanges.add_txn, self.alice, gid, "ghost", 1.0,
                          LIMITS)

    def test_handing_ownership_over(self):
        """The owner cannot leave or demote itself; making another member the owner
        makes the old owner an admin, who may then leave."""
        gid = self.create()
        self.assertRaises(groups.RoleConflict, self.write, groupchanges.leave_txn, self.alice, gid,
                          1.0)
        self.assertRaises(groups.RoleConflict, self.write, groupchanges.set_role_txn, self.alice,
                          gid, "alice", "member")
        changes, _ = self.write(groupchanges.set_role_txn, self.alice, gid, "bob", "owner")
        self.assertEqual([(m.name, m.role) for m in changes],
                         [("bob", "owner"), ("alice", "admin")])
        self.assertEqual(self.read(groups.owner_name_txn, gid), "bob")
        unchanged, _ = self.write(groupchanges.set_role_txn, self.bob, gid, "alice", "admin")
        self.assertEqual(unchanged, [])
        self.write(groupchanges.leave_txn, self.alice, gid, 1.0)
        self.assertIsNone(self.read(groups.membership_txn, gid, self.alice))

    def test_group_limit_on_add(self):
        """A full group or a user in too many groups refuses an add."""
        gid = self.create(members=("bob", "carol", "dave"),
                          limits=groups.Limits(max_members=4, max_groups=3))
        error = self.assertRaises(groups.LimitReached, self.write, groupchanges.add_txn, self.alice,
                                  gid, "root", 1.0, groups.Limits(max_members=4))
        self.assertEqual(str(error), "the group has 4 members, the most allowed")
        self.write(groupchanges.add_txn, self.alice, gid, "root", 1.0, groups.Limits(max_members=0))

    def test_delete_by_owner_or_server_admin(self):
        """A member cannot delete; the owner can; a server administrator can (audited),
        and a missing group is Missing to it; messages go with the group."""
        gid = self.create()
        self.post("bob", gid)
        self.assertRaises(groups.NotAllowed, self.write, groupchanges.delete_txn, self.bob, "bob",
                          gid, 1.0)
        self.assertRaises(groups.NotMember, self.write, groupchanges.delete_txn, self.dave, "dave",
                          gid, 1.0)
        group, member_ids, by_admin = self.write(groupchanges.delete_txn, self.root, "root", gid,
                                                 2.0)
        self.assertEqual((group.name, len(member_ids), by_admin), ("Class", 3, True))
        self.assertEqual(self.read(messages.count_txn), 0)
        self.assertRaises(groups.NoSuchGroup, self.write, groupchanges.delete_txn, self.root,
                          "root", gid, 2.0)
        trail = self.read(lambda txn: txn.execute(
            "SELECT actor, action, detail FROM audit_log").fetchall())
        self.assertEqual(trail, [("root", "delete_group", f"group #{gid} 'Class'")])
        gid = self.create()
        self.assertFalse(self.write(groupchanges.delete_txn, self.alice, "alice", gid, 3.0)[2])

    def test_deleted_owner_hands_over(self):
        """Deleting an account that owns groups makes the longest-standing admin (else
        member) the owner; a group with nobody left goes; the groups that remain are
        returned, with the new owner where there is one."""
        gid = self.create(members=("bob", "carol"))
        self.write(groupchanges.set_role_txn, self.alice, gid, "carol", "admin")
        alone = self.create(members=())
        joined = self.create(owner="bob", members=("alice",))
        deleted = self.write(adminops.delete_user_txn, "operator:test", "alice", 5.0)
        self.assertEqual(self.read(groups.owner_name_txn, gid), "carol")
        self.assertIsNone(self.read(groups.group_txn, alone))
        self.assertEqual(deleted.row.name, "alice")
        self.assertEqual(deleted.groups, [(gid, "carol"), (joined, None)])  # alone: gone

    def test_all_members_page_by_page(self):
        """all_members_txn reads every member, in name order, however many pages."""
        group_id = self.create(members=("bob", "carol", "dave", "root"),
                               limits=groups.Limits(max_members=10))
        for page in (1, 2, 5, 1000):
            members = self.read(groups.all_members_txn, group_id, page)
            self.assertEqual([m.name for m in members],
                             ["alice", "bob", "carol", "dave", "root"], page)
        self.assertEqual(self.read(groups.all_members_txn, group_id + 99), [])

    def test_admin_list(self):
        """Server administrators list every group (audited); others get NotAdmin."""
        first = self.create(name="Maths 5b")
        self.create(owner="bob", members=("dave",), name="Chess club")
        rows = self.write(groupchanges.admin_list_txn, self.root, "root", None, 0, 10, 1.0)
        self.assertEqual([(g.name, owner, count) for g, owner, count in rows],
                         [("Maths 5b", "alice", 3), ("Chess club", "bob", 2)])
        rows = self.write(groupchanges.admin_list_txn, self.root, "root", "MATHS", 0, 10, 1.0)
        self.assertEqual([g.id for g, _, _ in rows], [first])
        self.assertRaises(NotAdmin, self.write, groupchanges.admin_list_txn, self.bob, "bob", None,
                          0, 10, 1.0)


class GroupMessageTests(GroupCase):

    def test_members_post_and_get_the_push_list(self):
        """A member's message is stored once; the push list is every other member."""
        gid = self.create()
        msg_id, _, new, recipients, mentions = self.post("bob", gid)
        self.assertTrue(new)
        self.assertEqual(sorted(recipients), sorted([self.alice, self.carol]))
        self.assertEqual(mentions, ())
        self.assertEqual(self.read(messages.count_txn), 1)
        self.assertEqual(self.read(groups.group_txn, gid).last_msg_id, msg_id)

    def test_refusals(self):
        """A non-member (or a missing group) and a plain member of an announce-only group
        are refused; nothing is stored."""
        gid = self.create(announce_only=True)
        self.assertEqual(self.post("dave", gid), groupmsgs.NOT_MEMBER)
        self.assertEqual(self.post("dave", gid + 50), groupmsgs.NOT_MEMBER)
        self.assertEqual(self.post("bob", gid), groupmsgs.ANNOUNCE_ONLY)
        self.assertEqual(self.read(messages.count_txn), 0)
        self.assertTrue(self.post("alice", gid)[2])
        self.write(groupchanges.set_role_txn, self.alice, gid, "bob", "admin")
        self.assertTrue(self.post("bob", gid)[2])

    def test_resend_answers_with_the_first_copy(self):
        """A resend (same sender and request id) is not stored again, even after the
        sender left; a request id used for another conversation is refused."""
        gid = self.create()
        item = (self.bob, gid, "same", "hello", 1.0, ())
        first, again = self.write(groupmsgs.insert_batch_txn, [item, item])
        self.assertEqual(again, (first[0], 1.0, False, (), ()))
        self.write(groupchanges.leave_txn, self.bob, gid, 2.0)
        (later,) = self.write(groupmsgs.insert_batch_txn, [item])
        self.assertEqual(later, (first[0], 1.0, False, (), ()))
        self.write(messages.insert_batch_txn, [(self.carol, self.alice, "r", "hi", 1.0)])
        (reused,) = self.write(groupmsgs.insert_batch_txn, [(self.carol, gid, "r", "x", 1.0,
                                                              ())])
        self.assertEqual(reused, groupmsgs.ID_REUSED)
        self.assertEqual(self.read(messages.count_txn), 2)

    def test_mentions_only_of_members(self):
        """@names that are members (any case) are kept as registered; others are not."""
        gid = self.create()
        result = self.post("bob", gid, "hi @CAROL and @dave and @alice")
        self.assertEqual(result[4], ("carol", "alice"))
        (row,) = self.read(groupmsgs.history_txn, self.alice, gid, None, 10)
        self.assertEqual(row[5], "carol alice")

    def test_batch_mixes_groups_and_verdicts(self):
        """One batch with two groups, a refusal and a resend keeps each row's outcome in
        order and ids increasing."""
        first = self.create()
        second = self.create(owner="dave", members=("bob",))
        items = [(self.bob, first, "a", "1", 1.0, ()), (self.dave, first, "b", "2", 1.0, ()),
                 (self.bob, second, "c", "3", 1.0, ()), (self.bob, first, "a", "1", 1.0, ())]
        results = self.write(groupmsgs.insert_batch_txn, items)
        self.assertEqual(results[1], groupmsgs.NOT_MEMBER)
        self.assertLess(results[0][0], results[2][0])
        self.assertEqual(results[2][3], (self.dave,))
        self.assertEqual(results[3][:3], (results[0][0], 1.0, False))


class MemberCacheTests(GroupCase):

    def post_cached(self, cache, sender, group_id):
        self.client += 1
        (result,) = self.write(cache.insert_batch_txn,
                               [(getattr(self, sender), group_id, f"k{self.client}", "hi",
                                 1.0, ())])
        return result

    def test_every_change_to_the_members_reaches_the_cache(self):
        """A cache of members answers like the database after each add, removal, role
        change, announce_only change and account deletion."""
        cache = groupmsgs.MemberCache()
        gid = self.create(members=("bob", "carol"))
        self.assertEqual(sorted(self.post_cached(cache, "alice", gid)[3]),
                         sorted([self.bob, self.carol]))
        self.write(groupchanges.add_txn, self.alice, gid, "dave", 1.0, LIMITS)
        self.assertIn(self.dave, self.post_cached(cache, "alice", gid)[3])
        self.write(groupchanges.remove_txn, self.alice, gid, "carol", 1.0)
        self.assertEqual(self.post_cached(cache, "carol", gid), groupmsgs.NOT_MEMBER)
        self.write(groupchanges.update_txn, self.alice, gid, None, None, True)
        self.assertEqual(self.post_cached(cache, "bob", gid), groupmsgs.ANNOUNCE_ONLY)
        self.write(groupchanges.set_role_txn, self.alice, gid, "bob", "admin")
        self.assertTrue(self.post_cached(cache, "bob", gid)[2])
        self.write(adminops.delete_user_txn, "operator:test", "dave", 2.0)
        self.assertEqual(sorted(self.post_cached(cache, "alice", gid)[3]), [self.bob])

    def test_a_cache_reads_members_once_per_change(self):
        """Posting again without a change reads no member rows."""
        cache = groupmsgs.MemberCache()
        gid = self.create()
        self.post_cached(cache, "alice", gid)
        reads = []

        def counting(txn, items):
            class Counting:
                def execute(self, sql, args=()):
                    if "FROM group_members" in sql:
                        reads.append(sql)
                    return txn.execute(sql, args)

                def __getattr__(self, name):
                    return getattr(txn, name)
            return cache.insert_batch_txn(Counting(), items)
        self.write(counting, [(self.bob, gid, "again", "hi", 1.0, ())])
        self.assertEqual(reads, [])


class WindowTests(GroupCase):

    def test_sync_one_cursor_over_direct_and_group(self):
        """A user's sync holds its direct messages and others' group messages in id
        order, each once, without its own; paging by the last id misses nothing."""
        gid = self.create()
        expected = []
        for n in range(6):
            if n % 3 == 0:
                self.direct("dave", "bob", f"d{n}")
                expected.append((f"d{n}", "bob", None))
            elif n % 3 == 1:
                self.post("alice", gid, f"g{n}")
                expected.append((f"g{n}", None, gid))
            else:
                self.post("bob", gid, f"own{n}")
        self.assertEqual(self.sync("bob"), expected)
        paged, since = [], 0
        while True:
            rows = self.read(messages.sync_txn, self.bob, since, 2)
            if not rows:
                break
            paged.extend(row[5] for row in rows)
            since = rows[-1][0]
        self.assertEqual(paged, [body for body, _, _ in expected])

    def test_windows_of_a_removed_and_readded_member(self):
        """A member sees what was sent while it was a member: not before it joined, not
        while it was out, again after it was added back; history says the same."""
        gid = self.create(members=("bob",))
        self.post("alice", gid, "before carol")
        self.write(groupchanges.add_txn, self.alice, gid, "carol", 1.0, LIMITS)
        self.post("alice", gid, "first window")
        self.write(groupchanges.remove_txn, self.alice, gid, "carol", 2.0)
        self.post("alice", gid, "while out")
        self.write(groupchanges.add_txn, self.alice, gid, "carol", 3.0, LIMITS)
        self.post("bob", gid, "second window")
        self.assertEqual([body for body, _, _ in self.sync("carol")],
                         ["first window", "second window"])
        history = self.read(groupmsgs.history_txn, self.carol, gid, None, 10)
        self.assertEqual([row[4] for row in history], ["first window", "second window"])
        self.assertEqual([row[4] for row in self.read(groupmsgs.history_txn, self.bob, gid,
                                                      None, 10)],
                         ["before carol", "first window", "while out", "second window"])

    def test_a_removed_member_still_syncs_its_window_but_no_history(self):
        """After removal the member's sync still holds what it was sent before, nothing
        after; history is refused (it is no member now)."""
        gid = self.create()
        self.post("alice", gid, "sent before")
        self.write(groupchanges.remove_txn, self.alice, gid, "carol", 2.0)
        self.post("alice", gid, "sent after")
        self.assertEqual([body for body, _, _ in self.sync("carol")], ["sent before"])
        self.assertRaises(groups.NotMember, self.read, groupmsgs.history_txn, self.carol, gid,
                          None, 10)

    def test_history_pages(self):
        """History pages backwards from ``before``, oldest first in each page."""
        gid = self.create()
        ids = [self.post("alice", gid, f"m{n}")[0] for n in range(5)]
        page = self.read(groupmsgs.history_txn, self.bob, gid, None, 2)
        self.assertEqual([row[4] for row in page], ["m3", "m4"])
        older = self.read(groupmsgs.history_txn, self.bob, gid, ids[3], 10)
        self.assertEqual([row[4] for row in older], ["m0", "m1", "m2"])

    def test_pages_read_only_about_a_reply(self):
        """With max_bytes, history reads the newest rows and sync the oldest, only until
        their bodies pass it (the row that passes included)."""
        gid = self.create()
        for n in range(5):
            self.post("alice", gid, f"{n}" + "x" * 999)
        history = self.read(groupmsgs.history_txn, self.bob, gid, None, 10, 2500)
        self.assertEqual([row[4][0] for row in history], ["2", "3", "4"])
        synced = self.read(messages.sync_txn, self.bob, 0, 10, 2500)
        self.assertEqual([row[5][0] for row in synced], ["0", "1", "2"])

    def test_many_windows_over_the_compound_limit(self):
        """A user in more groups than one SQL compound statement may hold still syncs
        every group's messages in order."""
        many = groups.Limits(max_members=0, max_groups=0)
        ids = [self.create(members=("bob",), limits=many) for _ in range(groupmsgs.MAX_TERMS
                                                                         + 20)]
        for gid in reversed(ids):
            self.post("alice", gid, f"to {gid}")
        bodies = [body for body, _, _ in self.sync("bob", limit=1000)]
        self.assertEqual(bodies, [f"to {gid}" for gid in reversed(ids)])


class ReadMarkerTests(GroupCase):

    def test_direct_unread_and_markers(self):
        """Unread direct messages count per sender above the marker; a marker moves only
        forward and never past the newest message."""
        ids = [self.direct("bob", "alice") for _ in range(3)]
        self.direct("carol", "alice")
        self.direct("alice", "bob")
        self.assertEqual(self.read(reads.direct_unread_txn, self.alice),
                         [("bob", 3, 0), ("carol", 1, 0)])
        self.assertEqual(self.write(reads.mark_direct_txn, self.alice, self.bob, ids[1]),
                         ids[1])
        self.assertEqual(self.write(reads.mark_direct_txn, self.alice, self.bob, ids[0]),
                         ids[1])
        self.assertEqual(self.read(reads.direct_unread_txn, self.alice),
                         [("bob", 1, ids[1]), ("carol", 1, 0)])
        newest = self.write(reads.mark_direct_txn, self.alice, self.carol, 10**12)
        self.assertEqual(newest, self.read(lambda t: t.execute(
            "SELECT MAX(id) FROM messages").fetchone()[0]))
        self.direct("carol", "alice")
        self.assertEqual(self.read(reads.direct_unread_txn, self.alice)[-1], ("carol", 1,
                                                                             newest))

    def test_group_unread_with_mentions(self):
        """A group's unread count covers others' messages above the marker (not one's
        own, not before joining) and says how many mention the user."""
        gid = self.create()
        self.post("alice", gid, "before dave")
        self.write(groupchanges.add_txn, self.alice, gid, "dave", 1.0, LIMITS)
        self.post("alice", gid, "hello @dave")
        last = self.post("bob", gid, "plain")[0]
        self.post("dave", gid, "mine")
        counts = self.read(reads.group_unread_txn, self.dave, "dave")
        self.assertEqual(counts, {gid: (2, 1)})
        self.write(reads.mark_group_txn, self.dave, gid, last)
        self.assertEqual(self.read(reads.group_unread_txn, self.dave, "dave"), {})
        self.assertRaises(groups.NotMember, self.write, reads.mark_group_txn, self.root, gid,
                          1)
        direct, group_rows = self.read(reads.unread_txn, self.carol, "carol")
        self.assertEqual((direct, group_rows), ([], [(gid, 4, 0, 0)]))

    def test_group_list(self):
        """The group list gives each group with role, members, owner, unread and the last
        message the user may see."""
        gid = self.create()
        empty = self.create(owner="bob", members=("alice",))
        self.post("bob", gid, "latest")
        rows = self.read(reads.group_list_txn, self.alice, "alice", 0, 10)
        (first, members, owner, unread, mentioned, last), second = rows
        self.assertEqual((first.group.id, first.role, members, owner, unread, mentioned,
                          last[4]), (gid, "owner", 3, "alice", 1, 0, "latest"))
        self.assertEqual((second[0].group.id, second[0].role, second[5]),
                         (empty, "member", None))
        self.assertEqual(self.read(reads.group_list_txn, self.alice, "alice", gid, 10)[0][0]
                         .group.id, empty)

    def test_upgrade_counts_old_conversations_as_read(self):
        """Schema 004 sets a marker for every conversation that existed before it."""
        self.assertEqual(self.read(users.count_txn), 5)
        sql = [sql for number, _, sql in db.migrations() if number == 4][0]
        seed = sql[sql.index("INSERT INTO read_markers"):].rstrip().rstrip(";")
        self.direct("bob", "alice")
        self.write(lambda txn: txn.execute("DELETE FROM read_markers"))
        self.write(lambda txn: txn.execute(seed))
        self.assertEqual(self.read(reads.direct_unread_txn, self.alice), [])


class MembershipTestsOnPostgres(OnPostgres, MembershipTests):
    pass


class GroupMessageTestsOnPostgres(OnPostgres, GroupMessageTests):
    pass


class WindowTestsOnPostgres(OnPostgres, WindowTests):
    pass


class ReadMarkerTestsOnPostgres(OnPostgres, ReadMarkerTests):
    pass


class MemberCacheTestsOnPostgres(OnPostgres, MemberCacheTests):
    pass
