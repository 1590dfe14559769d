"""Black-box tests of groups, read markers and unread counts on a real ``twistd messenger``
with the independent client (tests/independent/client.py). Every expectation is taken
from docs/PROTOCOL.md, sections "Groups", "Read markers and unread counts" and "Files"
(files in a group)."""

import time

from tests.independent import client as jim
from tests.independent.test_independent_client import (
    PASSWORD,
    SQL,
    ServerTestCase,
    unique,
)

NOT_MEMBER = "you are not a member of this group"


class GroupTests(ServerTestCase):
    """A teacher, a class channel and a discussion group, as PROTOCOL.md describes."""

    def class_of(self, count=3, announce_only=False):
        """The teacher's connection, the students' connections and names, and a group."""
        t, teacher = self.user("teacher")
        students = [self.user("student") for _ in range(count)]
        reply = self.assertReply(t.request("group_create", name="Class 5b", topic="Maths",
                                           members=[n.upper() for _, n in students],
                                           announce_only=announce_only), 201)
        for c, _ in students:
            c.wait_push("group_created")
        return t, teacher, students, reply["group"]["group_id"]

    def test_create_list_and_info(self):
        """group_create: 201 with the group (caller the owner) and members; members get
        group_created; group_list and group_info show it to members."""
        t, teacher = self.user("teacher")
        a, ann = self.user("ann")
        reply = self.assertReply(t.request("group_create", name="Team", members=[ann]), 201)
        group = reply["group"]
        self.assertEqual({k: group[k] for k in ("name", "topic", "announce_only",
                                                "created_by", "members", "owner", "role")},
                         {"name": "Team", "topic": "", "announce_only": False,
                          "created_by": teacher, "members": 2, "owner": teacher,
                          "role": "owner"})
        self.assertIsInstance(group["group_id"], int)
        self.assertEqual(reply["members"], [{"account_name": teacher, "role": "owner"},
                                            {"account_name": ann, "role": "member"}])
        push = a.wait_push("group_created")
        self.assertEqual((push["group"]["group_id"], push["group"]["members"],
                          push["group"]["owner"], push["by"]),
                         (group["group_id"], 2, teacher, teacher))
        listed = self.assertReply(a.request("group_list"), 202)
        self.assertEqual(len(listed["alert"]), 1)
        item = listed["alert"][0]
        self.assertEqual({k: item[k] for k in ("group_id", "name", "role", "members", "owner",
                                               "unread", "mentions", "last")},
                         {"group_id": group["group_id"], "name": "Team", "role": "member",
                          "members": 2, "owner": teacher, "unread": 0, "mentions": 0,
                          "last": None})
        self.assertFalse(listed["more"])
        info = self.assertReply(a.request("group_info", group=group["group_id"]), 202)
        self.assertEqual((info["group"]["role"], info["group"]["owner"], info["more"]),
                         ("member", teacher, False))
        self.assertEqual(sorted(m["account_name"] for m in info["members"]),
                         sorted([ann, teacher]))
        self.assertReply(t.request("group_create", name="Team", members=["nobody-here"]),
                         404, error="no user named 'nobody-here'")
        self.assertReply(t.request("group_create", name="n" * 65), 400,
                         error="'name' may be at most 64 characters long")

    def test_announcement_channel_and_mentions(self):
        """In an announce_only group a member's msg is 403; the owner's message is pushed
        to every online member (not the sender) with the group and its mentions."""
        t, teacher, students, gid = self.class_of(announce_only=True)
        (a, ann), (b, ben), (c, cat) = students
        self.assertReply(a.request("msg", group=gid, message="may I?"), 403,
                         error="only the group's owner and admins may post in this"
                               " announcement channel")
        body = f"Homework: page 12. @{ann.upper()} collects, thanks @{ben}."
        ack = self.assertReply(t.request("msg", group=gid, message=body), 200)
        for client in (a, b, c):
            push = client.wait_push("msg")
            self.assertEqual(push, {"action": "msg", "msg_id": ack["msg_id"],
                                    "time": ack["time"], "from": teacher, "group": gid,
                                    "message": body, "mentions": [ann, ben]})
        self.assertNoPush(t, "msg")
        self.assertReply(t.request("msg", to=ann, group=gid, message="x"), 400,
                         error="give 'to' or 'group', not both")

    def test_stranger_learns_nothing(self):
        """A non-member gets the same 403 for an existing and a missing group."""
        t, teacher, students, gid = self.class_of(count=1)
        s, stranger = self.user("stranger")
        for group in (gid, gid + 100000):
            for action, fields in (("group_info", {}), ("group_leave", {}),
                                   ("msg", {"message": "hi"}), ("history", {}),
                                   ("mark_read", {"up_to": 1}),
                                   ("group_add", {"user_id": stranger})):
                self.assertReply(s.request(action, group=group, **fields), 403,
                                 error=NOT_MEMBER)

    def test_membership_changes_and_pushes(self):
        """Add, role, remove, leave, update and delete each answer as documented and
        push to the members concerned."""
        t, teacher, students, gid = self.class_of()
        (a, ann), (b, ben), (c, cat) = students
        d, dan = self.user("dan")
        self.assertReply(a.request("group_add", group=gid, user_id=dan), 403,
                         error="only the group's owner and admins may add members")
        reply = self.assertReply(t.request("group_add", group=gid, user_id=dan), 200)
        self.assertEqual(reply["member"], {"account_name": dan, "role": "member"})
        for client in (a, d):
            push = client.wait_push("group_member_added")
            self.assertEqual((push["member"], push["group"]["members"], push["by"]),
                             ({"account_name": dan, "role": "member"}, 5, teacher))
        self.assertReply(t.request("group_add", group=gid, user_id=dan), 409,
                         error=f"'{dan}' is already a member of this group")
        reply = self.assertReply(t.request("group_set_role", group=gid, user_id=ann,
                                           role="admin"), 200)
        self.assertEqual(reply["members"], [{"account_name": ann, "role": "admin"}])
        push = b.wait_push("group_role_changed")
        self.assertEqual((push["group_id"], push["account_name"], push["role"], push["by"]),
                         (gid, ann, "admin", teacher))
        self.assertReply(a.request("group_remove", group=gid, user_id=cat), 200)
        for client in (c, b):
            push = client.wait_push("group_member_removed")
            self.assertEqual((push["account_name"], push["reason"], push["by"]),
                             (cat, "removed", ann))
        self.assertReply(b.request("group_leave", group=gid), 200)
        d.wait_push("group_member_removed")   # cat's removal came first
        push = d.wait_push("group_member_removed")
        self.assertEqual((push["account_name"], push["reason"]), (ben, "left"))
        self.assertReply(t.request("group_leave", group=gid), 409,
                         error="the owner cannot leave: make another member the owner"
                               " (group_set_role) or delete the group")
        reply = self.assertReply(a.request("group_update", group=gid, name="Class 6b",
                                           announce_only=True), 200)
        self.assertEqual((reply["group"]["name"], reply["group"]["topic"],
                          reply["group"]["announce_only"]), ("Class 6b", "Maths", True))
        self.assertEqual(d.wait_push("group_updated")["group"], reply["group"])
        reply = self.assertReply(t.request("group_set_role", group=gid, user_id=dan,
                                           role="owner"), 200)
        self.assertEqual(reply["members"], [{"account_name": dan, "role": "owner"},
                                            {"account_name": teacher, "role": "admin"}])
        self.assertReply(t.request("group_delete", group=gid), 403,
                         error="only the group's owner (or a server administrator) may"
                               " delete the group")
        self.assertReply(d.request("group_delete", group=gid), 200)
        push = a.wait_push("group_deleted")
        self.assertEqual((push["group_id"], push["name"], push["by"]),
                         (gid, "Class 6b", dan))
        self.assertReply(a.request("group_info", group=gid), 403, error=NOT_MEMBER)

    def test_removed_member_gets_nothing_after(self):
        """A removed member is not pushed, and does not sync, what is sent after its
        removal; it still syncs what came before."""
        t, teacher, students, gid = self.class_of(count=2)
        (a, ann), (b, ben) = students
        before = self.assertReply(t.request("msg", group=gid, message="before"), 200)
        b.wait_push("msg")
        self.assertReply(t.request("group_remove", group=gid, user_id=ben), 200)
        b.wait_push("group_member_removed")
        self.assertReply(t.request("msg", group=gid, message="after"), 200)
        a.wait_push("msg")
        self.assertNoPush(b, "msg")
        synced = self.assertReply(b.request("sync", since=before["msg_id"] - 1), 202)
        self.assertEqual([m["message"] for m in synced["alert"]], ["before"])
        self.assertReply(b.request("history", group=gid), 403, error=NOT_MEMBER)

    def test_files_in_a_group(self):
        """"Files", "Attachments" and "file_get": a group message carries a file; the
        members get it pushed and download it; a member removed before a file was
        posted gets 403 for it and keeps the one posted while it was a member; a
        stranger gets 403."""
        t, teacher, students, gid = self.class_of(count=2)
        (a, ann), (b, ben) = students
        first = self.assertReply(t.upload(b"worksheet one", name="one.txt",
                                          mime="text/plain"), 201)["file"]
        sent = self.assertReply(t.request("msg", group=gid, message="",
                                          attachment={"file_id": first["file_id"]}), 200)
        for client in (a, b):
            push = client.wait_push("msg")
            self.assertEqual((push["msg_id"], push["group"], push["message"],
                              push["attachment"]), (sent["msg_id"], gid, "", first))
        self.assertReply(t.request("group_remove", group=gid, user_id=ben), 200)
        b.wait_push("group_member_removed")
        second = self.assertReply(t.upload(b"worksheet two", name="two.txt",
                                           mime="text/plain"), 201)["file"]
        self.assertReply(t.request("msg", group=gid, message="two",
                                   attachment={"file_id": second["file_id"]}), 200)
        self.assertEqual(a.wait_push("msg")["attachment"], second)
        self.assertReply(a.request("file_get", file_id=second["file_id"]), 200)
        self.assertEqual(a.download(second["file_id"], second["size"]), b"worksheet two")
        self.assertReply(b.request("file_get", file_id=first["file_id"]), 200)
        self.assertReply(b.request("file_get", file_id=second["file_id"]), 403,
                         error="you cannot download this file")
        s, _ = self.user("stranger")
        self.assertReply(s.request("file_get", file_id=first["file_id"]), 403,
                         error="you cannot download this file")
        self.assertReply(s.request("msg", group=gid, message="mine",
                                   attachment={"file_id": first["file_id"]}), 403)

    def test_sync_one_sequence_and_history(self):
        """sync returns direct and group messages in one ascending sequence, without the
        caller's own; history with group pages oldest first."""
        t, teacher, students, gid = self.class_of(count=1)
        ((a, ann),) = students
        a.request("quit")
        a.wait_closed()
        ids = []
        for i in range(3):
            ids.append(self.assertReply(t.request("msg", group=gid, message=f"g{i}"),
                                        200)["msg_id"])
            ids.append(self.assertReply(t.request("msg", to=ann, message=f"d{i}"),
                                        200)["msg_id"])
        a2 = self.connect()
        self.assertReply(a2.login(ann, PASSWORD), 200)
        own = self.assertReply(a2.request("msg", group=gid, message="mine"), 200)
        page = self.assertReply(a2.request("sync", since=ids[0] - 1, limit=4), 202)
        self.assertTrue(page["more"])
        rest = self.assertReply(a2.request("sync", since=page["alert"][-1]["msg_id"]), 202)
        messages = page["alert"] + rest["alert"]
        self.assertEqual([m["msg_id"] for m in messages], ids)
        self.assertEqual(set(messages[0]), {"msg_id", "time", "from", "group", "message",
                                            "mentions"})
        self.assertEqual(set(messages[1]), {"msg_id", "time", "from", "to", "message"})
        history = self.assertReply(a2.request("history", group=gid, limit=2), 202)
        self.assertEqual([m["message"] for m in history["alert"]], ["g2", "mine"])
        self.assertTrue(history["more"])
        older = self.assertReply(a2.request("history", group=gid,
                                            before=history["alert"][0]["msg_id"]), 202)
        self.assertEqual([m["message"] for m in older["alert"]], ["g0", "g1"])
        self.assertLess(older["alert"][-1]["msg_id"], own["msg_id"])

    def test_resend_is_idempotent(self):
        """A group message resent with the same id after a reconnect gets the first
        msg_id and is not pushed again."""
        t, teacher, students, gid = self.class_of(count=1)
        ((a, ann),) = students
        message = {"action": "msg", "id": jim.new_id(), "time": time.time(), "group": gid,
                   "message": "once"}
        first = self.assertReply(t.send_request(dict(message)), 200)
        a.wait_push("msg")
        t.request("quit")
        t.wait_closed()
        t2 = self.connect()
        self.assertReply(t2.login(teacher, PASSWORD), 200)
        again = self.assertReply(t2.send_request(dict(message)), 200)
        self.assertEqual((again["msg_id"], again["time"]), (first["msg_id"], first["time"]))
        self.assertNoPush(a, "msg")

    def test_read_markers_and_unread(self):
        """get_unread and group_list count unread messages (with mentions) from the
        server's markers; mark_read moves a marker forward only, never past the newest
        message."""
        t, teacher = self.user("teacher")
        a, ann = self.user("ann")
        gid = self.assertReply(t.request("group_create", name="G", members=[ann]),
                               201)["group"]["group_id"]
        a.request("quit")
        a.wait_closed()
        self.assertReply(t.request("msg", group=gid, message="one"), 200)
        last = self.assertReply(t.request("msg", group=gid, message=f"two @{ann}"), 200)
        direct = self.assertReply(t.request("msg", to=ann, message="psst"), 200)
        a2 = self.connect()
        self.assertReply(a2.login(ann, PASSWORD), 200)
        unread = self.assertReply(a2.request("get_unread"), 200)
        self.assertEqual(unread["direct"], [{"with": teacher, "unread": 1, "read_up_to": 0}])
        self.assertEqual([(g["group_id"], g["unread"], g["mentions"])
                          for g in unread["groups"]], [(gid, 2, 1)])
        item = self.assertReply(a2.request("group_list"), 202)["alert"][0]
        self.assertEqual((item["unread"], item["mentions"], item["last"]["msg_id"]),
                         (2, 1, last["msg_id"]))
        self.assertReply(a2.request("mark_read", group=gid, up_to=last["msg_id"]), 200,
                         read_up_to=last["msg_id"])
        self.assertReply(a2.request("mark_read", group=gid, up_to=1), 200,
                         read_up_to=last["msg_id"])
        marked = self.assertReply(a2.request("mark_read", up_to=2 ** 62,
                                             **{"with": teacher}), 200)
        self.assertGreaterEqual(marked["read_up_to"], direct["msg_id"])
        self.assertLess(marked["read_up_to"], 2 ** 62)
        unread = self.assertReply(a2.request("get_unread"), 200)
        self.assertEqual((unread["direct"], unread["groups"]), ([], []))
        self.assertReply(a2.request("mark_read", up_to=1, **{"with": "nobody-here"}), 404,
                         error="no user named 'nobody-here'")
        self.assertReply(a2.request("mark_read", up_to=1, **{"with": ann}), 400,
                         error="'with' must name another user")

    def test_server_admin_lists_and_deletes(self):
        """admin_list_groups is for administrators (audited); a server administrator
        deletes any group (audited); 404 for a group that does not exist."""
        t, teacher, students, gid = self.class_of(count=1)
        ((a, ann),) = students
        self.assertReply(a.request("admin_list_groups"), 403, error="administrators only")
        admin = self.admin()
        listed = self.assertReply(admin.request("admin_list_groups", limit=200), 202)
        mine = [g for g in listed["alert"] if g["group_id"] == gid]
        self.assertEqual([(g["name"], g["owner"], g["members"]) for g in mine],
                         [("Class 5b", teacher, 2)])
        self.assertReply(admin.request("group_delete", group=gid), 200)
        self.assertEqual(a.wait_push("group_deleted")["group_id"], gid)
        self.assertReply(admin.request("group_delete", group=gid), 404,
                         error=f"no group with id {gid}")
        audit = self.assertReply(admin.request("admin_audit", limit=5), 202)
        self.assertIn("delete_group", [entry["action"] for entry in audit["alert"]])


