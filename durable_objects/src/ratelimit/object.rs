//! Runtime glue of the `RateLimiter` object: one object holds the GCRA state of many keys of one policy shard in
//! its SQLite storage (table `keys`), answers `/take`, `/standing` and `/ping`, and deletes expired keys from an
//! alarm. Invariants: a decision is answered only after the state it implies is stored; while any key is stored, an
//! alarm is pending.

use std::cell::Cell;

use worker::{
    durable_object, js_sys, wasm_bindgen, Date, DurableObject, Env, Method, Request, Response,
    Result, ScheduledTime, SqlStorage, SqlStorageValue, State, Storage,
};

use super::gcra::KeyState;
use super::limiter::{self, KeyStore, LimiterError};
use super::protocol::{PingReply, TakeRequest, LATE_HEADER, PING_PATH, STANDING_PATH, TAKE_PATH};
use crate::debug_panic;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, tat_ms INTEGER NOT NULL, \
     tat_frac INTEGER NOT NULL, scale INTEGER NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS keys_by_expiry ON keys (expires_ms)",
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), pings INTEGER NOT NULL)",
];

/// What the object knows about its alarm without asking storage.
#[derive(Clone, Copy)]
enum Alarm {
    Unknown,
    Pending(u64),
    None,
}

#[durable_object]
pub struct RateLimiter {
    sql: SqlStorage,
    storage: Storage,
    alarm: Cell<Alarm>,
    takes: Cell<u64>,
}

struct SqlStore<'a>(&'a SqlStorage);

#[derive(serde::Deserialize)]
struct StateRow {
    tat_ms: i64,
    tat_frac: i64,
    scale: i64,
}

#[derive(serde::Deserialize)]
struct Number {
    n: Option<i64>,
}

fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

impl SqlStore<'_> {
    fn number(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> std::result::Result<Option<i64>, String> {
        let rows: Vec<Number> = self
            .0
            .exec(query, bindings)
            .and_then(|c| c.to_array())
            .map_err(|e| e.to_string())?;
        Ok(rows.first().and_then(|r| r.n))
    }
}

impl KeyStore for SqlStore<'_> {
    fn load(&self, key: &str) -> std::result::Result<Option<KeyState>, String> {
        let rows: Vec<StateRow> = self
            .0
            .exec(
                "SELECT tat_ms, tat_frac, scale FROM keys WHERE key = ?",
                vec![key.into()],
            )
            .and_then(|c| c.to_array())
            .map_err(|e| e.to_string())?;
        Ok(rows.first().map(|r| KeyState {
            tat_ms: r.tat_ms.max(0) as u64,
            tat_frac: r.tat_frac.clamp(0, i64::from(u32::MAX)) as u32,
            scale: r.scale.clamp(1, i64::from(u32::MAX)) as u32,
        }))
    }

    fn save(&self, key: &str, state: &KeyState) -> std::result::Result<(), String> {
        self.0
            .exec(
                "INSERT INTO keys (key, tat_ms, tat_frac, scale, expires_ms) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET tat_ms = excluded.tat_ms, tat_frac = excluded.tat_frac, \
                 scale = excluded.scale, expires_ms = excluded.expires_ms",
                vec![
                    key.into(),
                    int(state.tat_ms),
                    int(u64::from(state.tat_frac)),
                    int(u64::from(state.scale)),
                    int(state.expires_at_ms()),
                ],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn delete_expired(&self, now_ms: u64) -> std::result::Result<u64, String> {
        let cursor = self
            .0
            .exec("DELETE FROM keys WHERE expires_ms <= ?", vec![int(now_ms)])
            .map_err(|e| e.to_string())?;
        let _ = cursor.to_array::<serde_json::Value>();
        Ok(cursor.rows_written() as u64)
    }

    fn next_expiry(&self) -> std::result::Result<Option<u64>, String> {
        Ok(self
            .number("SELECT MIN(expires_ms) AS n FROM keys", vec![])?
            .map(|n| n.max(0) as u64))
    }

    fn count(&self) -> std::result::Result<u64, String> {
        Ok(self
            .number("SELECT COUNT(*) AS n FROM keys", vec![])?
            .unwrap_or(0)
            .max(0) as u64)
    }
}

fn at(ms: u64) -> ScheduledTime {
    ScheduledTime::new(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        ms as f64,
    )))
}

