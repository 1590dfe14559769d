"""Tests for messenger.client.actions: each action method sends the handlers' field
names and leaves unset options out."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.actions import ActionsMixin


class Recorder(ActionsMixin):
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def request(self, action: str, fields: dict[str, Any] | None = None) -> Any:
        self.sent.append((action, fields))
        return defer.succeed({"response": 200})


class ActionsTests(unittest.TestCase):
    def test_field_names_and_optional_arguments(self):
        """Every method names its action and the server's fields; None is not sent."""
        client = Recorder()
        client.get_contacts()
        client.add_contact("bob")
        client.del_contact("bob")
        client.block_user("bob")
        client.unblock_user("bob")
        client.get_blocked(limit=3)
        client.search_users("bo", limit=5)
        client.history("bob", before=9)
        client.sync(3)
        client.broadcast("hi")
        client.get_broadcasts()
        client.set_password("old", "new")
        client.call_dial("bob", ["opus"])
        client.call_hangup(call_id="c")
        client.admin_list_users(query="a")
        client.admin_set_admin("bob", True)
        client.admin_set_premium("bob", False)
        client.admin_lock("bob", minutes=5)
        client.admin_unlock("bob")
        client.admin_login_history("bob", limit=10)
        client.admin_create_code()
        client.admin_list_codes(offset=2)
        client.admin_delete_user("bob")
        client.admin_audit(before=4)
        self.assertEqual(client.sent, [
            ("get_contacts", None), ("add_contact", {"user_id": "bob"}),
            ("del_contact", {"user_id": "bob"}),
            ("block_user", {"user_id": "bob"}), ("unblock_user", {"user_id": "bob"}),
            ("get_blocked", {"limit": 3}),
            ("search_users", {"query": "bo", "limit": 5}),
            ("history", {"with": "bob", "before": 9}), ("sync", {"since": 3}),
            ("broadcast", {"message": "hi"}), ("get_broadcasts", {}),
            ("set_password", {"old_password": "old", "new_password": "new"}),
            ("call_dial", {"user_id": "bob", "codecs": ["opus"]}),
            ("call_hangup", {"call_id": "c"}), ("admin_list_users", {"query": "a"}),
            ("admin_set_admin", {"user_id": "bob", "value": True}),
            ("admin_set_premium", {"user_id": "bob", "value": False}),
            ("admin_lock", {"user_id": "bob", "minutes": 5}),
            ("admin_unlock", {"user_id": "bob"}),
            ("admin_login_history", {"user_id": "bob", "limit": 10}),
            ("admin_create_code", None), ("admin_list_codes", {"offset": 2}),
            ("admin_delete_user", {"user_id": "bob"}), ("admin_audit", {"before": 4}),
        ])

    def test_the_mixin_needs_request(self):
        """Without a request() of its own, the mixin says so."""
        self.assertRaises(NotImplementedError, ActionsMixin().get_contacts)
