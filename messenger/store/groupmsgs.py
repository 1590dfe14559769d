"""Group messages: batched inserts with the membership check, and history per group.

A group message is one row of ``messages`` (``group_id`` set, ``recipient_id`` NULL),
stored once whatever the group's size, with its id from the same sequence as direct
messages. The batch transaction reads each group's current members once, refuses rows
whose sender is not a member (or is a plain member of an ``announce_only`` group), and
returns with every stored row the ids of the members to push it to and the members it
mentions: the push list is the membership at commit time, so a member removed before
the message sees nothing of it, and one removed after it has already been sent it.

Idempotence is the direct messages' one: (sender, client request id) is unique across
both kinds, and a resend answers with the first copy.
"""

from __future__ import annotations

from typing import Any

from messenger.store import groups, messages, replies

INSERT = ("INSERT INTO messages (sender_id, group_id, client_id, body, created, mentions,"
          " reply_to) VALUES (?, ?, ?, ?, ?, ?, ?)"
          " ON CONFLICT (sender_id, client_id) DO NOTHING")
EXISTING = "SELECT id, created, group_id FROM messages WHERE sender_id = ? AND client_id = ?"

# One queued message: (sender id, group id, client request id, body, created,
# lower-case names written as @name in the body), and for a reply a seventh field: the id
# of the message it quotes (`messenger.store.replies`).
NewGroupMessage = tuple[Any, ...]
# The outcome per message: (message id, created, newly stored, ids to push to, names
# mentioned), or one of the refusals below.
Stored = tuple[int, float, bool, tuple[int, ...], tuple[str, ...]] | str
NOT_MEMBER = "not a member"
ANNOUNCE_ONLY = "announce only"
REPLY_ELSEWHERE = replies.REPLY_ELSEWHERE
ID_REUSED = "request id reused"
# A group message as read back: (id, created, sender name, group id, body, mentions),
# the `replies.EXTRA` columns (reply_to, edited, deleted: None unless set), then the
# attachment as JSON text or None.
GroupMessageRow = tuple[Any, ...]
# SQLite allows 500 terms in one compound SELECT; windows beyond go in further queries.
MAX_TERMS = 400


class _Group:
    """One group's state within a batch transaction (``roles`` may be shared with the
    cache: never changed here)."""

    __slots__ = ("announce_only", "roles", "names")

    def __init__(self, announce_only: bool, roles: dict[int, str]) -> None:
        self.announce_only = announce_only
        self.roles = roles
        self.names: dict[str, str] = {}   # lower-case name -> name, of mentioned members


