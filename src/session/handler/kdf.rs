//! PBKDF2-HMAC-SHA256 through the runtime's WebCrypto (`crypto.subtle.deriveBits`): native code, so the 100,000
//! iterations cost far less CPU than a Rust implementation compiled to wasm. Reached through js-sys because the
//! worker crate's web-sys build does not enable the SubtleCrypto bindings.

use worker::js_sys::{self, Array, Function, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use crate::error::{ApiError, ApiResult};
use crate::session::password::HASH_BYTES;

fn js_err(doing: &str) -> impl Fn(JsValue) -> ApiError + '_ {
    move |e| ApiError::internal(format!("{doing}: {e:?}"))
}

fn method(target: &JsValue, name: &str) -> ApiResult<Function> {
    Reflect::get(target, &JsValue::from_str(name))
        .map_err(js_err("reading WebCrypto"))?
        .dyn_into::<Function>()
        .map_err(|_| ApiError::internal(format!("WebCrypto has no {name}")))
}

/// The 32-byte PBKDF2-SHA256 of `password` with `salt` and `iterations`.
pub async fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> ApiResult<Vec<u8>> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(js_err("reading crypto"))?;
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))
        .map_err(js_err("reading crypto.subtle"))?;

    let import_args = Array::of5(
        &JsValue::from_str("raw"),
        &Uint8Array::from(password),
        &JsValue::from_str("PBKDF2"),
        &JsValue::FALSE,
        &Array::of1(&JsValue::from_str("deriveBits")),
    );
    let imported = method(&subtle, "importKey")?
        .apply(&subtle, &import_args)
        .map_err(js_err("importing the password"))?;
    let key = JsFuture::from(Promise::from(imported))
        .await
        .map_err(js_err("importing the password"))?;

    let params = Object::new();
    for (name, value) in [
        ("name", JsValue::from_str("PBKDF2")),
        ("hash", JsValue::from_str("SHA-256")),
        ("salt", Uint8Array::from(salt).into()),
        ("iterations", JsValue::from_f64(f64::from(iterations))),
    ] {
        Reflect::set(&params, &JsValue::from_str(name), &value)
            .map_err(js_err("building PBKDF2 parameters"))?;
    }
    let derived = method(&subtle, "deriveBits")?
        .call3(
            &subtle,
            &params,
            &key,
            &JsValue::from_f64((HASH_BYTES * 8) as f64),
        )
        .map_err(js_err("deriving the password hash"))?;
    let bits = JsFuture::from(Promise::from(derived))
        .await
        .map_err(js_err("deriving the password hash"))?;
    Ok(Uint8Array::new(&bits).to_vec())
}
