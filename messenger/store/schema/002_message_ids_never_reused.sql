-- engines: sqlite
-- Messenger schema, version 2: message ids are never handed out twice.
-- Clients sync "everything after the last message id I saw". SQLite gives a new row the
-- largest id + 1, so when the newest messages were deleted (their sender's account was
-- deleted) the next message could get an id a client had already seen, and that client
-- would never sync it. AUTOINCREMENT (SERIAL_ID) never reuses an id. The table is rebuilt
-- with the same rows and ids. PostgreSQL identity columns never reuse ids: nothing to do.

CREATE TABLE messages_v2 (
    id SERIAL_ID,
    sender_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
INSERT INTO messages_v2 (id, sender_id, recipient_id, client_id, body, created)
    SELECT id, sender_id, recipient_id, client_id, body, created FROM messages ORDER BY id;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;
CREATE UNIQUE INDEX messages_client ON messages (sender_id, client_id);
CREATE INDEX messages_recipient ON messages (recipient_id, id);
CREATE INDEX messages_pair ON messages (sender_id, recipient_id, id);
