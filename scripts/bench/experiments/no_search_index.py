"""twistd without the search indexer (bench experiment only): what indexing stored messages
for search costs the server. Since schema 016 no trigger indexes a message as it is
stored; the indexer (messenger.server.searchindex) does it in batches, and this one never
starts (searches still find every message: they match what is not indexed themselves)."""
import sys

from messenger.server import searchindex

searchindex.SearchIndexer.start = lambda self: None  # never started: nudges do nothing
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
