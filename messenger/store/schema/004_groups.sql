-- Messenger schema, version 4: group conversations and read markers.
-- A group's messages live in the messages table beside direct ones (005, 006), so they
-- take their ids from the same sequence and a user's sync is one cursor over both.
-- Membership is a history: each row is one window of membership, from the first message
-- id the member may see (joined_after + 1) to the last one (left_at; NULL while still a
-- member). Both bounds are read from the message sequence inside the write transaction
-- that adds or removes the member, so a message is either before the change or after it.
-- A group's id is never handed out twice (SERIAL_ID): clients keep group ids.
-- members_version grows with every change to the members, their roles or announce_only,
-- so a server may keep a group's members in memory and check one number per message.

CREATE TABLE chat_groups (
    id SERIAL_ID,
    name TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    announce_only INTEGER NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    last_msg_id BIGINT NOT NULL DEFAULT 0,
    members_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE group_members (
    id AUTO_ID,
    group_id INTEGER NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    joined_after BIGINT NOT NULL,
    left_at BIGINT,
    read_up_to BIGINT NOT NULL DEFAULT 0,
    joined_time DOUBLE PRECISION NOT NULL,
    left_time DOUBLE PRECISION
);
CREATE UNIQUE INDEX group_members_current ON group_members (group_id, user_id)
    WHERE left_at IS NULL;
CREATE INDEX group_members_user ON group_members (user_id, group_id);
CREATE INDEX group_members_group ON group_members (group_id, user_id);

-- How far a user has read a direct conversation with another user (a group's marker is
-- group_members.read_up_to). Markers only move forward.
CREATE TABLE read_markers (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    other_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    up_to BIGINT NOT NULL,
    PRIMARY KEY (user_id, other_id)
);
CREATE INDEX read_markers_other ON read_markers (other_id);

-- Conversations that existed before read markers count as read up to now: an upgrade
-- must not show every old message as unread.
INSERT INTO read_markers (user_id, other_id, up_to)
    SELECT recipient_id, sender_id, MAX(id) FROM messages GROUP BY recipient_id, sender_id;
