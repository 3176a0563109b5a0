//! The one shape of an event log line, for the Worker and its Durable Objects alike: one JSON object on one line,
//! `{"level", "msg", …fields}`, written with the console method of its level. Workers Logs, `wrangler tail` and any
//! JSON log pipeline parse every line the same way (a plain-text line breaks them). Pure: the Worker writes these
//! lines through `edgekit::entry::log`, an object through its `object` module.

use serde_json::{Map, Value};

/// How serious an event is; also picks the console method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// `{"level", "msg", …fields}` as one line. `fields` is an object (anything else is left out); a `null` field is
/// left out (an optional `request_id` the caller did not have), and one named `level` or `msg` does not replace the
/// line's own.
pub fn line(level: Level, msg: &str, fields: Value) -> String {
    let mut out = Map::new();
    out.insert("level".into(), Value::from(level.as_str()));
    out.insert("msg".into(), Value::from(msg));
    if let Value::Object(fields) = fields {
        for (key, value) in fields.into_iter().filter(|(_, v)| !v.is_null()) {
            out.entry(key).or_insert(value);
        }
    }
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_one_json_line_with_level_msg_and_fields() {
        let text = line(
            Level::Warn,
            "room_update_not_stored",
            json!({"room": "a", "detail": "disk\nfull \"now\"", "msg": "ignored", "level": "ignored"}),
        );
        assert!(!text.contains('\n'), "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "room_update_not_stored");
        assert_eq!(v["room"], "a");
        assert_eq!(v["detail"], "disk\nfull \"now\"");
        let bare: Value =
            serde_json::from_str(&line(Level::Error, "x", Value::Null)).expect("json");
        assert_eq!(bare, json!({"level": "error", "msg": "x"}));
        let absent: Value =
            serde_json::from_str(&line(Level::Info, "x", json!({"request_id": null, "n": 1})))
                .expect("json");
        assert_eq!(
            absent,
            json!({"level": "info", "msg": "x", "n": 1}),
            "a null field is left out"
        );
    }
}
