//! The structured log line: one JSON object per request (and per panic), written by the entry with `console.log`.
//! Workers Logs and `wrangler tail` index these fields, so their names are part of the operator's contract.
//!
//! Every other line (a handler's warning, a Durable Object's error) is an event in one shape,
//! `{"level", "msg", …fields}` ([`event_line`], shared with the Durable Objects: `durable_objects::log`), written by
//! `entry::log`. A line about a request carries its `request_id`. Every line the Worker writes names it by
//! `SERVICE_NAME` (`service`), so Workers that share a log destination can be told apart.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

pub use durable_objects::log::{line as event_line, Level};

/// [`event_line`] naming the Worker's `service` (`SERVICE_NAME`; `None` before the configuration was read).
pub fn service_event_line(service: Option<&str>, level: Level, msg: &str, fields: Value) -> String {
    let mut fields = match fields {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    if let Some(service) = service {
        fields.insert("service".into(), Value::from(service));
    }
    event_line(level, msg, Value::Object(fields))
}

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
    // Nor inside a percent-escape (paths are clipped still encoded): a `%` in the last two bytes starts one; nor
    // inside the escapes of one UTF-8 character (`%E2%82` of `%E2%82%AC` does not decode).
    // (Bytes, not `str` slices: the two bytes before `end` may sit inside a character.)
    let from = end.saturating_sub(2);
    if let Some(at) = text.as_bytes()[from..end].iter().rposition(|b| *b == b'%') {
        end = from + at;
    }
    end = without_partial_escaped_char(text, end);
    Cow::Owned(format!("{}…", &text[..end]))
}

/// `end`, or where the escapes of a UTF-8 character that `text[..end]` cuts short begin.
fn without_partial_escaped_char(text: &str, end: usize) -> usize {
    let bytes = text.as_bytes();
    let escaped = |at: usize| -> Option<u8> {
        (bytes.get(at) == Some(&b'%'))
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
    };
    let (mut at, mut continuations) = (end, 0);
    while at >= 3 {
        match escaped(at - 3) {
            Some(b) if b & 0xC0 == 0x80 => {
                continuations += 1;
                at -= 3;
            }
            Some(lead) if lead >= 0xC0 => {
                let needed = match lead {
                    0xF0.. => 3,
                    0xE0.. => 2,
                    _ => 1,
                };
                return if continuations < needed { at - 3 } else { end };
            }
            _ => break,
        }
    }
    end
}

/// One line per request.
#[derive(Debug, Serialize)]
pub struct RequestLog<'a> {
    pub level: &'static str,
    pub msg: &'static str,
    /// `SERVICE_NAME`; absent when the configuration could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'a str>,
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

