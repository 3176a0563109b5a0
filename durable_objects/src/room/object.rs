//! Runtime glue of the Room object: hibernating WebSockets (accepted by the state, a per-socket attachment with the
//! user and the awareness clients it announced, `ping` answered by auto-response), the SQLite update log behind
//! [`UpdateStore`], single-use tickets, and member-count reports to the room directory.
//!
//! Every message first makes sure the document is in memory, rebuilding it from snapshot + log when the object
//! was evicted or woke from hibernation. An update is appended to SQLite (synchronously, inside this turn) before
//! it is broadcast or answered.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use worker::js_sys::{Function, Reflect};
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    durable_object, js_sys, wasm_bindgen, Date, DurableObject, Env, Method, Request, RequestInit,
    Response, ResponseBuilder, Result, SqlStorage, SqlStorageValue, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

use super::document::Snapshot;
use super::limits::{
    self, EchoCredit, StoredBudgets, TokenBucket, REPLY_BYTES_BURST, REPLY_BYTES_PER_SECOND,
};
use super::log::{self, AcceptError, Accepted, Loaded, Outcome, Stored, UpdateStore};
use super::presence::{self, Announced, Presence};
use super::protocol::{
    close, echoable_close_code, session_ended, RoomSettings, TicketGrant, FAMILY_OF_LIVE_SESSION,
    HEADER_ROOM, HEADER_SETTINGS, LIVE_FAMILIES, NO_LIMIT_MARK, PATH_CONNECT, PATH_STATE,
    PATH_TICKET, SESSIONS_BINDING, TICKET_PARAM,
};
use super::wire::{self, AwarenessEntry, Message};
use crate::debug_panic;
use crate::log::{self as events, Level};
use crate::room_directory::protocol as directory;

/// Sockets one user may hold in a room: a member with the document open in several tabs and devices, not one taking
/// the room's [`Settings::max_members`](super::protocol::Settings) places alone.
const MAX_SOCKETS_PER_USER: usize = 16;

#[durable_object]
pub struct Room {
    state: State,
    env: Env,
    sql: SqlStorage,
    /// The runtime's storage object, for what workers-rs does not bind (`transactionSync`).
    storage: JsValue,
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    schema_ready: bool,
    loaded: Option<Loaded>,
    presence: Presence,
    /// Per user, not per socket: a member may hold 16 sockets, and one bucket each let one member send 16 times the
    /// rate (each update relayed to every member). A full bucket is forgotten (it equals a new one). Beside each, when
    /// it is full again as stored (see [`limits::worth_storing`]), if it is.
    buckets: HashMap<String, (TokenBucket, Option<u64>)>,
    /// Per user, like `buckets`: the bytes their sync requests, awareness queries and joins (the presence each is
    /// sent) may make the room encode and send them, shared by their sockets and kept after they close until full
    /// again. One per socket, dropped with
    /// it, gave each reconnect (a ticket's worth: 60 a minute) and each of a member's 16 sockets a fresh 4 MiB.
    replies: HashMap<String, (TokenBucket, Option<u64>)>,
    /// Whether this instance has read the budgets an earlier one stored (`room_budgets`): `buckets` and `replies` are
    /// memory, and a room that hibernated or was evicted started every member's full again — a member who waited
    /// ~10 s for it had a fresh 4 MiB of replies each time. Read on the first budget asked for; a failed read is
    /// tried again on the next, a bounded number of times ([`StoredBudgets`]).
    budgets_read: StoredBudgets,
    /// Awareness entries this instance broadcast to every member (news, removals): what copies are counted against.
    awareness_broadcast: u64,
    /// Per socket: the copies of presence it may still send uncharged (see [`EchoCredit`]).
    echoes: HashMap<u64, EchoCredit>,
    /// Each socket's id, keyed by the socket object (a `WeakMap`), so that copies — the most frequent frames — find
    /// their socket's credit without an attachment read. Filled from the attachment on a socket's first frame.
    sids: Option<js_sys::WeakMap>,
    settings: Option<RoomSettings>,
    name: Option<String>,
    /// This instance's directory reports so far (orders two reports of one millisecond).
    reports: u64,
    /// The sockets that left but are still open (their client has not answered the close): their frames are
    /// ignored. Read from the attachments once per instance (None until then), so it holds after hibernation, and
    /// kept here so the frames of members — awareness copies above all — never pay for an attachment read.
    gone: Option<Vec<WebSocket>>,
}

/// A member's budget kept across hibernation (`room_budgets.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    /// Messages: `RoomSettings::updates_per_second` and `update_burst`.
    Rate,
    /// Reply bytes: [`REPLY_BYTES_PER_SECOND`] and [`REPLY_BYTES_BURST`].
    Reply,
}

impl Budget {
    fn name(self) -> &'static str {
        match self {
            Budget::Rate => "rate",
            Budget::Reply => "reply",
        }
    }
}

/// What each socket carries through hibernation (well under the 2 KiB attachment limit: a handful of ids).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    sid: u64,
    user: String,
    /// Awareness client ids this socket announced, with their last clocks.
    announced: Vec<(u64, u64)>,
    /// Set when the socket leaves (the room closed it, or its client said goodbye). The runtime lists a socket until
    /// its close handshake ends, and a client that never answers the room's close frame would otherwise hold its
    /// member place for as long as it keeps the connection open.
    #[serde(default)]
    gone: bool,
    /// The family of the session its ticket was minted under (`None` for a ticket of no session): the socket is
    /// closed once no session of it is live ([`Room::close_ended_sessions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
}

#[derive(Deserialize)]
struct TicketRow {
    user_id: String,
    expires_ms: f64,
}

/// A ticket as a join reads it: its holder, its expiry and the session it was minted under.
#[derive(Deserialize)]
struct HeldTicket {
    user_id: String,
    expires_ms: f64,
    #[serde(default)]
    session_id: Option<String>,
    /// Set once a join found its session ended: the absolute session limit it was judged under
    /// ([`RoomSettings::ended_mark`]; final for a revocation or an expiry, but a raised limit can make a session
    /// ended by a lower one live again: [`RoomSettings::honours_ended_mark`]). 0: not found ended.
    #[serde(default)]
    session_ended: i64,
}

#[derive(Deserialize)]
struct FamilyRow {
    family: String,
}

#[derive(Deserialize)]
struct MetaRow {
    value: String,
}

/// The SQLite side of the update log: the object's SQL handle, and its storage object for `transactionSync`.
struct SqlStore<'a>(&'a SqlStorage, &'a JsValue);

fn blobs(sql: &SqlStorage, query: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for row in sql.exec(query, None)?.raw() {
        if let Some(SqlStorageValue::Blob(bytes)) = row?.into_iter().next() {
            out.push(bytes);
        }
    }
    Ok(out)
}

