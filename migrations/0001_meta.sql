-- 0001: bookkeeping the Worker itself reads. `/health/ready` checks this table exists, which proves migrations ran.
CREATE TABLE IF NOT EXISTS edge_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO edge_meta (key, value) VALUES ('schema', 'edgekit');
