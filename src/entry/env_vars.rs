//! Reads wrangler.toml vars and secrets from `env` as JSON values for `config::Vars`, and lists their names for
//! `config::keys` (bindings left out: a KV namespace, D1 database, Durable Object namespace or Images binding is
//! an object of its own class, never a var; a version-metadata binding, a plain object, is told by its fields).

use serde_json::Value;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, Env};

use crate::config::keys::version_metadata_fields;
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

impl EnvVars<'_> {
    /// The names of the vars and secrets `env` holds: strings, numbers, booleans and JSON documents (arrays, and
    /// objects whose prototype is `Object.prototype`, as a wrangler.toml table var is given).
    pub fn var_names(&self) -> Vec<String> {
        let env: &js_sys::Object = self.0.unchecked_ref();
        let plain = js_sys::Object::get_prototype_of(&js_sys::Object::new().into());
        js_sys::Object::keys(env)
            .iter()
            .filter_map(|name| {
                let value = js_sys::Reflect::get(env, &name).ok()?;
                // Typed without copying a value (a secret's) into wasm memory.
                let is_var = value.is_string()
                    || value.as_f64().is_some()
                    || value.as_bool().is_some()
                    || js_sys::Array::is_array(&value)
                    || (value.is_object()
                        && js_sys::Object::get_prototype_of(&value) == plain
                        && !is_version_metadata(&value));
                is_var.then(|| name.as_string()).flatten()
            })
            .collect()
    }
}

/// Whether a plain object is a version-metadata binding (`[version_metadata]`): workerd gives it as the plain object
/// `{id, tag, timestamp}`, shaped like a table var, and one named under an edgekit prefix (`RENDER_VERSION`) was
/// reported as a misspelled key. Only its field names are read.
fn is_version_metadata(value: &JsValue) -> bool {
    let fields: Vec<String> = js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>())
        .iter()
        .filter_map(|name| name.as_string())
        .collect();
    version_metadata_fields(&fields)
}
