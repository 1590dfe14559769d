-- Messenger schema, version 7: files in conversations (docs/PROTOCOL.md, "Files").
-- Content is stored once, by its SHA-256 (blobs: the file on disk is named by the hash,
-- never by anything a client chose). A file is one upload's view of a blob: its name,
-- MIME type and owner; two users who upload the same bytes get two files, one blob.
-- A message carries at most one attachment: the file it refers to (file_id, which is
-- what gives a conversation's participants the right to download the file) and the
-- attachment object as it is pushed and synced (attachment, JSON). Unfinished uploads
-- count against their owner's quota until they finish, are cancelled or expire.
-- No foreign key from messages to files: a file is only deleted once no message refers
-- to it (the housekeeping checks that in its transaction), and the messages table is
-- rebuilt by some migrations, which a reference from it would complicate.

CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);

CREATE TABLE files (
    id SERIAL_ID,
    sha256 TEXT NOT NULL REFERENCES blobs (sha256),
    owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    upload_id BIGINT,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    mime TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX files_owner ON files (owner_id, sha256);
CREATE INDEX files_blob ON files (sha256);
CREATE UNIQUE INDEX files_upload ON files (upload_id);

CREATE TABLE uploads (
    id SERIAL_ID,
    owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    known INTEGER NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    touched DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX uploads_content ON uploads (owner_id, sha256, size);
CREATE INDEX uploads_touched ON uploads (touched);

ALTER TABLE messages ADD COLUMN file_id BIGINT;
ALTER TABLE messages ADD COLUMN attachment TEXT;
CREATE INDEX messages_file ON messages (file_id) WHERE file_id IS NOT NULL;
