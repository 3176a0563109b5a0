//! Which requests the gateway takes for a WebSocket handshake (RFC 6455 §4.2.1): the ones the runtime does, so a
//! handshake it would not let the gateway answer with a socket is refused before the origin is asked. Pure.

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
