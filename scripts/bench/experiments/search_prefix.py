"""twistd with the search index rebuilt with other FTS5 prefix indexes (bench experiment
only): ``BENCH_FTS_PREFIX`` as FTS5's ``prefix`` option ('' for none; schema 013 has
'2 3 4'). Measures what the prefix indexes cost each stored message (in the indexer's
batches since schema 016)."""
import os
import sys
from pathlib import Path

from twisted.internet import defer

from messenger.store import db

SCHEMA = Path(db.__file__).parent / "schema"
_open = db.Database._open


def _rebuild(txn):
    """An empty index with the chosen prefixes, schema 016's triggers, and every message
    waiting for the indexer."""
    prefix = os.environ.get("BENCH_FTS_PREFIX", "")
    for name in ("delete", "update"):
        txn.execute(f"DROP TRIGGER IF EXISTS messages_fts_{name}")
    txn.execute("DROP TABLE IF EXISTS messages_fts")
    option = f", prefix='{prefix}'" if prefix else ""
    for line in (SCHEMA / "013_search_sqlite.sql").read_text().splitlines():
        if line.startswith("CREATE VIRTUAL TABLE"):
            txn.execute(line.replace(", prefix='2 3 4'", option))
    for line in (SCHEMA / "016_search_batches_sqlite.sql").read_text().splitlines():
        if line.startswith("CREATE TRIGGER"):
            txn.execute(line)
    txn.execute("UPDATE search_progress SET last_id = 0")


@defer.inlineCallbacks
def _open_variant(self):
    version = yield _open(self)
    yield self.write(_rebuild)
    return version


db.Database._open = _open_variant
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
