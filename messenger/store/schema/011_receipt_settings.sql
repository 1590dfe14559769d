-- Messenger schema, version 11: a user may stop sending read receipts (issue 15).
-- With read_receipts = 0 the server still keeps the user's read markers (unread counts)
-- and still tells senders that messages were delivered, but no longer moves the
-- read_up_to the others see (010).

ALTER TABLE users ADD COLUMN read_receipts INTEGER NOT NULL DEFAULT 1;
