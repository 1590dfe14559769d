-- Messenger schema, version 10: delivered and read receipts (issue 15).
-- One row per reader and conversation (a direct conversation with ``other_id``, or a
-- group): how far the reader's client has *received* it (delivered_up_to) and how far
-- the reader has *read* it, as shown to the others (read_up_to: it stays where it was
-- while the reader has read receipts turned off; the reader's own marker, for unread
-- counts, is read_markers / group_members.read_up_to). Values only move forward.
-- ``id`` is the change cursor of ``sync_receipts``: every change deletes the row and
-- inserts it again under a new id (SERIAL_ID: never handed out twice), so "rows with an
-- id above N" are exactly the receipts changed since a client last read them.

CREATE TABLE receipts (
    id SERIAL_ID,
    reader_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    other_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER REFERENCES chat_groups (id) ON DELETE CASCADE,
    delivered_up_to BIGINT NOT NULL DEFAULT 0,
    read_up_to BIGINT NOT NULL DEFAULT 0,
    CHECK ((other_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX receipts_direct ON receipts (reader_id, other_id)
    WHERE other_id IS NOT NULL;
CREATE UNIQUE INDEX receipts_group ON receipts (reader_id, group_id)
    WHERE group_id IS NOT NULL;
-- sync_receipts: the readers of one user's direct messages, and of one group, by change.
CREATE INDEX receipts_other_changes ON receipts (other_id, id) WHERE other_id IS NOT NULL;
CREATE INDEX receipts_group_changes ON receipts (group_id, id) WHERE group_id IS NOT NULL;

-- Conversations read before receipts existed show as delivered and read up to the
-- reader's marker: an upgrade must not show old messages as never delivered.
INSERT INTO receipts (reader_id, other_id, delivered_up_to, read_up_to)
    SELECT user_id, other_id, up_to, up_to FROM read_markers WHERE up_to > 0;
INSERT INTO receipts (reader_id, group_id, delivered_up_to, read_up_to)
    SELECT user_id, group_id, read_up_to, read_up_to FROM group_members
    WHERE left_at IS NULL AND read_up_to > 0;