impl UpdateStore for SqlStore<'_> {
    fn load(&mut self) -> std::result::Result<Stored, String> {
        let snapshot = blobs(self.0, "SELECT data FROM room_snapshot WHERE id = 1")
            .map_err(|e| e.to_string())?
            .into_iter()
            .next();
        let log = blobs(self.0, "SELECT data FROM room_updates ORDER BY seq")
            .map_err(|e| e.to_string())?;
        let mut waiting = Vec::new();
        let rows = self
            .0
            .exec("SELECT data, since_ms FROM room_waiting ORDER BY seq", None)
            .map_err(|e| e.to_string())?;
        for row in rows.raw() {
            if let [SqlStorageValue::Blob(bytes), SqlStorageValue::Integer(since)] =
                row.map_err(|e| e.to_string())?.as_slice()
            {
                waiting.push((bytes.clone(), u64::try_from(*since).unwrap_or(0)));
            }
        }
        Ok(Stored {
            snapshot,
            log,
            waiting,
        })
    }

    fn append(&mut self, update: &[u8]) -> std::result::Result<(), String> {
        self.0
            .exec(
                "INSERT INTO room_updates (data) VALUES (?)",
                vec![update.to_vec().into()],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn append_waiting(&mut self, update: &[u8], since: u64) -> std::result::Result<(), String> {
        self.0
            .exec(
                "INSERT INTO room_waiting (data, since_ms) VALUES (?, ?)",
                vec![update.to_vec().into(), (since as i64).into()],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn compact(&mut self, snapshot: Snapshot) -> std::result::Result<(), String> {
        // Inside `transactionSync`, so a statement that fails rolls back the ones before it. Statements of one
        // synchronous turn are committed together, but one that throws does not undo the others: the snapshot and
        // the deletes would commit without the pending and waiting rows that were to restate what they replaced.
        // (workers-rs has no binding for it: the storage object's method is called as it is.)
        let sql = self.0.clone();
        let Snapshot {
            doc: snapshot,
            pending,
            waiting,
        } = snapshot;
        let body = Closure::once(move || -> std::result::Result<JsValue, JsValue> {
            let failed = |e: worker::Error| JsValue::from_str(&e.to_string());
            sql.exec(
                "INSERT INTO room_snapshot (id, data) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                vec![snapshot.into()],
            )
            .map_err(failed)?;
            sql.exec("DELETE FROM room_updates", None).map_err(failed)?;
            sql.exec("DELETE FROM room_waiting", None).map_err(failed)?;
            for part in pending {
                sql.exec(
                    "INSERT INTO room_updates (data) VALUES (?)",
                    vec![part.into()],
                )
                .map_err(failed)?;
            }
            for (part, since) in waiting {
                sql.exec(
                    "INSERT INTO room_waiting (data, since_ms) VALUES (?, ?)",
                    vec![part.into(), (since as i64).into()],
                )
                .map_err(failed)?;
            }
            Ok(JsValue::UNDEFINED)
        });
        let transaction = Reflect::get(self.1, &JsValue::from_str("transactionSync"))
            .and_then(|f| f.dyn_into::<Function>())
            .map_err(|_| "storage.transactionSync is missing".to_string())?;
        transaction
            .call1(self.1, body.as_ref())
            .map(|_| ())
            .map_err(|e| e.as_string().unwrap_or_else(|| format!("{e:?}")))
    }
}

/// Writes one event line (`crate::log::line`) with the console method of its level.
fn log_event(level: Level, msg: &str, fields: serde_json::Value) {
    let line = events::line(level, msg, fields);
    match level {
        Level::Info => worker::console_log!("{line}"),
        Level::Warn => worker::console_warn!("{line}"),
        Level::Error => worker::console_error!("{line}"),
    }
}

/// The `x-request-id` the Worker forwarded with a request, for this object's log lines about it.
fn request_id(req: &Request) -> Option<String> {
    req.headers().get("x-request-id").ok().flatten()
}

/// An error answer in the Worker's shape (`{"error": {"code", "message"}}`, `no-store`): a join's refusal goes
/// straight back to the client.
fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    // `from_json` labels it `application/json`, as the Worker labels its own answers, which these reach clients beside.
    let mut response =
        Response::from_json(&serde_json::json!({"error": {"code": code, "message": message}}))?
            .with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

/// Sends one frame to many sockets, copying it into JavaScript memory once.
fn send_all<'a>(sockets: impl Iterator<Item = &'a WebSocket>, frame: &[u8]) {
    let array = js_sys::Uint8Array::from(frame);
    let buffer = array.buffer();
    for ws in sockets {
        let _ = ws.as_ref().send_with_array_buffer(&buffer);
    }
}

fn same(a: &WebSocket, b: &WebSocket) -> bool {
    let a: &JsValue = a.as_ref().as_ref();
    let b: &JsValue = b.as_ref().as_ref();
    a == b
}

fn ticket_required() -> Result<Response> {
    json_error(
        401,
        "ticket_required",
        "join with a ticket from POST /rooms/{id}/ticket",
    )
}

/// A join with a ticket whose session has ended.
fn session_ended_refusal() -> Result<Response> {
    json_error(
        401,
        "session_ended",
        "the session this ticket was issued to has ended; sign in again",
    )
}

fn ticket_invalid() -> Result<Response> {
    json_error(
        401,
        "ticket_invalid",
        "the ticket is unknown, already used or expired",
    )
}

/// Close reasons are limited to 123 bytes.
fn shut(ws: &WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let _ = ws.close(Some(code), Some(&reason[..end]));
}

impl Room {
    fn schema(&self) -> Result<()> {
        if self.inner.borrow().schema_ready {
            return Ok(());
        }
        for ddl in [
            "CREATE TABLE IF NOT EXISTS room_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS room_updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS room_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS room_waiting (seq INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL, since_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS room_tickets (ticket TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS room_budgets (user_id TEXT NOT NULL, kind TEXT NOT NULL, full_at_ms INTEGER NOT NULL, PRIMARY KEY (user_id, kind))",
        ] {
            self.sql.exec(ddl, None)?;
        }
        // Tickets name the session they were minted under since rooms check it, and say once a join found that
        // session ended (`session_ended`); a room set up before keeps its table and gains the columns.
        #[derive(Deserialize)]
        struct Column {
            name: String,
        }
        let columns: Vec<Column> = self
            .sql
            .exec(
                "SELECT name FROM pragma_table_info('room_tickets') \
                 WHERE name IN ('session_id', 'session_ended')",
                None,
            )?
            .to_array()?;
        for (column, ddl) in [
            (
                "session_id",
                "ALTER TABLE room_tickets ADD COLUMN session_id TEXT",
            ),
            (
                "session_ended",
                "ALTER TABLE room_tickets ADD COLUMN session_ended INTEGER NOT NULL DEFAULT 0",
            ),
        ] {
            if !columns.iter().any(|c| c.name == column) {
                self.sql.exec(ddl, None)?;
            }
        }
        self.inner.borrow_mut().schema_ready = true;
        Ok(())
    }

    /// Whether this object was ever set up (its tables exist): read from the schema catalogue, which writes nothing.
    fn set_up(&self) -> Result<bool> {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        if self.inner.borrow().schema_ready {
            return Ok(true);
        }
        let rows: Vec<Count> = self
            .sql
            .exec(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'room_tickets'",
                None,
            )?
            .to_array()?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows: Vec<MetaRow> = self
            .sql
            .exec(
                "SELECT value FROM room_meta WHERE key = ?",
                vec![key.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.sql.exec(
            "INSERT INTO room_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// Stores the name and settings the Worker sent (the latest config wins).
    fn remember(&self, req: &Request) -> Result<()> {
        self.schema()?;
        if let Some(name) = req.headers().get(HEADER_ROOM)? {
            if self.inner.borrow().name.as_deref() != Some(name.as_str()) {
                self.set_meta("name", &name)?;
                self.inner.borrow_mut().name = Some(name);
            }
        }
        if let Some(raw) = req.headers().get(HEADER_SETTINGS)? {
            let settings: RoomSettings = serde_json::from_str(&raw)?;
            if self.inner.borrow().settings != Some(settings) {
                self.set_meta("settings", &raw)?;
                self.inner.borrow_mut().settings = Some(settings);
            }
        }
        Ok(())
    }

    /// The room's settings, from memory or (after hibernation) from SQLite.
    fn settings(&self) -> Result<RoomSettings> {
        if let Some(s) = self.inner.borrow().settings {
            return Ok(s);
        }
        self.schema()?;
        let raw = self
            .meta("settings")?
            .ok_or_else(|| worker::Error::RustError("room has no stored settings".into()))?;
        let settings: RoomSettings = serde_json::from_str(&raw)?;
        self.inner.borrow_mut().settings = Some(settings);
        Ok(settings)
    }

    fn name(&self) -> Result<Option<String>> {
        if let Some(n) = self.inner.borrow().name.clone() {
            return Ok(Some(n));
        }
        self.schema()?;
        let name = self.meta("name")?;
        self.inner.borrow_mut().name = name.clone();
        Ok(name)
    }

    /// The room's name when this instance knows it already (no storage read: for log lines).
    fn known_name(&self) -> Option<String> {
        self.inner.borrow().name.clone()
    }

    /// Logs a document that does not load (`request_id`: the Worker request that met it, when one did).
    fn unloadable(&self, detail: &str, request_id: Option<&str>) {
        log_event(
            Level::Error,
            "room_document_unloadable",
            serde_json::json!({"room": self.known_name(), "detail": detail, "request_id": request_id}),
        );
    }

    /// Loads the document for `req`, or answers 500 `room_unavailable` (logged) when it does not load.
    fn unavailable_unless_loaded(&self, req: &Request) -> Option<Result<Response>> {
        let e = self.ensure_loaded().err()?;
        self.unloadable(&e, request_id(req).as_deref());
        Some(json_error(
            500,
            "room_unavailable",
            "the room document could not be loaded",
        ))
    }

    /// Makes sure the document is in memory (rebuilt from snapshot + log after eviction or hibernation).
    fn ensure_loaded(&self) -> std::result::Result<(), String> {
        if self.inner.borrow().loaded.is_some() {
            return Ok(());
        }
        self.schema().map_err(|e| e.to_string())?;
        let loaded = log::load(
            &mut SqlStore(&self.sql, &self.storage),
            Date::now().as_millis(),
        )
        .map_err(|e| format!("{e:?}"))?;
        if loaded.skipped > 0 {
            log_event(
                Level::Error,
                "room_log_updates_skipped",
                serde_json::json!({"room": self.known_name(), "skipped": loaded.skipped,
                    "detail": "stored updates no longer apply and were skipped"}),
            );
        }
        self.inner.borrow_mut().loaded = Some(loaded);
        Ok(())
    }

    /// Spends one token of the bucket of the socket's user (`updates_per_second`, `update_burst`, shared by the
    /// user's sockets in this room); false when it is empty.
    fn take_token(&self, ws: &WebSocket, settings: &RoomSettings) -> bool {
        let user = Self::attachment(ws).user;
        let (rate, burst) = (settings.updates_per_second, settings.update_burst);
        self.budget(Budget::Rate, &user, (rate, burst), |bucket, now| {
            bucket.take(rate, burst, now)
        })
    }

    /// Applies `f` to `user`'s budget of `kind` (refilled at `rate.0` a second up to `rate.1`; a new, full one if
    /// they have none), with the time now, and stores when it is full again if it has to outlive the object's
    /// memory ([`limits::worth_storing`]: a bucket in debt past the time the object may hibernate in).
    fn budget<T>(
        &self,
        kind: Budget,
        user: &str,
        (per_second, burst): (u32, u32),
        f: impl FnOnce(&mut TokenBucket, u64) -> T,
    ) -> T {
        self.read_budgets();
        let now = Date::now().as_millis();
        let (out, full_at, stored) = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let buckets = match kind {
                Budget::Rate => &mut inner.buckets,
                Budget::Reply => &mut inner.replies,
            };
            let (bucket, stored) = buckets
                .entry(user.to_owned())
                .or_insert_with(|| (TokenBucket::full(burst, now), None));
            let out = f(bucket, now);
            (out, bucket.full_at_ms(per_second, burst), *stored)
        };
        if limits::worth_storing(full_at, stored, now, per_second, burst) {
            // Never moved earlier: an instance that could not read the stored times yet (`read_budgets` logs it,
            // and tries again a few times) started members full, and its first write would otherwise have forgiven
            // the debt an earlier instance stored.
            let written = self.sql.exec(
                "INSERT INTO room_budgets (user_id, kind, full_at_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id, kind) DO UPDATE SET full_at_ms = MAX(full_at_ms, excluded.full_at_ms)",
                vec![user.into(), kind.name().into(), (full_at as i64).into()],
            );
            match written {
                Ok(_) => {
                    let mut inner = self.inner.borrow_mut();
                    let buckets = match kind {
                        Budget::Rate => &mut inner.buckets,
                        Budget::Reply => &mut inner.replies,
                    };
                    if let Some((_, stored)) = buckets.get_mut(user) {
                        *stored = Some(full_at);
                    }
                }
                // The budget still holds in memory; only a restart before the next write would forget it.
                Err(e) => log_event(
                    Level::Warn,
                    "room_budget_not_stored",
                    serde_json::json!({"room": self.known_name(), "detail": e.to_string()}),
                ),
            }
        }
        out
    }

    /// Reads the members' budgets an earlier instance stored (once per instance; a failed read again on the next
    /// budget asked for, a few times), dropping those full again. The message buckets are rebuilt at the settings
    /// of now; a member this instance already holds a budget for keeps the stricter of the two (a read that failed
    /// before started them full).
    fn read_budgets(&self) {
        if !self.inner.borrow().budgets_read.due() {
            return;
        }
        let now = Date::now().as_millis();
        // Read as tickets are (a user and a time), one kind at a time: no row type of their own.
        let of = |kind: Budget| -> Result<Vec<TicketRow>> {
            self.sql
                .exec(
                    "SELECT user_id, full_at_ms AS expires_ms FROM room_budgets WHERE kind = ?",
                    vec![kind.name().into()],
                )?
                .to_array()
        };
        let read = self.schema().and_then(|()| {
            self.sql.exec(
                "DELETE FROM room_budgets WHERE full_at_ms <= ?",
                vec![(now as i64).into()],
            )?;
            Ok((of(Budget::Rate)?, of(Budget::Reply)?))
        });
        let (rates, replies) = match read {
            Ok(rows) => rows,
            Err(e) => {
                let last = self.inner.borrow_mut().budgets_read.failed();
                log_event(
                    Level::Warn,
                    "room_budgets_not_read",
                    serde_json::json!({"room": self.known_name(), "detail": e.to_string(),
                        "given_up": last}),
                );
                return;
            }
        };
        let settings = self.settings().ok();
        let mut inner = self.inner.borrow_mut();
        inner.budgets_read.read();
        // The stricter of the stored budget and one this instance made meanwhile (after a failed read).
        let keep = |held: Option<&(TokenBucket, Option<u64>)>, full_at: u64, rate: (u32, u32)| {
            held.is_none_or(|(bucket, _)| bucket.full_at_ms(rate.0, rate.1) < full_at)
        };
        if let Some(s) = settings {
            for row in rates {
                let full_at = row.expires_ms.max(0.0) as u64;
                let rate = (s.updates_per_second, s.update_burst);
                if !keep(inner.buckets.get(&row.user_id), full_at, rate) {
                    continue;
                }
                // Never in debt: at the settings it was stored at, it was at worst empty.
                let bucket = TokenBucket::until_full(rate.0, rate.1, full_at, now).without_debt();
                inner.buckets.insert(row.user_id, (bucket, Some(full_at)));
            }
        }
        for row in replies {
            let full_at = row.expires_ms.max(0.0) as u64;
            let rate = (REPLY_BYTES_PER_SECOND, REPLY_BYTES_BURST);
            if !keep(inner.replies.get(&row.user_id), full_at, rate) {
                continue;
            }
            let bucket = TokenBucket::until_full(rate.0, rate.1, full_at, now);
            inner.replies.insert(row.user_id, (bucket, Some(full_at)));
        }
    }

    /// Whether the reply budget (see [`REPLY_BYTES_BURST`]) of the socket's user is out of debt, so the room may
    /// encode a reply for it; the reply is paid for with [`Room::paid_reply`] once its size is known.
    fn may_reply(&self, ws: &WebSocket) -> bool {
        self.user_may_reply(&Self::attachment(ws).user)
    }

    /// Whether `user`'s reply budget is out of debt.
    fn user_may_reply(&self, user: &str) -> bool {
        self.reply_budget(user, |bucket, now| {
            bucket.has_any(REPLY_BYTES_PER_SECOND, REPLY_BYTES_BURST, now)
        })
    }

    /// Applies `f` to `user`'s reply budget (a new, full one if they have none here), with the time now.
    fn reply_budget<T>(&self, user: &str, f: impl FnOnce(&mut TokenBucket, u64) -> T) -> T {
        self.budget(
            Budget::Reply,
            user,
            (REPLY_BYTES_PER_SECOND, REPLY_BYTES_BURST),
            f,
        )
    }

    /// Applies `f` to the socket's credit for copies of presence (a new one if this instance has not counted it
    /// yet), found by the socket object rather than its attachment, with the awareness entries broadcast so far.
    fn echo_credit<T>(&self, ws: &WebSocket, f: impl FnOnce(&mut EchoCredit, u64) -> T) -> T {
        let sid = self.sid(ws);
        let mut inner = self.inner.borrow_mut();
        let broadcast = inner.awareness_broadcast;
        let credit = inner
            .echoes
            .entry(sid)
            .or_insert_with(|| EchoCredit::new(broadcast));
        f(credit, broadcast)
    }

    /// The socket's id, from this instance's map of socket objects (filled from the attachment the first time).
    fn sid(&self, ws: &WebSocket) -> u64 {
        let key: &js_sys::Object = ws.as_ref().as_ref();
        let mut inner = self.inner.borrow_mut();
        let sids = inner.sids.get_or_insert_with(js_sys::WeakMap::new);
        if let Some(sid) = sids.get(key).as_f64() {
            return sid as u64;
        }
        let sid = Self::attachment(ws).sid;
        sids.set(key, &JsValue::from_f64(sid as f64));
        sid
    }

    fn paid_reply(&self, ws: &WebSocket, bytes: usize) {
        self.user_paid_reply(&Self::attachment(ws).user, bytes);
    }

    /// Charges `bytes` the room sent `user` to their reply budget (a new, full one if they have none here).
    fn user_paid_reply(&self, user: &str, bytes: usize) {
        self.reply_budget(user, |bucket, _| bucket.spend(bytes as u64));
    }

    /// Which of `ids` (clients the sending socket has not announced) an open socket of another user announced:
    /// those belong to that user. Read from the sockets' attachments, so it holds after hibernation; only messages
    /// naming a client new to their socket pay for it (a y-websocket client's first announcement).
    /// Linear in the ids asked about plus the open sockets' announced clients (a set each way): a message naming
    /// thousands of clients — a newcomer's echo of a full room's presence is one — costs no more than reading it.
    fn owned_by_other_users(&self, sender: &Attachment, ids: &[u64]) -> HashSet<u64> {
        if ids.is_empty() {
            return HashSet::new();
        }
        let wanted: HashSet<u64> = ids.iter().copied().collect();
        let mut owned = HashSet::new();
        for ws in self.state.get_websockets() {
            let other = Self::attachment(&ws);
            if other.sid == sender.sid || other.user == sender.user {
                continue;
            }
            owned.extend(
                other
                    .announced
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| wanted.contains(id)),
            );
        }
        owned
    }

    fn attachment(ws: &WebSocket) -> Attachment {
        ws.deserialize_attachment::<Attachment>()
            .ok()
            .flatten()
            .unwrap_or(Attachment {
                sid: 0,
                user: String::new(),
                announced: Vec::new(),
                gone: false,
                family: None,
            })
    }

    /// Whether `ws` has left the room (see [`Inner::gone`]).
    fn is_gone(&self, ws: &WebSocket) -> bool {
        self.with_gone(|gone| gone.iter().any(|g| same(g, ws)))
    }

    fn with_gone<T>(&self, f: impl FnOnce(&mut Vec<WebSocket>) -> T) -> T {
        if self.inner.borrow().gone.is_none() {
            let mut sockets = self.state.get_websockets();
            sockets.retain(|ws| Self::attachment(ws).gone);
            self.inner.borrow_mut().gone = Some(sockets);
        }
        f(self.inner.borrow_mut().gone.get_or_insert_with(Vec::new))
    }

    /// The room's members: its sockets that have not left (see [`Attachment::gone`]).
    fn members(&self) -> Vec<WebSocket> {
        let mut sockets = self.state.get_websockets();
        sockets.retain(|ws| !Self::attachment(ws).gone);
        sockets
    }

    async fn report_members(&self) {
        let members = self.members().len() as u32;
        let (Ok(Some(room)), Ok(settings)) = (self.name(), self.settings()) else {
            return;
        };
        let shard = directory::shard_of(&room, settings.directory_shards);
        let seq = {
            let mut inner = self.inner.borrow_mut();
            inner.reports += 1;
            inner.reports
        };
        let report = directory::Report {
            room,
            members,
            updated_ms: Date::now().as_millis(),
            seq,
            report_ms: settings.directory_report_ms,
        };
        let outcome = async {
            let stub = self
                .env
                .durable_object(directory::BINDING)?
                .get_by_name(&directory::object_name(shard))?;
            let body = serde_json::to_string(&report)?;
            let req = Request::new_with_init(
                &format!("https://room-directory{}", directory::PATH_REPORT),
                RequestInit::new()
                    .with_method(Method::Post)
                    .with_body(Some(JsValue::from_str(&body))),
            )?;
            // A shard that answers but does not store the report (400 for one it cannot read) failed it too: taken
            // for success, such a report was lost without a line anywhere.
            let mut answer = stub.fetch_with_request(req).await?;
            match answer.status_code() {
                200..=299 => Ok(()),
                status => Err(worker::Error::RustError(format!(
                    "the directory answered {status}: {}",
                    answer.text().await.unwrap_or_default()
                ))),
            }
        };
        if let Err(e) = outcome.await {
            log_event(
                Level::Warn,
                "room_directory_report_failed",
                serde_json::json!({"room": self.known_name(), "detail": e.to_string()}),
            );
        }
    }

    /// While it has members a room reports again every interval (an alarm wakes it from hibernation), so a lost
    /// report is repaired and a room whose object went away without closing its sockets expires from the
    /// directory. A pending alarm is kept unless it is later than one interval from now (the interval shrank).
    async fn schedule_report(&self, every_ms: u64) -> Result<()> {
        let storage = self.state.storage();
        let due = Date::now().as_millis().saturating_add(every_ms);
        match storage.get_alarm().await? {
            Some(at) if at >= 0 && (at as u64) <= due => Ok(()),
            _ => storage.set_alarm(Duration::from_millis(every_ms)).await,
        }
    }

    /// The family of session `session` (or of the session a refresh rotated it into) when one of it is live.
    async fn live_family(&self, session: &str) -> Result<Option<String>> {
        let now = Date::now().as_millis();
        let settings = self.settings()?;
        let row = self
            .env
            .d1(SESSIONS_BINDING)?
            .prepare(FAMILY_OF_LIVE_SESSION)
            .bind(&[
                JsValue::from_str(session),
                JsValue::from_f64(now as f64),
                JsValue::from_f64(settings.sessions_begun_after(now)),
                JsValue::from_f64(settings.sessions_seen_after(now)),
            ])?
            .first::<FamilyRow>(None)
            .await?;
        Ok(row.map(|r| r.family))
    }

    /// Closes (1008, `session ended`) the members whose session has ended since they joined: a logout, a
    /// revocation or an expiry ends that session's room access within one report interval (the alarm that calls
    /// this), at one D1 read per room and interval — nothing per message. A read that fails closes nothing (logged;
    /// the next interval asks again).
    async fn close_ended_sessions(&self) {
        let members = self.members();
        let mut families: Vec<String> = members
            .iter()
            .filter_map(|ws| Self::attachment(ws).family)
            .collect();
        families.sort_unstable();
        families.dedup();
        if families.is_empty() {
            return;
        }
        let asked = async {
            let list = serde_json::to_string(&families)?;
            let now = Date::now().as_millis();
            let settings = self.settings()?;
            let rows = self
                .env
                .d1(SESSIONS_BINDING)?
                .prepare(LIVE_FAMILIES)
                .bind(&[
                    JsValue::from_str(&list),
                    JsValue::from_f64(now as f64),
                    JsValue::from_f64(settings.sessions_begun_after(now)),
                    JsValue::from_f64(settings.sessions_seen_after(now)),
                ])?
                .all()
                .await?
                .results::<FamilyRow>()?;
            Ok::<_, worker::Error>(rows.into_iter().map(|r| r.family).collect::<HashSet<_>>())
        };
        let live = match asked.await {
            Ok(live) => live,
            Err(e) => {
                log_event(
                    Level::Warn,
                    "room_session_check_failed",
                    serde_json::json!({"room": self.known_name(), "detail": e.to_string()}),
                );
                return;
            }
        };
        // Members now, of which those that joined during the read are not judged by it (see `session_ended`).
        // Closed without a directory report each: the alarm that called this reports the count they leave once
        // (each close reported its own, so N closed sockets made N + 1 reports).
        for ws in self.members() {
            if session_ended(&families, &live, Self::attachment(&ws).family.as_deref()) {
                self.shut_out(&ws, close::POLICY, close::SESSION_ENDED_REASON);
                self.forget(&ws);
            }
        }
    }

    /// The 429 a join by `user_id` is refused with now, the ticket kept (it can be used once there is room): the
    /// room is full, the user has all the sockets one member may, or their reply budget is in debt. Asked of the
    /// room's memory alone, before the join's D1 read (a ticket retried against a full room costs no D1 query) and
    /// again after it (others may have joined meanwhile).
    fn join_refusal(&self, settings: &RoomSettings, user_id: &str) -> Option<Result<Response>> {
        // A full room refuses before the ticket is consumed, so the ticket can be used once there is space.
        let sockets: Vec<Attachment> = self
            .state
            .get_websockets()
            .iter()
            .map(Self::attachment)
            .collect();
        let members = sockets.iter().filter(|a| !a.gone).count();
        if members as u32 >= settings.max_members {
            return Some(json_error(
                429,
                "room_full",
                "the room has reached its member limit",
            ));
        }
        // One user's sockets are bounded too: tickets come at a minute's rate, and one member could otherwise take
        // every place in the room (and drive every socket's update rate). Checked before the ticket is consumed,
        // like the room's own limit, so it can be used once a socket of theirs has closed. Counted with the sockets
        // the room closed whose client has not answered the close: they are no members, but the runtime holds them
        // (and delivers their frames) for as long as the client keeps the connection, and uncounted one user could
        // pile them up without end at the ticket rate — every join and broadcast walking them, until the object's
        // socket limit shut the room.
        let theirs = sockets.iter().filter(|a| a.user == user_id).count();
        if theirs >= MAX_SOCKETS_PER_USER {
            return Some(json_error(
                429,
                "too_many_connections",
                "this user has the most connections a room admits from one member",
            ));
        }
        // Each join is sent the room's presence (up to the room's message size), paid from the member's reply
        // budget: a member whose budget is in debt is refused here, before the ticket is spent (it can be used once
        // the budget allows). Uncharged, reconnecting at the ticket rate made the room send a large room's presence
        // about once a second, for nothing the budget counted.
        // Its `Retry-After` says when the debt is paid (whole seconds, rounded up): the ticket may be used then.
        let wait_ms = self.reply_budget(user_id, |bucket, now| {
            bucket.ms_until_any(REPLY_BYTES_PER_SECOND, REPLY_BYTES_BURST, now)
        });
        if wait_ms > 0 {
            let refusal = json_error(
                429,
                "reply_rate_exceeded",
                "this user has made the room send them more than its reply byte rate; join again shortly",
            )
            .and_then(|mut refusal| {
                refusal
                    .headers_mut()
                    .set("retry-after", &wait_ms.div_ceil(1000).to_string())?;
                Ok(refusal)
            });
            return Some(refusal);
        }
        None
    }

    async fn join(&self, req: Request) -> Result<Response> {
        if req
            .headers()
            .get("upgrade")?
            .map(|u| u.to_ascii_lowercase())
            != Some("websocket".into())
        {
            return json_error(
                426,
                "upgrade_required",
                "this endpoint speaks WebSocket only",
            );
        }
        let settings = self.settings()?;
        let ticket = req
            .url()?
            .query_pairs()
            .find(|(k, _)| k == TICKET_PARAM)
            .map(|(_, v)| v.into_owned());
        let Some(ticket) = ticket else {
            return ticket_required();
        };
        // The ticket is read before the room's limits are: a made-up or expired one is a 401, which the Worker
        // counts against the address (a full room's 429 came first, uncounted, and let anyone keep its object busy).
        let holder: Vec<HeldTicket> = self
            .sql
            .exec(
                // A mark written as i64::MAX (a build before `NO_LIMIT_MARK`) is stored as the float 2^63, which no
                // i64 reads: read as the mark of no limit, which it meant.
                "SELECT user_id, expires_ms, session_id, MIN(session_ended, ?) AS session_ended FROM room_tickets \
                 WHERE ticket = ?",
                vec![NO_LIMIT_MARK.into(), ticket.clone().into()],
            )?
            .to_array()?;
        let Some(holder) = holder
            .into_iter()
            .next()
            .filter(|r| r.expires_ms >= Date::now().as_millis() as f64)
        else {
            return ticket_invalid();
        };
        // A ticket whose session a join already found ended is refused as then, without asking D1 again: the end
        // of a session is final, and a logged-out user's client retrying its ticket cost one D1 read per attempt.
        // Not an end by a session limit since raised: the Worker holds such a session live again, and so does D1.
        if settings.honours_ended_mark(holder.session_ended) {
            return session_ended_refusal();
        }
        if let Some(refusal) = self.join_refusal(&settings, &holder.user_id) {
            return refusal;
        }
        // A ticket is its session's: once that session ended (a logout, `DELETE /auth/sessions`, a revocation for
        // reuse, its expiry) it admits no one, though unused and unexpired. Asked of D1 (the primary: a logout has
        // revoked the session there before it answers) after the room's own limits (a ticket retried against a full
        // room costs no query) and before they are asked again; refused 401 like any dead credential. A check that
        // fails keeps the ticket (503).
        let family = match &holder.session_id {
            None => None,
            Some(session) => match self.live_family(session).await {
                Ok(Some(family)) => Some(family),
                Ok(None) => {
                    // Remembered with every ticket of the session (the user's other tabs' too), so their joins are
                    // refused from the room's storage. Not remembering it only costs the next join a read.
                    if let Err(e) = self.sql.exec(
                        "UPDATE room_tickets SET session_ended = ? WHERE session_id = ?",
                        vec![settings.ended_mark().into(), session.as_str().into()],
                    ) {
                        log_event(
                            Level::Warn,
                            "room_session_end_not_kept",
                            serde_json::json!({"room": self.known_name(), "detail": e.to_string()}),
                        );
                    }
                    return session_ended_refusal();
                }
                Err(e) => {
                    log_event(
                        Level::Error,
                        "room_session_check_failed",
                        serde_json::json!({"room": self.known_name(), "detail": e.to_string(),
                            "request_id": request_id(&req)}),
                    );
                    return json_error(
                        503,
                        "session_check_unavailable",
                        "the room could not check the ticket's session; try again shortly",
                    );
                }
            },
        };
        if let Some(refusal) = self.join_refusal(&settings, &holder.user_id) {
            return refusal;
        }
        // The document is loaded before the ticket is spent: a room that cannot load it answers 500 with the ticket
        // kept, and the client's retry joins once it loads (spent first, the retry was a 401 for a ticket never used).
        if let Some(unavailable) = self.unavailable_unless_loaded(&req) {
            return unavailable;
        }
        // Consumed by the same statement that reads it: a ticket admits one socket, once.
        let rows: Vec<TicketRow> = self
            .sql
            .exec(
                "DELETE FROM room_tickets WHERE ticket = ? RETURNING user_id, expires_ms",
                vec![ticket.into()],
            )?
            .to_array()?;
        let now = Date::now().as_millis();
        let Some(row) = rows
            .into_iter()
            .next()
            .filter(|r| r.expires_ms >= now as f64)
        else {
            return ticket_invalid();
        };

        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let sid = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        let user = row.user_id;
        pair.server.serialize_attachment(Attachment {
            sid,
            user: user.clone(),
            announced: Vec::new(),
            gone: false,
            family,
        })?;
        // What the y-websocket server sends first: our state vector, then everyone's presence.
        let (step1, presence) = {
            let inner = self.inner.borrow();
            let step1 = inner
                .loaded
                .as_ref()
                .map(|l| wire::encode_sync_step1(&l.doc.state_vector()));
            (step1, inner.presence.snapshot(Date::now().as_millis()))
        };
        let mut sent = 0;
        if let Some(step1) = step1 {
            sent += step1.len();
            pair.server.send_with_bytes(step1)?;
        }
        {
            let mut inner = self.inner.borrow_mut();
            let mut credit = EchoCredit::new(inner.awareness_broadcast);
            credit.sent_own(presence.len());
            inner.echoes.insert(sid, credit);
        }
        if !presence.is_empty() {
            let frame = wire::encode_awareness(&presence);
            sent += frame.len();
            pair.server.send_with_bytes(frame)?;
        }
        self.user_paid_reply(&user, sent);
        self.report_members().await;
        // A join starts the report alarm (or keeps the pending one); the alarm re-arms itself while there are
        // members, and a leave needs none.
        if let Err(e) = self.schedule_report(settings.directory_report_ms).await {
            log_event(
                Level::Warn,
                "room_directory_alarm_not_set",
                serde_json::json!({"room": self.known_name(), "detail": e.to_string(),
                    "request_id": request_id(&req)}),
            );
        }
        Ok(ResponseBuilder::new()
            .with_status(101)
            .with_websocket(pair.client)
            .empty())
    }

    /// Forgets a socket's presence (broadcasting the removal) and the rate and reply buckets that are full again,
    /// and marks it gone: it is no
    /// longer a member even while the runtime still lists it. Idempotent.
    async fn depart(&self, ws: &WebSocket) {
        self.forget(ws);
        self.report_members().await;
    }

    /// A socket's end (its client's close, or an error): [`Room::depart`] — without the directory report when the
    /// room had already closed it (a rule, an ended session), as its count was reported then (or by the alarm that
    /// closed it); reported again, every socket the room closed cost a second report once its client answered.
    async fn leave(&self, ws: &WebSocket) {
        if Self::attachment(ws).gone {
            self.forget(ws);
        } else {
            self.depart(ws).await;
        }
    }

    /// [`Room::depart`] without the directory report, for a caller that reports once for several sockets.
    fn forget(&self, ws: &WebSocket) {
        let mut attachment = Self::attachment(ws);
        let announced: Announced = attachment.announced.iter().copied().collect();
        let settings = self.settings().ok();
        let removals = {
            let mut inner = self.inner.borrow_mut();
            // A user's buckets outlive their socket (closing and joining again refills nothing) until they are full.
            let now = Date::now().as_millis();
            if let Some(settings) = settings {
                inner.buckets.retain(|_, (bucket, _)| {
                    !bucket.is_full(settings.updates_per_second, settings.update_burst, now)
                });
            }
            inner.replies.retain(|_, (bucket, _)| {
                !bucket.is_full(REPLY_BYTES_PER_SECOND, REPLY_BYTES_BURST, now)
            });
            // With them, when they are full again as stored: passed (the rows go when the next instance reads them).
            inner.echoes.remove(&attachment.sid);
            inner
                .presence
                .remove_socket((attachment.sid, &attachment.user), &announced)
        };
        if !removals.is_empty() {
            self.inner.borrow_mut().awareness_broadcast += removals.len() as u64;
            let others = self.state.get_websockets();
            send_all(
                others.iter().filter(|w| !same(w, ws)),
                &wire::encode_awareness(&removals),
            );
        }
        if !attachment.gone || !attachment.announced.is_empty() {
            attachment.announced.clear();
            attachment.gone = true;
            let _ = ws.serialize_attachment(&attachment);
        }
    }

    /// Closes one socket for a bad frame; nothing else is disturbed.
    async fn refuse(&self, ws: &WebSocket, code: u16, reason: &str) -> Result<()> {
        self.shut_out(ws, code, reason);
        self.depart(ws).await;
        Ok(())
    }

    /// Marks a socket gone and sends its close frame: gone before the close frame leaves (and before `depart`
    /// awaits the directory), so no join in between counts it and nothing written to the socket after its close
    /// is needed.
    fn shut_out(&self, ws: &WebSocket, code: u16, reason: &str) {
        let mut attachment = Self::attachment(ws);
        attachment.gone = true;
        let _ = ws.serialize_attachment(&attachment);
        self.with_gone(|gone| gone.push(ws.clone()));
        shut(ws, code, reason);
    }

    async fn on_frame(&self, ws: &WebSocket, frame: &[u8]) -> Result<()> {
        let settings = self.settings()?;
        if frame.len() > settings.max_message_bytes as usize {
            return self
                .refuse(
                    ws,
                    close::TOO_BIG,
                    &format!("message over {} bytes", settings.max_message_bytes),
                )
                .await;
        }
        let message = match wire::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                return self
                    .refuse(ws, close::INVALID_DATA, &format!("malformed message: {e}"))
                    .await
            }
        };
        if let Err(e) = self.ensure_loaded() {
            self.unloadable(&e, None);
            return self
                .refuse(ws, close::INTERNAL, "room document unavailable")
                .await;
        }
        // Every message that makes the room do work spends a token of the socket's bucket: updates, but also sync
        // requests and awareness queries (each one encodes the whole document or presence), so none can be looped
        // to stall the room for everyone, and auth messages (a y-websocket client never sends one). Awareness
        // spends one when it is news (relayed to every member), below: y-websocket clients send back every
        // awareness change they receive, and those copies are charged only past the socket's credit.
        if !matches!(message, Message::Awareness(_)) && !self.take_token(ws, &settings) {
            return self.refuse(ws, close::POLICY, "update rate exceeded").await;
        }
        match message {
            Message::SyncStep1(sv) => {
                if !self.may_reply(ws) {
                    return self
                        .refuse(ws, close::POLICY, "sync requests over their byte rate")
                        .await;
                }
                // What waited too long is not sent (nor kept).
                let expired = self.inner.borrow_mut().loaded.as_mut().map(|loaded| {
                    log::expire(
                        loaded,
                        &mut SqlStore(&self.sql, &self.storage),
                        settings.waiting_ttl_ms,
                        Date::now().as_millis(),
                    )
                });
                if let Some(Err(e)) = expired {
                    log_event(
                        Level::Error,
                        "room_waiting_updates_not_expired",
                        serde_json::json!({"room": self.known_name(), "detail": format!("{e:?}")}),
                    );
                    self.inner.borrow_mut().loaded = None;
                    return self
                        .refuse(ws, close::INTERNAL, "room storage unavailable")
                        .await;
                }
                let diff = self.inner.borrow().loaded.as_ref().map(|l| l.doc.diff(sv));
                match diff {
                    Some(Ok(parts)) => {
                        // The step 2, then what the room keeps pending, as updates (see RoomDoc::diff).
                        self.paid_reply(ws, parts.iter().map(Vec::len).sum());
                        let mut parts = parts.iter();
                        if let Some(step2) = parts.next() {
                            ws.send_with_bytes(wire::encode_sync_step2(step2))?;
                        }
                        for pending in parts {
                            ws.send_with_bytes(wire::encode_update(pending))?;
                        }
                    }
                    Some(Err(e)) => {
                        return self
                            .refuse(ws, close::INVALID_DATA, &format!("bad state vector: {e}"))
                            .await
                    }
                    None => {}
                }
            }
            Message::SyncStep2(update) | Message::Update(update) => {
                let outcome = {
                    let mut inner = self.inner.borrow_mut();
                    match inner.loaded.as_mut() {
                        Some(loaded) => log::accept(
                            loaded,
                            &mut SqlStore(&self.sql, &self.storage),
                            log::Rules {
                                compaction: settings.compaction,
                                max_document_bytes: settings.max_document_bytes,
                                waiting_ttl_ms: settings.waiting_ttl_ms,
                            },
                            update,
                            Date::now().as_millis(),
                        ),
                        None => Err(AcceptError::Store("document not loaded".into())),
                    }
                };
                match outcome {
                    // Stored: only now is what the room took of it relayed.
                    Ok(Outcome {
                        accepted: Accepted::Stored { .. },
                        relay,
                        released,
                        not_compacted,
                    }) => {
                        // Stored, though not folded: relayed all the same, and its sender stays (what it sent is
                        // durable). The compaction was rolled back: the next message reloads what storage holds.
                        if let Some(e) = not_compacted {
                            log_event(
                                Level::Error,
                                "room_log_not_compacted",
                                serde_json::json!({"room": self.known_name(), "detail": e}),
                            );
                            self.inner.borrow_mut().loaded = None;
                        }
                        let sockets = self.state.get_websockets();
                        for part in &relay {
                            send_all(
                                sockets.iter().filter(|w| !same(w, ws)),
                                &wire::encode_update(part),
                            );
                        }
                        // Its sender was not sent these either.
                        for part in &released {
                            send_all(sockets.iter(), &wire::encode_update(part));
                        }
                    }
                    Ok(Outcome {
                        accepted: Accepted::Empty,
                        ..
                    }) => {}
                    Err(AcceptError::Invalid(e)) => {
                        return self
                            .refuse(ws, close::INVALID_DATA, &format!("invalid update: {e}"))
                            .await
                    }
                    Err(AcceptError::DocumentFull { limit }) => {
                        return self
                            .refuse(
                                ws,
                                close::TOO_BIG,
                                &format!("room document is at its {limit}-byte limit"),
                            )
                            .await
                    }
                    Err(AcceptError::Store(e)) => {
                        log_event(
                            Level::Error,
                            "room_update_not_stored",
                            serde_json::json!({"room": self.known_name(), "detail": e.to_string()}),
                        );
                        // Memory may be ahead of storage: drop it, the next message reloads what is durable.
                        self.inner.borrow_mut().loaded = None;
                        return self
                            .refuse(ws, close::INTERNAL, "update could not be stored")
                            .await;
                    }
                }
            }
            Message::Awareness(update) => {
                // Like the y-websocket server, news goes to every socket (the sender's echo keeps it alive); what
                // is not news (the copies every client sends back) goes nowhere, without touching the attachment:
                // free as far as the socket's credit goes, then each costs a message token.
                if !self.inner.borrow().presence.has_news(&update.entries) {
                    let entries = update.entries.len();
                    if !self.echo_credit(ws, |credit, broadcast| credit.take(broadcast, entries))
                        && !self.take_token(ws, &settings)
                    {
                        return self
                            .refuse(ws, close::POLICY, "awareness copies over their rate")
                            .await;
                    }
                    return Ok(());
                }
                // News costs a token before any work is done for it (the ownership scan reads every socket's
                // attachment), whether or not it turns out to be this socket's to give.
                if !self.take_token(ws, &settings) {
                    return self.refuse(ws, close::POLICY, "update rate exceeded").await;
                }
                let mut attachment = Self::attachment(ws);
                let mut announced: Announced = attachment.announced.iter().copied().collect();
                let others = self.owned_by_other_users(
                    &attachment,
                    &presence::unannounced(&announced, &update.entries),
                );
                let entries: Cow<[AwarenessEntry]> = if others.is_empty() {
                    Cow::Borrowed(&update.entries)
                } else {
                    Cow::Owned(
                        update
                            .entries
                            .iter()
                            .filter(|e| !others.contains(&e.client_id))
                            .cloned()
                            .collect(),
                    )
                };
                // The limits count what the room would take (news, in order): stale entries buy no room.
                let bounded = entries.len() <= presence::MAX_ENTRIES_PER_MESSAGE;
                let news = if bounded {
                    self.inner.borrow().presence.news(&entries)
                } else {
                    Vec::new()
                };
                if !bounded || presence::too_many_clients(&announced, &news) {
                    return self
                        .refuse(
                            ws,
                            close::POLICY,
                            "too many awareness clients on one socket",
                        )
                        .await;
                }
                if let Err(e) = wire::check_states(&news) {
                    return self.refuse(ws, close::INVALID_DATA, &e.0).await;
                }
                let budget = self.inner.borrow().presence.budget(
                    &attachment.user,
                    &news,
                    presence::room_limit(settings.max_message_bytes),
                );
                match budget {
                    presence::Budget::Fits => {}
                    presence::Budget::UserFull => {
                        return self
                            .refuse(ws, close::TOO_BIG, "presence over its budget")
                            .await;
                    }
                    // The room's presence is as large as a newcomer's echo of it may be. Others hold it, so this
                    // socket is not closed for it (it would only reconnect into the same refusal): its news is
                    // dropped, and the document still syncs. Its sender alone gets it back, as it would have: a
                    // y-websocket client reconnects after 30 s without a message, and in a quiet room its own echo
                    // is what it hears (it changes nothing in its awareness).
                    presence::Budget::RoomFull => {
                        ws.send_with_bytes(wire::encode_awareness_raw(&update.raw))?;
                        return Ok(());
                    }
                }
                let applied = self.inner.borrow_mut().presence.apply(
                    (attachment.sid, &attachment.user),
                    &entries,
                    &mut announced,
                    Date::now().as_millis(),
                );
                if applied.announced_changed {
                    attachment.announced = announced.into_iter().collect();
                    ws.serialize_attachment(&attachment)?;
                }
                if applied.fresh.is_empty() {
                    return Ok(()); // all of it was another user's clients (or copies)
                }
                let frame = if applied.fresh.len() == update.entries.len() {
                    wire::encode_awareness_raw(&update.raw)
                } else {
                    wire::encode_awareness(&applied.fresh)
                };
                self.inner.borrow_mut().awareness_broadcast += applied.fresh.len() as u64;
                send_all(self.state.get_websockets().iter(), &frame);
            }
            Message::QueryAwareness => {
                if !self.may_reply(ws) {
                    return self
                        .refuse(ws, close::POLICY, "awareness queries over their byte rate")
                        .await;
                }
                let presence = self
                    .inner
                    .borrow()
                    .presence
                    .snapshot(Date::now().as_millis());
                let frame = wire::encode_awareness(&presence);
                self.paid_reply(ws, frame.len());
                self.echo_credit(ws, |credit, _| credit.sent_own(presence.len()));
                ws.send_with_bytes(frame)?;
            }
            Message::Auth => {}
        }
        Ok(())
    }
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        let sql = state.storage().sql();
        let storage = Reflect::get(state.as_raw(), &JsValue::from_str("storage"))
            .unwrap_or(JsValue::UNDEFINED);
        Self {
            state,
            env,
            sql,
            storage,
            inner: RefCell::new(Inner::default()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // A join needs a ticket, and a room that was never set up (no ticket issued, state never read) holds none:
        // refused before anything is written, so a made-up room name in an anonymous join leaves no stored object.
        // The state of a room that was never set up is an empty one, likewise answered without writing anything.
        // The method and path read once: each is a crossing to the runtime (the path a URL parsed anew), and every
        // request to the room asks them up to three times below.
        let method = req.method();
        let path = req.path();
        if method == Method::Get
            && (path == PATH_CONNECT || path == PATH_STATE)
            && !self.set_up()?
        {
            if path == PATH_STATE {
                let name = req.headers().get(HEADER_ROOM)?;
                return Response::from_json(
                    &serde_json::json!({ "room": name, "members": 0, "document": {} }),
                );
            }
            let has_ticket = req.url()?.query_pairs().any(|(k, _)| k == TICKET_PARAM);
            return if has_ticket {
                ticket_invalid()
            } else {
                ticket_required()
            };
        }
        self.remember(&req)?;
        debug_panic::panic_if_asked(
            method == Method::Post,
            &path,
            || {
                debug_panic::header_on(
                    req.headers()
                        .get(debug_panic::HEADER)
                        .ok()
                        .flatten()
                        .as_deref(),
                )
            },
            || format!("room {:?}", self.name().ok().flatten().unwrap_or_default()),
            || request_id(&req),
        );
        match (method, path.as_str()) {
            (Method::Post, PATH_TICKET) => {
                let grant: TicketGrant = req.json().await?;
                let now = Date::now().as_millis() as i64;
                self.sql.exec(
                    "DELETE FROM room_tickets WHERE expires_ms < ?",
                    vec![now.into()],
                )?;
                self.sql.exec(
                    "INSERT INTO room_tickets (ticket, user_id, expires_ms, session_id) VALUES (?, ?, ?, ?)",
                    vec![
                        grant.ticket.into(),
                        grant.user_id.into(),
                        (grant.expires_ms as i64).into(),
                        grant.session.map_or(SqlStorageValue::Null, SqlStorageValue::from),
                    ],
                )?;
                Response::empty().map(|r| r.with_status(204))
            }
            (Method::Get, PATH_CONNECT) => self.join(req).await,
            (Method::Get, PATH_STATE) => {
                if let Some(unavailable) = self.unavailable_unless_loaded(&req) {
                    return unavailable;
                }
                let name = self.name()?;
                let inner = self.inner.borrow();
                // The document's JSON as rendered once per change (`RoomDoc::json_text`), written in as it is.
                let document = inner.loaded.as_ref().map(|l| l.doc.json_text());
                let members = self.members().len();
                let body = format!(
                    r#"{{"room":{},"members":{members},"document":{}}}"#,
                    serde_json::Value::from(name),
                    document.as_deref().unwrap_or("null")
                );
                let mut response = Response::ok(body)?;
                response
                    .headers_mut()
                    .set("content-type", "application/json")?;
                Ok(response)
            }
            _ => json_error(404, "not_found", "unknown room path"),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        // The runtime still delivers what a socket the room closed sends until its client answers the close.
        if self.is_gone(&ws) {
            return Ok(());
        }
        match message {
            WebSocketIncomingMessage::Binary(frame) => self.on_frame(&ws, &frame).await,
            WebSocketIncomingMessage::String(_) => {
                self.refuse(
                    &ws,
                    close::UNSUPPORTED_DATA,
                    "text frames are not y-protocols messages",
                )
                .await
            }
        }
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.leave(&ws).await;
        self.with_gone(|gone| gone.retain(|g| !same(g, &ws)));
        // The answering close echoes the client's code (RFC 6455 §5.5.1; 1000 for every code before, so a client
        // closing with 4000 read its own close as a normal one), and carries none when the client's frame had none
        // (1005) or a code no frame may carry. (Runtimes from the 2026-04-07 compatibility date answer by themselves;
        // this one then finds the socket closed, and its call does nothing.)
        let echoed = u16::try_from(code).ok().filter(|c| echoable_close_code(*c));
        if echoed.is_none_or(|c| ws.close(Some(c), Some("bye")).is_err()) {
            let _ = ws.close::<&str>(None, None);
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.leave(&ws).await;
        self.with_gone(|gone| gone.retain(|g| !same(g, &ws)));
        Ok(())
    }

    /// The directory report interval (`RoomSettings::directory_report_ms`): the next alarm first, while there are
    /// members — an error here fails the alarm, which the runtime retries, rather than ending the chain — then the
    /// report.
    async fn alarm(&self) -> Result<Response> {
        if !self.members().is_empty() {
            let settings = self.settings()?;
            self.state
                .storage()
                .set_alarm(Duration::from_millis(settings.directory_report_ms))
                .await?;
            self.close_ended_sessions().await;
            // Rows of budgets full again: a new instance drops them when it reads them, and a room that never
            // rests would keep those of every member who ever went into debt in it.
            if let Err(e) = self.sql.exec(
                "DELETE FROM room_budgets WHERE full_at_ms <= ?",
                vec![(Date::now().as_millis() as i64).into()],
            ) {
                log_event(
                    Level::Warn,
                    "room_budgets_not_pruned",
                    serde_json::json!({"room": self.known_name(), "detail": e.to_string()}),
                );
            }
        }
        self.report_members().await;
        Response::empty()
    }
}
