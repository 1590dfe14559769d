"""Group management over a real server on loopback with real clients: every group_*
action, its pushes to the members concerned, every refusal, the limits, and the server
administrators' list and delete (messenger.server.handlers.groups)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.server.people import barrier, count, no_limits, quit_, rows, server_with
from tests.support.services import OnPostgres

NOT_MEMBER = (403, "you are not a member of this group")


def error(reply):
    return reply["response"], reply.get("error")


@defer.inlineCallbacks
def no_push(testcase, client, action):
    """Assert that ``client`` got no push of ``action`` up to now (a round trip first:
    anything the server wrote before answering has arrived)."""
    yield barrier(client)
    testcase.assertEqual([p for p in client.pushes if p["action"] == action], [])


@defer.inlineCallbacks
def class_of_five(testcase, **overrides):
    """A server with root (the server admin), a teacher and three students, and a group
    'Class 5b' of the teacher with the three students."""
    server, clients = yield server_with(testcase, "root", "teacher", "ann", "ben", "cat",
                                        **overrides)
    root, teacher, ann, ben, cat = clients
    reply = yield teacher.request("group_create", name="Class 5b", topic="Maths",
                                  members=["ann", "BEN", "cat"])
    testcase.assertEqual(reply["response"], 201, reply)
    for student in (ann, ben, cat):
        yield student.wait_push("group_created")
    return server, clients, reply["group"]["group_id"]


class CreateTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_create_reply_push_list_and_info(self):
        """group_create answers 201 with the group (the creator its owner) and members;
        each member added is pushed group_created; both see it in group_list and
        group_info lists the members with their roles by name."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        reply = yield alice.request("group_create", name="Team ✓", members=["Carol", "bob"],
                                    announce_only=True)
        self.assertEqual(reply["response"], 201)
        group = reply["group"]
        gid = group["group_id"]
        self.assertEqual({k: group[k] for k in ("name", "topic", "announce_only", "role",
                                                "members", "owner", "created_by")},
                         {"name": "Team ✓", "topic": "", "announce_only": True,
                          "role": "owner", "members": 3, "owner": "alice",
                          "created_by": "alice"})
        self.assertEqual(reply["members"], [{"account_name": "alice", "role": "owner"},
                                            {"account_name": "carol", "role": "member"},
                                            {"account_name": "bob", "role": "member"}])
        push = yield bob.wait_push("group_created")
        self.assertEqual((push["group"]["group_id"], push["group"]["name"], push["by"]),
                         (gid, "Team ✓", "alice"))
        self.assertNotIn("role", push["group"])
        yield no_push(self, alice, "group_created")
        listed = yield bob.request("group_list")
        self.assertEqual(listed["response"], 202)
        (item,) = listed["alert"]
        self.assertEqual({k: item[k] for k in ("group_id", "role", "members", "owner",
                                               "unread", "mentions", "last")},
                         {"group_id": gid, "role": "member", "members": 3, "owner": "alice",
                          "unread": 0, "mentions": 0, "last": None})
        info = yield carol.request("group_info", group=gid)
        self.assertEqual(info["response"], 202)
        self.assertEqual(info["group"]["role"], "member")
        self.assertEqual(info["members"], [{"account_name": "alice", "role": "owner"},
                                           {"account_name": "bob", "role": "member"},
                                           {"account_name": "carol", "role": "member"}])
        page = yield carol.request("group_info", group=gid, after="alice", limit=1)
        self.assertEqual(([m["account_name"] for m in page["members"]], page["more"]),
                         (["bob"], True))

    @defer.inlineCallbacks
    def test_create_refusals(self):
        """An unknown member is 404 and creates nothing; names and topics longer than
        configured are 400."""
        limits = no_limits()
        limits.max_group_name, limits.max_group_topic = 10, 20
        server, (alice, bob) = yield server_with(self, "alice", "bob", limits=limits)
        reply = yield alice.request("group_create", name="G", members=["bob", "nobody"])
        self.assertEqual(error(reply), (404, "no user named 'nobody'"))
        reply = yield alice.request("group_create", name="n" * 11)
        self.assertEqual(error(reply), (400, "'name' may be at most 10 characters long"))
        reply = yield alice.request("group_create", name="ok", topic="t" * 21)
        self.assertEqual(error(reply), (400, "'topic' may be at most 20 characters long"))
        stored = yield count(server, "chat_groups")
        self.assertEqual(stored, 0)
        yield no_push(self, bob, "group_created")

    @defer.inlineCallbacks
    def test_limits(self):
        """Members per group and groups per user are capped (403, readable)."""
        limits = no_limits()
        limits.max_group_members, limits.max_groups_per_user = 3, 2
        server, (alice, bob, carol, dave) = yield server_with(
            self, "alice", "bob", "carol", "dave", limits=limits)
        reply = yield alice.request("group_create", name="G", members=["bob", "carol", "dave"])
        self.assertEqual(error(reply), (403, "a group may have at most 3 members"))
        reply = yield alice.request("group_create", name="G", members=["bob", "carol"])
        gid = reply["group"]["group_id"]
        reply = yield alice.request("group_add", group=gid, user_id="dave")
        self.assertEqual(error(reply), (403, "the group has 3 members, the most allowed"))
        yield bob.request("group_create", name="H")
        reply = yield dave.request("group_create", name="I", members=["bob"])
        self.assertEqual(error(reply), (403, "'bob' is already in 2 groups, the most allowed"))
        reply = yield bob.request("group_create", name="J")
        self.assertEqual(error(reply), (403, "you are already in 2 groups, the most allowed"))


class MembershipTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_add_pushes_to_every_member(self):
        """group_add: 200 with the member; the new member and the others are pushed
        group_member_added (the adder is not); the new member sees the group listed."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield teacher.request("group_add", group=gid, user_id="ROOT")
        self.assertEqual(reply, {**reply, "response": 200,
                                 "member": {"account_name": "root", "role": "member"}})
        for client in (root, ann, ben, cat):
            push = yield client.wait_push("group_member_added")
            self.assertEqual((push["group"]["group_id"], push["group"]["members"],
                              push["member"], push["by"]),
                             (gid, 5, {"account_name": "root", "role": "member"}, "teacher"))
        yield no_push(self, teacher, "group_member_added")
        listed = yield root.request("group_list")
        self.assertEqual([g["group_id"] for g in listed["alert"]], [gid])

    @defer.inlineCallbacks
    def test_add_refusals(self):
        """A plain member may not add (403); an unknown name is 404; a member twice 409."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ann.request("group_add", group=gid, user_id="root")
        self.assertEqual(error(reply),
                         (403, "only the group's owner and admins may add members"))
        reply = yield teacher.request("group_add", group=gid, user_id="nobody")
        self.assertEqual(error(reply), (404, "no user named 'nobody'"))
        reply = yield teacher.request("group_add", group=gid, user_id="Ann")
        self.assertEqual(error(reply), (409, "'ann' is already a member of this group"))

    @defer.inlineCallbacks
    def test_remove_and_leave(self):
        """group_remove tells the removed member and those who remain (reason 'removed');
        group_leave tells those who remain (reason 'left'); neither is listed after."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield teacher.request("group_remove", group=gid, user_id="cat")
        self.assertEqual(reply["response"], 200)
        for client in (cat, ann, ben):
            push = yield client.wait_push("group_member_removed")
            self.assertEqual({k: push[k] for k in ("group_id", "account_name", "reason", "by")},
                             {"group_id": gid, "account_name": "cat", "reason": "removed",
                              "by": "teacher"})
        reply = yield ben.request("group_leave", group=gid)
        self.assertEqual(reply["response"], 200)
        for client in (teacher, ann):
            push = yield client.wait_push("group_member_removed")
            self.assertEqual((push["account_name"], push["reason"], push["by"]),
                             ("ben", "left", "ben"))
        yield no_push(self, cat, "group_member_removed")  # cat's one push was consumed
        for client in (cat, ben):
            listed = yield client.request("group_list")
            self.assertEqual(listed["alert"], [])
            reply = yield client.request("group_info", group=gid)
            self.assertEqual(error(reply), NOT_MEMBER)
        info = yield ann.request("group_info", group=gid)
        self.assertEqual([m["account_name"] for m in info["members"]], ["ann", "teacher"])

    @defer.inlineCallbacks
    def test_remove_refusals(self):
        """Members may not remove; nobody removes the owner; admins may not remove admins;
        a non-member is 404; oneself is 409 (leave instead); the owner may not leave."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ann.request("group_remove", group=gid, user_id="ben")
        self.assertEqual(error(reply),
                         (403, "only the group's owner and admins may remove members"))
        yield teacher.request("group_set_role", group=gid, user_id="ann", role="admin")
        yield teacher.request("group_set_role", group=gid, user_id="ben", role="admin")
        reply = yield ann.request("group_remove", group=gid, user_id="teacher")
        self.assertEqual(error(reply), (403, "the owner cannot be removed"))
        reply = yield ann.request("group_remove", group=gid, user_id="ben")
        self.assertEqual(error(reply), (403, "only the owner may remove an admin"))
        reply = yield ann.request("group_remove", group=gid, user_id="root")
        self.assertEqual(error(reply), (404, "'root' is not a member of this group"))
        reply = yield ann.request("group_remove", group=gid, user_id="ann")
        self.assertEqual(error(reply), (409, "use group_leave to leave a group"))
        reply = yield teacher.request("group_leave", group=gid)
        self.assertEqual(error(reply), (409, "the owner cannot leave: make another member"
                                             " the owner (group_set_role) or delete the"
                                             " group"))
        reply = yield ann.request("group_remove", group=gid, user_id="cat")
        self.assertEqual(reply["response"], 200)


class ChangeTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_update(self):
        """An admin changes name, topic and announce_only: 200 with the group; members are
        pushed group_updated; plain members get 403; an empty update is 400."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ann.request("group_update", group=gid, topic="x")
        self.assertEqual(error(reply),
                         (403, "only the group's owner and admins may change the group"))
        reply = yield teacher.request("group_update", group=gid)
        self.assertEqual(error(reply),
                         (400, "give at least one of 'name', 'topic', 'announce_only'"))
        reply = yield teacher.request("group_update", group=gid, name="Class 6b", topic="",
                                      announce_only=True)
        self.assertEqual((reply["response"], reply["group"]["name"], reply["group"]["topic"],
                          reply["group"]["announce_only"]), (200, "Class 6b", "", True))
        for client in (ann, ben, cat):
            push = yield client.wait_push("group_updated")
            self.assertEqual((push["group"], push["by"]), (reply["group"], "teacher"))
        yield no_push(self, teacher, "group_updated")
        info = yield cat.request("group_info", group=gid)
        self.assertEqual(info["group"]["name"], "Class 6b")

    @defer.inlineCallbacks
    def test_roles_and_handover(self):
        """Only the owner sets roles; each change is pushed group_role_changed; handing
        ownership over makes the old owner an admin (two changes)."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ann.request("group_set_role", group=gid, user_id="ben", role="admin")
        self.assertEqual(error(reply), (403, "only the group's owner may change roles"))
        reply = yield teacher.request("group_set_role", group=gid, user_id="root",
                                      role="admin")
        self.assertEqual(error(reply), (404, "'root' is not a member of this group"))
        reply = yield teacher.request("group_set_role", group=gid, user_id="teacher",
                                      role="member")
        self.assertEqual(reply["response"], 409)
        reply = yield teacher.request("group_set_role", group=gid, user_id="ann",
                                      role="owner")
        self.assertEqual(reply["members"], [{"account_name": "ann", "role": "owner"},
                                            {"account_name": "teacher", "role": "admin"}])
        for client in (ben, cat):
            first = yield client.wait_push("group_role_changed")
            second = yield client.wait_push("group_role_changed")
            self.assertEqual([(p["account_name"], p["role"], p["by"]) for p in (first, second)],
                             [("ann", "owner", "teacher"), ("teacher", "admin", "teacher")])
        info = yield ben.request("group_info", group=gid)
        self.assertEqual(info["group"]["owner"], "ann")
        reply = yield teacher.request("group_set_role", group=gid, user_id="ben",
                                      role="admin")
        self.assertEqual(reply["response"], 403)
        reply = yield ann.request("group_set_role", group=gid, user_id="ben", role="member")
        self.assertEqual((reply["response"], reply["members"]), (200, []))


class DeleteTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_owner_deletes(self):
        """Only the owner deletes its group: members are pushed group_deleted, its
        messages go with it, and the group id answers as for a stranger afterwards."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield ann.request("msg", group=gid, message="hello")
        reply = yield ann.request("group_delete", group=gid)
        self.assertEqual(error(reply), (403, "only the group's owner (or a server"
                                             " administrator) may delete the group"))
        reply = yield teacher.request("group_delete", group=gid)
        self.assertEqual(reply["response"], 200)
        for client in (ann, ben, cat):
            push = yield client.wait_push("group_deleted")
            self.assertEqual((push["group_id"], push["name"], push["by"]),
                             (gid, "Class 5b", "teacher"))
        for table in ("chat_groups", "group_members", "messages"):
            left = yield count(server, table)
            self.assertEqual(left, 0, table)
        reply = yield teacher.request("group_info", group=gid)
        self.assertEqual(error(reply), NOT_MEMBER)

    @defer.inlineCallbacks
    def test_server_admin_lists_and_deletes(self):
        """A server administrator lists every group and deletes any (both audited; the
        members are told); others get 403; a missing group is 404 to the admin."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ann.request("admin_list_groups")
        self.assertEqual(error(reply), (403, "administrators only"))
        listed = yield root.request("admin_list_groups", query="5B")
        self.assertEqual(listed["response"], 202)
        (item,) = listed["alert"]
        self.assertEqual((item["group_id"], item["name"], item["owner"], item["members"]),
                         (gid, "Class 5b", "teacher", 4))
        reply = yield root.request("group_delete", group=gid)
        self.assertEqual(reply["response"], 200)
        push = yield teacher.wait_push("group_deleted")
        self.assertEqual(push["by"], "root")
        reply = yield root.request("group_delete", group=gid)
        self.assertEqual(error(reply), (404, f"no group with id {gid}"))
        reply = yield ann.request("group_delete", group=gid + 1)
        self.assertEqual(error(reply), NOT_MEMBER)
        trail = yield rows(server, "SELECT actor, action FROM audit_log ORDER BY id")
        self.assertEqual(trail, [("root", "list_groups"), ("root", "delete_group")])


class StrangerTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_a_stranger_learns_nothing(self):
        """To a user who is not a member, every action on a group gets the same 403,
        whether the group exists or not, and nothing changes."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield teacher.request("msg", group=gid, message="secret")
        before = yield count(server, "messages")
        answers = []
        for group in (gid, gid + 100):
            for action, fields in (("group_info", {}), ("group_add", {"user_id": "ann"}),
                                   ("group_remove", {"user_id": "ann"}), ("group_leave", {}),
                                   ("group_update", {"name": "x"}),
                                   ("group_set_role", {"user_id": "ann", "role": "admin"}),
                                   ("history", {}), ("msg", {"message": "hi"}),
                                   ("mark_read", {"up_to": 1})):
                reply = yield root.request(action, group=group, **fields)
                answers.append((action, error(reply)))
        self.assertEqual(set(answer for _, answer in answers), {NOT_MEMBER}, answers)
        after = yield count(server, "messages")
        self.assertEqual(after, before)
        yield quit_(root)


class CreateTestsOnPostgres(OnPostgres, CreateTests):
    pass


class MembershipTestsOnPostgres(OnPostgres, MembershipTests):
    pass


class ChangeTestsOnPostgres(OnPostgres, ChangeTests):
    pass


class DeleteTestsOnPostgres(OnPostgres, DeleteTests):
    pass


class StrangerTestsOnPostgres(OnPostgres, StrangerTests):
    pass
