//! W3C Trace Context (`traceparent`): a valid incoming header is continued with a new span id (same trace id and
//! flags), an invalid or missing one starts a new trace. Pure: the random bytes are a parameter.

/// The trace context of one request as it leaves the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    pub flags: String,
    /// Whether an incoming `traceparent` was continued.
    pub continued: bool,
}

impl TraceContext {
    /// The `traceparent` header value for the origin request.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Continues `incoming` if it is a valid `traceparent` (version 00 or a later version's first four fields), else
/// starts a trace. `random` supplies the new ids: bytes 0..16 for a new trace id, 16..24 for the span id.
pub fn continue_or_start(incoming: Option<&str>, random: [u8; 24]) -> TraceContext {
    let mut span = random[16..24].to_vec();
    if span.iter().all(|b| *b == 0) {
        span[7] = 1;
    }
    let span_id = hex(&span);
    if let Some((trace_id, flags)) = incoming.and_then(parse) {
        return TraceContext {
            trace_id,
            span_id,
            flags,
            continued: true,
        };
    }
    let mut trace = random[..16].to_vec();
    if trace.iter().all(|b| *b == 0) {
        trace[15] = 1;
    }
    TraceContext {
        trace_id: hex(&trace),
        span_id,
        flags: "01".to_owned(),
        continued: false,
    }
}

/// `(trace_id, flags)` of a valid header.
fn parse(value: &str) -> Option<(String, String)> {
    let value = value.trim();
    let parts: Vec<&str> = value.split('-').collect();
    if parts.len() < 4 {
        return None;
    }
    let (version, trace_id, parent_id, flags) = (parts[0], parts[1], parts[2], parts[3]);
    if !is_lower_hex(version, 2) || version == "ff" {
        return None;
    }
    if version == "00" && parts.len() != 4 {
        return None;
    }
    if !is_lower_hex(trace_id, 32) || trace_id.bytes().all(|b| b == b'0') {
        return None;
    }
    if !is_lower_hex(parent_id, 16) || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    if !is_lower_hex(flags, 2) {
        return None;
    }
    Some((trace_id.to_owned(), flags.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn random() -> [u8; 24] {
        let mut r = [0u8; 24];
        for (i, b) in r.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        r
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let t = continue_or_start(Some(VALID), random());
        assert!(t.continued);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id, "1112131415161718");
        assert_ne!(t.span_id, "00f067aa0ba902b7", "new span id");
        assert_eq!(
            t.header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-1112131415161718-01"
        );
        let future = continue_or_start(
            Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"),
            random(),
        );
        assert!(
            future.continued,
            "a later version with extra fields is read by its first four"
        );
        assert_eq!(future.flags, "00");
    }

    #[test]
    fn invalid_or_missing_traceparents_start_a_new_trace() {
        let cases = [
            None,
            Some(""),
            Some("garbage"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
        ];
        for incoming in cases {
            let t = continue_or_start(incoming, random());
            assert!(!t.continued, "{incoming:?}");
            assert_eq!(
                t.trace_id, "0102030405060708090a0b0c0d0e0f10",
                "{incoming:?}"
            );
            assert_eq!(t.flags, "01");
        }
        let zeros = continue_or_start(None, [0u8; 24]);
        assert_ne!(
            zeros.trace_id,
            "0".repeat(32),
            "an all-zero id is never produced"
        );
        assert_ne!(zeros.span_id, "0".repeat(16));
    }
}
