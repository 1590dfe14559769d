#!/usr/bin/env python3
"""Message search latency over a large store (issue 15: p99 under 50 ms over 1,000,000
stored messages). docs/BENCHMARKS.md, "Message search", has the figures.

    .venv/bin/python scripts/bench/search.py [--messages 1000000] [--db FILE]
        [--database postgresql://...] [--queries 2000] [--pending N] [--json-out FILE]

Fills a fresh database through the shipped schema (SQLite FTS5, written by the indexer
after the fill; or PostgreSQL tsvector + GIN with --database) with users, groups and
messages whose words follow a Zipf law, so that a few words are in a large share of all
messages, as in real chat; then times, one
at a time on one reader connection, what the server does for ``search_messages``: the
scope and ranked query (`messenger.store.search.find_txn`), the result views with their
match offsets, and the page encoded for the wire. Shorter words are the more frequent, as
in natural language (the law of abbreviation): the common words are of 2 to 4 letters.
Query kinds: a very common word, a word of middling frequency, two words, a three-letter
prefix; for ordinary users and for a "heavy" user who is in a tenth of all direct
messages. Prints one JSON line per kind and
overall (p50, p90, p99, max in milliseconds) and a readable table on stderr. An existing
--db file is reused (no refill), so several runs can be timed on one fill. ``--pending N``
first stores N more messages and leaves them unindexed, as under load.
``--insert-cost N`` times instead what the index costs the SQLite writer per message:
in batches after the inserts (schema 016) and, for comparison, in each insert (013).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from messenger.server.handlers.search import result_view  # noqa: E402
from messenger.server.replies import Page, encode_page  # noqa: E402
from messenger.store import (  # noqa: E402
    db,
    groupchanges,
    groups,
    plain,
    search,
    searchindex,
)

USERS = 2000
GROUPS = 100
GROUP_SIZE = 20
HEAVY = 1               # this user is in a tenth of all direct messages
VOCABULARY = 30000
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]


def vocabulary(rng: random.Random) -> list[str]:
    """Made-up words, most frequent first: shorter words are the more frequent ones
    (Zipf's law of abbreviation, as in every natural language), at random within one
    length."""
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))] = None
    return sorted(words, key=lambda word: (len(word), rng.random()))


def zipf_weights(n: int, s: float = 1.07) -> list[float]:
    return [1.0 / (rank ** s) for rank in range(1, n + 1)]


def fill(connection: plain.PlainConnection, total: int, rng: random.Random,
         words: list[str]) -> None:
    """Users, groups (with real membership windows) and ``total`` messages."""
    def users_txn(txn):
        txn.executemany("INSERT INTO users (name, name_lower, email, email_lower,"
                        " password_hash, created, password_changed)"
                        " VALUES (?, ?, ?, ?, 'x', 1.0, 1.0)",
                        [(f"u{n}", f"u{n}", f"u{n}@x.org", f"u{n}@x.org")
                         for n in range(1, USERS + 1)])
    connection.write(users_txn)
    members_of = {}
    limits = groups.Limits(max_members=0, max_groups=0)
    for g in range(GROUPS):
        members = rng.sample(range(2, USERS + 1), GROUP_SIZE - 1)
        owner = members[0]
        if g % 10 == 0:
            members.append(HEAVY)
        group, _ = connection.write(groupchanges.create_txn, owner, f"u{owner}", f"g{g}", "",
                                    False, [f"u{m}" for m in members[1:]], 1.0, limits)
        members_of[group.id] = members
    partners = {u: rng.sample(range(1, USERS + 1), 12) for u in range(1, USERS + 1)}
    cumulative = list(_accumulate(zipf_weights(len(words))))
    group_ids = list(members_of)
    batch, client = [], 0
    started = time.perf_counter()
    for n in range(total):
        client += 1
        body = " ".join(rng.choices(words, cum_weights=cumulative,
                                    k=min(40, max(2, int(rng.expovariate(1 / 9))))))
        if rng.random() < 0.15:
            gid = rng.choice(group_ids)
            batch.append((rng.choice(members_of[gid]), None, gid, f"c{client}", body, n))
        else:
            sender = HEAVY if rng.random() < 0.05 else rng.randint(1, USERS)
            recipient = HEAVY if rng.random() < 0.05 else rng.choice(partners[sender])
            batch.append((sender, recipient, None, f"c{client}", body, n))
        if len(batch) == 20000 or n == total - 1:
            connection.write(_insert_txn, batch)
            batch = []
            done = n + 1
            rate = done / (time.perf_counter() - started)
            print(f"  {done:,} messages ({rate:,.0f}/s)", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def _accumulate(weights):
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def _insert_txn(txn, rows):
    txn.executemany("INSERT INTO messages (sender_id, recipient_id, group_id, client_id,"
                    " body, created) VALUES (?, ?, ?, ?, ?, ?)", rows)


def queries(rng: random.Random, words: list[str], count: int) -> list[tuple[str, int, str]]:
    """(kind, user id, query text): common words are the top 20 of the Zipf law."""
    out = []
    for n in range(count):
        kind = ("common", "middling", "two words", "prefix")[n % 4]
        user = HEAVY if n % 8 < 2 else rng.randint(2, USERS)
        if kind == "common":
            text = rng.choice(words[:20])
        elif kind == "middling":
            text = rng.choice(words[200:2000])
        elif kind == "two words":
            text = f"{rng.choice(words[:200])} {rng.choice(words[100:3000])}"
        else:
            text = rng.choice([w for w in words[:5000] if len(w) >= 4][:2000])[:3]
        out.append((("heavy " if user == HEAVY else "") + kind, user, text))
    return out


def time_queries(connection: plain.PlainConnection, plan) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    found = 0
    for kind, user, text in plan:
        started = time.perf_counter()
        words = search.query_words(text)
        rows = connection.read(search.find_txn, user, None, None, words, 0, 21)
        page = Page([result_view(row, words) for row in rows[:20]], more=len(rows) > 20)
        encode_page("0" * 32, page, 0.0)
        elapsed = (time.perf_counter() - started) * 1000
        found += len(rows)
        timings.setdefault(kind, []).append(elapsed)
        timings.setdefault("all", []).append(elapsed)
    return timings


# Schema 013's insert trigger: each message indexed in the transaction that stores it
# (what search did before schema 016), recreated for comparison.
PER_MESSAGE_TRIGGER = (
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN INSERT INTO"
    " messages_fts (rowid, body, vis) VALUES (new.id, new.body, CASE WHEN new.group_id IS"
    " NULL THEN 'u' || new.sender_id || ' u' || new.recipient_id ELSE 'g' || new.group_id"
    " END); END")


def insert_cost(base: Path, total: int, rng: random.Random, words: list[str]) -> None:
    """What the index costs the SQLite writer per message: `messages.insert_batch_txn` in
    batches of 500 (a busy group commit) into a fresh file, then the indexer's passes
    (`searchindex.index_pending_txn`, `searchindex.BATCH` a transaction), against the
    same inserts with schema 013's trigger indexing each message in its insert;
    alternating rounds, microseconds per message."""
    from messenger.store import messages
    cumulative = list(_accumulate(zipf_weights(len(words))))
    results: dict[str, list[float]] = {"trigger: insert": [], "batches: insert": [],
                                       "batches: index passes": []}
    for round_ in range(4):
        for kind in ("trigger", "batches"):
            path = base / f"insert-{round_}-{kind}.sqlite"
            path.unlink(missing_ok=True)
            connection = plain.open_plain(path)
            db.migrate_plain(connection)
            connection.write(lambda txn: txn.executemany(
                "INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                " created, password_changed) VALUES (?, ?, ?, ?, 'x', 1.0, 1.0)",
                [(f"u{n}", f"u{n}", f"u{n}@x.org", f"u{n}@x.org") for n in range(1, 101)]))
            if kind == "trigger":
                connection.raw.execute(PER_MESSAGE_TRIGGER)
            started = time.perf_counter()
            for start in range(0, total, 500):
                batch = [(rng.randint(1, 100), rng.randint(1, 100), f"c{n}",
                          " ".join(rng.choices(words, cum_weights=cumulative, k=9)), 1.0)
                         for n in range(start, start + 500)]
                connection.write(messages.insert_batch_txn, batch)
            results[f"{kind}: insert"].append((time.perf_counter() - started) / total * 1e6)
            if kind == "batches":
                started = time.perf_counter()
                while connection.write(searchindex.index_pending_txn, searchindex.BATCH):
                    pass
                results["batches: index passes"].append(
                    (time.perf_counter() - started) / total * 1e6)
            connection.close()
    for kind, values in results.items():
        line = {"bench": "search-insert-cost", "kind": kind, "messages": total,
                "us_per_message": round(statistics.median(values), 1),
                "rounds": [round(v, 1) for v in values]}
        print(json.dumps(line))
        print(f"{kind:>22}: {line['us_per_message']} us per message (median of"
              f" {len(values)}: {line['rounds']})", file=sys.stderr)


def add_pending(connection: plain.PlainConnection, count: int, rng: random.Random,
                words: list[str]) -> None:
    """``count`` more direct messages (a tenth to or from the heavy user), left for the
    indexer: what searches meet under load, when the newest messages are matched by the
    search itself (SQLite; PostgreSQL indexes them as they are stored)."""
    cumulative = list(_accumulate(zipf_weights(len(words))))
    newest = connection.read(lambda txn: txn.execute("SELECT MAX(id) FROM messages")
                             .fetchone()[0])
    rows = []
    for n in range(count):
        body = " ".join(rng.choices(words, cum_weights=cumulative,
                                    k=min(40, max(2, int(rng.expovariate(1 / 9))))))
        sender = HEAVY if n % 10 == 0 else rng.randint(2, USERS)
        rows.append((sender, rng.randint(2, USERS), None, f"p{newest}-{n}", body, n))
    connection.write(_insert_txn, rows)


def index_all(connection: plain.PlainConnection) -> None:
    """Run the indexer until nothing waits (SQLite; PostgreSQL indexed every insert)."""
    while connection.write(searchindex.index_pending_txn, 50000):
        pass


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--db", default="var/bench_search/messages.sqlite",
                    help="the SQLite file (reused when it exists)")
    ap.add_argument("--database", help="a postgresql:// URL instead of --db (emptied first)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--json-out")
    ap.add_argument("--pending", type=int, default=0, metavar="N",
                    help="first store N more messages and leave them for the indexer")
    ap.add_argument("--insert-cost", type=int, metavar="N",
                    help="instead: time N message inserts with and without the index")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    words = vocabulary(rng)
    if args.insert_cost:
        base = Path(args.db).parent
        base.mkdir(parents=True, exist_ok=True)
        insert_cost(base, args.insert_cost, rng, words)
        return
    location = args.database or args.db
    fresh = bool(args.database) or not Path(args.db).exists()
    if not args.database:
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    connection = plain.open_plain(location)
    filled = 0.0
    if fresh:
        db.migrate_plain(connection)
        if not connection.is_postgres:
            connection.raw.execute("PRAGMA synchronous=OFF")
        started = time.perf_counter()
        fill(connection, args.messages, rng, words)
        if connection.is_postgres:
            connection.raw.autocommit = True
            connection.raw.cursor().execute("VACUUM ANALYZE messages")
            connection.raw.autocommit = False
        else:
            connection.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filled = time.perf_counter() - started
    index_all(connection)           # what a fill or an earlier --pending run left
    if args.pending:
        add_pending(connection, args.pending, rng, words)
    count = connection.read(lambda txn: txn.execute("SELECT COUNT(*) FROM messages")
                            .fetchone()[0])
    plan = queries(random.Random(args.seed + 1), words, args.queries)
    time_queries(connection, plan[:50])                 # warm the cache
    timings = time_queries(connection, plan)
    engine = connection.engine.name
    lines = []
    for kind, values in timings.items():
        line = {"bench": "search", "engine": engine, "messages": count, "kind": kind,
                "pending": args.pending,
                "queries": len(values), "p50_ms": round(statistics.median(values), 2),
                "p90_ms": round(percentile(values, 90), 2),
                "p99_ms": round(percentile(values, 99), 2), "max_ms": round(max(values), 2),
                "fill_s": round(filled, 1)}
        lines.append(line)
        print(json.dumps(line))
        print(f"{engine} {kind:>18}: p50 {line['p50_ms']:7.2f}  p90 {line['p90_ms']:7.2f}"
              f"  p99 {line['p99_ms']:7.2f}  max {line['max_ms']:7.2f} ms"
              f"  ({len(values)} queries)", file=sys.stderr)
    if args.json_out:
        with open(args.json_out, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps(line) + "\n")
    connection.close()


if __name__ == "__main__":
    main()
