"""twistd without the search index's insert trigger (bench experiment only): what indexing
each stored message for search (schema 013, FTS5 with prefix indexes) costs the writer."""
import sys

from twisted.internet import defer

from messenger.store import db

_open = db.Database._open


@defer.inlineCallbacks
def _open_without_index(self):
    version = yield _open(self)
    yield self.write(lambda txn: txn.execute("DROP TRIGGER IF EXISTS messages_fts_insert"))
    return version


db.Database._open = _open_without_index
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
