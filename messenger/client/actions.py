"""Every protocol action of a logged-in session as a method returning a Deferred.

Each fires with the server's reply (a dict: ``response`` and the action's result fields,
e.g. ``alert`` holding the list of a 202 reply) or fails with the `MessengerError`
subclass of the reply's code (`NotFound`, `Forbidden`, `TooManyRequests` with
``retry_after``, ...), or `NotConnected` when there is no session. The field names are
the server's (``messenger/server/handlers``); optional arguments left as None are not
sent. Logging in and out, messages (with the outbox) and presence live in `core`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

Reply = defer.Deferred[dict[str, Any]]


def _fields(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


class ActionsMixin:
    """Needs ``request(action, fields) -> Deferred`` (see `MessengerClient.request`)."""

    def request(self, action: str, fields: dict[str, Any] | None = None) -> Reply:
        raise NotImplementedError

    # -- contacts -------------------------------------------------------------------------

    def get_contacts(self) -> Reply:
        """202; ``alert``: ``[{"account_name", "status"}]`` with presence."""
        return self.request("get_contacts")

    def add_contact(self, account_name: str) -> Reply:
        """201; ``contact``: ``{"account_name", "status"}``. 404 no such user, 409
        already a contact, 400 yourself."""
        return self.request("add_contact", {"user_id": account_name})

    def del_contact(self, account_name: str) -> Reply:
        """200. 404 when not a contact."""
        return self.request("del_contact", {"user_id": account_name})

    def block_user(self, account_name: str) -> Reply:
        """201; ``blocked``: ``{"account_name"}``. Their messages and calls to you are
        refused from now on (`BlockedByUser` to them). 404, 409 already blocked."""
        return self.request("block_user", {"user_id": account_name})

    def unblock_user(self, account_name: str) -> Reply:
        """200. 404 when not blocked."""
        return self.request("unblock_user", {"user_id": account_name})

    def get_blocked(self, after: str | None = None, limit: int | None = None) -> Reply:
        """202; ``alert``: ``[{"account_name", "since"}]`` by name, ``more``."""
        return self.request("get_blocked", _fields(after=after, limit=limit))

    def search_users(self, query: str, offset: int | None = None,
                     limit: int | None = None) -> Reply:
        """202; ``alert``: ``[{"account_name"}]`` (names containing ``query``, any case,
        yourself left out), ``more``."""
        return self.request("search_users", _fields(query=query, offset=offset, limit=limit))

    # -- messages -------------------------------------------------------------------------

    def history(self, with_user: str, before: int | None = None,
                limit: int | None = None) -> Reply:
        """202; ``alert``: one page of the conversation, oldest first (``msg_id``,
        ``time``, ``from``, ``to``, ``message``), ids below ``before``; ``more``."""
        return self.request("history", _fields(**{"with": with_user}, before=before,
                                               limit=limit))

    def sync(self, since: int, limit: int | None = None) -> Reply:
        """202; ``alert``: messages to you above ``since``, oldest first; ``more``.
        (The core syncs by itself after every login; this is the raw action.)"""
        return self.request("sync", _fields(since=since, limit=limit))

    def group_history(self, group_id: int, before: int | None = None,
                      limit: int | None = None) -> Reply:
        """202; ``alert``: one page of a group's messages the user may see, oldest
        first (``msg_id``, ``time``, ``from``, ``group``, ``message``, ``mentions``),
        ids below ``before``; ``more``. 403 unless a member."""
        return self.request("history", _fields(group=group_id, before=before, limit=limit))

    def mark_read(self, up_to: int, with_user: str | None = None,
                  group_id: int | None = None) -> Reply:
        """200; ``read_up_to``: the conversation with ``with_user`` (or the group) is read
        up to message ``up_to``. Markers only move forward."""
        return self.request("mark_read", _fields(**{"with": with_user}, group=group_id,
                                                 up_to=up_to))

    def get_unread(self) -> Reply:
        """200; ``direct`` and ``groups``: the conversations with unread messages (the
        core asks after every login and emits ``unread``; see `unread_counts`)."""
        return self.request("get_unread")

    # -- groups ---------------------------------------------------------------------------

    def group_create(self, name: str, members: list[str] | None = None,
                     topic: str | None = None, announce_only: bool | None = None) -> Reply:
        """201; ``group`` (with ``role`` "owner", ``members``, ``owner``) and
        ``members`` (``[{"account_name", "role"}]``). 404 an unknown member, 403 a
        limit."""
        return self.request("group_create", _fields(name=name, members=members, topic=topic,
                                                    announce_only=announce_only))

    def group_list(self, after: int | None = None, limit: int | None = None) -> Reply:
        """202; ``alert``: the user's groups by id, each with ``role``, ``members``,
        ``owner``, ``unread``, ``mentions``, ``read_up_to`` and ``last``; ``more``."""
        return self.request("group_list", _fields(after=after, limit=limit))

    def group_info(self, group_id: int, after: str | None = None,
                   limit: int | None = None) -> Reply:
        """202; ``group`` and ``members`` (``[{"account_name", "role"}]`` by name after
        ``after``); ``more``. 403 unless a member."""
        return self.request("group_info", _fields(group=group_id, after=after, limit=limit))

    def group_add(self, group_id: int, account_name: str) -> Reply:
        """200; ``member``. Owners and admins only (403); 404 no such user; 409 already
        a member."""
        return self.request("group_add", {"group": group_id, "user_id": account_name})

    def group_remove(self, group_id: int, account_name: str) -> Reply:
        """200. Owners and admins (admins only plain members); 404 not a member."""
        return self.request("group_remove", {"group": group_id, "user_id": account_name})

    def group_leave(self, group_id: int) -> Reply:
        """200. 409 for the owner (hand ownership over first)."""
        return self.request("group_leave", {"group": group_id})

    def group_update(self, group_id: int, name: str | None = None, topic: str | None = None,
                     announce_only: bool | None = None) -> Reply:
        """200; ``group``. Owners and admins; at least one of the three."""
        return self.request("group_update", _fields(group=group_id, name=name, topic=topic,
                                                    announce_only=announce_only))

    def group_set_role(self, group_id: int, account_name: str, role: str) -> Reply:
        """200; ``members`` whose role changed. The owner only; ``role`` "owner" hands
        ownership over (the old owner becomes an admin)."""
        return self.request("group_set_role", {"group": group_id, "user_id": account_name,
                                               "role": role})

    def group_delete(self, group_id: int) -> Reply:
        """200. The owner, or a server administrator."""
        return self.request("group_delete", {"group": group_id})

    # -- broadcasts -----------------------------------------------------------------------

    def broadcast(self, text: str) -> Reply:
        """200; ``broadcast_id``, ``time``. 403 unless premium or admin."""
        return self.request("broadcast", {"message": text})

    def get_broadcasts(self, before: int | None = None, limit: int | None = None) -> Reply:
        """202; ``alert``: newest first (``broadcast_id``, ``time``, ``from``,
        ``message``); ``more``."""
        return self.request("get_broadcasts", _fields(before=before, limit=limit))

    # -- account --------------------------------------------------------------------------

    def set_password(self, old_password: str, new_password: str) -> Reply:
        """200. Every other token of the account is revoked; see
        `MessengerClient.set_password`, which also keeps the new one."""
        return self.request("set_password", {"old_password": old_password,
                                             "new_password": new_password})

    # -- calls (signalling; the media side is messenger.client.calls) ---------------------

    def call_dial(self, account_name: str, codecs: list[str] | None = None) -> Reply:
        """Dial (or answer by dialling back); pushes ``call_ring``/``call_start`` follow."""
        return self.request("call_dial", _fields(user_id=account_name, codecs=codecs))

    def call_hangup(self, call_id: str | None = None,
                    account_name: str | None = None) -> Reply:
        return self.request("call_hangup", _fields(call_id=call_id, user_id=account_name))

    # -- administration (the server checks the role on every call) ------------------------

    def admin_list_users(self, query: str | None = None, offset: int | None = None,
                         limit: int | None = None) -> Reply:
        return self.request("admin_list_users", _fields(query=query, offset=offset,
                                                        limit=limit))

    def admin_set_admin(self, account_name: str, value: bool) -> Reply:
        return self.request("admin_set_admin", {"user_id": account_name, "value": value})

    def admin_set_premium(self, account_name: str, value: bool) -> Reply:
        return self.request("admin_set_premium", {"user_id": account_name, "value": value})

    def admin_lock(self, account_name: str, minutes: int | None = None) -> Reply:
        return self.request("admin_lock", _fields(user_id=account_name, minutes=minutes))

    def admin_unlock(self, account_name: str) -> Reply:
        return self.request("admin_unlock", {"user_id": account_name})

    def admin_login_history(self, account_name: str, before: int | None = None,
                            limit: int | None = None) -> Reply:
        return self.request("admin_login_history", _fields(user_id=account_name,
                                                           before=before, limit=limit))

    def admin_create_code(self) -> Reply:
        """201; ``code`` (shown this once) and ``code_id``."""
        return self.request("admin_create_code")

    def admin_list_codes(self, offset: int | None = None, limit: int | None = None) -> Reply:
        return self.request("admin_list_codes", _fields(offset=offset, limit=limit))

    def admin_delete_user(self, account_name: str) -> Reply:
        return self.request("admin_delete_user", {"user_id": account_name})

    def admin_audit(self, before: int | None = None, limit: int | None = None) -> Reply:
        return self.request("admin_audit", _fields(before=before, limit=limit))

    def admin_list_groups(self, query: str | None = None, offset: int | None = None,
                          limit: int | None = None) -> Reply:
        """202; ``alert``: every group (``owner``, ``members``, ``last_msg_id``);
        ``more``. Delete one with `group_delete`."""
        return self.request("admin_list_groups", _fields(query=query, offset=offset,
                                                         limit=limit))
