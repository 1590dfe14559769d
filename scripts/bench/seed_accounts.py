"""Create benchmark accounts PREFIX1..PREFIXN straight in a server's SQLite database.

    .venv/bin/python scripts/bench/seed_accounts.py DB_FILE PREFIX N

For the connection figures: registering 20,000 accounts through the protocol at the
shipped scrypt cost (N >= 2^14) takes the hashing threads most of an hour, and the figure
(what a held, logged-in connection costs) does not depend on it. Every account gets the
benchmark password (messenger.bench.conn.PASSWORD) hashed once with a tiny scrypt cost, so
`--login authenticate` is cheap; the server may re-hash some at its own cost after their
login (in its bounded background queue), which ends before the idle reading is taken.
Benchmark data dirs only (scripts/bench/server.sh makes a fresh one per run).
"""

from __future__ import annotations

import sqlite3
import sys
import time

from messenger.bench.conn import PASSWORD
from messenger.server.passwords import hash_password_sync


def main(argv: list[str]) -> int:
    path, prefix, count = argv[0], argv[1], int(argv[2])
    password_hash = hash_password_sync(PASSWORD, 16)
    now = time.time()
    rows = [(f"{prefix}{i}", f"{prefix}{i}".lower(), f"{prefix}{i}@bench.invalid",
             f"{prefix}{i}@bench.invalid", password_hash, 0, 0, now, now)
            for i in range(1, count + 1)]
    db = sqlite3.connect(path, timeout=30)
    with db:
        db.executemany("INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                       " is_admin, is_premium, created, password_changed)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()
    print(f"seeded {count} accounts {prefix}1..{prefix}{count} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
