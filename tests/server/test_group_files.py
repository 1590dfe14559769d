"""Files in group conversations and through blocks, over real sockets against a real server
and real files on disk: a group message with a file is pushed to the online members with
the attachment, synced and in the group's history; its members download it and no one
else; a member removed before a file was posted never gets it, one removed after keeps
what it was sent; an announcement channel and a non-member are refused as for any group
message; a blocked user no longer downloads the files of the conversation with the one
who blocked it (messenger.server.handlers.attachments, messenger.store.files). Every
class runs again on PostgreSQL (``...OnPostgres``)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.files import frames
from tests.server import filehelp
from tests.server.people import barrier, count, login, quit_, server_with
from tests.server.test_files import THUMB
from tests.server.test_groups import NOT_MEMBER, class_of_five, error, no_push
from tests.support.services import OnPostgres


@defer.inlineCallbacks
def post_file(testcase, sender, group_id, data, message="see attached", **attachment):
    """Upload ``data`` and post it to the group; (file object, reply)."""
    file = yield filehelp.upload(testcase, sender, data, name="sheet.png", mime="image/png")
    reply = yield sender.request("msg", group=group_id, message=message,
                                 attachment={"file_id": file["file_id"], **attachment})
    return file, reply


@defer.inlineCallbacks
def may_get(client, file_id):
    reply = yield client.request("file_get", file_id=file_id)
    return reply["response"] == 200


class GroupFileTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_members_get_the_push_and_download(self):
        """The push to each online member carries the attachment as the server recorded
        it, and the mentions; the members download the file byte for byte; root, no
        member, gets the same 403 as for a file that does not exist."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        data = filehelp.content(120_000)
        file, reply = yield post_file(self, teacher, gid, data, "for @ann", width=800,
                                      height=600, thumbnail=THUMB)
        self.assertEqual(reply["response"], 200, reply)
        attachment = {"file_id": file["file_id"], "name": "sheet.png", "size": len(data),
                      "mime": "image/png", "sha256": filehelp.sha(data), "width": 800,
                      "height": 600, "thumbnail": THUMB}
        for client in (ann, ben, cat):
            push = yield client.wait_push("msg")
            self.assertEqual(push, {"action": "msg", "msg_id": reply["msg_id"],
                                    "time": reply["time"], "from": "teacher", "group": gid,
                                    "message": "for @ann", "mentions": ["ann"],
                                    "attachment": attachment})
            allowed = yield client.request("file_get", file_id=file["file_id"])
            self.assertEqual(allowed["response"], 200)
            got = yield filehelp.download(client, file["file_id"], len(data), chunk=50_000)
            self.assertEqual(got, data)
        yield no_push(self, teacher, "msg")
        refused = yield root.request("file_get", file_id=file["file_id"])
        self.assertEqual(error(refused), (403, frames.NOT_READABLE))

    @defer.inlineCallbacks
    def test_sync_history_and_group_list_carry_the_attachment(self):
        """The attachment is stored with the group message: an offline member's sync,
        the group's history and the group list's last message show it."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield quit_(cat)
        file, reply = yield post_file(self, ann, gid, filehelp.content(2000), "",
                                      name="renamed.png")
        self.assertEqual(reply["response"], 200, reply)
        cat = yield login(self, server, "cat")
        synced = yield cat.request("sync", since=0)
        (message,) = [m for m in synced["alert"] if m.get("group") == gid]
        self.assertEqual((message["message"], message["attachment"]["file_id"],
                          message["attachment"]["name"]), ("", file["file_id"], "renamed.png"))
        history = yield ben.request("history", group=gid)
        self.assertEqual(history["alert"][-1]["attachment"], message["attachment"])
        listed = yield cat.request("group_list")
        (group,) = listed["alert"]
        self.assertEqual(group["last"]["attachment"], message["attachment"])

    @defer.inlineCallbacks
    def test_removed_member_loses_what_is_posted_after(self):
        """Cat, removed, keeps the file posted while she was a member and never gets the
        one posted after her removal (nor its push); she cannot forward it either."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        before, _ = yield post_file(self, ann, gid, filehelp.content(500))
        yield cat.wait_push("msg")
        removed = yield teacher.request("group_remove", group=gid, user_id="cat")
        self.assertEqual(removed["response"], 200, removed)
        after, reply = yield post_file(self, ann, gid, filehelp.content(600))
        self.assertEqual(reply["response"], 200)
        kept = yield may_get(cat, before["file_id"])
        lost = yield may_get(cat, after["file_id"])
        self.assertEqual((kept, lost), (True, False))
        members = yield may_get(ben, after["file_id"])
        self.assertTrue(members)
        yield no_push(self, cat, "msg")   # the first push was taken by wait_push
        forward = yield cat.request("msg", to="root", message="fwd",
                                    attachment={"file_id": after["file_id"]})
        self.assertEqual(forward["response"], 403)

    @defer.inlineCallbacks
    def test_refused_like_any_group_message(self):
        """A non-member's message with a file and a plain member's in an announcement
        channel are refused as group messages are; nothing is stored, and the file
        stays its owner's alone."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        file, reply = yield post_file(self, root, gid, filehelp.content(100))
        self.assertEqual(error(reply), NOT_MEMBER)
        yield teacher.request("group_update", group=gid, announce_only=True)
        theirs, reply = yield post_file(self, ann, gid, filehelp.content(100))
        self.assertEqual(reply["response"], 403)
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)
        for client, file_id in ((ben, file["file_id"]), (ben, theirs["file_id"])):
            allowed = yield may_get(client, file_id)
            self.assertFalse(allowed)
        own, reply = yield post_file(self, teacher, gid, filehelp.content(100))
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_resend_is_stored_once(self):
        """A group message with a file resent with the same id (after a reconnect) is
        answered with the first copy and pushed once."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        file = yield filehelp.upload(self, ann, filehelp.content(10))
        fields = {"id": "cd" * 16, "group": gid, "message": "once",
                  "attachment": {"file_id": file["file_id"]}}
        first = yield ann.request("msg", **fields)
        yield ann.request("quit")
        ann = yield login(self, server, "ann")
        again = yield ann.request("msg", **fields)
        self.assertEqual(again["response"], 200, again)
        self.assertEqual((again["msg_id"], again["time"]), (first["msg_id"], first["time"]))
        yield barrier(ben)
        self.assertEqual(len([p for p in ben.pushes if p["action"] == "msg"]), 1)
        stored = yield count(server, "messages")
        self.assertEqual(stored, 1)


class BlockedFileTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_a_block_shuts_downloads_through_the_conversation(self):
        """Bob sent alice a file, then blocks her: she can no longer download it (the
        same 403 as for anyone), nor forward it, while bob still downloads what she sent
        him; after the unblock she downloads it again."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        his = yield filehelp.upload(self, bob, filehelp.content(300))
        hers = yield filehelp.upload(self, alice, filehelp.content(400))
        for sender, to, file in ((bob, "alice", his), (alice, "bob", hers)):
            reply = yield sender.request("msg", to=to, message="f",
                                         attachment={"file_id": file["file_id"]})
            self.assertEqual(reply["response"], 200)
        blocked = yield bob.request("block_user", user_id="alice")
        self.assertEqual(blocked["response"], 201)
        refused = yield alice.request("file_get", file_id=his["file_id"])
        self.assertEqual(error(refused), (403, frames.NOT_READABLE))
        forward = yield alice.request("msg", to="carol", message="from bob",
                                      attachment={"file_id": his["file_id"]})
        self.assertEqual(forward["response"], 403)
        own = yield may_get(alice, hers["file_id"])
        theirs = yield may_get(bob, hers["file_id"])
        self.assertEqual((own, theirs), (True, True))
        yield bob.request("unblock_user", user_id="alice")
        again = yield may_get(alice, his["file_id"])
        self.assertTrue(again)


class GroupFileTestsOnPostgres(OnPostgres, GroupFileTests):
    pass


class BlockedFileTestsOnPostgres(OnPostgres, BlockedFileTests):
    pass
