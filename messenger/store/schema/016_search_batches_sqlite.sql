-- engines: sqlite
-- Messenger schema, version 16 (SQLite): the search index of 013 is written in batches of
-- its own, off the message transaction (issue 17). FTS5 writes a new segment, and merges
-- segments, for every transaction that inserts into it: indexing each message inside the
-- group commit that stores it tripled the writer's work per message and halved the
-- server's throughput. Now no trigger indexes a new message; the indexer
-- (messenger.store.searchindex) indexes the rows after ``search_progress.last_id`` in id
-- order, thousands per transaction, and moves ``last_id`` on. The rule both sides keep:
-- every message with an id up to ``last_id`` is in the index with its current body and
-- conversation, and no message above it is in the index at all. So the delete and body
-- triggers touch only rows already indexed (a contentless FTS5 table must be told the
-- exact values it indexed; a 'delete' of values it never saw corrupts it), and the
-- indexer indexes a newer row as it is when it gets there (edited, emptied by a
-- deletion, or gone). Search reads the index up to ``last_id`` and matches the few rows
-- above it itself (messenger.store.search). Everything stored before this upgrade was
-- indexed by 013's trigger: ``last_id`` starts at the newest message.

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TABLE search_progress (only_row INTEGER PRIMARY KEY CHECK (only_row = 1), last_id INTEGER NOT NULL);
INSERT INTO search_progress (only_row, last_id) SELECT 1, COALESCE(MAX(id), 0) FROM messages;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.id <= (SELECT last_id FROM search_progress) BEGIN INSERT INTO messages_fts (messages_fts, rowid, body, vis) VALUES ('delete', old.id, old.body, CASE WHEN old.group_id IS NULL THEN 'u' || old.sender_id || ' u' || old.recipient_id ELSE 'g' || old.group_id END); END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages WHEN old.id <= (SELECT last_id FROM search_progress) BEGIN INSERT INTO messages_fts (messages_fts, rowid, body, vis) VALUES ('delete', old.id, old.body, CASE WHEN old.group_id IS NULL THEN 'u' || old.sender_id || ' u' || old.recipient_id ELSE 'g' || old.group_id END); INSERT INTO messages_fts (rowid, body, vis) VALUES (new.id, new.body, CASE WHEN new.group_id IS NULL THEN 'u' || new.sender_id || ' u' || new.recipient_id ELSE 'g' || new.group_id END); END;
