-- engines: postgres
-- Messenger schema, version 14 (PostgreSQL): full-text search over message bodies (issue
-- 15), what 013 does with FTS5 on SQLite. ``search`` holds the body's words (weight A,
-- the 'simple' configuration: no stemming, no stop words, like SQLite's unicode61) and the
-- message's conversation as tokens (weight D): "u<sender> u<recipient>" for a direct
-- message, "g<group>" for a group message; a search asks for the words AND one of the
-- caller's conversation tokens, so the GIN index narrows the matches to the caller's
-- conversations. A trigger keeps it in step with every insert and every change of the
-- body (an edit; a deletion, which empties the body).

ALTER TABLE messages ADD COLUMN search tsvector;
CREATE FUNCTION messages_search_vector(body TEXT, sender BIGINT, recipient BIGINT, grp BIGINT) RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$ SELECT setweight(to_tsvector('simple', body), 'A') || setweight(to_tsvector('simple', CASE WHEN grp IS NULL THEN 'u' || sender || ' u' || recipient ELSE 'g' || grp END), 'D') $$;
CREATE FUNCTION messages_search_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.search := messages_search_vector(NEW.body, NEW.sender_id, NEW.recipient_id, NEW.group_id); RETURN NEW; END $$;
CREATE TRIGGER messages_search BEFORE INSERT OR UPDATE OF body ON messages FOR EACH ROW EXECUTE FUNCTION messages_search_update();
UPDATE messages SET search = messages_search_vector(body, sender_id, recipient_id, group_id);
CREATE INDEX messages_search ON messages USING GIN (search);
