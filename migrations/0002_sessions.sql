-- 0002: users and their sessions (the sessions capability, src/session/). D1 is the source of truth; KV only caches.
-- A session's id is the SHA-256 (hex) of its 256-bit random token: the token itself is never stored.
CREATE TABLE IF NOT EXISTS users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL UNIQUE,
    -- The password hash and every parameter needed to recompute it (see src/session/password.rs).
    password_algorithm  TEXT NOT NULL,
    password_iterations INTEGER NOT NULL,
    password_salt       TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    -- JSON array of permission strings, copied into access tokens.
    permissions         TEXT NOT NULL DEFAULT '[]',
    created_at          INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id, expires_at);
