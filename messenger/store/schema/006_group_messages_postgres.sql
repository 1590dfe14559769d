-- engines: postgres
-- Messenger schema, version 6 (PostgreSQL): what 005 does on SQLite, in place. A message
-- belongs to a direct conversation (recipient_id) or to a group (group_id), exactly one;
-- ``mentions`` holds the account names a group message mentions. Dropping NOT NULL and
-- adding NULL columns change no rows; the check and the index read the table once.

ALTER TABLE messages ALTER COLUMN recipient_id DROP NOT NULL;
ALTER TABLE messages ADD COLUMN group_id BIGINT REFERENCES chat_groups (id) ON DELETE CASCADE;
ALTER TABLE messages ADD COLUMN mentions TEXT;
ALTER TABLE messages ADD CONSTRAINT messages_one_conversation
    CHECK ((recipient_id IS NULL) <> (group_id IS NULL));
-- Partial: direct messages, most of the rows, do not pay for a group index.
CREATE INDEX messages_group ON messages (group_id, id) WHERE group_id IS NOT NULL;
