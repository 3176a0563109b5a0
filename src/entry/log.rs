//! Writes event log lines (`observability::log::event_line`: `{"level", "msg", …fields}`, the shape the Durable
//! Objects write too) with the console method of their level. A line about a request carries its `request_id`.

use crate::observability::log::{event_line, Level};

/// One event line at `level` (`console.log`, `.warn`, `.error`).
pub fn write(level: Level, msg: &str, fields: serde_json::Value) {
    let line = event_line(level, msg, fields);
    match level {
        Level::Info => worker::console_log!("{line}"),
        Level::Warn => worker::console_warn!("{line}"),
        Level::Error => worker::console_error!("{line}"),
    }
}

/// [`write`] at `warn`.
pub fn warn(msg: &str, fields: serde_json::Value) {
    write(Level::Warn, msg, fields);
}

/// [`write`] at `error`.
pub fn error(msg: &str, fields: serde_json::Value) {
    write(Level::Error, msg, fields);
}
