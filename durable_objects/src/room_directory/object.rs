//! Runtime glue of a room-directory shard: one SQLite row per room that reported to it, the newest report kept
//! (`protocol::Report`), stale rows deleted when the shard is listed and, a few at a time, on each report — so what
//! a shard stores is bounded by the rooms reported within their last three intervals, whether or not anyone lists.

use worker::{
    durable_object, wasm_bindgen, Date, DurableObject, Env, Method, Request, Response, Result,
    SqlStorage, State,
};

use super::protocol::{list_limit, Count, Listed, Report, PATH_COUNT, PATH_LIST, PATH_REPORT};
use crate::debug_panic;

/// Stale rows a report deletes at most (oldest first is not needed: any stale row is as deletable as another).
const PRUNE_PER_REPORT: i64 = 16;

#[durable_object]
pub struct RoomDirectory {
    sql: SqlStorage,
}

impl RoomDirectory {
    fn schema(&self) -> Result<()> {
        // `rooms` (and, briefly, `room_reports`) held reports before they were ordered and expired; their rows are
        // superseded within one report interval, so they are dropped rather than migrated.
        self.sql.exec("DROP TABLE IF EXISTS rooms", None)?;
        self.sql.exec("DROP TABLE IF EXISTS room_reports", None)?;
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS room_rows (room TEXT PRIMARY KEY, members INTEGER NOT NULL, \
             updated_ms INTEGER NOT NULL, seq INTEGER NOT NULL, expires_ms INTEGER NOT NULL)",
            None,
        )?;
        // Stale rows are found by expiry on every report: without the index each report would scan the shard.
        self.sql.exec(
            "CREATE INDEX IF NOT EXISTS room_rows_by_expiry ON room_rows (expires_ms)",
            None,
        )?;
        Ok(())
    }
}

impl DurableObject for RoomDirectory {
    fn new(state: State, _env: Env) -> Self {
        Self {
            sql: state.storage().sql(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let header = |name: &str| req.headers().get(name).ok().flatten();
        debug_panic::panic_if_asked(
            req.method() == Method::Post,
            &path,
            || debug_panic::header_on(header(debug_panic::HEADER).as_deref()),
            || "a room-directory shard".to_owned(),
            || header("x-request-id"),
        );
        self.schema()?;
        match path.as_str() {
            PATH_REPORT => {
                // A body that is no report is the caller's fault: answered 400, not thrown (a throw reached the room
                // as the parser's text and was logged here as an uncaught exception).
                let Ok(report) = req.json::<Report>().await else {
                    return Response::error("body must be a room report", 400);
                };
                let expires_ms = report.expires_ms();
                // An emptied room stays as a row with 0 members until it is stale: a late report from before it
                // emptied is older, and cannot list it again.
                self.sql.exec(
                    "INSERT INTO room_rows (room, members, updated_ms, seq, expires_ms) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (room) DO UPDATE SET members = excluded.members, \
                     updated_ms = excluded.updated_ms, seq = excluded.seq, expires_ms = excluded.expires_ms \
                     WHERE excluded.updated_ms > room_rows.updated_ms \
                     OR (excluded.updated_ms = room_rows.updated_ms AND excluded.seq > room_rows.seq)",
                    vec![
                        report.room.into(),
                        i64::from(report.members).into(),
                        (report.updated_ms as i64).into(),
                        (report.seq as i64).into(),
                        (expires_ms as i64).into(),
                    ],
                )?;
                // Rows were deleted only by a listing: a deployment that never lists `GET /rooms` kept a row for
                // every room ever joined (any ticket opens one), and the first listing had them all to delete.
                // A report adds at most one row and deletes up to PRUNE_PER_REPORT stale ones, so stale rows go
                // faster than reports can add rows, and no report does more than a bounded amount of work.
                self.sql.exec(
                    "DELETE FROM room_rows WHERE room IN \
                     (SELECT room FROM room_rows WHERE expires_ms < ? LIMIT ?)",
                    vec![
                        (Date::now().as_millis() as i64).into(),
                        PRUNE_PER_REPORT.into(),
                    ],
                )?;
                Response::empty().map(|r| r.with_status(204))
            }
            PATH_LIST => {
                // Each row expires by its own room's interval (the report says it), on this object's clock.
                let now = Date::now().as_millis() as i64;
                self.sql.exec(
                    "DELETE FROM room_rows WHERE expires_ms < ?",
                    vec![now.into()],
                )?;
                // The largest first, as many as asked for: the public listing shows a bounded number of rooms,
                // and a shard of many thousands must not ship them all on every listing. Emptied rooms come last,
                // within the limit: a room that moved here (the shard count changed) and emptied must outweigh
                // the older count its old shard still lists (`merge` keeps each room's newest report) — left out,
                // the room was listed with its old members until that report went stale.
                let limit = list_limit(req.url()?.query());
                let rooms: Vec<Listed> = self
                    .sql
                    .exec(
                        "SELECT room, members, updated_ms, expires_ms FROM room_rows \
                         ORDER BY members DESC, room LIMIT ?",
                        vec![i64::from(limit).into()],
                    )?
                    .to_array()?;
                Response::from_json(&rooms)
            }
            PATH_COUNT => {
                #[derive(serde::Deserialize)]
                struct Rows {
                    n: i64,
                }
                let rows: Vec<Rows> = self
                    .sql
                    .exec("SELECT COUNT(*) AS n FROM room_rows", None)?
                    .to_array()?;
                let rows = rows.first().map_or(0, |r| r.n.max(0) as u64);
                Response::from_json(&Count { rows })
            }
            _ => Response::error("unknown directory path", 404),
        }
    }
}
