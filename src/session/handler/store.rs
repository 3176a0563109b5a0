//! Where sessions live: D1 (the source of truth), always reached through the D1 Sessions API so reads follow the
//! client's `x-d1-bookmark`, and the KV cache in front of it (`session:<sha256 of token>`, a [`CacheEntry`]).
//! Every query binds its inputs; no SQL or driver message reaches a response (D1 failing a query is 503
//! `session_store_unavailable`, anything else a 500, each with a logged detail).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use worker::d1::{D1Database, D1DatabaseSession, D1PreparedStatement};
use worker::wasm_bindgen::JsValue;
use worker::{js_sys, Delay, Env, KvStore};

use crate::bindings;
use crate::entry::Call;
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::session::bookmark;
use crate::session::password::PasswordHash;
use crate::session::record::{kv_ttl_secs, parse_permissions, CacheEntry, SessionRecord};
use crate::session::token::cache_key;

/// A user row as login needs it.
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub permissions: Vec<String>,
    /// `Err` when the stored parameters are unreadable (logged; the login then fails like a wrong password).
    pub password: Result<PasswordHash, String>,
}

#[derive(Deserialize)]
struct UserColumns {
    id: String,
    email: String,
    permissions: String,
    password_algorithm: String,
    password_iterations: i64,
    password_salt: String,
    password_hash: String,
}

#[derive(Deserialize)]
struct SessionColumns {
    user_id: String,
    email: String,
    permissions: String,
    created_at: u64,
    expires_at: u64,
    last_seen_at: u64,
    revoked_at: Option<u64>,
}

/// Retired ids a session keeps (its latest): enough for any copy still in use, bounded against refresh loops. With
/// rotations at most once per `SESSION_ROTATE_MIN_SECS` (60 s by default), a thief refreshing a stolen token in a
/// loop needs over an hour to push the owner's copy out — while the owner's first request with it revokes them.
const RETIRED_PER_SESSION: u32 = 64;

/// Expired rows one statement deletes at most: retired ids on a rotation, sessions on a login.
const CLEANUP_BATCH: u32 = 100;

/// D1 failing a session's write (a login's, a refresh's rotation, a logout's or `DELETE /auth/sessions`'
/// revocation) or a read a session's answer depends on (a check's session, a lookup among retired ids, the account a
/// login names, the session list): 503 `session_store_unavailable`, worth a retry — each write is one transaction,
/// so nothing changed — with `message` saying what was not done and `doing` (with D1's error) logged. The same cause
/// answered 500 on every route but the login's, and a failed read 500 even there.
fn unavailable(message: &'static str, doing: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::new(503, "session_store_unavailable", message)
        .with_internal(format!("{doing}: {error}"))
}

/// What a check that D1 could not answer says (503): nothing was learnt of the session, so the caller is neither
/// admitted nor told it is logged out (a 401 `session_invalid` made front ends sign the user out for a D1 outage).
const UNREAD: &str = "the session could not be checked; try again shortly";

/// Sessions `GET /auth/sessions` lists at most (the caller's own among them).
const MAX_LISTED_SESSIONS: u32 = 50;

/// The `id` column of the rows an `UPDATE … RETURNING id` changed.
fn ids_of(result: Option<&worker::d1::D1Result>) -> ApiResult<Vec<String>> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let Some(result) = result else {
        return Ok(Vec::new());
    };
    let ids = result
        .results::<Id>()
        .or_internal("reading the revoked ids")?;
    Ok(ids.into_iter().map(|r| r.id).collect())
}

/// What [`Store::end_family`] did.
pub enum FamilyEnd {
    /// A session of the family was revoked within the window: nothing changed.
    EndedMomentsAgo,
    /// The family's live sessions, by current id, revoked now (none when none lived).
    Revoked(Vec<String>),
}

/// An id a rotation retired.
#[derive(Deserialize)]
pub struct Retired {
    pub family: String,
    pub retired_at: u64,
}

