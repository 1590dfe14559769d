-- engines: sqlite
-- Messenger schema, version 5 (SQLite): a message belongs to a direct conversation
-- (recipient_id) or to a group (group_id), exactly one of them. Group messages are stored
-- once, in the same table and id sequence as direct ones; ``mentions`` holds the account
-- names (as registered, space-separated) that a group message mentions with @name.
-- SQLite cannot drop NOT NULL from a column: the table is rebuilt with the same rows and
-- ids, and its AUTOINCREMENT counter is carried over, so no id is ever handed out twice.
-- PostgreSQL does the same with ALTER TABLE in 006.

CREATE TABLE messages_v5 (
    id SERIAL_ID,
    sender_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER REFERENCES chat_groups (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    mentions TEXT,
    CHECK ((recipient_id IS NULL) <> (group_id IS NULL))
);
INSERT INTO messages_v5 (id, sender_id, recipient_id, client_id, body, created)
    SELECT id, sender_id, recipient_id, client_id, body, created FROM messages ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'messages_v5';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages_v5', seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_v5 RENAME TO messages;
CREATE UNIQUE INDEX messages_client ON messages (sender_id, client_id);
CREATE INDEX messages_recipient ON messages (recipient_id, id);
CREATE INDEX messages_pair ON messages (sender_id, recipient_id, id);
-- Partial: direct messages, most of the rows, do not pay for a group index.
CREATE INDEX messages_group ON messages (group_id, id) WHERE group_id IS NOT NULL;
