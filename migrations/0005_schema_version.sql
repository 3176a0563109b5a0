-- 0005: the schema version, which `/health/ready` compares with the one the build needs (src/health/mod.rs
-- `SCHEMA_VERSION`). It checked only that 0001 had run, so a deploy whose later migrations were never applied was
-- ready while every login answered 500. Every migration from this one on ends by setting it to its own number
-- (a host test holds the newest file and the constant to that).
INSERT OR REPLACE INTO edge_meta (key, value) VALUES ('schema_version', '5');
