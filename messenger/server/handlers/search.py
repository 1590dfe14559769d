"""Full-text search over the caller's own conversations (``search_messages``).

The query's words are checked here (`messenger.store.search.query_words`), the search
runs on a reader connection (FTS5 or PostgreSQL full text, `messenger.store.search`),
and it never waits for the search index: on SQLite the index is written in the
background (`messenger.server.searchindex`), and the store's search matches the messages
not indexed yet itself, so a message is found as soon as its send was acknowledged.
Each result carries ``matches``: where in its body the query's words are, as
[start, length] pairs in code points, so a client highlights them without searching
again. A page is cut by its encoded size like every list; the next one starts at
``offset`` plus the number of results received.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.handlers import conversations
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import groups, search
from messenger.wire.errors import BadRequest, Forbidden, NotFound

DEFAULT_LIMIT = 20


def result_view(row: Any, words: list[str]) -> dict[str, Any]:
    view = conversations.sync_view(row)
    view["matches"] = [list(span) for span in search.match_spans(view["message"], words)]
    return view


@defer.inlineCallbacks
def search_messages(session: Session, request: dict[str, Any]) -> Any:
    """202: one page of the caller's messages holding every word of ``query``, best
    first, with ``matches``; ``more``. ``with`` or ``group`` narrows it to one
    conversation."""
    ctx = session.ctx
    try:
        words = search.query_words(request["query"])
    except search.BadQuery as error:
        raise BadRequest(f"'query' {error}") from None
    other_id = None
    if request.get("with") is not None:
        other = yield ctx.directory.lookup(request["with"])
        if other is None:
            raise NotFound(f"no user named '{request['with']}'")
        other_id = other.id
    limit = request.get("limit") or DEFAULT_LIMIT
    try:
        rows = yield ctx.db.read(search.find_txn, session.account.id, other_id,  # type: ignore[union-attr]
                                 request.get("group"), words, request.get("offset") or 0,
                                 limit + 1)
    except groups.NotMember:
        raise Forbidden(conversations.NOT_MEMBER) from None
    return Page([result_view(row, words) for row in rows[:limit]], more=len(rows) > limit)


ROUTES = {
    "search_messages": (search_messages, LOGGED_IN, True),
}
