"""Full-text search over the messages a user may see, ranked, one page at a time.

Both engines keep an index of every body's words beside the message's conversation,
written as tokens: ``u<sender> u<recipient>`` for a direct message, ``g<group>`` for a
group message. SQLite: the FTS5 table ``messages_fts`` (schema 013), written in batches
after the messages by the indexer (`messenger.store.searchindex`, schema 016), because
indexing each message in its own insert halved the server's throughput; a search reads
the index up to the indexer's progress and matches the newer messages itself with FTS5
and the same query (`_match_pending`), so it is as current as the messages table.
PostgreSQL: the ``search`` tsvector with a GIN index (schema 014), written by a trigger
in each insert. Triggers keep both in step with every edit, deletion and purge of an
indexed message.

A search asks for every word of the query AND one of the caller's conversation tokens,
so the index narrows the matches to the caller's own conversations before anything is
ranked; the SQL around it then keeps only direct messages the caller sent or received
and group messages inside its membership windows (the rules of ``history``: groups it
is a member of now, each window of its membership).

Words are runs of letters and digits; each query word of two characters or more matches
the words that start with it ("mee" finds "meeting"), a one-character word only itself.
Every word must match. Ranking (`rank`, the same on both engines): more occurrences of
the words in a shorter message first, ties to the newer message. Only the newest
`RANK_WINDOW` matches are ranked: a word in most of a user's messages would otherwise
cost a ranking of all of them, and a user who gets that many matches adds a word.
Deleted messages have no words left, so they never match.

`match_spans` finds, in a result's body, the words the query matched, for highlighting.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from messenger.store import groups, messages, replies, searchindex
from messenger.store.engines import engine_of

MAX_WORDS = 16
# A search ranks the newest this many matches (or offset + limit, when paging deeper): the
# cost of a query that matches a large share of a user's messages stays bounded.
RANK_WINDOW = 2000
MAX_WORD = 64
WORD_RE = re.compile(r"[^\W_]+")


class BadQuery(ValueError):
    """The query cannot be searched for (the text, after "the query", says why)."""


def query_words(query: str) -> list[str]:
    """The words of a query (NFC), each once whatever its case, in order; `BadQuery`
    when there is none, or too many, or one too long. Their case is left to the engine,
    which folds them as it folded the bodies it indexed."""
    found = WORD_RE.findall(unicodedata.normalize("NFC", query))
    words = list({word.casefold(): word for word in reversed(found)}.values())[::-1]
    if not words:
        raise BadQuery("has no words to search for (letters or digits)")
    if len(words) > MAX_WORDS:
        raise BadQuery(f"may hold at most {MAX_WORDS} words")
    if any(len(word) > MAX_WORD for word in words):
        raise BadQuery(f"may hold no word longer than {MAX_WORD} characters")
    return words


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a user may search: its direct conversations (all, or the one with
    ``other_id``; none when ``direct`` is false) and group windows (group id, lowest id
    excluded, highest id included or None)."""

    user_id: int
    direct: bool = True
    other_id: int | None = None
    windows: tuple[tuple[int, int, int | None], ...] = field(default=())

    def tokens(self) -> list[str]:
        """The conversation tokens of the index that a match must carry one of."""
        found = [f"u{self.user_id}"] if self.direct else []
        found.extend(dict.fromkeys(f"g{group_id}" for group_id, _, _ in self.windows))
        return found

    def condition(self) -> str:
        """SQL over ``m`` (messages) keeping exactly the messages of the scope (every
        number in it is an integer of ours)."""
        me = int(self.user_id)
        parts = []
        if self.direct and self.other_id is None:
            parts.append(f"(m.group_id IS NULL AND (m.sender_id = {me} OR m.recipient_id = {me}))")
        elif self.direct:
            other = int(self.other_id)
            parts.append(f"(m.group_id IS NULL AND ((m.sender_id = {me} AND m.recipient_id ="
                         f" {other}) OR (m.sender_id = {other} AND m.recipient_id = {me})))")
        for group_id, low, high in self.windows:
            upper = f" AND m.id <= {int(high)}" if high is not None else ""
            parts.append(f"(m.group_id = {int(group_id)} AND m.id > {int(low)}{upper})")
        return "(" + " OR ".join(parts) + ")" if parts else "(1 = 0)"