/// One active session as `GET /auth/sessions` lists it.
#[derive(Deserialize, serde::Serialize)]
pub struct SessionSummary {
    #[serde(skip_serializing)]
    pub id: String,
    pub created_at: u64,
    pub last_seen_at: u64,
    pub expires_at: u64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// The new row of a session being created.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub now_ms: u64,
    pub expires_at: u64,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

fn num(ms: u64) -> JsValue {
    JsValue::from_f64(ms as f64)
}

fn opt(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

pub struct Store {
    /// The request's D1 session: replaced by one at the primary when a read at the client's bookmark fails
    /// ([`Store::read`]).
    db: RefCell<Rc<D1DatabaseSession>>,
    /// The database itself, for a read that must reach the primary whatever `db` has read ([`Store::refill`]).
    database: D1Database,
    kv: KvStore,
    /// Whether `db` is at a bookmark the client sent, and whether a read made there succeeded: such a read may come
    /// from a replica that has seen only the writes that bookmark names — a session created after it (a login in
    /// another tab) may not be there yet — and a later switch to the primary does not make it current.
    reads: Cell<bookmark::Reads>,
    /// The request this store reads for, named in the lines it logs.
    request_id: String,
    /// The client's bookmark `db` started at, if it did: remembered in [`FAILED`] when a read at it fails.
    client_bookmark: Option<String>,
    /// How long [`FAILED`] remembers it then (`SESSION_FAILED_BOOKMARK_SECS`, in ms).
    remember_failed_ms: u64,
}

thread_local! {
    /// The client bookmarks a read failed at in this isolate: their requests start at the primary until their time
    /// (`SESSION_FAILED_BOOKMARK_SECS`) is over.
    static FAILED: RefCell<bookmark::Failed> =
        const { RefCell::new(bookmark::Failed::new(bookmark::REMEMBERED_FAILURES)) };
}

/// Ages this isolate's remembered failed bookmarks by `ms` ([`bookmark::Failed::age`]): the debug route the tests see
/// one forgotten by, without waiting its time out.
pub fn age_failed_bookmarks(ms: u64) {
    FAILED.with(|failed| failed.borrow_mut().age(ms));
}

/// A D1 session whose first query goes to the primary, where every write lands.
fn at_primary(database: &D1Database) -> ApiResult<D1DatabaseSession> {
    database
        .with_session(Some(bookmark::FIRST_PRIMARY))
        .or_internal("starting a D1 session")
}

impl Store {
    /// A D1 session starting where [`bookmark::start`] says: the primary for a `strict` request, else the
    /// request's bookmark when it carries a usable one.
    pub fn open(call: &Call, strict: bool) -> ApiResult<Self> {
        let header = call.req.headers().get(bookmark::HEADER).ok().flatten();
        let db = call.env.d1(bindings::DB).or_internal("opening D1")?;
        let start = FAILED.with(|failed| {
            bookmark::start(header.as_deref(), strict, &failed.borrow(), call.started_ms)
        });
        let (session, at_client_bookmark) = match db.with_session(Some(start)) {
            Ok(session) => (session, start != bookmark::FIRST_PRIMARY),
            // workerd's `withSession` takes any non-empty string: a bookmark D1 refuses fails at its first query,
            // which is then made again at the primary ([`Store::read`]).
            Err(_) => (at_primary(&db)?, false),
        };
        let client_bookmark = at_client_bookmark.then(|| start.to_owned());
        Ok(Self {
            db: RefCell::new(Rc::new(session)),
            database: db,
            kv: call.env.kv(bindings::CONFIG_KV).or_internal("opening KV")?,
            reads: Cell::new(bookmark::Reads::new(at_client_bookmark)),
            request_id: call.request_id.clone(),
            client_bookmark,
            remember_failed_ms: call
                .isolate
                .config
                .session
                .failed_bookmark_secs
                .saturating_mul(1_000),
        })
    }

    /// Whether a session this store found missing may only be missing from a replica: see `reads`.
    pub fn may_lag(&self) -> bool {
        self.reads.get().may_lag()
    }

    /// The D1 session queries go through now.
    fn db(&self) -> Rc<D1DatabaseSession> {
        Rc::clone(&self.db.borrow())
    }

    /// A read `query` makes through the request's D1 session — made once more, from a session at the primary, when
    /// D1 failed it at the client's bookmark. D1 checks a bookmark only when a query carries it (`withSession`
    /// accepts any non-empty string), so one it refuses (from another database, or from before a restore) fails every
    /// read made at it, and the client, sent no new bookmark with a 503, sent it again: 503
    /// `session_store_unavailable` for that client on every cached check and login until it dropped the header. Read
    /// at the primary, the answer carries a bookmark the client keeps instead. The store's session is at the primary
    /// from then on, and a request retries once; an answer read at the bookmark before still may lag
    /// ([`bookmark::Reads`]). The bookmark is remembered ([`FAILED`]): this isolate starts its next requests at the
    /// primary for `SESSION_FAILED_BOOKMARK_SECS`, so a client that keeps sending it (no answer handed it a new one)
    /// pays the failed read once per that time.
    async fn read<T, F, Fut>(&self, doing: &str, query: F) -> ApiResult<T>
    where
        F: Fn(Rc<D1DatabaseSession>) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        let failure = match query(self.db()).await {
            Ok(read) => {
                self.reads.set(self.reads.get().read());
                return Ok(read);
            }
            Err(failure) => failure,
        };
        // Only what D1 failed (503): a query this Worker could not even bind fails alike anywhere.
        let retry = match self.reads.get().retry_at_primary() {
            Some(retry) if failure.status() == 503 => retry,
            _ => return Err(failure),
        };
        crate::entry::log::warn(
            "session_read_retried_at_primary",
            serde_json::json!({"request_id": self.request_id, "doing": doing, "detail": failure.to_string()}),
        );
        if let Some(failed_at) = &self.client_bookmark {
            let now_ms = js_sys::Date::now() as u64;
            FAILED.with(|failed| {
                failed
                    .borrow_mut()
                    .remember(failed_at, now_ms, self.remember_failed_ms)
            });
        }
        *self.db.borrow_mut() = Rc::new(at_primary(&self.database)?);
        self.reads.set(retry);
        let read = query(self.db()).await?;
        self.reads.set(self.reads.get().read());
        Ok(read)
    }

    /// The bookmark to hand back to the client (`x-d1-bookmark`), once a query has run.
    pub fn bookmark(&self) -> Option<String> {
        self.db().get_bookmark().ok().flatten()
    }

    pub async fn user_by_email(&self, email: &str) -> ApiResult<Option<UserRow>> {
        let row = self
            .read("reading the user", |db| async move {
                db.prepare(
                    "SELECT id, email, permissions, password_algorithm, password_iterations, password_salt, \
                     password_hash FROM users WHERE email = ?1",
                )
                .bind(&[JsValue::from_str(email)])
                .or_internal("binding the user query")?
                .first::<UserColumns>(None)
                .await
                .map_err(|e| {
                    unavailable(
                        "the login could not be checked; try again shortly",
                        "reading the user",
                        e,
                    )
                })
            })
            .await?;
        Ok(row.map(|r| UserRow {
            password: PasswordHash::from_columns(
                &r.password_algorithm,
                r.password_iterations,
                &r.password_salt,
                &r.password_hash,
            ),
            permissions: permissions_or_none(&r.permissions, &r.id, &self.request_id),
            id: r.id,
            email: r.email,
        }))
    }

    pub async fn session(&self, id: &str) -> ApiResult<Option<SessionRecord>> {
        self.read("reading the session", |db| async move {
            read_session(&db, id, &self.request_id).await
        })
        .await
    }

    /// Creates a session and, in the same batch (one transaction), ends the sessions `ending` names (as
    /// [`Store::revoke_each`]: the browser's earlier session, which a new authentication never leaves alive beside it)
    /// and deletes at most [`CLEANUP_BATCH`] sessions past their expiry (dead rows, with their IP and user agent, are
    /// not kept for good; bounded, so a backlog never makes a login slow). All or nothing: when D1 cannot end the
    /// earlier sessions no new one is made (503 `session_store_unavailable`) — written first and the revocation left
    /// to fail after it, the login answered 200 with the old session alive beside the new one. Returns what
    /// [`Store::revoke_each`] returns, for the cache.
    pub async fn insert_session(
        &self,
        new: &NewSession<'_>,
        ending: &[String],
    ) -> ApiResult<(Vec<String>, Vec<String>)> {
        let mut statements = if ending.is_empty() {
            Vec::new()
        } else {
            self.revocation(ending, new.now_ms)?
        };
        let revoking = !statements.is_empty();
        statements.extend([
            self.db()
                .prepare(
                    "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, user_agent, ip, family) \
                     VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6, ?1)",
                )
                .bind(&[
                    JsValue::from_str(new.id),
                    JsValue::from_str(new.user_id),
                    num(new.now_ms),
                    num(new.expires_at),
                    opt(new.user_agent),
                    opt(new.ip),
                ])
                .or_internal("binding the session insert")?,
            self.db()
                .prepare(
                    "DELETE FROM sessions WHERE id IN \
                     (SELECT id FROM sessions WHERE expires_at < ?1 LIMIT ?2)",
                )
                .bind(&[
                    num(new.now_ms),
                    JsValue::from_f64(CLEANUP_BATCH as f64),
                ])
                .or_internal("binding the session cleanup")?,
        ]);
        let results = self.db().batch(statements).await.map_err(|e| {
            unavailable(
                "the session could not be started; try again shortly",
                "creating the session",
                e,
            )
        })?;
        if !revoking {
            return Ok((Vec::new(), Vec::new()));
        }
        Ok((ids_of(results.get(1))?, ids_of(results.first())?))
    }

    /// Replaces the session's id with `new_id` only if it is still `old_id`, unrevoked, unexpired and not rotated in
    /// the last `min_interval_ms`: of concurrent rotations of one session exactly one sees `true`. In the same transaction (a D1 batch) the old
    /// id is remembered as retired, until the session's absolute limit (`created_at + max_ms`), for reuse
    /// detection. Bounded: a session keeps its [`RETIRED_PER_SESSION`] latest retired ids, and each rotation
    /// deletes at most [`CLEANUP_BATCH`] rows past their limit, so neither a refresh loop nor a backlog of
    /// expired rows can grow the table or the rotation's transaction without bound.
    pub async fn rotate(
        &self,
        old_id: &str,
        new_id: &str,
        now_ms: u64,
        expires_at: u64,
        max_ms: u64,
        min_interval_ms: u64,
    ) -> ApiResult<bool> {
        let (old, new, now) = (
            JsValue::from_str(old_id),
            JsValue::from_str(new_id),
            num(now_ms),
        );
        let statements = vec![
            self.db()
                .prepare(
                    "UPDATE sessions SET id = ?2, last_seen_at = ?3, expires_at = ?4, family = COALESCE(family, ?1), \
                     rotated_at = ?3 \
                     WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?3 AND COALESCE(rotated_at, 0) <= ?5",
                )
                .bind(&[
                    old.clone(),
                    new.clone(),
                    now.clone(),
                    num(expires_at),
                    num(now_ms.saturating_sub(min_interval_ms)),
                ])
                .or_internal("binding the rotation")?,
            // Only when the update above happened is there a row with the new id to copy the family from.
            self.db()
                .prepare(
                    "INSERT OR IGNORE INTO retired_session_ids (id, family, retired_at, expires_at) \
                     SELECT ?1, family, ?3, created_at + ?4 FROM sessions WHERE id = ?2",
                )
                .bind(&[old, new, now.clone(), num(max_ms)])
                .or_internal("binding the retirement")?,
            self.db()
                .prepare(
                    "DELETE FROM retired_session_ids WHERE family = (SELECT family FROM sessions WHERE id = ?1) \
                     AND id NOT IN (SELECT id FROM retired_session_ids WHERE family = \
                     (SELECT family FROM sessions WHERE id = ?1) ORDER BY retired_at DESC LIMIT ?2)",
                )
                .bind(&[JsValue::from_str(new_id), JsValue::from_f64(RETIRED_PER_SESSION as f64)])
                .or_internal("binding the retired-id bound")?,
            self.db()
                .prepare(
                    "DELETE FROM retired_session_ids WHERE id IN \
                     (SELECT id FROM retired_session_ids WHERE expires_at < ?1 LIMIT ?2)",
                )
                .bind(&[now, JsValue::from_f64(CLEANUP_BATCH as f64)])
                .or_internal("binding the retired-id cleanup")?,
        ];
        let results = self.db().batch(statements).await.map_err(|e| {
            unavailable(
                "the session could not be refreshed; try again shortly",
                "rotating the session",
                e,
            )
        })?;
        let changes = results
            .first()
            .map(|r| r.meta().or_internal("reading the rotation result"))
            .transpose()?
            .flatten()
            .and_then(|m| m.changes)
            .unwrap_or(0);
        Ok(changes == 1)
    }

    /// The session family an id belonged to and when a rotation retired it, if it is such an id.
    pub async fn retired(&self, id: &str) -> ApiResult<Option<Retired>> {
        self.read("reading a retired id", |db| async move {
            db.prepare("SELECT family, retired_at FROM retired_session_ids WHERE id = ?1")
                .bind(&[JsValue::from_str(id)])
                .or_internal("binding the retired-id query")?
                .first::<Retired>(None)
                .await
                .map_err(|e| unavailable(UNREAD, "reading a retired id", e))
        })
        .await
    }

    /// Whether `family` still has a live session (not revoked, not expired): a token it retired is then one a
    /// concurrent refresh rotated, not a dead session's.
    pub async fn family_live(&self, family: &str, now_ms: u64) -> ApiResult<bool> {
        self.read("reading the family", |db| async move {
            db.prepare(
                "SELECT 1 AS live FROM sessions WHERE family = ?1 AND revoked_at IS NULL AND expires_at > ?2 LIMIT 1",
            )
            .bind(&[JsValue::from_str(family), num(now_ms)])
            .or_internal("binding the family query")?
            .first::<serde_json::Value>(None)
            .await
            .map_err(|e| unavailable(UNREAD, "reading the family", e))
            .map(|row| row.is_some())
        })
        .await
    }

    /// Ends `family` for a rotated token that came back (someone holds a copy), deciding on the primary in one
    /// transaction rather than on a read a lagging replica answered: when a session of the family was revoked less
    /// than `window_ms` ago (a login sent with this token, or the one it became, ended it), nothing changes and
    /// [`FamilyEnd::EndedMomentsAgo`] says so — the retired ids are kept, so a later return is refused once the window
    /// is over. Otherwise the live session is revoked and the family's retired ids forgotten: the detection happens
    /// once, and the copy presented again is an unknown token (a read), not another write.
    pub async fn end_family(
        &self,
        family: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> ApiResult<FamilyEnd> {
        let family = JsValue::from_str(family);
        let since = num(now_ms.saturating_sub(window_ms));
        let statements = vec![
            self.db()
                .prepare("SELECT 1 AS ended FROM sessions WHERE family = ?1 AND revoked_at > ?2 LIMIT 1")
                .bind(&[family.clone(), since.clone()])
                .or_internal("binding the family's revocation query")?,
            self.db()
                .prepare(
                    "DELETE FROM retired_session_ids WHERE family = ?1 \
                     AND NOT EXISTS (SELECT 1 FROM sessions WHERE family = ?1 AND revoked_at > ?2)",
                )
                .bind(&[family.clone(), since])
                .or_internal("binding the family's retired-id deletion")?,
            self.db()
                .prepare(
                    "UPDATE sessions SET revoked_at = ?2 WHERE family = ?1 AND revoked_at IS NULL RETURNING id",
                )
                .bind(&[family, num(now_ms)])
                .or_internal("binding the family revocation")?,
        ];
        let results = self
            .db()
            .batch(statements)
            .await
            .map_err(|e| unavailable(UNREAD, "revoking the session family", e))?;
        let ended = match results.first() {
            Some(result) => !result
                .results::<serde_json::Value>()
                .or_internal("reading the family's revocation")?
                .is_empty(),
            None => false,
        };
        if ended {
            return Ok(FamilyEnd::EndedMomentsAgo);
        }
        ids_of(results.get(2)).map(FamilyEnd::Revoked)
    }

    /// Marks the sessions `ids` name revoked (once; the first revocation time is kept) — the one each is, or, for an
    /// id a refresh retired (a tab that lost a concurrent refresh, or a logout racing one), the session it was rotated
    /// into — in one transaction however many there are (a logout or login ends every well-formed value of the
    /// cookie, and a planter decides how many there are). Returns the ids revoked now and the ids among `ids` that
    /// name a session already revoked (whose cache entry may still hold it), for the cache.
    pub async fn revoke_each(
        &self,
        ids: &[String],
        now_ms: u64,
    ) -> ApiResult<(Vec<String>, Vec<String>)> {
        let statements = self.revocation(ids, now_ms)?;
        let results = self.db().batch(statements).await.map_err(|e| {
            unavailable(
                "the session could not be ended; try again shortly",
                "revoking sessions",
                e,
            )
        })?;
        Ok((ids_of(results.get(1))?, ids_of(results.first())?))
    }

    /// [`Store::revoke_each`]'s two statements: the ids among `ids` of sessions already revoked, then the
    /// revocation (`RETURNING id`), for a batch of their own or a login's.
    fn revocation(&self, ids: &[String], now_ms: u64) -> ApiResult<Vec<D1PreparedStatement>> {
        let ids = JsValue::from_str(&serde_json::Value::from(ids.to_vec()).to_string());
        Ok(vec![
            self.db()
                .prepare(
                    "SELECT id FROM sessions WHERE revoked_at IS NOT NULL \
                     AND id IN (SELECT value FROM json_each(?1))",
                )
                .bind(std::slice::from_ref(&ids))
                .or_internal("binding the revoked-session query")?,
            self.db()
                .prepare(
                    "UPDATE sessions SET revoked_at = ?2 WHERE revoked_at IS NULL \
                     AND (id IN (SELECT value FROM json_each(?1)) OR family IN (SELECT family FROM \
                     retired_session_ids WHERE id IN (SELECT value FROM json_each(?1)))) RETURNING id",
                )
                .bind(&[ids, num(now_ms)])
                .or_internal("binding the revocation")?,
        ])
    }

    /// Marks every live session of `user_id` revoked. Returns the ids revoked now, for the cache.
    pub async fn revoke_user(&self, user_id: &str, now_ms: u64) -> ApiResult<Vec<String>> {
        self.revoke_where("user_id = ?1", user_id, now_ms).await
    }

    /// Marks the live sessions `condition` (on `?1` = `subject`) selects revoked at `now_ms` (`?2`); their ids.
    async fn revoke_where(
        &self,
        condition: &str,
        subject: &str,
        now_ms: u64,
    ) -> ApiResult<Vec<String>> {
        let result = self
            .db()
            .prepare(format!(
                "UPDATE sessions SET revoked_at = ?2 WHERE revoked_at IS NULL AND {condition} RETURNING id"
            ))
            .bind(&[JsValue::from_str(subject), num(now_ms)])
            .or_internal("binding the revocation")?
            .all()
            .await
            .map_err(|e| {
                unavailable(
                    "the sessions could not be ended; try again shortly",
                    "revoking sessions",
                    e,
                )
            })?;
        ids_of(Some(&result))
    }

    /// The user's sessions a check would accept: not revoked, not expired, and not past `created_at + max_ms` or
    /// `last_seen_at + idle_ms` (`SESSION_MAX_SECS`, `SESSION_IDLE_SECS`; after a setting is lowered, an older session
    /// still holds the expiry written under the longer one, and checks refuse it: listed, it showed as active a
    /// session no request could use). At most
    /// [`MAX_LISTED_SESSIONS`]: the caller's own (`current_id`) first, then the newest — ordered by creation alone,
    /// an account with that many newer sessions listed the caller's nowhere, and no entry said `current`. With
    /// whether there were more (one row past the bound is read to tell): a cut list read as the whole one showed a
    /// user reviewing where they are signed in no sign of the sessions left out.
    pub async fn active_sessions(
        &self,
        user_id: &str,
        current_id: &str,
        now_ms: u64,
        idle_ms: u64,
        max_ms: u64,
    ) -> ApiResult<(Vec<SessionSummary>, bool)> {
        let mut listed = self
            .db()
            .prepare(
                // The expiry shown is capped at the idle and absolute limits, which lowered settings may put first.
                "SELECT id, created_at, last_seen_at, MIN(expires_at, created_at + ?6, last_seen_at + ?8) AS expires_at, \
                 user_agent, ip FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
                 AND created_at > ?3 AND last_seen_at > ?7 ORDER BY id = ?4 DESC, created_at DESC LIMIT ?5",
            )
            .bind(&[
                JsValue::from_str(user_id),
                num(now_ms),
                num(now_ms.saturating_sub(max_ms)),
                JsValue::from_str(current_id),
                JsValue::from_f64(f64::from(MAX_LISTED_SESSIONS + 1)),
                num(max_ms),
                num(now_ms.saturating_sub(idle_ms)),
                num(idle_ms),
            ])
            .or_internal("binding the session list")?
            .all()
            .await
            .map_err(|e| {
                unavailable(
                    "the sessions could not be listed; try again shortly",
                    "listing sessions",
                    e,
                )
            })?
            .results::<SessionSummary>()
            .or_internal("reading the session list")?;
        let truncated = listed.len() > MAX_LISTED_SESSIONS as usize;
        listed.truncate(MAX_LISTED_SESSIONS as usize);
        Ok((listed, truncated))
    }

    /// The cached entry's text; a KV failure reads as a miss (D1 then answers).
    pub async fn cached(&self, id: &str) -> Option<String> {
        self.kv.get(&cache_key(id)).text().await.ok().flatten()
    }

    /// Records in the cache that `id` no longer admits anyone (logout, or the old id of a refresh). An entry rather
    /// than a deletion: a cache fill that read the session before the revocation then leaves it alone.
    pub async fn mark_revoked(&self, id: &str, now_ms: u64, cache_secs: u64) -> ApiResult<()> {
        write_cache(
            &self.kv,
            id,
            &CacheEntry::revoked(now_ms, cache_secs),
            cache_secs,
        )
        .await
    }

    pub async fn cache(&self, id: &str, entry: &CacheEntry, cache_secs: u64) -> ApiResult<()> {
        write_cache(&self.kv, id, entry, cache_secs).await
    }

    /// Writes a cache entry from a D1 read made earlier in this request — unless the cache now records a
    /// revocation: a logout, a refresh or a reuse detection may have landed between that read and this write, and
    /// its entry must stand. The cache cannot compare and swap, so one may also land between the cache read here and
    /// the write, which would then replace its revocation entry with a live one (a logout racing a refresh, or a
    /// page load's fill: the logged-out token accepted on cached routes until the entry's age limit). So the
    /// session is read again after the write, at D1's primary (where every revocation is written, before its
    /// entry): if it has ended, a revocation entry goes back; a revocation the read did not see writes its own entry
    /// after this one. One more D1 read per fill (fills run after the response, but for a refresh's).
    pub async fn refill(&self, id: &str, entry: &CacheEntry, cache_secs: u64) -> ApiResult<()> {
        if cache_secs == 0 {
            return Ok(()); // caching is off: no entry to protect, and no read to make
        }
        if self.cached_revoked(id).await? {
            return Ok(());
        }
        write_cache(&self.kv, id, entry, cache_secs).await?;
        let ended = read_session(&at_primary(&self.database)?, id, &self.request_id)
            .await?
            .is_none_or(|record| record.revoked_at.is_some());
        if ended {
            let revoked = CacheEntry::revoked(js_sys::Date::now() as u64, cache_secs);
            // KV takes about one write per second to a key, and in the race this closes the key has just been
            // written twice: a refused write is tried again past that second, twice at most.
            let mut retries = 0;
            while let Err(e) = write_cache(&self.kv, id, &revoked, cache_secs).await {
                if retries == 2 {
                    return Err(e);
                }
                retries += 1;
                Delay::from(Duration::from_millis(1_100)).await;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Whether the session's cache entry says it is revoked.
    async fn cached_revoked(&self, id: &str) -> ApiResult<bool> {
        let current = self
            .kv
            .get(&cache_key(id))
            .text()
            .await
            .or_internal("reading the cached session")?;
        Ok(CacheEntry::is_revoked(current.as_deref()))
    }
}

async fn write_cache(kv: &KvStore, id: &str, entry: &CacheEntry, cache_secs: u64) -> ApiResult<()> {
    if cache_secs == 0 {
        return Ok(());
    }
    let json = serde_json::to_string(entry).or_internal("serialising the cache entry")?;
    kv.put(&cache_key(id), json)
        .or_internal("caching the session")?
        .expiration_ttl(kv_ttl_secs(cache_secs))
        .execute()
        .await
        .or_internal("caching the session")
}

/// The session `id` names, with its user, as `db` reads it.
async fn read_session(
    db: &D1DatabaseSession,
    id: &str,
    request_id: &str,
) -> ApiResult<Option<SessionRecord>> {
    let row = db
        .prepare(
            "SELECT s.created_at, s.expires_at, s.last_seen_at, s.revoked_at, u.id AS user_id, u.email, \
             u.permissions FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1",
        )
        .bind(&[JsValue::from_str(id)])
        .or_internal("binding the session query")?
        .first::<SessionColumns>(None)
        .await
        .map_err(|e| unavailable(UNREAD, "reading the session", e))?;
    row.map(|r| {
        Ok(SessionRecord {
            permissions: permissions_or_none(&r.permissions, &r.user_id, request_id),
            user_id: r.user_id,
            email: r.email,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_seen_at: r.last_seen_at,
            revoked_at: r.revoked_at,
        })
    })
    .transpose()
}

/// Fills the cache entry after a D1 read, through `waitUntil`.
pub async fn fill_cache(
    env: Env,
    id: &str,
    entry: &CacheEntry,
    cache_secs: u64,
    request_id: String,
) -> ApiResult<()> {
    let database = env.d1(bindings::DB).or_internal("opening D1")?;
    let store = Store {
        db: RefCell::new(Rc::new(at_primary(&database)?)),
        database,
        kv: env.kv(bindings::CONFIG_KV).or_internal("opening KV")?,
        reads: Cell::new(bookmark::Reads::new(false)),
        request_id,
        client_bookmark: None,
        remember_failed_ms: 0,
    };
    store.refill(id, entry, cache_secs).await
}

/// Replaces a user's stored password hash with `new` if it is still `old_hash_b64`; whether it did. On the primary:
/// it runs after the response, through `waitUntil`.
pub async fn replace_password(
    env: Env,
    user_id: &str,
    old_hash_b64: &str,
    new: &PasswordHash,
) -> ApiResult<bool> {
    let db = env.d1(bindings::DB).or_internal("opening D1")?;
    let result = db
        .prepare(
            "UPDATE users SET password_algorithm = ?3, password_iterations = ?4, password_salt = ?5, \
             password_hash = ?6 WHERE id = ?1 AND password_hash = ?2",
        )
        .bind(&[
            JsValue::from_str(user_id),
            JsValue::from_str(old_hash_b64),
            JsValue::from_str(crate::session::password::ALGORITHM),
            JsValue::from_f64(f64::from(new.iterations)),
            JsValue::from_str(&new.salt_b64()),
            JsValue::from_str(&new.hash_b64()),
        ])
        .or_internal("binding the password update")?
        .run()
        .await
        .or_internal("updating the password hash")?;
    let changes = result
        .meta()
        .or_internal("reading the password update result")?
        .and_then(|m| m.changes)
        .unwrap_or(0);
    Ok(changes == 1)
}

/// Sliding expiry, run after the response through `waitUntil`: writes last-seen and the new expiry to D1 (only if
/// the session is still unrevoked), then refreshes the cache entry from what D1 now holds — an expired session's
/// entry says so (never trusted: checks ask D1), and a session D1 has ended (revoked there, or gone with its user)
/// gets a revocation entry: a touch is scheduled by a check a fresh entry answered, and left alone, that entry went
/// on admitting the session, each check scheduling another touch, until its `fresh_until`.
pub async fn touch(
    env: Env,
    id: String,
    now_ms: u64,
    expires_at: u64,
    cache_secs: u64,
    request_id: String,
) -> ApiResult<()> {
    let database = env.d1(bindings::DB).or_internal("opening D1")?;
    let db = at_primary(&database)?;
    db.prepare(
        // Only a live session, and only forward: a session D1 already ended (expired, or ended by an operator while
        // a fresh cache entry still answered the check) is not brought back, and a late touch does not move the
        // expiry of a later one backwards.
        "UPDATE sessions SET last_seen_at = ?2, expires_at = ?3 \
         WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2 AND last_seen_at < ?2",
    )
    .bind(&[JsValue::from_str(&id), num(now_ms), num(expires_at)])
    .or_internal("binding last-seen")?
    .run()
    .await
    .or_internal("writing last-seen")?;
    let kv = env.kv(bindings::CONFIG_KV).or_internal("opening KV")?;
    let store = Store {
        db: RefCell::new(Rc::new(db)),
        database,
        kv,
        reads: Cell::new(bookmark::Reads::new(false)),
        request_id,
        client_bookmark: None,
        remember_failed_ms: 0,
    };
    match store.session(&id).await? {
        Some(record) if record.revoked_at.is_none() => {
            let entry = CacheEntry::new(record, now_ms, cache_secs);
            store.refill(&id, &entry, cache_secs).await?;
        }
        // Read at the primary, where every revocation and deletion lands first: an ended session, not a lagging
        // replica. (A refresh that rotated the id meanwhile has written this entry already; it is written again.)
        ended => {
            // Not written again when it says revoked already (the refresh that renamed the id wrote it moments
            // ago): KV takes about one write per second to a key, and the second write could be refused.
            if cache_secs == 0 || store.cached_revoked(&id).await? {
                return Ok(());
            }
            let now = js_sys::Date::now() as u64;
            let revoked_at = ended.and_then(|record| record.revoked_at).unwrap_or(now);
            let entry = CacheEntry::revoked_since(revoked_at, now, cache_secs);
            write_cache(&store.kv, &id, &entry, cache_secs).await?;
        }
    }
    Ok(())
}

/// A user's permissions column, read alike at login and at every session check: one that is not a JSON string array
/// (an operator's edit gone wrong) grants nothing and is logged, rather than letting the user log in with none and
/// then answering every check 500.
fn permissions_or_none(column: &str, user_id: &str, request_id: &str) -> Vec<String> {
    parse_permissions(column).unwrap_or_else(|e| {
        crate::entry::log::error(
            "bad permissions column",
            serde_json::json!({"user_id": user_id, "detail": e, "request_id": request_id}),
        );
        Vec::new()
    })
}
