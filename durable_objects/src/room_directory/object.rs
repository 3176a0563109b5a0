//! Runtime glue of a room-directory shard: one SQLite row per room that reported to it, the newest report kept
//! (`protocol::Report`), stale rows deleted when the shard is listed.

use worker::{
    durable_object, wasm_bindgen, DurableObject, Env, Request, Response, Result, SqlStorage, State,
};

use super::protocol::{Listed, Report, PATH_LIST, PATH_REPORT, STALE_BEFORE_PARAM};

#[durable_object]
pub struct RoomDirectory {
    sql: SqlStorage,
}

impl RoomDirectory {
    fn schema(&self) -> Result<()> {
        // `rooms` was the table before reports were ordered and expired; its rows are superseded within one
        // report interval, so it is dropped rather than migrated.
        self.sql.exec("DROP TABLE IF EXISTS rooms", None)?;
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS room_reports (room TEXT PRIMARY KEY, members INTEGER NOT NULL, \
             updated_ms INTEGER NOT NULL, seq INTEGER NOT NULL)",
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
        self.schema()?;
        match req.path().as_str() {
            PATH_REPORT => {
                let report: Report = req.json().await?;
                // An emptied room stays as a row with 0 members until it is stale: a late report from before it
                // emptied is older, and cannot list it again.
                self.sql.exec(
                    "INSERT INTO room_reports (room, members, updated_ms, seq) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (room) DO UPDATE SET members = excluded.members, \
                     updated_ms = excluded.updated_ms, seq = excluded.seq \
                     WHERE excluded.updated_ms > room_reports.updated_ms \
                     OR (excluded.updated_ms = room_reports.updated_ms AND excluded.seq > room_reports.seq)",
                    vec![
                        report.room.into(),
                        i64::from(report.members).into(),
                        (report.updated_ms as i64).into(),
                        (report.seq as i64).into(),
                    ],
                )?;
                Response::empty().map(|r| r.with_status(204))
            }
            PATH_LIST => {
                let stale_before = req
                    .url()?
                    .query_pairs()
                    .find(|(k, _)| k == STALE_BEFORE_PARAM)
                    .and_then(|(_, v)| v.parse::<i64>().ok())
                    .unwrap_or(0);
                self.sql.exec(
                    "DELETE FROM room_reports WHERE updated_ms < ?",
                    vec![stale_before.into()],
                )?;
                let rooms: Vec<Listed> = self
                    .sql
                    .exec(
                        "SELECT room, members, updated_ms FROM room_reports WHERE members > 0 ORDER BY room",
                        None,
                    )?
                    .to_array()?;
                Response::from_json(&rooms)
            }
            _ => Response::error("unknown directory path", 404),
        }
    }
}
