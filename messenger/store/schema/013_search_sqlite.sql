-- engines: sqlite
-- Messenger schema, version 13 (SQLite): full-text search over message bodies (issue 15).
-- An FTS5 index without a copy of the text (content=''): the words of each body, and in
-- a second column ``vis`` the conversation a message belongs to, as tokens: "u<sender>
-- u<recipient>" for a direct message, "g<group>" for a group message. A search asks for
-- the words AND one of the caller's conversation tokens, so the index itself narrows the
-- matches to the caller's conversations instead of every user's. Prefix indexes of 2, 3
-- and 4 characters make "words starting with" queries cheap (a longer prefix merges the
-- few words that start with it). Triggers keep the index in step
-- with every insert, edit (body update), deletion (the body becomes '') and row delete
-- (retention, deleted accounts); each removes exactly the values it indexed.

CREATE VIRTUAL TABLE messages_fts USING fts5(body, vis, content='', prefix='2 3 4', tokenize='unicode61 remove_diacritics 2');
INSERT INTO messages_fts (rowid, body, vis) SELECT id, body, CASE WHEN group_id IS NULL THEN 'u' || sender_id || ' u' || recipient_id ELSE 'g' || group_id END FROM messages;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN INSERT INTO messages_fts (rowid, body, vis) VALUES (new.id, new.body, CASE WHEN new.group_id IS NULL THEN 'u' || new.sender_id || ' u' || new.recipient_id ELSE 'g' || new.group_id END); END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN INSERT INTO messages_fts (messages_fts, rowid, body, vis) VALUES ('delete', old.id, old.body, CASE WHEN old.group_id IS NULL THEN 'u' || old.sender_id || ' u' || old.recipient_id ELSE 'g' || old.group_id END); END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN INSERT INTO messages_fts (messages_fts, rowid, body, vis) VALUES ('delete', old.id, old.body, CASE WHEN old.group_id IS NULL THEN 'u' || old.sender_id || ' u' || old.recipient_id ELSE 'g' || old.group_id END); INSERT INTO messages_fts (rowid, body, vis) VALUES (new.id, new.body, CASE WHEN new.group_id IS NULL THEN 'u' || new.sender_id || ' u' || new.recipient_id ELSE 'g' || new.group_id END); END;
