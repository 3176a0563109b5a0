//! W3C Trace Context (`traceparent`): a valid incoming header is continued with a new span id (same trace id and
//! flags), an invalid or missing one starts a new trace — sampled (flag 01) for `GATEWAY_TRACE_SAMPLE_PERCENT` of
//! them, so an origin whose tracer follows its parent's decision (OpenTelemetry's default `ParentBased` sampler) does
//! not record every request the edge starts. Pure: the random bytes are a parameter.

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

/// Bytes of randomness [`continue_or_start`] takes.
pub const RANDOM_BYTES: usize = 28;

/// Continues `incoming` if it is a valid `traceparent` (version 00 or a later version's first four fields), keeping
/// its defined flags (sampled, random; [`KNOWN_FLAGS`]), else starts a trace, sampled for `sample_percent` in 100
/// of them. `random` supplies the new ids and the draw: bytes 0..16 for a new trace id, 16..24 for the span id,
/// 24..28 the sampling roll.
pub fn continue_or_start(
    incoming: Option<&str>,
    random: [u8; RANDOM_BYTES],
    sample_percent: u64,
) -> TraceContext {
    let mut span = random[16..24].to_vec();
    if span.iter().all(|b| *b == 0) {
        span[7] = 1;
    }
    let span_id = hex::encode(&span);
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
    let roll = u32::from_le_bytes([random[24], random[25], random[26], random[27]]);
    let sampled = u64::from(roll % 100) < sample_percent;
    TraceContext {
        trace_id: hex::encode(&trace),
        span_id,
        flags: if sampled { "01" } else { "00" }.to_owned(),
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
    let flags = u8::from_str_radix(flags, 16).ok()? & KNOWN_FLAGS;
    Some((trace_id.to_owned(), format!("{flags:02x}")))
}

/// The trace flags defined so far: `sampled` (01) and Level 2's `random` trace id (02). A caller's other bits are
/// not passed on: "the behavior of other flags ... is reserved for future use. Vendors MUST set those to zero"
/// (W3C Trace Context, trace-flags) — the edge writes version 00, and a bit a later version gives a meaning to would
/// reach the origin with it.
const KNOWN_FLAGS: u8 = 0x03;

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn random() -> [u8; RANDOM_BYTES] {
        let mut r = [0u8; RANDOM_BYTES];
        for (i, b) in r.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        r
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let t = continue_or_start(Some(VALID), random(), 0);
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
            100,
        );
        assert!(
            future.continued,
            "a later version with extra fields is read by its first four"
        );
        assert_eq!(future.flags, "00");
    }

    #[test]
    fn a_continued_trace_keeps_the_defined_flags_and_zeroes_the_reserved_ones() {
        for (incoming, kept) in [
            ("01", "01"),
            ("03", "03"),
            ("02", "02"),
            ("ff", "03"),
            ("fe", "02"),
            ("84", "00"),
        ] {
            let header = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{incoming}");
            let t = continue_or_start(Some(&header), random(), 0);
            assert!(t.continued, "{incoming}");
            assert_eq!(t.flags, kept, "flags {incoming}");
            assert!(t.header().ends_with(&format!("-{kept}")), "{}", t.header());
        }
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
            let t = continue_or_start(incoming, random(), 100);
            assert!(!t.continued, "{incoming:?}");
            assert_eq!(
                t.trace_id, "0102030405060708090a0b0c0d0e0f10",
                "{incoming:?}"
            );
            assert_eq!(t.flags, "01");
        }
        let zeros = continue_or_start(None, [0u8; RANDOM_BYTES], 100);
        assert_ne!(
            zeros.trace_id,
            "0".repeat(32),
            "an all-zero id is never produced"
        );
        assert_ne!(zeros.span_id, "0".repeat(16));
    }

    #[test]
    fn new_traces_are_sampled_at_the_configured_rate_and_continued_ones_keep_their_flags() {
        let with_roll = |roll: u32| {
            let mut r = random();
            r[24..].copy_from_slice(&roll.to_le_bytes());
            r
        };
        let sampled = |percent| {
            (0..1000u32)
                .filter(|roll| continue_or_start(None, with_roll(*roll), percent).flags == "01")
                .count()
        };
        assert_eq!(sampled(100), 1000);
        assert_eq!(sampled(0), 0);
        assert_eq!(
            sampled(10),
            100,
            "rolls 0..1000 fall evenly on the 100 buckets"
        );
        for flags in ["00", "01"] {
            let incoming = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
            for percent in [0, 100] {
                let t = continue_or_start(Some(&incoming), with_roll(0), percent);
                assert_eq!(t.flags, flags, "the caller's decision stands at {percent}%");
            }
        }
    }
}