fn limiter_error(error: LimiterError) -> Result<Response> {
    match error {
        LimiterError::BadRequest(message) => Response::error(message, 400),
        LimiterError::Storage(detail) => Response::error(format!("storage: {detail}"), 500),
        // Never read by the Worker that sent it (it answered at the deadline), unless the clocks disagree.
        LimiterError::PastDeadline { late_ms } => {
            let mut response = Response::error(
                format!("arrived {late_ms} ms past its deadline; nothing spent"),
                503,
            )?;
            response
                .headers_mut()
                .set(LATE_HEADER, &late_ms.to_string())?;
            Ok(response)
        }
    }
}

impl RateLimiter {
    async fn pending_alarm(&self) -> Result<Option<u64>> {
        if let Alarm::Unknown = self.alarm.get() {
            let stored = self.storage.get_alarm().await?;
            self.alarm.set(match stored {
                Some(ms) => Alarm::Pending(ms.max(0) as u64),
                None => Alarm::None,
            });
        }
        Ok(match self.alarm.get() {
            Alarm::Pending(ms) => Some(ms),
            _ => None,
        })
    }

    async fn schedule(&self, expiry: u64, now_ms: u64) -> Result<()> {
        if let Some(when) = limiter::alarm_after_store(self.pending_alarm().await?, expiry, now_ms)
        {
            self.storage.set_alarm(at(when)).await?;
            self.alarm.set(Alarm::Pending(when));
        }
        Ok(())
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        let storage = state.storage();
        let sql = storage.sql();
        for statement in SCHEMA {
            // A failure here resurfaces, with its message, on the first query of the first request.
            let _ = sql.exec(statement, None);
        }
        Self {
            sql,
            storage,
            alarm: Cell::new(Alarm::Unknown),
            takes: Cell::new(0),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.method() != Method::Post {
            return Response::error("rate limiter paths take POST", 405);
        }
        let path = req.path();
        let header = |name: &str| req.headers().get(name).ok().flatten();
        debug_panic::panic_if_asked(
            true,
            &path,
            || debug_panic::header_on(header(debug_panic::HEADER).as_deref()),
            || "the rate limiter".to_owned(),
            || header("x-request-id"),
        );
        let store = SqlStore(&self.sql);
        match path.as_str() {
            TAKE_PATH => {
                self.takes.set(self.takes.get() + 1);
                let Ok(take) = req.json::<TakeRequest>().await else {
                    return Response::error("body must be a TakeRequest", 400);
                };
                // Read once the body is in, as the take is decided: awaiting it let time pass (and other requests
                // run), and a take judged by the time its request began could spend past its deadline.
                let now_ms = Date::now().as_millis();
                match limiter::take(&store, &take, now_ms) {
                    Ok((reply, expiry)) => {
                        if let Some(expiry) = expiry {
                            // The state is stored: an alarm that could not be set is only late cleanup (the next
                            // take sets it), not a reason to answer 500 and have the Worker fail open.
                            if let Err(e) = self.schedule(expiry, now_ms).await {
                                worker::console_warn!(
                                    "{}",
                                    crate::log::line(
                                        crate::log::Level::Warn,
                                        "ratelimit_cleanup_alarm_not_set",
                                        serde_json::json!({"detail": e.to_string()}),
                                    )
                                );
                            }
                        }
                        Response::from_json(&reply)
                    }
                    Err(error) => limiter_error(error),
                }
            }
            STANDING_PATH => {
                let Ok(take) = req.json::<TakeRequest>().await else {
                    return Response::error("body must be a TakeRequest", 400);
                };
                let now_ms = Date::now().as_millis();
                match limiter::standing(&store, &take, now_ms) {
                    Ok(reply) => Response::from_json(&reply),
                    Err(error) => limiter_error(error),
                }
            }
            PING_PATH => {
                let pings = store
                    .number(
                        "INSERT INTO meta (id, pings) VALUES (1, 1) \
                         ON CONFLICT (id) DO UPDATE SET pings = pings + 1 RETURNING pings AS n",
                        vec![],
                    )
                    .map_err(worker::Error::RustError)?
                    .unwrap_or(0)
                    .max(0) as u64;
                let keys = store.count().map_err(worker::Error::RustError)?;
                Response::from_json(&PingReply {
                    pings,
                    keys,
                    takes: self.takes.get(),
                })
            }
            _ => Response::error("unknown rate limiter path", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm.set(Alarm::None);
        let (deleted, next) = limiter::sweep(&SqlStore(&self.sql), Date::now().as_millis())
            .map_err(worker::Error::RustError)?;
        if let Some(next) = next {
            self.storage.set_alarm(at(next)).await?;
            self.alarm.set(Alarm::Pending(next));
        }
        Response::ok(format!("swept {deleted} expired keys"))
    }
}