class MemberCache:
    """The members of recently used groups, kept by one server and checked against
    ``chat_groups.members_version`` in every batch transaction: a 1,000-member group's
    members are read once per change to them, not once per message (the single SQLite
    writer serves direct messages too). One cache per database (`insert_batch_txn` of
    the server's group commit); correct across nodes, since the version is read in the
    batch's own transaction, in the serial section."""

    def __init__(self, max_groups: int = 1000) -> None:
        self.max_groups = max_groups
        self._groups: dict[int, tuple[int, dict[int, str]]] = {}   # id -> (version, roles)

    def roles(self, txn: Any, group_id: int, version: int) -> dict[int, str]:
        cached = self._groups.get(group_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        txn.execute("SELECT user_id, role FROM group_members"
                    " WHERE group_id = ? AND left_at IS NULL", (group_id,))
        roles = dict(txn.fetchall())
        if len(self._groups) >= self.max_groups and group_id not in self._groups:
            self._groups.pop(next(iter(self._groups)))
        self._groups[group_id] = (version, roles)
        return roles

    def insert_batch_txn(self, txn: Any, items: list[NewGroupMessage]) -> list[Stored]:
        return insert_batch_txn(txn, items, self)


def _load(txn: Any, group_ids: set[int], cache: MemberCache | None) -> dict[int, _Group]:
    cache = cache if cache is not None else MemberCache()
    loaded: dict[int, _Group] = {}
    ids = sorted(group_ids)
    rows = []
    for start in range(0, len(ids), groups.IN_CHUNK):
        chunk = ids[start:start + groups.IN_CHUNK]
        txn.execute(f"SELECT id, announce_only, members_version FROM chat_groups"
                    f" WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk))
        rows.extend(txn.fetchall())
    for group_id, announce_only, version in rows:
        loaded[group_id] = _Group(bool(announce_only), cache.roles(txn, group_id, version))
    return loaded


def _resolve_mentions(txn: Any, items: list[NewGroupMessage],
                      loaded: dict[int, _Group]) -> None:
    """Find which @names of the batch are members of the group they were written in."""
    wanted = sorted({name for item in items for name in item[5]})
    if not wanted:
        return
    ids: dict[str, tuple[int, str]] = {}
    for start in range(0, len(wanted), groups.IN_CHUNK):
        chunk = wanted[start:start + groups.IN_CHUNK]
        txn.execute(f"SELECT name_lower, id, name FROM users WHERE name_lower IN"
                    f" ({','.join('?' * len(chunk))})", tuple(chunk))
        ids.update((row[0], (row[1], row[2])) for row in txn.fetchall())
    for item in items:
        group = loaded.get(item[1])
        if group is None:
            continue
        for lowered in item[5]:
            found = ids.get(lowered)
            if found is not None and found[0] in group.roles:
                group.names[lowered] = found[1]


def _mentions(item: NewGroupMessage, group: _Group) -> tuple[str, ...]:
    names = group.names
    return tuple(dict.fromkeys(names[n] for n in item[5] if n in names))


def insert_batch_txn(txn: Any, items: list[NewGroupMessage],
                     cache: MemberCache | None = None) -> list[Stored]:
    """Store a batch of group messages in one transaction; results in ``items`` order.

    Runs in the messages' serial section (`groups.serial_txn`): membership is read, and
    ids given out, in one order with every membership change and every other message
    insert, on every node. Ids increase in the order of ``items``. A row refused
    (`NOT_MEMBER`, `ANNOUNCE_ONLY`) is not stored, unless it is the resend of a message
    stored earlier (before its sender left, say): then, like every resend, it answers
    with the first copy.
    """
    groups.serial_txn(txn)
    loaded = _load(txn, {item[1] for item in items}, cache)
    _resolve_mentions(txn, items, loaded)
    verdicts: list[str | None] = []
    rows = []
    for item in items:
        group = loaded.get(item[1])
        role = group.roles.get(item[0]) if group is not None else None
        if role is None:
            verdicts.append(NOT_MEMBER)
        elif group.announce_only and role == groups.MEMBER:  # type: ignore[union-attr]
            verdicts.append(ANNOUNCE_ONLY)
        elif len(item) > 6 and not replies.group_reply_ok_txn(txn, item[0], item[1], item[6]):
            verdicts.append(REPLY_ELSEWHERE)
        else:
            verdicts.append(None)
            mentions = _mentions(item, group)  # type: ignore[arg-type]
            rows.append((item[0], item[1], item[2], item[3], item[4],
                         " ".join(mentions) or None, item[6] if len(item) > 6 else None))
    fresh: dict[tuple[int, str], int] = {}
    if rows:
        floor = groups.message_floor_txn(txn)
        txn.executemany(INSERT, rows)
        txn.execute("SELECT sender_id, client_id, id FROM messages WHERE id > ?", (floor,))
        fresh = {(row[0], row[1]): row[2] for row in txn.fetchall()}
    results: list[Stored] = []
    newest: dict[int, int] = {}
    for item, verdict in zip(items, verdicts, strict=True):
        msg_id = fresh.pop((item[0], item[2]), None) if verdict is None else None
        if msg_id is not None:
            group = loaded[item[1]]
            newest[item[1]] = msg_id
            results.append((msg_id, item[4], True,
                            tuple(uid for uid in group.roles if uid != item[0]),
                            _mentions(item, group)))
            continue
        results.append(_existing(txn, item, verdict))
    if newest:
        txn.executemany("UPDATE chat_groups SET last_msg_id = ? WHERE id = ?",
                        [(msg_id, group_id) for group_id, msg_id in newest.items()])
    return results


def _existing(txn: Any, item: NewGroupMessage, verdict: str | None) -> Stored:
    """A row not stored now: the first copy of a resend, or the refusal."""
    txn.execute(EXISTING, (item[0], item[2]))
    row = txn.fetchone()
    if row is None:
        return verdict or NOT_MEMBER
    if row[2] != item[1]:
        return ID_REUSED
    return (row[0], row[1], False, (), ())


# -- reading ------------------------------------------------------------------------------

_ROWS = ("SELECT m.id, m.created, s.name, m.group_id, m.body, m.mentions,"
         f" {replies.EXTRA}, m.attachment FROM messages m"
         " JOIN users s ON s.id = m.sender_id WHERE m.id IN ({}) ORDER BY m.id {}")
GROUP_BODY = 4  # the body's column in a GroupMessageRow


def rows_by_id_txn(txn: Any, ids: list[int], max_bytes: int = 0,
                   newest_first: bool = False) -> list[GroupMessageRow]:
    """The group messages with these ids, oldest first. With ``max_bytes``, rows are
    read (from the oldest, or from the newest with ``newest_first``) only until their
    bodies pass it (`messages._until_bytes`)."""
    if not ids:
        return []
    txn.execute(_ROWS.format(",".join("?" * len(ids)), "DESC" if newest_first else ""),
                tuple(ids))
    rows = messages._until_bytes(txn, max_bytes, GROUP_BODY)
    if newest_first:
        rows.reverse()
    return rows


def window_terms(group_id: int, low: int, high: int | None, sender_to_skip: int | None,
                 below: int | None, limit: int,
                 newest_first: bool) -> tuple[str, tuple[Any, ...]]:
    """One indexed range of a group's messages (messages_group: group_id, id): the ids
    above ``low``, up to ``high`` and below ``below``, without ``sender_to_skip``'s, the
    first ``limit`` in id order (or the last ones with ``newest_first``)."""
    sql = "SELECT id FROM messages WHERE group_id = ? AND id > ?"
    args: list[Any] = [group_id, low]
    if high is not None:
        sql += " AND id <= ?"
        args.append(high)
    if below is not None:
        sql += " AND id < ?"
        args.append(below)
    if sender_to_skip is not None:
        sql += " AND sender_id <> ?"
        args.append(sender_to_skip)
    sql += f" ORDER BY id {'DESC' if newest_first else ''} LIMIT ?"
    args.append(limit)
    return sql, tuple(args)


def merged_ids_txn(txn: Any, terms: list[tuple[str, tuple[Any, ...]]], limit: int,
                   newest_first: bool) -> list[int]:
    """Run indexed ranges as UNION ALL queries (at most `MAX_TERMS` per statement) and
    keep the ``limit`` lowest ids (highest with ``newest_first``), in ascending order."""
    ids: list[int] = []
    direction = "DESC" if newest_first else ""
    for start in range(0, len(terms), MAX_TERMS):
        chunk = terms[start:start + MAX_TERMS]
        sql = " UNION ALL ".join(f"SELECT * FROM ({term}) AS t{n}"
                                 for n, (term, _) in enumerate(chunk))
        args = tuple(arg for _, term_args in chunk for arg in term_args)
        txn.execute(f"SELECT id FROM ({sql}) AS page ORDER BY id {direction} LIMIT ?",
                    (*args, limit))
        ids.extend(row[0] for row in txn.fetchall())
    ids.sort()
    return ids[-limit:] if newest_first else ids[:limit]


def history_txn(txn: Any, user_id: int, group_id: int, before: int | None,
                limit: int, max_bytes: int = 0) -> list[GroupMessageRow]:
    """One page of a group's messages that the user may see (its membership windows),
    oldest first, ids below ``before``; `groups.NotMember` unless a member now.

    Each window is its own backward range scan of messages_group that stops after
    ``limit`` ids, so a page costs a page however long the group's history. Every range
    ends at the group's newest message at most (``chat_groups.last_msg_id``), so a plan
    that walks the primary key instead starts among the group's messages. With
    ``max_bytes``, the newest rows are read until their bodies pass it."""
    membership = groups.membership_txn(txn, group_id, user_id)
    if membership is None:
        raise groups.NotMember()
    newest = membership.group.last_msg_id
    terms = []
    for low, high in groups.windows_txn(txn, group_id, user_id):
        high = newest if high is None else min(high, newest)
        if high > low and (before is None or before > low + 1):
            terms.append(window_terms(group_id, low, high, None, before, limit, True))
    if not terms:
        return []
    return rows_by_id_txn(txn, merged_ids_txn(txn, terms, limit, True), max_bytes,
                          newest_first=True)


def last_txn(txn: Any, group_id: int, low: int) -> GroupMessageRow | None:
    """The group's newest message above ``low`` (the member's window start), if any."""
    txn.execute("SELECT m.id, m.created, s.name, m.group_id, m.body, m.mentions,"
                f" {replies.EXTRA}, m.attachment FROM messages m"
                " JOIN users s ON s.id = m.sender_id"
                " WHERE m.group_id = ? AND m.id > ? ORDER BY m.id DESC LIMIT 1",
                (group_id, low))
    row = txn.fetchone()
    return tuple(row) if row else None