BAD_GROUP_INPUT = {
    "group_create": [{}, {"name": ""}, {"name": 5}, {"name": "   "}, {"name": "a\nb"},
                     {"name": "x" * 300}, {"name": "g", "topic": "x" * 5000},
                     {"name": "g", "members": "bob"}, {"name": "g", "members": [SQL]},
                     {"name": "g", "announce_only": "yes"}],
    "group_list": [{"after": -1}, {"after": "1"}, {"limit": 0}, {"limit": 501}],
    "group_info": [{}, {"group": 0}, {"group": "1"}, {"group": 1, "after": SQL}],
    "group_add": [{}, {"group": 1}, {"user_id": "second"}, {"group": 1, "user_id": SQL}],
    "group_remove": [{}, {"group": 1}, {"group": True, "user_id": "second"}],
    "group_leave": [{}, {"group": -1}, {"group": 1.5}],
    "group_update": [{"group": 1}, {"group": 1, "name": ""}, {"group": 1, "announce_only": 1},
                     {"name": "x"}],
    "group_set_role": [{}, {"group": 1, "user_id": "second"},
                       {"group": 1, "user_id": "second", "role": "king"}],
    "group_delete": [{}, {"group": "1"}],
    "admin_list_groups": [{"query": ""}, {"query": "q" * 65}, {"offset": -1}, {"limit": 201}],
    "mark_read": [{}, {"up_to": 1}, {"with": "second"}, {"with": "second", "group": 1,
                                                         "up_to": 1},
                  {"group": 1, "up_to": -1}],
    "msg": [{"group": 1}, {"group": 0, "message": "hi"},
            {"to": "second", "group": 1, "message": "hi"}],
    "history": [{"group": "x"}, {"with": "second", "group": 1}],
}


class GroupBadInputTests(ServerTestCase):
    """Bad input to every group action is a 400 with an error; the connection stays up."""

    def test_every_group_action(self):
        """Each variant is refused with 400 and a short error; the session stays up."""
        c, _ = self.user("bad")
        for action, variants in BAD_GROUP_INPUT.items():
            for fields in variants:
                reply = c.send_request({"action": action, "id": jim.new_id(),
                                        "time": time.time(), **fields})
                self.assertEqual(reply.get("response"), 400, (action, fields, reply))
                self.assertLess(len(reply["error"]), 500)
                self.assertStillUp(c)
        name = unique("g")
        self.assertReply(c.request("group_create", name=name), 201)
