-- 0003: refresh-token reuse detection (src/session/). A session keeps one `family` id across rotations (its first
-- id), and each id a rotation retires is remembered until the session's absolute limit: a retired token presented
-- again after SESSION_REUSE_GRACE_SECS was copied, and the whole session is revoked (OAuth 2.0 Security BCP,
-- refresh token rotation).
ALTER TABLE sessions ADD COLUMN family TEXT;
UPDATE sessions SET family = id WHERE family IS NULL;
CREATE INDEX IF NOT EXISTS sessions_by_family ON sessions (family);
CREATE TABLE IF NOT EXISTS retired_session_ids (
    id         TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    retired_at INTEGER NOT NULL,
    -- The session's absolute limit (created_at + SESSION_MAX_SECS): past it the row is only clutter.
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS retired_by_expiry ON retired_session_ids (expires_at);