/// The line a panic writes before the isolate's Wasm instance is reset, with the `request_id` of the request whose
/// handler panicked, if one did (not a `waitUntil` task or a streamed body): the input that reproduces it.
pub fn panic_line(
    service: Option<&str>,
    message: &str,
    location: Option<&str>,
    request_id: Option<&str>,
) -> String {
    service_event_line(
        service,
        Level::Error,
        "panic",
        serde_json::json!({"panic": message, "location": location, "request_id": request_id}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `source` (from 1) that name a log field `error` (not an error body's object) or `reason`: what
    /// went wrong, in words, is `detail` in every line, as in the request line ([`RequestLog::detail`]) — render's
    /// lines said `error` and `reason`, so one query found some of them and missed the others. A field is named as a
    /// `json!` key (`"error": e`, spaces or a line break before the colon too), set by index (`line["error"] = e`,
    /// as `render::skips` adds one) or inserted (`.insert("error".into(), e)`); a read (`body["error"]["code"]`) or
    /// a match arm (`"error" =>`) is not one.
    fn drifted(source: &str) -> Vec<usize> {
        let after = |at: usize| source[at..].trim_start();
        let mut lines: Vec<usize> = ["\"error\"", "\"reason\""]
            .iter()
            .flat_map(|name| source.match_indices(name))
            .filter(|(at, name)| {
                let next = after(at + name.len());
                let keyed = next
                    .strip_prefix(':')
                    .is_some_and(|value| !value.trim_start().starts_with('{'));
                let indexed = next.strip_prefix(']').is_some_and(|rest| {
                    let rest = rest.trim_start();
                    rest.starts_with('=') && !rest.starts_with("==")
                });
                let inserted = source[..*at].trim_end().ends_with("insert(");
                keyed || indexed || inserted
            })
            .map(|(at, _)| source[..at].matches('\n').count() + 1)
            .collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn every_log_line_calls_what_went_wrong_detail() {
        for (source, at) in [
            (r#"json!({"key": key, "error": e})"#, vec![1]),
            (r#"json!({"fragment": name, "reason": reason})"#, vec![1]),
            ("json!({\"key\": key,\n \"reason\" : r})", vec![2]),
            ("json!({\"key\": key, \"error\"\n: e})", vec![1]),
            (r#"line["error"] = json!(e);"#, vec![1]),
            (r#"fields.insert("reason".into(), r);"#, vec![1]),
            (r#"json!({"error": {"code": code}})"#, vec![]),
            (r#"assert_eq!(body["error"]["code"], code);"#, vec![]),
            (r#"if line["error"] == x {}"#, vec![]),
            (r#""error" => console_error!("{line}"),"#, vec![]),
            (r#"json!({"key": key, "detail": e})"#, vec![]),
        ] {
            assert_eq!(drifted(source), at, "{source}");
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        crate::boundary::rust_files(&root.join("src"), &mut files);
        crate::boundary::rust_files(&root.join("durable_objects/src"), &mut files);
        assert!(files.len() > 5, "found the sources");
        let offenders: Vec<String> = files
            .iter()
            .flat_map(|path| {
                let source = std::fs::read_to_string(path).unwrap_or_default();
                // This file spells the drifted names in its own tests; its code is read like any other.
                let source = match path.ends_with("src/observability/log.rs") {
                    true => source.split("#[cfg(test)]").next().unwrap_or_default(),
                    false => &source,
                };
                drifted(source)
                    .into_iter()
                    .map(|line| format!("{}:{line}", path.display()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            offenders.is_empty(),
            "log fields to call detail: {offenders:#?}"
        );
    }

    #[test]
    fn a_request_line_is_one_json_object_with_every_field() {
        let line = RequestLog {
            level: RequestLog::level_for(502),
            msg: "request",
            service: Some("edge-a"),
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
        assert_eq!(v["service"], "edge-a");
        assert_eq!(RequestLog::level_for(404), "warn");
        assert_eq!(RequestLog::level_for(200), "info");
    }

    #[test]
    fn event_and_panic_lines_name_the_service_once_it_is_known() {
        let event: serde_json::Value = serde_json::from_str(&service_event_line(
            Some("edge-a"),
            Level::Warn,
            "x",
            serde_json::json!({"n": 1, "service": "forged"}),
        ))
        .expect("json");
        assert_eq!(
            event,
            serde_json::json!({"level": "warn", "msg": "x", "n": 1, "service": "edge-a"}),
            "the configured name, never a field's"
        );
        let bare: serde_json::Value = serde_json::from_str(&service_event_line(
            Some("edge-a"),
            Level::Error,
            "y",
            serde_json::Value::Null,
        ))
        .expect("json");
        assert_eq!(
            bare,
            serde_json::json!({"level": "error", "msg": "y", "service": "edge-a"})
        );
        let unknown: serde_json::Value = serde_json::from_str(&service_event_line(
            None,
            Level::Info,
            "z",
            serde_json::json!({}),
        ))
        .expect("json");
        assert_eq!(unknown, serde_json::json!({"level": "info", "msg": "z"}));
        let panic: serde_json::Value = serde_json::from_str(&panic_line(
            Some("edge-a"),
            "boom",
            Some("src/x.rs:1"),
            None,
        ))
        .expect("json");
        assert_eq!(
            panic,
            serde_json::json!({"level": "error", "msg": "panic", "service": "edge-a",
                "panic": "boom", "location": "src/x.rs:1"})
        );
        let in_handler: serde_json::Value =
            serde_json::from_str(&panic_line(None, "boom", None, Some("req-1"))).expect("json");
        assert_eq!(
            in_handler,
            serde_json::json!({"level": "error", "msg": "panic", "panic": "boom", "request_id": "req-1"}),
            "the request whose handler panicked"
        );
    }

    #[test]
    fn echoed_text_is_clipped_on_a_character_boundary() {
        assert_eq!(clipped("/short", 10), "/short");
        assert_eq!(clipped("/abcdef", 4), "/abc…");
        // 'é' is two bytes: a cut inside it backs off to before it.
        assert_eq!(clipped("/aé", 3), "/a…");
        // Never inside a percent-escape: the clipped path still decodes.
        for max in 2..=10 {
            assert_eq!(clipped("/a%E2%82%AC", max), "/a…", "{max}");
        }
        assert_eq!(clipped("/a%E2%82%ACb", 11), "/a%E2%82%AC…");
        assert_eq!(clipped("/a%41%42c", 8), "/a%41%42…");
        assert_eq!(clipped("/a%41%42c", 7), "/a%41…");
        assert_eq!(clipped("/a%C3%A9%C3%A9", 12), "/a%C3%A9…");
        // Any text, any cap: a prefix cut on a character boundary, never a panic.
        let tokens = ["%", "%E2", "%82", "%AC", "€", "é", "a", "%4", "%%", "🦀"];
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..12 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(tokens[(seed >> 33) as usize % tokens.len()]);
            }
            for max in 0..text.len() {
                let cut = clipped(&text, max);
                let kept = cut.trim_end_matches('…');
                assert!(
                    text.starts_with(kept) && kept.len() <= max,
                    "{text:?} at {max}: {cut:?}"
                );
            }
        }
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
