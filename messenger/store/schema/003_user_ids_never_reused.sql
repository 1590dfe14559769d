-- engines: sqlite
-- Messenger schema, version 3: account ids are never handed out twice.
-- SQLite gives a new row the largest id + 1, so deleting the newest account let the next
-- registration get its id, while state kept by id (sessions, caches, rate limits) could
-- outlive the deleted account and be mistaken for the new one. AUTOINCREMENT (SERIAL_ID)
-- never reuses an id. The table is rebuilt with the same rows and ids; the migration runs
-- with foreign keys off (db.migrate_sqlite), so the tables that refer to users keep their
-- rows, and every reference is checked before the commit. PostgreSQL identity columns
-- never reuse ids: nothing to do there.

CREATE TABLE users_v3 (
    id SERIAL_ID,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    is_premium INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    first_failure DOUBLE PRECISION,
    locked_until DOUBLE PRECISION,
    admin_locked INTEGER NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    password_changed DOUBLE PRECISION NOT NULL
);
INSERT INTO users_v3 (id, name, name_lower, email, email_lower, password_hash, is_admin,
                      is_premium, failed_logins, first_failure, locked_until, admin_locked,
                      created, password_changed)
    SELECT id, name, name_lower, email, email_lower, password_hash, is_admin, is_premium,
           failed_logins, first_failure, locked_until, admin_locked, created, password_changed
    FROM users ORDER BY id;
DROP TABLE users;
ALTER TABLE users_v3 RENAME TO users;
