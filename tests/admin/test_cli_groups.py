"""messenger-admin groups list / groups delete against a live server's data dir (or its
PostgreSQL database, in the twin), as real processes beside a running server and real
clients (messenger.admin.cli)."""

from __future__ import annotations

from twisted.internet import defer

from tests.admin.test_cli import OPERATOR, LiveServerCase
from tests.server.people import count, rows
from tests.support.services import OnPostgres


class GroupCommandTests(LiveServerCase):

    @defer.inlineCallbacks
    def create(self, name, members):
        reply = yield self.alice.request("group_create", name=name, members=members)
        self.assertEqual(reply["response"], 201)
        return reply["group"]["group_id"]

    @defer.inlineCallbacks
    def test_list(self):
        """groups list shows every group with owner and member count; --query filters."""
        first = yield self.create("Maths 5b", ["bob"])
        yield self.create("Chess club", [])
        out = yield self.admin_cli("groups", "list")
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:4], ["ID", "NAME", "OWNER", "MEMBERS"])
        self.assertEqual([line.split()[0] for line in lines[1:]], [str(first),
                                                                   str(first + 1)])
        self.assertIn("alice", lines[1])
        out = yield self.admin_cli("groups", "list", "--query", "CHESS")
        self.assertEqual(len(out.splitlines()), 2)
        self.assertIn("Chess club", out)

    @defer.inlineCallbacks
    def test_show(self):
        """groups show prints the group and its members, owner and admins first; a
        missing group is named."""
        gid = yield self.create("Maths 5b", ["bob", "admin"])
        reply = yield self.alice.request("group_update", group=gid, topic="Spring term",
                                         announce_only=True)
        self.assertEqual(reply["response"], 200, reply)
        reply = yield self.alice.request("group_set_role", group=gid, user_id="bob",
                                         role="admin")
        self.assertEqual(reply["response"], 200, reply)
        out = yield self.admin_cli("groups", "show", str(gid))
        head, table = out.split("\n\n")
        fields = dict(line.split(":", 1) for line in head.splitlines())
        self.assertEqual({k: v.strip() for k, v in fields.items() if k != "Created"},
                         {"Group": f"#{gid} 'Maths 5b'", "Kind": "announcement channel",
                          "Topic": "Spring term", "Messages": "none yet", "Members": "3"})
        self.assertTrue(fields["Created"].strip().endswith("UTC by alice"), fields)
        rows = [line.split()[1:] for line in table.splitlines()[1:]]
        self.assertEqual(rows, [["alice", "owner"], ["bob", "admin"], ["admin", "member"]])
        err = yield self.admin_cli("groups", "show", str(gid + 100), status=1)
        self.assertEqual(err, f"messenger-admin: no group with id {gid + 100}\n")

    @defer.inlineCallbacks
    def test_delete(self):
        """groups delete needs --yes off a terminal, deletes the group with its messages,
        is audited as the operator, tells the members online through the running server
        (``group_deleted`` with an empty ``by``: the operator), and names a missing
        group."""
        gid = yield self.create("Maths 5b", ["bob"])
        reply = yield self.bob.request("msg", group=gid, message="hello")
        self.assertEqual(reply["response"], 200)
        err = yield self.admin_cli("groups", "delete", str(gid), status=1)
        self.assertIn("add --yes", err)
        out = yield self.admin_cli("groups", "delete", str(gid), "--yes")
        self.assertEqual(out, f"Deleted group #{gid} 'Maths 5b' (2 members); the members"
                              " online were told (2 on this server).\n")
        for member in (self.alice, self.bob):
            push = yield member.wait_push("group_deleted")
            self.assertEqual((push["group_id"], push["name"], push["by"]),
                             (gid, "Maths 5b", ""))
        self.assertFalse([p for p in self.admin.pushes if p["action"] == "group_deleted"])
        for table in ("chat_groups", "messages"):
            left = yield count(self.server, table)
            self.assertEqual(left, 0, table)
        trail = yield rows(self.server, "SELECT actor, action FROM audit_log")
        self.assertEqual(trail, [(OPERATOR, "delete_group")])
        err = yield self.admin_cli("groups", "delete", str(gid), "--yes", status=1)
        self.assertEqual(err, f"messenger-admin: no group with id {gid}\n")
        reply = yield self.bob.request("group_info", group=gid)
        self.assertEqual(reply["response"], 403)

    @defer.inlineCallbacks
    def test_delete_without_a_server(self):
        """With no server running, groups delete just deletes (nobody to tell)."""
        gid = yield self.create("Chess club", ["bob"])
        yield self.server.stop()
        out = yield self.admin_cli("groups", "delete", str(gid), "--yes")
        self.assertEqual(out, f"Deleted group #{gid} 'Chess club' (2 members).\n")

    @defer.inlineCallbacks
    def test_deleting_the_owner_tells_the_members(self):
        """messenger-admin delete of a group's owner: the members online get
        group_member_removed (reason "deleted") and group_role_changed naming the new
        owner, both with an empty ``by``."""
        gid = yield self.create("Maths 5b", ["bob"])
        out = yield self.admin_cli("delete", "alice", "--yes")
        self.assertEqual(out, "alice: deleted; disconnected from the running server\n")
        removed = yield self.bob.wait_push("group_member_removed")
        self.assertEqual((removed["group_id"], removed["account_name"], removed["reason"],
                          removed["by"]), (gid, "alice", "deleted", ""))
        owner = yield self.bob.wait_push("group_role_changed")
        self.assertEqual((owner["group_id"], owner["account_name"], owner["role"],
                          owner["by"]), (gid, "bob", "owner", ""))
        reply = yield self.bob.request("group_info", group=gid)
        self.assertEqual(reply["group"]["owner"], "bob")

    @defer.inlineCallbacks
    def test_empty(self):
        """With no groups, groups list says so."""
        out = yield self.admin_cli("groups", "list")
        self.assertEqual(out, "No groups.\n")


class GroupCommandTestsOnPostgres(OnPostgres, GroupCommandTests):
    pass
