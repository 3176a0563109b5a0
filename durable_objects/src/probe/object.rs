//! Runtime glue of the Probe object: one SQLite row counting pings.

use worker::{
    durable_object, wasm_bindgen, DurableObject, Env, Request, Response, Result, SqlStorage, State,
};

use super::protocol::PingReply;

#[durable_object]
pub struct Probe {
    sql: SqlStorage,
}

#[derive(serde::Deserialize)]
struct Row {
    pings: i64,
}

impl DurableObject for Probe {
    fn new(state: State, _env: Env) -> Self {
        Self {
            sql: state.storage().sql(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() != "/ping" {
            return Response::error("unknown probe path", 404);
        }
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY CHECK (id = 1), pings INTEGER NOT NULL)",
            None,
        )?;
        let rows: Vec<Row> = self
            .sql
            .exec(
                "INSERT INTO probe (id, pings) VALUES (1, 1) \
                 ON CONFLICT (id) DO UPDATE SET pings = pings + 1 RETURNING pings",
                None,
            )?
            .to_array()?;
        let pings = rows.first().map_or(0, |r| r.pings.max(0) as u64);
        Response::from_json(&PingReply { pings })
    }
}
