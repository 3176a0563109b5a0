//! The structured log line: one JSON object per request (and per panic), written by the entry with `console.log`.
//! Workers Logs and `wrangler tail` index these fields, so their names are part of the operator's contract.
//!
//! Every other line (a handler's warning, a Durable Object's error) is an event in one shape,
//! `{"level", "msg", …fields}` ([`event_line`], shared with the Durable Objects: `durable_objects::log`), written by
//! `entry::log`. A line about a request carries its `request_id`.

use std::borrow::Cow;

use serde::Serialize;

pub use durable_objects::log::{line as event_line, Level};

/// The most of a client-supplied text (a path) a log line or an error message echoes, in bytes.
pub const MAX_ECHO_BYTES: usize = 1024;

/// `text` cut to at most `max_bytes` on a character boundary, with `…` appended when anything was cut: a 20 000
/// character path is not echoed whole into a 404 body and its log line.
pub fn clipped(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// One line per request.
#[derive(Debug, Serialize)]
pub struct RequestLog<'a> {
    pub level: &'static str,
    pub msg: &'static str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: u64,
    pub request_id: &'a str,
    pub colo: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'a str>,
    /// What went wrong inside (never sent to the client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

impl RequestLog<'_> {
    /// The line as JSON; `error` level for 5xx, `warn` for 4xx, else `info`.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn level_for(status: u16) -> &'static str {
        match status {
            500.. => "error",
            400..=499 => "warn",
            _ => "info",
        }
    }
}

/// Whether a request writes its log line: always for 4xx/5xx, else `percent` of the time, decided by `roll`
/// (a uniformly random number the caller draws; only `roll % 100` is used).
pub fn sampled(status: u16, percent: u64, roll: u32) -> bool {
    status >= 400 || u64::from(roll % 100) < percent
}

/// The line a panic writes before the isolate's Wasm instance is reset.
pub fn panic_line(message: &str, location: Option<&str>) -> String {
    serde_json::json!({
        "level": "error",
        "msg": "panic",
        "panic": message,
        "location": location,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_one_json_object_with_every_field() {
        let line = RequestLog {
            level: RequestLog::level_for(502),
            msg: "request",
            method: "GET",
            path: "/api/\"x\"",
            status: 502,
            duration_ms: 12,
            request_id: "r1",
            colo: "DFW",
            error_code: Some("bad_gateway"),
            detail: Some("connection refused"),
        }
        .to_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["level"], "error");
        assert_eq!(v["path"], "/api/\"x\"");
        assert_eq!(v["duration_ms"], 12);
        assert_eq!(v["colo"], "DFW");
        assert_eq!(RequestLog::level_for(404), "warn");
        assert_eq!(RequestLog::level_for(200), "info");
    }

    #[test]
    fn echoed_text_is_clipped_on_a_character_boundary() {
        assert_eq!(clipped("/short", 10), "/short");
        assert_eq!(clipped("/abcdef", 4), "/abc…");
        // 'é' is two bytes: a cut inside it backs off to before it.
        assert_eq!(clipped("/aé", 3), "/a…");
        let long = format!("/{}", "€".repeat(10_000));
        let cut = clipped(&long, MAX_ECHO_BYTES);
        assert!(
            cut.len() <= MAX_ECHO_BYTES + '…'.len_utf8(),
            "{}",
            cut.len()
        );
        assert!(cut.ends_with('…') && cut.starts_with("/€€"));
    }

    #[test]
    fn sampling_keeps_every_error_and_the_given_share_of_successes() {
        let kept = |status, percent| {
            (0..1000u32)
                .filter(|roll| sampled(status, percent, *roll))
                .count()
        };
        assert_eq!(kept(200, 100), 1000);
        assert_eq!(kept(200, 0), 0);
        assert_eq!(kept(200, 25), 250);
        assert_eq!(kept(404, 0), 1000, "client errors are always logged");
        assert_eq!(kept(502, 0), 1000, "server errors are always logged");
    }
}
