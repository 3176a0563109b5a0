-- 0006: when a session was last rotated (src/session/handler/store.rs `rotate`). A session is rotated at most once per
-- SESSION_ROTATE_MIN_SECS; a refresh sooner gets an access token and keeps its session token. Without it, whoever
-- held a stolen token could refresh in a loop until the owner's copy fell out of the remembered retired ids (the
-- latest few per session), so that the owner's return no longer revoked the thief's session.
ALTER TABLE sessions ADD COLUMN rotated_at INTEGER;
INSERT OR REPLACE INTO edge_meta (key, value) VALUES ('schema_version', '6');
