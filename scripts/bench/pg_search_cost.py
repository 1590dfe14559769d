#!/usr/bin/env python3
"""What indexing messages for search costs PostgreSQL per stored message (issue 17).

    .venv/bin/python scripts/bench/pg_search_cost.py [--messages 20000] [--batch 50]
        [--rounds 4]

Starts a throwaway PostgreSQL (the tests' `PostgresCluster`: a temporary directory, a
free loopback port, stopped by its PID), and per round, in fresh databases at the
shipped schema, stores N messages through `messages.insert_batch_txn` in transactions of
B rows (a group commit's size), three ways:

* ``trigger``: as shipped, schema 014's trigger computes each message's tsvector in its
  insert (inside the messages' advisory lock);
* ``batches, update``: no trigger; afterwards the vectors are written by
  ``UPDATE messages SET search = ...`` in transactions of 5,000 rows;
* ``batches, side table``: no trigger and no GIN index on ``messages``; afterwards the
  vectors go into a table of their own (id primary key, referencing ``messages`` with ON
  DELETE CASCADE so a purge removes them, GIN index) in transactions of 5,000 rows.

Prints the median, over the rounds, of the backend's CPU time (utime + stime of its
process, from /proc) and of the wall time per message, for the inserts and for the
later passes. Needs root or the ``postgres`` user's rights to read /proc of the backend.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from messenger.store import db, messages, plain  # noqa: E402
from tests.support.services import PostgresCluster  # noqa: E402

WORDS = ["".join(random.Random(n).choice("abcdefghijklmnopqrstuvwxyz")
                 for _ in range(1 + n % 7)) for n in range(5000)]
VECTOR = "messages_search_vector(body, sender_id, recipient_id, group_id)"
KINDS = ("trigger", "batches, update", "batches, side table")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare(connection: plain.PlainConnection, kind: str) -> None:
    connection.write(lambda txn: txn.executemany(
        "INSERT INTO users (name, name_lower, email, email_lower, password_hash, created,"
        " password_changed) VALUES (?, ?, ?, ?, 'x', 1.0, 1.0)",
        [(f"u{n}", f"u{n}", f"u{n}@x.org", f"u{n}@x.org") for n in range(1, 101)]))
    if kind == "trigger":
        return

    def change(txn):
        txn.execute("DROP TRIGGER messages_search ON messages")
        if kind == "batches, side table":
            txn.execute("DROP INDEX messages_search")
            txn.execute("CREATE TABLE message_search (id BIGINT PRIMARY KEY REFERENCES"
                        " messages (id) ON DELETE CASCADE, search tsvector NOT NULL)")
            txn.execute("CREATE INDEX message_search_gin ON message_search USING GIN (search)")
    connection.write(change)


def index_txn(txn, kind: str, low: int, high: int) -> None:
    if kind == "batches, update":
        txn.execute(f"UPDATE messages SET search = {VECTOR} WHERE id > ? AND id <= ?",
                    (low, high))
    else:
        txn.execute(f"INSERT INTO message_search (id, search) SELECT id, {VECTOR}"
                    " FROM messages WHERE id > ? AND id <= ?", (low, high))


def one_round(cluster: PostgresCluster, name: str, kind: str, total: int, batch: int,
              rng: random.Random) -> dict[str, tuple[float, float]]:
    cluster.execute(f"CREATE DATABASE {name}")
    connection = plain.open_plain(cluster.url(name))
    try:
        db.migrate_plain(connection)
        prepare(connection, kind)
        cursor = connection.raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        connection.raw.rollback()
        found = {}
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        for start in range(0, total, batch):
            connection.write(messages.insert_batch_txn, [
                (rng.randint(1, 100), rng.randint(1, 100), f"c{n}",
                 " ".join(rng.choices(WORDS, k=9)), 1.0) for n in range(start, start + batch)])
        found["insert"] = ((cpu_seconds(pid) - cpu) / total * 1e6,
                           (time.perf_counter() - wall) / total * 1e6)
        if kind != "trigger":
            cpu, wall = cpu_seconds(pid), time.perf_counter()
            for low in range(0, total, 5000):
                connection.write(index_txn, kind, low, low + 5000)
            found["index passes"] = ((cpu_seconds(pid) - cpu) / total * 1e6,
                                     (time.perf_counter() - wall) / total * 1e6)
        return found
    finally:
        connection.close()
        cluster.execute(f"DROP DATABASE {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    cluster = PostgresCluster()
    try:
        cluster._initdb()
        cluster.child.spawn()
        deadline = time.monotonic() + 30
        while not cluster._ready():
            if time.monotonic() > deadline:
                raise SystemExit("PostgreSQL did not start")
            time.sleep(0.05)
        rng = random.Random(17)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_ in range(args.rounds):
            for number, kind in enumerate(KINDS):
                found = one_round(cluster, f"bench_{round_}_{number}", kind, args.messages,
                                  args.batch, rng)
                for part, figures in found.items():
                    results.setdefault((kind, part), []).append(figures)
        for (kind, part), values in results.items():
            print(f"{kind:>20} {part:>12}: backend CPU"
                  f" {statistics.median(v[0] for v in values):5.1f} us/msg, wall"
                  f" {statistics.median(v[1] for v in values):5.1f} us/msg"
                  f" (medians of {len(values)})")
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
