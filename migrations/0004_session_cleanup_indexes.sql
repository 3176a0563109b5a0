-- 0004: indexes for the statements sessions run on every rotation and login (src/session/handler/store.rs).
-- A rotation looks up and bounds a session's retired ids by family (it scanned the whole table twice inside the
-- rotation's transaction); a login deletes a bounded batch of expired sessions (rows were never deleted, and kept
-- their IP and user agent for good), which needs them by expiry.
CREATE INDEX IF NOT EXISTS retired_by_family ON retired_session_ids (family, retired_at);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