def scope_txn(txn: Any, user_id: int, other_id: int | None = None,
              group_id: int | None = None) -> Scope:
    """The user's search scope: everything, one direct conversation (``other_id``) or
    one group (`groups.NotMember` unless a member now)."""
    if other_id is not None:
        return Scope(user_id, True, other_id)
    if group_id is not None:
        if groups.membership_txn(txn, group_id, user_id) is None:
            raise groups.NotMember()
        windows = [(group_id, low, high) for low, high in
                   groups.windows_txn(txn, group_id, user_id)]
        return Scope(user_id, False, None, tuple(windows))
    txn.execute("SELECT w.group_id, w.joined_after, w.left_at FROM group_members w"
                " WHERE w.user_id = ? AND w.group_id IN (SELECT group_id FROM group_members"
                " WHERE user_id = ? AND left_at IS NULL) ORDER BY w.group_id, w.id",
                (user_id, user_id))
    return Scope(user_id, True, None, tuple((row[0], row[1], row[2]) for row in txn.fetchall()))


def fts5_query(words: list[str], scope: Scope) -> str:
    """The FTS5 MATCH expression: every word in ``body`` (as a prefix from two
    characters on) and one of the scope's tokens in ``vis``."""
    found = " AND ".join(f'"{word}"*' if len(word) > 1 else f'"{word}"' for word in words)
    tokens = scope.tokens()
    if scope.other_id is not None and scope.other_id != scope.user_id:
        where = f"u{scope.user_id} AND u{int(scope.other_id)}"
    else:
        where = " OR ".join(tokens)
    return f"{{body}} : ({found}) AND {{vis}} : ({where})"


def ts_words(words: list[str]) -> str:
    """The PostgreSQL tsquery text of the words: weight A (the body), prefixes from two
    characters on."""
    return " & ".join(f"{word}:*A" if len(word) > 1 else f"{word}:A" for word in words)


def ts_query(words: list[str], scope: Scope) -> str:
    """The PostgreSQL tsquery text that finds: the words, and one of the scope's tokens
    with weight D."""
    if scope.other_id is not None and scope.other_id != scope.user_id:
        where = f"u{scope.user_id}:D & u{int(scope.other_id)}:D"
    else:
        where = " | ".join(f"{token}:D" for token in scope.tokens())
    return f"({ts_words(words)}) & ({where})"


_ROWS = ("SELECT m.id, m.created, s.name, r.name, m.group_id, m.body, m.mentions,"
         f" {replies.EXTRA}, m.attachment FROM messages m JOIN users s ON s.id = m.sender_id"
         " LEFT JOIN users r ON r.id = m.recipient_id WHERE m.id IN ({})")


def search_txn(txn: Any, scope: Scope, words: list[str], offset: int,
               limit: int) -> list[messages.SyncRow]:
    """One page of the messages of ``scope`` that hold every word, best match first
    (rows shaped as `messages.SyncRow`).

    The index finds the newest matches (at most `RANK_WINDOW`, or ``offset + limit``),
    newest first, which both engines do without visiting the older ones; `rank` orders
    them. (FTS5's bm25 and PostgreSQL's ts_rank would each first count the matches of
    every word in the whole store, a scan of a common word's every occurrence.)"""
    if not scope.tokens():
        return []
    window = max(RANK_WINDOW, offset + limit)
    if engine_of(txn).name == "postgres":
        txn.execute("SELECT m.id, m.body FROM messages m"
                    f" WHERE m.search @@ to_tsquery('simple', ?) AND {scope.condition()}"
                    " ORDER BY m.id DESC LIMIT ?", (ts_query(words, scope), window))
        candidates = txn.fetchall()
    else:
        candidates = _fts5_candidates(txn, scope, words, window)
    ids = rank(candidates, words)[offset:offset + limit]
    if not ids:
        return []
    txn.execute(_ROWS.format(",".join("?" * len(ids))), tuple(ids))
    by_id = {row[0]: tuple(row) for row in txn.fetchall()}
    return [by_id[msg_id] for msg_id in ids if msg_id in by_id]


