//! Runtime glue of a room-directory shard: one SQLite row per room that reported to it.

use worker::{
    durable_object, wasm_bindgen, DurableObject, Env, Request, Response, Result, SqlStorage, State,
};

use super::protocol::{ActiveRoom, Report, PATH_LIST, PATH_REPORT};

#[durable_object]
pub struct RoomDirectory {
    sql: SqlStorage,
}

impl RoomDirectory {
    fn schema(&self) -> Result<()> {
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, members INTEGER NOT NULL, updated_ms INTEGER NOT NULL)",
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
                if report.members == 0 {
                    self.sql
                        .exec("DELETE FROM rooms WHERE room = ?", vec![report.room.into()])?;
                } else {
                    self.sql.exec(
                        "INSERT INTO rooms (room, members, updated_ms) VALUES (?, ?, ?) \
                         ON CONFLICT (room) DO UPDATE SET members = excluded.members, updated_ms = excluded.updated_ms",
                        vec![
                            report.room.into(),
                            i64::from(report.members).into(),
                            (report.updated_ms as i64).into(),
                        ],
                    )?;
                }
                Response::empty().map(|r| r.with_status(204))
            }
            PATH_LIST => {
                let rooms: Vec<ActiveRoom> = self
                    .sql
                    .exec(
                        "SELECT room, members FROM rooms WHERE members > 0 ORDER BY room",
                        None,
                    )?
                    .to_array()?;
                Response::from_json(&rooms)
            }
            _ => Response::error("unknown directory path", 404),
        }
    }
}
