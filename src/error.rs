//! The one error type of the Worker: every failure a request can meet becomes an [`ApiError`], which knows its HTTP
//! status, a stable machine-readable code, a message safe to show the client, and any headers the status needs
//! (`Allow`, `Retry-After`, `WWW-Authenticate`). What went wrong inside (a JS exception, a SQL error) travels in
//! `internal`, which is logged and never sent.
//!
//! Pure: the conversion to a runtime `Response` happens in exactly one place, `entry::respond`.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::observability::log::{clipped, MAX_ECHO_BYTES};

/// A request failure, mapped to an HTTP status and a JSON body `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
    headers: Vec<(&'static str, String)>,
    internal: Option<String>,
    /// Members beside `error` in the body, for a failure that also reports what was done ([`Self::with_fields`]).
    fields: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with any status and code; prefer the named constructors below. The message is held to
    /// [`MAX_ECHO_BYTES`] (cut on a character boundary, marked `…`): messages echo client input (the 404's path), and
    /// a 20 000-character path must not come back as a 20 KB body.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match clipped(&message, MAX_ECHO_BYTES) {
            Cow::Borrowed(_) => message,
            Cow::Owned(cut) => cut,
        };
        Self {
            status,
            code,
            message,
            headers: Vec::new(),
            internal: None,
            fields: None,
        }
    }

    /// 400: the request is malformed (bad JSON, bad parameter). The message names the input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750) describing why the credentials were refused.
    /// The description may quote what the token said (its `alg`): in the header it keeps only the characters RFC 6750
    /// §3 allows there (printable ASCII but `"` and `\\`; others become `?`), at most 200 of them, so the challenge
    /// is always a valid header value (the runtime would drop one with a line break, leaving a 401 without it).
    pub fn unauthorized(code: &'static str, description: impl Into<String>) -> Self {
        let description = description.into();
        let allowed: String = description
            .chars()
            .take(200)
            .map(|c| match c {
                '"' | '\\' => '\'',
                ' '..='~' => c,
                _ => '?',
            })
            .collect();
        let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{allowed}\"");
        Self::new(401, code, description).with_header("www-authenticate", challenge)
    }

    /// 401 for a request that sent no bearer token (no `Authorization`, another scheme, an empty token): the bare
    /// `Bearer` challenge RFC 6750 §3.1 asks for when a request lacks credentials — an `invalid_token` error there
    /// sends some OAuth clients into a refresh loop for a token they never sent. The JSON says why.
    pub fn bearer_required(description: impl Into<String>) -> Self {
        Self::new(401, "invalid_token", description).with_header("www-authenticate", "Bearer")
    }

    /// 403: authenticated but not allowed (missing permission, WAF rule, bad signature).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    /// 404 for a path nothing serves.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 405 with the `Allow` header listing the methods the path does accept.
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        Self::not_allowed(&format!("method {method} is not allowed here"), allowed)
    }

    /// The 405 saying `refused`, with `allowed` in its message and `Allow`.
    fn not_allowed(refused: &str, allowed: &[&str]) -> Self {
        let allowed = allowed.join(", ");
        Self::new(
            405,
            "method_not_allowed",
            format!("{refused}; allowed: {allowed}"),
        )
        .with_header("allow", allowed)
    }

    /// 405 for a CORS preflight asking about a method (`asked`, from `Access-Control-Request-Method`) the target
    /// does not serve: that method is the one refused, and OPTIONS, served here as this preflight, joins `allowed`
    /// (RFC 9110 §15.5.6) — unless OPTIONS is what the preflight asks about: then the OPTIONS request it would clear
    /// is the one not served, and `Allow` does not claim it.
    /// `Access-Control-Request-Method` is a header, any text a page's script or a client puts there, not a method
    /// the runtime parsed: it is named only when it is one (a token of at most 32 characters, RFC 9110 §9.1), so a
    /// message never echoes other client input.
    pub fn preflight_refused(asked: &str, allowed: &[&str]) -> Self {
        let asked = asked.trim();
        let mut allowed = allowed.to_vec();
        if asked != "OPTIONS" && !allowed.contains(&"OPTIONS") {
            allowed.push("OPTIONS");
        }
        let is_method = (1..=32).contains(&asked.len())
            && asked
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if is_method {
            return Self::method_not_allowed(asked, &allowed);
        }
        Self::not_allowed(
            "the preflight's Access-Control-Request-Method is no method name",
            &allowed,
        )
    }

    /// 413: a body or header over its configured cap; the message says which cap.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    /// 412: an `If-Match` that names no current representation of what was asked (RFC 9110 §13.1.1); the message
    /// says what it was checked against.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(412, "precondition_failed", message)
    }

    /// 415: a body in a content type the route does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "unsupported_media_type", message)
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(429, "rate_limited", message)
            .with_header("retry-after", retry_after_secs.max(1).to_string())
    }

    /// 500: something failed inside. The client sees a generic message; `detail` is only logged.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            500,
            "internal_error",
            "the edge could not complete this request",
        )
        .with_internal(detail)
    }

    /// 502: the origin could not be reached or answered garbage.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(502, "bad_gateway", "the origin could not be reached").with_internal(detail)
    }

    /// 504: the origin did not answer within the route's timeout.
    pub fn gateway_timeout(timeout_ms: u64) -> Self {
        Self::gateway_timeout_after(timeout_ms, 1)
    }

    /// 504: the origin did not answer within the timeout each of `attempts` requests had, said when it was asked more
    /// than once (a route's `retries`): the client waited that many timeouts, not one.
    pub fn gateway_timeout_after(timeout_ms: u64, attempts: u32) -> Self {
        let message = match attempts {
            0 | 1 => format!("the origin did not answer within {timeout_ms} ms"),
            n => format!("the origin did not answer within {timeout_ms} ms, asked {n} times"),
        };
        Self::new(504, "gateway_timeout", message)
    }

    /// Adds a response header (lower-case name) that this error needs. A second `vary` is merged into the first
    /// (each field name once, compared without case; `*` alone when either says it): the answer varies by every
    /// header any step read — CORS by `Origin`, a handler by what it negotiated — and a response holds one field.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, said)) if name == "vary" => *said = merged_vary(said, &value),
            _ => self.headers.push((name, value)),
        }
        self
    }

    /// Adds several response headers (lower-case names), as [`Self::with_header`] does each.
    pub fn with_headers(self, headers: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        headers
            .into_iter()
            .fold(self, |error, (name, value)| error.with_header(name, value))
    }

    /// Puts `items` before the list header `name` already has (or sets it): structured-field lists such as
    /// `RateLimit-Policy` name several members in one field.
    pub fn with_list_head(mut self, name: &'static str, items: String) -> Self {
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, value)) => *value = format!("{items}, {value}"),
            None => self.headers.push((name, items)),
        }
        self
    }

    /// Adds members beside `error` to the body (a purge that marked some tags and not others says which): the
    /// answer stays an error — its status, `error`, headers and log line — with what was done kept. A member named
    /// `error` is not taken.
    pub fn with_fields(mut self, fields: serde_json::Map<String, serde_json::Value>) -> Self {
        self.fields = Some(Box::new(fields));
        self
    }

    /// Attaches what went wrong inside, for the log line only.
    pub fn with_internal(mut self, detail: impl Into<String>) -> Self {
        self.internal = Some(detail.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// Every header line of this error's response, in order: each of `defaults` whose name the error does not give
    /// (a name it gives once replaces the default, e.g. `cache-control`), then the error's own — a name it gives
    /// twice (two `set-cookie`, two `www-authenticate` challenges) is two lines, to be appended, never set over
    /// each other.
    pub fn response_headers<'a>(
        &'a self,
        defaults: &[(&'static str, &'a str)],
    ) -> Vec<(&'static str, &'a str)> {
        defaults
            .iter()
            .filter(|(name, _)| {
                !self
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .copied()
            .chain(self.headers.iter().map(|(n, v)| (*n, v.as_str())))
            .collect()
    }

    /// The detail for the log; never part of the response.
    pub fn internal_detail(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> String {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        let text = match &self.fields {
            None => serde_json::to_string(&body),
            Some(fields) => serde_json::to_value(&body).map(|mut all| {
                if let serde_json::Value::Object(all) = &mut all {
                    for (name, value) in fields.iter() {
                        all.entry(name.as_str()).or_insert_with(|| value.clone());
                    }
                }
                all.to_string()
            }),
        };
        // Serialising strings and JSON values cannot fail; the fallback keeps the contract even so.
        text.unwrap_or_else(|_| {
            r#"{"error":{"code":"internal_error","message":"error body"}}"#.to_owned()
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(internal) = &self.internal {
            write!(f, " ({internal})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// One `Vary` value naming every field `a` and `b` name, each once (the first spelling kept), or `*` when either
/// names it (RFC 9110 §12.5.5: `*` says the answer varies beyond the request's fields; nothing beside it matters).
pub fn merged_vary(a: &str, b: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in a.split(',').chain(b.split(',')).map(str::trim) {
        if name == "*" {
            return "*".to_owned();
        }
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    names.join(", ")
}

/// Result of a handler: a value or an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// Turns any runtime failure into a 500 whose log detail says what was being done: `kv.get(k).await.or_internal("reading JWKS")?`.
pub trait OrInternal<T> {
    fn or_internal(self, doing: &str) -> ApiResult<T>;
}

impl<T, E: fmt::Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self, doing: &str) -> ApiResult<T> {
        self.map_err(|e| ApiError::internal(format!("{doing}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure that also reports what was done keeps its members beside `error`, which they cannot replace.
    #[test]
    fn fields_stand_beside_the_error() {
        let serde_json::Value::Object(fields) =
            serde_json::json!({"purged": ["a"], "error": {"code": "not_this"}})
        else {
            unreachable!()
        };
        let error = ApiError::new(503, "purge_incomplete", "1 of 2").with_fields(fields);
        let body: serde_json::Value = serde_json::from_str(&error.body()).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "purge_incomplete", "message": "1 of 2"}, "purged": ["a"]})
        );
    }

    #[test]
    fn every_constructor_maps_to_its_status_and_a_json_body() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::bad_request("invalid_json", "x"),
                400,
                "invalid_json",
            ),
            (
                ApiError::unauthorized("invalid_token", "x"),
                401,
                "invalid_token",
            ),
            (ApiError::forbidden("forbidden", "x"), 403, "forbidden"),
            (ApiError::not_found("x"), 404, "not_found"),
            (
                ApiError::method_not_allowed("PUT", &["GET"]),
                405,
                "method_not_allowed",
            ),
            (ApiError::payload_too_large("x"), 413, "payload_too_large"),
            (
                ApiError::unsupported_media_type("x"),
                415,
                "unsupported_media_type",
            ),
            (ApiError::too_many_requests("x", 3), 429, "rate_limited"),
            (ApiError::internal("boom"), 500, "internal_error"),
            (ApiError::bad_gateway("refused"), 502, "bad_gateway"),
            (ApiError::gateway_timeout(1000), 504, "gateway_timeout"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error}");
            let body: serde_json::Value = serde_json::from_str(&error.body()).expect("json body");
            assert_eq!(body["error"]["code"], code, "{error}");
            assert!(body["error"]["message"].is_string(), "{error}");
        }
    }

    #[test]
    fn a_message_echoing_long_input_is_held_to_a_kilobyte() {
        let path = format!("/{}", "é".repeat(10_000));
        let error = ApiError::not_found(format!("no route serves {path}"));
        assert!(
            error.message().len() <= MAX_ECHO_BYTES + 3,
            "{}",
            error.message().len()
        );
        assert!(
            error.message().starts_with("no route serves /éé") && error.message().ends_with('…')
        );
        assert!(
            error.body().len() < 2 * MAX_ECHO_BYTES,
            "{}",
            error.body().len()
        );
        assert_eq!(
            ApiError::not_found("no route serves /x").message(),
            "no route serves /x"
        );
    }

    #[test]
    fn internal_detail_is_logged_but_never_in_the_body() {
        let error = ApiError::internal("D1_ERROR: no such table: users");
        assert!(!error.body().contains("D1_ERROR"));
        assert_eq!(
            error.internal_detail(),
            Some("D1_ERROR: no such table: users")
        );
    }

    #[test]
    fn status_headers_are_attached() {
        let e = ApiError::method_not_allowed("DELETE", &["GET", "HEAD"]);
        assert_eq!(e.headers(), &[("allow", "GET, HEAD".to_owned())]);
        let e = ApiError::too_many_requests("slow down", 0);
        assert_eq!(e.headers(), &[("retry-after", "1".to_owned())]);
        let e = ApiError::unauthorized("invalid_token", "token \"expired\"");
        assert_eq!(
            e.headers()[0].1,
            "Bearer error=\"invalid_token\", error_description=\"token 'expired'\""
        );
    }

    #[test]
    fn the_challenge_stays_a_valid_header_value_whatever_the_token_says() {
        let e = ApiError::unauthorized(
            "invalid_token",
            format!(
                "algorithm x\r\nSet-Cookie: a=b é {} is not supported",
                "y".repeat(500)
            ),
        );
        let challenge = &e.headers()[0].1;
        let description = challenge
            .strip_prefix("Bearer error=\"invalid_token\", error_description=\"")
            .and_then(|d| d.strip_suffix('"'))
            .expect("one quoted description");
        assert!(
            description.starts_with("algorithm x??Set-Cookie: a=b ? yyy"),
            "{description}"
        );
        assert_eq!(description.chars().count(), 200);
        assert!(description
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
    }

    #[test]
    fn list_headers_take_members_in_front_or_start_with_them() {
        let e = ApiError::too_many_requests("slow down", 1)
            .with_header("ratelimit-policy", "\"b\";q=1;w=1")
            .with_list_head("ratelimit-policy", "\"a\";q=2;w=1".into())
            .with_list_head("ratelimit", "\"a\";r=1;t=1".into());
        assert_eq!(
            e.headers(),
            &[
                ("retry-after", "1".to_owned()),
                (
                    "ratelimit-policy",
                    "\"a\";q=2;w=1, \"b\";q=1;w=1".to_owned()
                ),
                ("ratelimit", "\"a\";r=1;t=1".to_owned())
            ]
        );
    }

    #[test]
    fn vary_headers_merge_into_one_field() {
        // A response holds one Vary: the runtime's `set` kept the last, and an error that varied by what its handler
        // negotiated lost that when CORS added `Origin` (or the reverse).
        let e = ApiError::not_found("x")
            .with_header("vary", "Accept, accept-encoding")
            .with_headers([("vary", "Origin, Accept".to_owned())])
            .with_header("retry-after", "1");
        assert_eq!(
            e.headers(),
            &[
                ("vary", "Accept, accept-encoding, Origin".to_owned()),
                ("retry-after", "1".to_owned())
            ]
        );
        let star = ApiError::not_found("x")
            .with_header("vary", "Origin")
            .with_header("vary", "Accept, *");
        assert_eq!(star.headers(), &[("vary", "*".to_owned())]);
        let star_first = ApiError::not_found("x")
            .with_header("vary", "*")
            .with_header("vary", "Origin");
        assert_eq!(star_first.headers(), &[("vary", "*".to_owned())]);
        // Other repeated fields are kept as they were added.
        let twice = ApiError::not_found("x")
            .with_header("set-cookie", "a=1")
            .with_header("set-cookie", "b=2");
        assert_eq!(twice.headers().len(), 2);
    }

    #[test]
    fn a_preflight_refused_names_the_method_it_asked_about_and_allow_never_lists_a_refused_method()
    {
        let allow = |e: &ApiError| {
            e.headers()
                .iter()
                .find(|(n, _)| *n == "allow")
                .map(|(_, v)| v.clone())
        };
        let delete = ApiError::preflight_refused("DELETE", &["GET", "HEAD"]);
        assert_eq!(allow(&delete).as_deref(), Some("GET, HEAD, OPTIONS"));
        assert!(delete.body().contains("method DELETE is not allowed"));
        // Asking whether an OPTIONS request may be sent, to a target that serves none but preflights.
        let options = ApiError::preflight_refused("OPTIONS", &["GET", "HEAD"]);
        assert_eq!(allow(&options).as_deref(), Some("GET, HEAD"));
        assert!(options
            .body()
            .contains("method OPTIONS is not allowed here; allowed: GET, HEAD\""));
        let padded = ApiError::preflight_refused(" OPTIONS ", &["POST"]);
        assert_eq!(allow(&padded).as_deref(), Some("POST"));
        // What is no method name is not echoed (it was, up to 1 KiB of it): the header is any text a client sends.
        for asked in [
            "<script>alert(1)</script>",
            "GET POST",
            &"X".repeat(33),
            "\u{e9}t\u{e9}",
        ] {
            let refused = ApiError::preflight_refused(asked, &["GET"]);
            assert_eq!(refused.status(), 405);
            assert_eq!(allow(&refused).as_deref(), Some("GET, OPTIONS"), "{asked}");
            assert!(
                !refused.body().contains(asked),
                "{asked}: {}",
                refused.body()
            );
            assert!(refused.body().contains("no method name"), "{asked}");
        }
    }

    #[test]
    fn repeated_headers_are_each_a_line_of_the_response_and_one_given_once_replaces_a_default() {
        let defaults = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        let e = ApiError::unauthorized("x", "y")
            .with_header("set-cookie", "a=1")
            .with_header("set-cookie", "b=2")
            .with_header("www-authenticate", "Bearer")
            .with_header("www-authenticate", "ApiKey header=\"x-api-key\"")
            .with_header("cache-control", "private");
        let lines = e.response_headers(&defaults);
        let of = |name: &str| {
            lines
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
        };
        assert_eq!(of("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(of("www-authenticate").len(), 3, "{lines:?}");
        assert_eq!(
            of("cache-control"),
            ["private"],
            "the error's replaces the default"
        );
        assert_eq!(of("content-type"), ["application/json"]);
        let plain = ApiError::not_found("x");
        assert_eq!(plain.response_headers(&defaults), defaults.to_vec());
    }

    /// A route that retries makes its client wait one timeout per attempt: the 504 says how many there were.
    #[test]
    fn a_retried_timeout_says_how_often_the_origin_was_asked() {
        let message = |error: ApiError| {
            let body: serde_json::Value = serde_json::from_str(&error.body()).expect("json body");
            body["error"]["message"].as_str().map(str::to_owned)
        };
        assert_eq!(
            message(ApiError::gateway_timeout(300)).as_deref(),
            Some("the origin did not answer within 300 ms")
        );
        assert_eq!(
            message(ApiError::gateway_timeout_after(300, 1)).as_deref(),
            Some("the origin did not answer within 300 ms")
        );
        assert_eq!(
            message(ApiError::gateway_timeout_after(300, 3)).as_deref(),
            Some("the origin did not answer within 300 ms, asked 3 times")
        );
    }
}