def _fts5_candidates(txn: Any, scope: Scope, words: list[str], window: int) -> list[Any]:
    """The newest ``window`` matches on SQLite, newest first, as (id, body): those not
    indexed yet (above the indexer's progress, `messenger.store.searchindex`), matched
    here, then the index's, up to that progress.

    Each part is exact whenever the indexer commits between them: the progress is read
    first, the index is asked for nothing above it, and the rows above it are read as
    they are now."""
    query = fts5_query(words, scope)
    txn.execute("SELECT (SELECT last_id FROM search_progress), (SELECT MAX(id) FROM messages)")
    indexed, newest = txn.fetchone()
    found = _match_pending(txn, indexed, scope, query, window) if (newest or 0) > indexed else []
    if len(found) < window:
        txn.execute("SELECT m.id, m.body FROM messages_fts"
                    " JOIN messages m ON m.id = messages_fts.rowid"
                    " WHERE messages_fts MATCH ? AND messages_fts.rowid <= ?"
                    f" AND {scope.condition()}"
                    " ORDER BY messages_fts.rowid DESC LIMIT ?",
                    (query, indexed, window - len(found)))
        found.extend(txn.fetchall())
    return found


# The messages not indexed yet are matched by FTS5 itself, with the index's tokenizer and
# the same query, so they match exactly as they will once indexed: copied, in one
# statement (one FTS5 transaction), into a table of the connection's own (TEMP: private,
# never written with the data), emptied after each use. They are the newest second or so
# of traffic, read along the primary key from the progress on: NOT INDEXED keeps SQLite
# from preferring, say, the sender's index, which would read all of a sender's messages.
_PENDING_TABLE = ("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_pending USING fts5(body, vis,"
                  " content='', tokenize='unicode61 remove_diacritics 2')")
_PENDING_EMPTY = "INSERT INTO temp.search_pending (search_pending) VALUES ('delete-all')"
_PENDING_COPY = ("INSERT INTO temp.search_pending (rowid, body, vis)"
                 f" SELECT m.id, m.body, {searchindex.VIS} FROM messages AS m NOT INDEXED"
                 " WHERE m.id > ? AND {}")
_PENDING_MATCH = ("SELECT m.id, m.body FROM temp.search_pending p"
                  " JOIN messages m ON m.id = p.rowid WHERE p.search_pending MATCH ?"
                  " ORDER BY p.rowid DESC LIMIT ?")


def _match_pending(txn: Any, indexed: int, scope: Scope, query: str,
                   window: int) -> list[Any]:
    """(id, body) of the scope's messages above ``indexed`` that the FTS5 ``query``
    matches, newest first, at most ``window``."""
    txn.execute(_PENDING_TABLE)
    txn.execute(_PENDING_EMPTY)
    try:
        txn.execute(_PENDING_COPY.format(scope.condition()), (indexed,))
        if txn.rowcount == 0:
            return []
        txn.execute(_PENDING_MATCH, (query, window))
        return [tuple(row) for row in txn.fetchall()]
    finally:
        txn.execute(_PENDING_EMPTY)


def rank(candidates: list[Any], words: list[str]) -> list[int]:
    """The ids of (id, body) candidates, best first: more occurrences of the query's
    words (each counted up to three times) in fewer characters rank higher; ties go to
    the newer message. Cheap enough for thousands of candidates (str.lower and
    str.count run in C); a word is counted wherever it occurs, which the index has
    already narrowed to messages holding it at a word's start."""
    folded = [word.lower() for word in words]
    scored = []
    for msg_id, body in candidates:
        text = body.lower()
        hits = sum(min(text.count(word), 3) for word in folded)
        scored.append((-hits / (1.0 + len(text) / 80.0), -msg_id))
    scored.sort()
    return [-negative_id for _, negative_id in scored]


def find_txn(txn: Any, user_id: int, other_id: int | None, group_id: int | None,
             words: list[str], offset: int, limit: int) -> list[messages.SyncRow]:
    """`scope_txn` and `search_txn` in one read."""
    return search_txn(txn, scope_txn(txn, user_id, other_id, group_id), words, offset, limit)


def _fold(word: str) -> str:
    """A word as the indexes compare it: lower case, without diacritics."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def match_spans(body: str, words: list[str]) -> list[tuple[int, int]]:
    """(start, length) in code points of each word of ``body`` that a query word matches
    (as the index does: a prefix from two characters on, folded)."""
    folded = [_fold(word) for word in words]
    spans = []
    for match in WORD_RE.finditer(body):
        word = _fold(match.group())
        if any(word.startswith(q) if len(q) > 1 else word == q for q in folded):
            spans.append((match.start(), match.end() - match.start()))
    return spans
