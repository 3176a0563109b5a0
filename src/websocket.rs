//! What a WebSocket opening handshake must be (RFC 6455 §4.2.1–4.2.2), read as the runtime reads it, for the two
//! places that take one: a room's join and a gateway route with `websocket = true`. Pure.
//!
//! The runtime takes only `Upgrade: websocket` alone for a handshake ([`upgrade`]), and checks
//! `Sec-WebSocket-Version` and `Sec-WebSocket-Key` ([`refusal`]) only when the Worker hands it the 101 — after the
//! room object has consumed the single-use ticket, or the gateway's origin has opened its socket and the route's
//! limits have counted the request: a client whose handshake it then refused (a plain 400 in text, or a 500) had
//! lost its ticket or a unit of its quota for nothing. Checked here first, the refusal is ours, in JSON, and nothing
//! is spent.

use base64::Engine;

use crate::error::ApiError;

/// The only protocol version RFC 6455 defines.
pub const VERSION: &str = "13";

/// Why a request that asks to upgrade to WebSocket is no opening handshake, given how its `Upgrade` reads, its
/// `Sec-WebSocket-Version` and `Sec-WebSocket-Key`: `websocket` beside other protocols ([`Upgrade::Listed`]) is
/// answered 501 (the runtime answers no socket to it: telling the client to upgrade to what it asked for would not
/// help), another version 426 naming the one understood (§4.2.2), a key that is missing or not the base64 of 16
/// bytes 400 (§4.2.1).
pub fn refusal(upgrade: Upgrade, version: Option<&str>, key: Option<&str>) -> Option<ApiError> {
    if upgrade == Upgrade::Listed {
        return Some(ApiError::new(
            501,
            "upgrade_unsupported",
            "a WebSocket handshake's Upgrade field must name websocket alone",
        ));
    }
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

/// Whether the subprotocol a server chose (its `Sec-WebSocket-Protocol`, `chosen`) may answer a client that offered
/// `offered` (its own field, a comma-separated list): exactly one of the values offered, compared as written, and
/// none only when none was offered. RFC 6455 §4.1 has a client fail a connection whose server chose any other, or
/// one when none was offered; a browser (WHATWG WebSockets, "establish a WebSocket connection") and the `ws` package
/// also fail one whose server chose none of those offered.
pub fn protocol_offered(offered: Option<&str>, chosen: Option<&str>) -> bool {
    match chosen {
        None => offered.is_none_or(|list| list.split(',').all(|p| p.trim().is_empty())),
        Some(chosen) => {
            let chosen = chosen.trim();
            offered.is_some_and(|list| list.split(',').any(|p| p.trim() == chosen))
                && !chosen.is_empty()
                && !chosen.contains(',')
        }
    }
}

/// What a request's `Upgrade` field asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// No WebSocket: no field, or other protocols only (`h2c`), offers a server may ignore.
    None,
    /// `Upgrade: websocket` (in any case): a handshake the runtime can answer with a socket.
    WebSocket,
    /// `websocket` in a list with other protocols (`websocket, h2c`): the runtime takes the request for a plain one
    /// and refuses a 101 with a socket for it (workerd: "Worker tried to return a WebSocket in a response to a
    /// request which did not contain the header \"Upgrade: websocket\"", a 500).
    Listed,
}

/// What the `Upgrade` field `value` asks for.
pub fn upgrade(value: Option<&str>) -> Upgrade {
    match value {
        None => Upgrade::None,
        Some(v) if v.trim().eq_ignore_ascii_case("websocket") => Upgrade::WebSocket,
        Some(v)
            if v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket")) =>
        {
            Upgrade::Listed
        }
        Some(_) => Upgrade::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn a_version_13_handshake_with_a_16_byte_key_passes() {
        assert!(refusal(Upgrade::WebSocket, Some("13"), Some(KEY)).is_none());
        assert!(refusal(Upgrade::WebSocket, Some(" 13 "), Some(KEY)).is_none());
    }

    #[test]
    fn websocket_beside_other_protocols_is_refused_501_before_its_version_and_key() {
        let error = refusal(Upgrade::Listed, Some("13"), Some(KEY)).expect("refused");
        assert_eq!((error.status(), error.code()), (501, "upgrade_unsupported"));
        let error = refusal(Upgrade::Listed, None, None).expect("refused");
        assert_eq!(error.status(), 501, "the Upgrade field is read first");
    }

    #[test]
    fn another_or_no_version_is_told_the_one_understood() {
        for version in [None, Some("8"), Some("13, 8"), Some("")] {
            let error = refusal(Upgrade::WebSocket, version, Some(KEY)).expect("refused");
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
            let error = refusal(Upgrade::WebSocket, Some("13"), key).expect("refused");
            assert_eq!(error.status(), 400, "{key:?}");
        }
    }

    #[test]
    fn a_server_must_choose_one_the_client_offered_and_none_when_it_offered_none() {
        let cases = [
            (None, None, true),
            (Some(""), None, true),
            (Some(" , "), None, true),
            // A browser (WHATWG WebSockets: "establish a WebSocket connection") and the `ws` package fail a connection
            // whose server chose none of the protocols offered.
            (Some("chat.v1, chat.v0"), None, false),
            (Some("chat.v1, chat.v0"), Some("chat.v0"), true),
            (Some("chat.v1,chat.v0"), Some(" chat.v1 "), true),
            (None, Some("chat.v1"), false),
            (Some("chat.v1"), Some("chat.v2"), false),
            (Some("chat.v1"), Some("CHAT.V1"), false),
            (Some("a, b"), Some("a, b"), false),
            (Some("a, , b"), Some(""), false),
        ];
        for (offered, chosen, ok) in cases {
            assert_eq!(
                protocol_offered(offered, chosen),
                ok,
                "{offered:?} answered {chosen:?}"
            );
        }
    }

    #[test]
    fn upgrade_reads_websocket_alone_as_a_handshake_and_in_a_list_as_one_the_runtime_cannot_answer()
    {
        let cases = [
            (None, Upgrade::None),
            (Some("h2c"), Upgrade::None),
            (Some("websocketx"), Upgrade::None),
            (Some("websocket"), Upgrade::WebSocket),
            (Some("WebSocket"), Upgrade::WebSocket),
            (Some(" websocket "), Upgrade::WebSocket),
            (Some("websocket, h2c"), Upgrade::Listed),
            (Some("h2c,WEBSOCKET"), Upgrade::Listed),
        ];
        for (value, expected) in cases {
            assert_eq!(upgrade(value), expected, "{value:?}");
        }
    }
}
