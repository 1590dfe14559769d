-- Messenger schema, version 15: blocked users (issue 22).
-- One row per (owner, blocked): the owner refuses the blocked user's direct messages and
-- calls. One direction only, like contacts. The server keeps every pair in memory (a set
-- lookup on the message path) and reads this table at start.

CREATE TABLE blocks (
    owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (owner_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);
