//! What a WebSocket opening handshake must carry before the room spends its ticket (RFC 6455 §4.2.1–4.2.2).
//!
//! The runtime checks `Sec-WebSocket-Version` and `Sec-WebSocket-Key` only when the Worker hands it the 101, after
//! the room object has consumed the single-use ticket: a client whose handshake it then refuses (a plain 400 in
//! text) had lost its ticket for nothing. Checked here first, the refusal is ours, in JSON, and the ticket is kept.

use base64::Engine;

use crate::error::ApiError;

/// The only protocol version RFC 6455 defines.
pub const VERSION: &str = "13";

/// Why a request that asks to upgrade to WebSocket is no opening handshake, given its `Sec-WebSocket-Version` and
/// `Sec-WebSocket-Key`: another version is answered 426 naming the one understood (§4.2.2), a key that is missing
/// or not the base64 of 16 bytes 400 (§4.2.1).
pub fn refusal(version: Option<&str>, key: Option<&str>) -> Option<ApiError> {
    if version.map(str::trim) != Some(VERSION) {
        return Some(
            ApiError::new(
                426,
                "websocket_version",
                "this endpoint speaks WebSocket version 13 only (Sec-WebSocket-Version)",
            )
            .with_header("sec-websocket-version", VERSION)
            .with_header("upgrade", "websocket"),
        );
    }
    let nonce = key.map(|k| base64::engine::general_purpose::STANDARD.decode(k.trim()));
    if !matches!(nonce, Some(Ok(bytes)) if bytes.len() == 16) {
        return Some(ApiError::bad_request(
            "bad_handshake",
            "Sec-WebSocket-Key must be the base64 of 16 bytes",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn a_version_13_handshake_with_a_16_byte_key_passes() {
        assert!(refusal(Some("13"), Some(KEY)).is_none());
        assert!(refusal(Some(" 13 "), Some(KEY)).is_none());
    }

    #[test]
    fn another_or_no_version_is_told_the_one_understood() {
        for version in [None, Some("8"), Some("13, 8"), Some("")] {
            let error = refusal(version, Some(KEY)).expect("refused");
            assert_eq!(error.status(), 426, "{version:?}");
            assert!(error
                .headers()
                .iter()
                .any(|(name, value)| *name == "sec-websocket-version" && value == "13"));
        }
    }

    #[test]
    fn a_missing_or_malformed_key_is_a_bad_request() {
        for key in [
            None,
            Some(""),
            Some("x"),
            Some("dGhlIHNhbXBsZSBub25j"),
            Some("!!!!"),
        ] {
            let error = refusal(Some("13"), key).expect("refused");
            assert_eq!(error.status(), 400, "{key:?}");
        }
    }
}
