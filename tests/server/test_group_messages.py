"""Group messages over a real server on loopback: acknowledged after commit and stored
once, pushed to each online member with mentions, in every member's sync once and in
order with direct messages, idempotent resends, announcement channels, a removed member,
sends racing with membership changes, history per group, read markers and unread counts
that survive a restart (messenger.server.handlers.conversations)."""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.server.service import MessengerServer
from tests.server.people import (
    barrier,
    count,
    drop,
    login,
    quit_,
    rows,
    wait_until,
)
from tests.server.test_groups import NOT_MEMBER, class_of_five, error, no_push
from tests.support.services import OnPostgres


def request_id() -> str:
    return os.urandom(16).hex()


def bodies(messages):
    return [m["message"] for m in messages]


@defer.inlineCallbacks
def sync_all(client, since=0, limit=None):
    """Every message of a sync, following ``more`` page by page."""
    out = []
    while True:
        fields = {"since": since} if limit is None else {"since": since, "limit": limit}
        reply = yield client.request("sync", **fields)
        out.extend(reply["alert"])
        if not reply["more"]:
            return out
        since = reply["alert"][-1]["msg_id"]


class SendTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_stored_once_pushed_to_online_members(self):
        """A group message is acknowledged with its id after the commit, stored as one
        row, pushed once to each online member (not the sender) with the group and the
        mentions, and an offline member finds it in its sync."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield quit_(cat)
        reply = yield ann.request("msg", group=gid, message="hi @Teacher and @ben.")
        self.assertEqual(reply["response"], 200)
        stored = yield rows(server, "SELECT id, group_id, recipient_id, mentions FROM messages")
        self.assertEqual(stored, [(reply["msg_id"], gid, None, "teacher ben")])
        expected = {"action": "msg", "msg_id": reply["msg_id"], "time": reply["time"],
                    "from": "ann", "group": gid, "message": "hi @Teacher and @ben.",
                    "mentions": ["teacher", "ben"]}
        for client in (teacher, ben):
            push = yield client.wait_push("msg")
            self.assertEqual(push, expected)
        yield no_push(self, ann, "msg")
        yield no_push(self, root, "msg")
        cat = yield login(self, server, "cat")
        synced = yield sync_all(cat)
        self.assertEqual(synced, [{k: v for k, v in expected.items() if k != "action"}])

    @defer.inlineCallbacks
    def test_announcement_channel(self):
        """In an announce_only group plain members get 403 and nothing is stored; the
        owner and admins post."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield teacher.request("group_update", group=gid, announce_only=True)
        reply = yield ann.request("msg", group=gid, message="may I?")
        self.assertEqual(error(reply), (403, "only the group's owner and admins may post in"
                                             " this announcement channel"))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)
        reply = yield teacher.request("msg", group=gid, message="Homework: page 12")
        self.assertEqual(reply["response"], 200)
        push = yield ann.wait_push("msg")
        self.assertEqual(push["message"], "Homework: page 12")
        yield teacher.request("group_set_role", group=gid, user_id="ben", role="admin")
        reply = yield ben.request("msg", group=gid, message="from the class rep")
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_resend_after_reconnect_is_idempotent(self):
        """A resend of the same request id after a reconnect is acknowledged with the
        original id and time, stored once and not pushed again."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        rid = request_id()
        first = yield ann.request("msg", group=gid, message="once", id=rid)
        yield ben.wait_push("msg")
        yield drop(ann)
        ann = yield login(self, server, "ann")
        again = yield ann.request("msg", group=gid, message="once", id=rid)
        self.assertEqual((again["response"], again["msg_id"], again["time"]),
                         (200, first["msg_id"], first["time"]))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 1)
        yield no_push(self, ben, "msg")

    @defer.inlineCallbacks
    def test_bad_group_messages(self):
        """Both 'to' and 'group' is 400; the body limit and 'from' apply as for direct
        messages."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self, max_body=10)
        reply = yield ann.request("msg", to="ben", group=gid, message="x")
        self.assertEqual(error(reply), (400, "give 'to' or 'group', not both"))
        reply = yield ann.request("msg", group=gid, message="x" * 11)
        self.assertEqual(error(reply), (400, "'message' is larger than 10 bytes"))
        reply = yield ann.request("msg", group=gid, message="x", **{"from": "ben"})
        self.assertEqual(error(reply), (400, "'from' must be your own account name"))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)


class MembershipChangeTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_removed_member_gets_nothing_after(self):
        """A removed member gets no push and no sync of what is sent after its removal,
        keeps what came before, and may no longer send or read the history."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        before = yield teacher.request("msg", group=gid, message="before")
        yield cat.wait_push("msg")
        yield teacher.request("group_remove", group=gid, user_id="cat")
        yield cat.wait_push("group_member_removed")
        yield teacher.request("msg", group=gid, message="after")
        yield ann.wait_push("msg")
        yield ann.wait_push("msg")
        yield no_push(self, cat, "msg")
        synced = yield sync_all(cat)
        self.assertEqual([(m["msg_id"], m["message"]) for m in synced],
                         [(before["msg_id"], "before")])
        reply = yield cat.request("msg", group=gid, message="still here?")
        self.assertEqual(error(reply), NOT_MEMBER)
        reply = yield cat.request("history", group=gid)
        self.assertEqual(error(reply), NOT_MEMBER)

    @defer.inlineCallbacks
    def test_sends_racing_with_a_removal(self):
        """Messages sent while a member is being removed fall on one side of the removal:
        each acknowledged one is pushed to the staying members once, the removed member
        gets exactly those stored before its removal (pushed, and in its sync), and a
        sender removed mid-stream has its later messages refused and not stored."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        def wave(first, last):
            return [client.request("msg", group=gid, message=f"{name}{i}")
                    for i in range(first, last)
                    for client, name in ((ben, "b"), (teacher, "t"))]
        sends = wave(0, 30)
        # Some are committed (ann got them); more are queued or in flight.
        yield wait_until(lambda: sum(p["action"] == "msg" for p in ann.pushes) >= 20)
        removal = teacher.request("group_remove", group=gid, user_id="ben")
        sends += wave(30, 60)
        replies = yield defer.gatherResults(sends)
        reply = yield removal
        self.assertEqual(reply["response"], 200)
        acked = {r["msg_id"] for r in replies if r["response"] == 200}
        for refused in (r for r in replies if r["response"] != 200):
            self.assertEqual(error(refused), NOT_MEMBER)
        stored = yield rows(server, "SELECT id FROM messages ORDER BY id")
        self.assertEqual({row[0] for row in stored}, acked)
        ((left_at,),) = yield rows(server, "SELECT left_at FROM group_members m"
                                           " JOIN users u ON u.id = m.user_id"
                                           " WHERE u.name = 'ben'")
        yield barrier(ann)
        ann_got = [p["msg_id"] for p in ann.pushes if p["action"] == "msg"]
        self.assertEqual(sorted(ann_got), sorted(acked))
        self.assertEqual(ann_got, sorted(ann_got))
        yield barrier(ben)
        ben_pushed = [p["msg_id"] for p in ben.pushes if p["action"] == "msg"]
        teacher_ids = {r["msg_id"] for r in replies[1::2]}
        self.assertEqual(set(ben_pushed), {i for i in teacher_ids if i <= left_at})
        ben_synced = yield sync_all(ben)
        self.assertEqual([m["msg_id"] for m in ben_synced], sorted(ben_pushed))

    @defer.inlineCallbacks
    def test_new_member_sees_from_joining_on(self):
        """A member added later gets neither pushes nor sync nor history of what came
        before it joined."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield teacher.request("msg", group=gid, message="old news")
        yield teacher.request("group_add", group=gid, user_id="root")
        yield root.wait_push("group_member_added")
        yield teacher.request("msg", group=gid, message="welcome")
        push = yield root.wait_push("msg")
        self.assertEqual(push["message"], "welcome")
        synced = yield sync_all(root)
        self.assertEqual(bodies(synced), ["welcome"])
        history = yield root.request("history", group=gid)
        self.assertEqual(bodies(history["alert"]), ["welcome"])


class SyncAndHistoryTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_one_cursor_across_a_reconnect(self):
        """Direct and group messages sent while a member is away, and after it is back,
        reach it exactly once and in id order through sync and pushes, following the
        last id it saw across a dropped connection."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        other = yield ann.request("group_create", name="Pairs", members=["cat"])
        pairs = other["group"]["group_id"]
        yield cat.wait_push("group_created")
        sent = []
        for i in range(5):
            reply = yield teacher.request("msg", group=gid, message=f"class {i}")
            sent.append(reply["msg_id"])
            reply = yield ann.request("msg", to="cat", message=f"direct {i}")
            sent.append(reply["msg_id"])
            reply = yield ann.request("msg", group=pairs, message=f"pairs {i}")
            sent.append(reply["msg_id"])
        yield cat.request("msg", group=gid, message="my own")
        first = yield cat.request("sync", since=0, limit=4)
        seen = [m["msg_id"] for m in first["alert"]]
        yield barrier(cat)
        seen += [p["msg_id"] for p in cat.pushes if p["action"] == "msg"]
        cursor = max(seen)
        yield drop(cat)
        reply = yield teacher.request("msg", group=gid, message="while away")
        sent.append(reply["msg_id"])
        cat = yield login(self, server, "cat")
        rest = yield sync_all(cat, since=cursor, limit=3)
        got = sorted(set(seen)) + [m["msg_id"] for m in rest]
        self.assertEqual(got, sorted(sent))
        self.assertEqual(len(got), len(set(got)))

    @defer.inlineCallbacks
    def test_history_pages_per_group(self):
        """history with 'group' pages backwards, oldest first in each page, with 'more'."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        ids = []
        for i in range(7):
            reply = yield (ann if i % 2 else teacher).request("msg", group=gid,
                                                              message=f"h{i}")
            ids.append(reply["msg_id"])
        yield teacher.request("msg", to="ann", message="not in the group")
        page = yield ben.request("history", group=gid, limit=3)
        self.assertEqual((page["response"], bodies(page["alert"]), page["more"]),
                         (202, ["h4", "h5", "h6"], True))
        self.assertEqual(page["alert"][0], {"msg_id": ids[4], "time": page["alert"][0]["time"],
                                            "from": "teacher", "group": gid, "message": "h4",
                                            "mentions": []})
        older = yield ben.request("history", group=gid, before=ids[4], limit=10)
        self.assertEqual((bodies(older["alert"]), older["more"]),
                         (["h0", "h1", "h2", "h3"], False))


class ReadMarkerTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_unread_counts_survive_a_restart(self):
        """Unread counts and read markers come from the server: after the server
        restarts, a member logging in gets the same counts (with mentions) from
        get_unread and group_list, and mark_read brings them to zero."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield quit_(ben)
        yield teacher.request("msg", group=gid, message="one")
        yield teacher.request("msg", group=gid, message="two, @ben")
        last = yield ann.request("msg", group=gid, message="three")
        direct = yield ann.request("msg", to="ben", message="psst")
        config = server.config
        yield server.stop()
        server = MessengerServer(config, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        ben = yield login(self, server, "ben")
        unread = yield ben.request("get_unread")
        self.assertEqual(unread, {**unread, "response": 200,
                                  "direct": [{"with": "ann", "unread": 1, "read_up_to": 0}],
                                  "groups": [{"group_id": gid, "unread": 3, "mentions": 1,
                                              "read_up_to": unread["groups"][0]["read_up_to"]}]})
        listed = yield ben.request("group_list")
        (item,) = listed["alert"]
        self.assertEqual((item["unread"], item["mentions"], item["last"]["message"]),
                         (3, 1, "three"))
        reply = yield ben.request("mark_read", group=gid, up_to=last["msg_id"])
        self.assertEqual(reply, {**reply, "response": 200, "read_up_to": last["msg_id"]})
        reply = yield ben.request("mark_read", up_to=direct["msg_id"], **{"with": "ann"})
        self.assertEqual(reply["read_up_to"], direct["msg_id"])
        unread = yield ben.request("get_unread")
        self.assertEqual((unread["direct"], unread["groups"]), ([], []))
        yield drop(ben)
        ben = yield login(self, server, "ben")
        unread = yield ben.request("get_unread")
        self.assertEqual((unread["direct"], unread["groups"]), ([], []))

    @defer.inlineCallbacks
    def test_mark_read_refusals(self):
        """mark_read of an unknown person is 404, of oneself 400, of a group one is not a
        member of 403; a marker never moves back."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ann.request("mark_read", up_to=1, **{"with": "nobody"})
        self.assertEqual(error(reply), (404, "no user named 'nobody'"))
        reply = yield ann.request("mark_read", up_to=1, **{"with": "ann"})
        self.assertEqual(error(reply), (400, "'with' must name another user"))
        reply = yield root.request("mark_read", group=gid, up_to=1)
        self.assertEqual(error(reply), NOT_MEMBER)
        sent = []
        for i in range(3):
            reply = yield teacher.request("msg", group=gid, message=str(i))
            sent.append(reply["msg_id"])
        yield ann.request("mark_read", group=gid, up_to=sent[2])
        reply = yield ann.request("mark_read", group=gid, up_to=sent[0])
        self.assertEqual(reply["read_up_to"], sent[2])


class SendTestsOnPostgres(OnPostgres, SendTests):
    pass


class MembershipChangeTestsOnPostgres(OnPostgres, MembershipChangeTests):
    pass


class SyncAndHistoryTestsOnPostgres(OnPostgres, SyncAndHistoryTests):
    pass


class ReadMarkerTestsOnPostgres(OnPostgres, ReadMarkerTests):
    pass
