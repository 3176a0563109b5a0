//! Writes event log lines (`observability::log::event_line`: `{"level", "msg", …fields}`, the shape the Durable
//! Objects write too) with the console method of their level. A line about a request carries its `request_id`, and
//! every line the isolate's `SERVICE_NAME` once its configuration is read ([`set_service`]).

use std::cell::OnceCell;

use crate::observability::log::{service_event_line, Level};

thread_local! {
    /// `SERVICE_NAME`, set once per isolate (per Wasm instance: a panic's reset reads the configuration again).
    /// A `OnceCell`, read without a borrow, so the panic hook can read it whatever was borrowed when it ran.
    static SERVICE: OnceCell<String> = const { OnceCell::new() };
}

/// Names the service in this isolate's lines from now on (the first name given stays).
pub fn set_service(name: &str) {
    SERVICE.with(|cell| {
        let _ = cell.set(name.to_owned());
    });
}

/// The isolate's `SERVICE_NAME`, once its configuration was read.
pub fn service() -> Option<String> {
    SERVICE.with(|cell| cell.get().cloned())
}

/// One event line at `level` (`console.log`, `.warn`, `.error`).
pub fn write(level: Level, msg: &str, fields: serde_json::Value) {
    let line =
        SERVICE.with(|cell| service_event_line(cell.get().map(String::as_str), level, msg, fields));
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
