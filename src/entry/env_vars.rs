//! Reads wrangler.toml vars and secrets from `env` as JSON values for `config::Vars`.

use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::{js_sys, Env};

use crate::config::VarSource;

pub struct EnvVars<'a>(pub &'a Env);

impl VarSource for EnvVars<'_> {
    fn var(&self, key: &str) -> Option<Value> {
        let raw = js_sys::Reflect::get(self.0, &JsValue::from_str(key)).ok()?;
        if raw.is_undefined() || raw.is_null() {
            return None;
        }
        if let Some(s) = raw.as_string() {
            return Some(Value::String(s));
        }
        serde_wasm_bindgen::from_value::<Value>(raw).ok()
    }
}
