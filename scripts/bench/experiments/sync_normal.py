"""twistd with SQLite synchronous=NORMAL instead of FULL (bench experiment only)."""
import sys

from messenger.store import db

db.SqliteEngine.__init__.__defaults__ = ("NORMAL",)
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
