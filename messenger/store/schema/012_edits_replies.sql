-- Messenger schema, version 12: edits, deletions and replies (issue 15).
-- ``reply_to`` is the id of the earlier message of the same conversation that a message
-- quotes (checked when it is stored; no foreign key: the quoted message may later be
-- deleted by retention, and the reply stays). ``edited`` is when the author last changed
-- the body, ``deleted`` when the message was deleted for everyone: its body is then the
-- empty string (the text is gone from the row, not hidden) and its mentions are cleared.
-- message_changes holds one row per edited or deleted message, with an id of its own
-- sequence that grows with every change (a change to a message already changed replaces
-- its row with a new id): a client that was offline asks for the changes above the last
-- one it saw (``sync_changes``). The conversation columns are copies of the message's,
-- so that a user's changes are found by index like its messages.

ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN edited DOUBLE PRECISION;
ALTER TABLE messages ADD COLUMN deleted DOUBLE PRECISION;

CREATE TABLE message_changes (
    id SERIAL_ID,
    msg_id BIGINT NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    sender_id BIGINT NOT NULL,
    recipient_id BIGINT,
    group_id BIGINT,
    actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX message_changes_recipient ON message_changes (recipient_id, id);
CREATE INDEX message_changes_sender ON message_changes (sender_id, id);
CREATE INDEX message_changes_group ON message_changes (group_id, id) WHERE group_id IS NOT NULL;
