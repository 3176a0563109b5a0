//! Sessions: users log in with email and password, get an HttpOnly session cookie (D1 is the source of truth, KV a
//! short-lived cache in front of it) and a short-lived access JWT for the gateway. Other capabilities ask
//! [`handler::current_user`] who is calling and get a [`SessionUser`] (and, without one, whether their answer should
//! clear a session cookie that names no live session).
//!
//! Pure modules: `config` (settings), `credentials` (login body rules), `password` (PBKDF2 hash format and
//! comparison), `token` (session tokens, their stored ids, cookies), `record` (expiry, sliding, cache freshness),
//! `jwt` (access tokens), `bookmark` (the `x-d1-bookmark` header), `origin_check` (cross-origin protection), `device`
//! (trusted-device cookies, which keep the per-email login limit from locking owners out). `handler` is the runtime
//! side.

pub mod bookmark;
pub mod config;
pub mod credentials;
pub mod device;
pub mod jwt;
pub mod origin_check;
pub mod password;
pub mod record;
pub mod token;

pub mod handler;

use serde::{Deserialize, Serialize};

/// Who a valid session belongs to: what other capabilities get from [`handler::current_user`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub user_id: String,
    pub email: String,
    pub permissions: Vec<String>,
}
