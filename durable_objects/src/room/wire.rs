//! The y-protocols wire format spoken by the stock `y-websocket` provider: one binary frame is one message, a lib0
//! varint message type followed by its payload (sync step 1/step 2/update, or an awareness update).
//!
//! Decoding is strict: unknown types, truncated payloads and trailing bytes are errors, so the object can close the
//! offending socket with "invalid data" instead of guessing. The lib0 varint reader/writer is yrs's own.

use std::io::Write as _;

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

/// y-protocols message types (`messageSync`, `messageAwareness`, `messageAuth`, `messageQueryAwareness`).
pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// Sync sub-types.
pub const SYNC_STEP_1: u64 = 0;
pub const SYNC_STEP_2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

/// One decoded client message. Payloads are borrowed from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// The sender's state vector: answer with the updates it lacks.
    SyncStep1(&'a [u8]),
    /// The updates the receiver lacked (a v1 update).
    SyncStep2(&'a [u8]),
    /// An incremental v1 update.
    Update(&'a [u8]),
    /// An awareness update (presence), relayed as is once its entries are read.
    Awareness(AwarenessUpdate),
    /// A request for every awareness state.
    QueryAwareness,
    /// `messageAuth`: sent by servers only; ignored when a client sends one.
    Auth,
}

/// One entry of an awareness update: a client id, its clock, and its JSON state (`None` = the client left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry {
    pub client_id: u64,
    pub clock: u64,
    pub state: Option<String>,
}

/// A decoded awareness update plus its original encoding (relayed byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessUpdate {
    pub entries: Vec<AwarenessEntry>,
    pub raw: Vec<u8>,
}

/// Why a frame is not a valid y-protocols message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a lib0 `varUint8Array`, borrowing it from the frame.
fn read_bytes<'a>(
    frame: &'a [u8],
    cursor: &mut Cursor<'a>,
    what: &str,
) -> Result<&'a [u8], DecodeError> {
    let len: u64 = cursor.read_var().map_err(err(what))?;
    let start = cursor.next;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|end| *end <= frame.len())
        .ok_or_else(|| {
            DecodeError(format!(
                "{what}: length {len} runs past the end of the frame"
            ))
        })?;
    cursor.next = end;
    Ok(&frame[start..end])
}

fn err(what: &str) -> impl Fn(yrs::encoding::read::Error) -> DecodeError + '_ {
    move |e| DecodeError(format!("{what}: {e}"))
}

/// Decodes one frame. Trailing bytes after the message are an error.
pub fn decode(frame: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut cursor = Cursor::new(frame);
    let kind: u64 = cursor.read_var().map_err(err("message type"))?;
    let message = match kind {
        MSG_SYNC => {
            let sub: u64 = cursor.read_var().map_err(err("sync type"))?;
            let payload = read_bytes(frame, &mut cursor, "sync payload")?;
            match sub {
                SYNC_STEP_1 => Message::SyncStep1(payload),
                SYNC_STEP_2 => Message::SyncStep2(payload),
                SYNC_UPDATE => Message::Update(payload),
                other => return Err(DecodeError(format!("unknown sync type {other}"))),
            }
        }
        MSG_AWARENESS => {
            let raw = read_bytes(frame, &mut cursor, "awareness payload")?;
            Message::Awareness(decode_awareness(raw)?)
        }
        MSG_QUERY_AWARENESS => Message::QueryAwareness,
        MSG_AUTH => {
            // Consume the rest: an auth message from a client carries nothing we act on.
            cursor.next = frame.len();
            Message::Auth
        }
        other => return Err(DecodeError(format!("unknown message type {other}"))),
    };
    if cursor.next != frame.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after the message",
            frame.len() - cursor.next
        )));
    }
    Ok(message)
}

/// The most entries one awareness message may carry (see [`decode_awareness`]).
const MAX_ENTRIES: u64 = 8_192;

/// Largest awareness state (its JSON) a client may announce. y-websocket states are a user's name and colour and a
/// cursor (well under 1 KiB); each is kept in the room's memory and sent to every newcomer, and a socket may announce
/// 16 clients, so unbounded states let one user's sockets fill the isolate.
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// JavaScript's `Number.MAX_SAFE_INTEGER`.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Decodes an awareness update payload (`varUint count, { varUint client, varUint clock, varString json }*`).
/// Refuses entries whose state is not JSON: run on the entries of a message that are news, before they are kept or
/// relayed (a copy that is not news is dropped unparsed, so it costs no parse, charged or not).
/// Also refuses a state whose copy a y-websocket client would write back ([`echo_len`]) is over [`MAX_STATE_BYTES`]:
/// every member that applied it would be closed for its echo, every newcomer on joining.
pub fn check_states(entries: &[AwarenessEntry]) -> Result<(), DecodeError> {
    for state in entries.iter().filter_map(|e| e.state.as_deref()) {
        serde_json::from_str::<serde::de::IgnoredAny>(state)
            .map_err(|e| DecodeError(format!("awareness state is not JSON: {e}")))?;
        if echo_len(state) > MAX_STATE_BYTES {
            return Err(DecodeError(format!(
                "an awareness state is over {MAX_STATE_BYTES} bytes as JavaScript writes it"
            )));
        }
    }
    Ok(())
}

/// At least the bytes of the copy of `state` (JSON) a y-websocket client sends back: y-protocols re-encodes each
/// state it applies as `JSON.stringify(JSON.parse(state))`, and every client sends back what it applied (a newcomer
/// all of the room's presence, in one message). Whitespace, escapes and repeated keys only shrink in it, but a number
/// is written as JavaScript writes it: `1e20` (4 bytes) comes back as 21 digits, so a state's copy can be over four
/// times its size — past `MAX_STATE_BYTES` or the room's message limit, which closed every member that echoed it.
/// The state's length plus what each of its numbers grows by; it is what the room's presence budgets count.
pub fn echo_len(state: &str) -> usize {
    let bytes = state.as_bytes();
    let (mut grows, mut i, mut in_string) = (0, 0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            let token = &state[start..i];
            // Written without an exponent, a number grows only where rounding it to a double carries into a new
            // place: an integer of 16 to 20 digits within half a double's step of the next power of ten, so its
            // first 15 digits are nines (9999999999999999 comes back as 10000000000000000; a fraction takes more
            // than the carry adds). Otherwise JavaScript writes at most its digits, in the same places (or, past
            // 1e21 and under 1e-6, shorter with an exponent). Only those and the exponents are worked out.
            let carries = || {
                let digits = token.trim_start_matches('-');
                digits.len() >= 16 && digits.starts_with("999999999999999") && !digits.contains('.')
            };
            if token.contains(['e', 'E']) || carries() {
                grows += js_token_len(token).saturating_sub(token.len());
            }
        } else {
            i += 1;
        }
    }
    state.len() + grows
}

/// How long JavaScript writes the JSON number `token` (0 for what is not one). A token of at most 15 significant
/// digits holds exactly the digits JavaScript writes (every such decimal survives a double), so its length follows
/// from them and the exponent, without formatting the float; the others (and the edges of the double range) are
/// parsed and formatted.
fn js_token_len(token: &str) -> usize {
    let exact = || -> Option<usize> {
        let (mantissa, exponent) = token.split_once(['e', 'E'])?;
        let exponent: i64 = exponent
            .strip_prefix('+')
            .unwrap_or(exponent)
            .parse()
            .ok()?;
        let negative = mantissa.starts_with('-');
        let unsigned = mantissa.trim_start_matches('-');
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = || int.bytes().chain(frac.bytes());
        let leading = digits().take_while(|b| *b == b'0').count();
        if leading == int.len() + frac.len() {
            return Some(1); // a zero: "0"
        }
        let trailing = digits().rev().take_while(|b| *b == b'0').count();
        let k = (int.len() + frac.len() - leading - trailing) as i64;
        let n = int.len() as i64 - leading as i64 + exponent.clamp(-100_000, 100_000);
        if k > 15 || !(-300..=300).contains(&n) {
            return None;
        }
        Some(usize::from(negative) + js_layout_len(k, n))
    };
    exact()
        .or_else(|| token.parse::<f64>().ok().map(js_number_len))
        .unwrap_or(0)
}

/// The length of JavaScript's `String(number)` (ECMA-262 Number::toString), which `JSON.stringify` writes (`null`
/// for what is not finite): the shortest digits that round-trip, in plain notation from 1e-7 up to 1e21.
fn js_number_len(number: f64) -> usize {
    if !number.is_finite() {
        return 4;
    }
    if number == 0.0 {
        return 1;
    }
    let sign = usize::from(number < 0.0);
    // Rust's `{:e}` writes the same shortest digits: `d[.ddd]e[-]x` (at most 24 bytes; written on the stack).
    let mut buffer = [0u8; 40];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "{:e}", number.abs());
    let written = usize::try_from(cursor.position()).unwrap_or(0);
    let formatted = std::str::from_utf8(&buffer[..written]).unwrap_or("0");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((formatted, "0"));
    let k = mantissa.bytes().filter(u8::is_ascii_digit).count() as i64;
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    sign + js_layout_len(k, n)
}

/// The length of a positive number JavaScript writes with `k` significant digits, the first at `n` places left of
/// the point (ECMA-262 Number::toString): plain from 1e-7 up to 1e21, else `d[.ddd]e±x`.
fn js_layout_len(k: i64, n: i64) -> usize {
    let len = if k <= n && n <= 21 {
        n
    } else if 0 < n && n <= 21 {
        k + 1
    } else if -6 < n && n <= 0 {
        2 - n + k
    } else {
        // `d[.ddd]e+x` or `d[.ddd]e-x`.
        let digits = if k > 1 { k + 1 } else { 1 };
        digits + 2 + (n - 1).unsigned_abs().to_string().len() as i64
    };
    usize::try_from(len).unwrap_or(0)
}

/// What JSON allows around a value (RFC 8259 §2; `JSON.parse` and serde_json skip exactly these).
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

pub fn decode_awareness(raw: &[u8]) -> Result<AwarenessUpdate, DecodeError> {
    let mut cursor = Cursor::new(raw);
    let count: u64 = cursor.read_var().map_err(err("awareness count"))?;
    // Each entry takes at least 3 bytes; a count larger than that is a lie, refused before allocating. At most
    // MAX_ENTRIES, refused before any state is parsed: enough for a newcomer's first awareness message, which
    // echoes every presence it was just sent (a room of 8,192 single-client members; the default admits 250), where
    // a message of hundreds of thousands of entries would be parsed for nothing.
    if count > raw.len() as u64 / 3 {
        return Err(DecodeError(format!(
            "awareness count {count} exceeds the payload"
        )));
    }
    if count > MAX_ENTRIES {
        return Err(DecodeError(format!(
            "awareness count {count} is over {MAX_ENTRIES}"
        )));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client_id: u64 = cursor.read_var().map_err(err("awareness client id"))?;
        let clock: u64 = cursor.read_var().map_err(err("awareness clock"))?;
        // Clients are JavaScript: ids and clocks are numbers. Past 2^53 they are not, and the room could not keep
        // them in a socket's attachment (serde-wasm-bindgen refuses them), which is what ownership is checked on.
        if client_id > MAX_SAFE_INTEGER || clock > MAX_SAFE_INTEGER {
            return Err(DecodeError(
                "awareness client id or clock beyond 2^53 - 1".into(),
            ));
        }
        let json = cursor.read_string().map_err(err("awareness state"))?;
        if json.len() > MAX_STATE_BYTES {
            return Err(DecodeError(format!(
                "an awareness state is over {MAX_STATE_BYTES} bytes"
            )));
        }
        // Whether it is JSON is checked for the entries that are news only (`check_states`): most awareness
        // messages are the copies every client sends back, dropped unread.
        // JSON null is a removal, as y-protocols reads it (`JSON.parse(state) === null`), whitespace around it
        // too: kept as a state, " null" was a client every member had removed and the room still counted, sent
        // every newcomer and held against its socket's 16.
        let state = (json.trim_matches(JSON_WHITESPACE) != "null").then(|| json.to_owned());
        entries.push(AwarenessEntry {
            client_id,
            clock,
            state,
        });
    }
    if cursor.next != raw.len() {
        return Err(DecodeError(
            "trailing bytes after the awareness entries".into(),
        ));
    }
    Ok(AwarenessUpdate {
        entries,
        raw: raw.to_vec(),
    })
}

fn sync_frame(sub: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.write_var(MSG_SYNC);
    out.write_var(sub);
    out.write_buf(payload);
    out
}

/// `sync step 1` carrying a state vector.
pub fn encode_sync_step1(state_vector: &[u8]) -> Vec<u8> {
    sync_frame(SYNC_STEP_1, state_vector)
}

/// `sync step 2` carrying an update.
pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    sync_frame(SYNC_STEP_2, update)
}

/// An incremental update message.
pub fn encode_update(update: &[u8]) -> Vec<u8> {
    sync_frame(SYNC_UPDATE, update)
}

/// Encodes awareness entries as an awareness message.
pub fn encode_awareness(entries: &[AwarenessEntry]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.write_var(entries.len() as u64);
    for e in entries {
        payload.write_var(e.client_id);
        payload.write_var(e.clock);
        payload.write_string(e.state.as_deref().unwrap_or("null"));
    }
    encode_awareness_raw(&payload)
}

/// Wraps an already-encoded awareness payload in an awareness message.
pub fn encode_awareness_raw(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.write_var(MSG_AWARENESS);
    out.write_buf(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_states_echo_is_as_long_as_javascript_writes_its_numbers() {
        // What JSON.stringify writes (node): String(n).length.
        let cases: &[(&str, usize)] = &[
            ("0", 1),
            ("-0", 1),
            ("7", 1),
            ("-12.5", 5),
            ("1e20", 21),
            ("1E+20", 21),
            ("-1e20", 22),
            ("1e21", 5),
            ("1.5e300", 8),
            ("1e-6", 8),
            ("1e-7", 4),
            ("1.25e-7", 7),
            ("123456789012345678901234", 22),
            ("0.1", 3),
            ("1e400", 4),
            ("100", 3),
            ("0.0000001", 4),
            ("1000000000000000000000.5", 5),
        ];
        for (token, len) in cases {
            let number: f64 = token.parse().expect("a number");
            assert_eq!(js_number_len(number), *len, "{token}");
            assert_eq!(js_token_len(token), *len, "{token}, from its digits");
        }
        // From the digits, and past 15 of them or the double's range by formatting the float.
        let tokens: &[(&str, usize)] = &[
            ("0e5", 1),
            ("-0.00e-3", 1),
            ("12.5e3", 5),
            ("0.05e2", 1),
            ("-1.2e+2", 4),
            ("1.50000e1", 2),
            ("1.2345678901234567e20", 21),
            ("9.99999999999999999e20", 5),
            ("1e308", 6),
            ("1.7e308", 8),
            ("2e308", 4),
            ("5e-324", 6),
            ("1e-400", 1),
            ("1e99999999999999999999", 4),
        ];
        for (token, len) in tokens {
            assert_eq!(js_token_len(token), *len, "{token}");
        }
        let honest =
            r#"{"user":{"name":"ann \"1e20\""},"cursor":{"anchor":12,"head":-3.25},"zoom":1e-7}"#;
        assert_eq!(
            echo_len(honest),
            honest.len(),
            "what JSON.stringify wrote comes back as long"
        );
        // Without an exponent, a long integer that rounds up to a power of ten comes back a digit longer.
        for (state, len) in [
            ("[9999999999999999]", 19),
            ("[-99999999999999999999]", 24),
            ("[1234567890123456789]", 21),
            ("[9999999999999999.5]", 20),
        ] {
            assert_eq!(echo_len(state), len, "{state}");
        }
        let carries = AwarenessEntry {
            client_id: 1,
            clock: 1,
            state: Some(format!("[{}]", vec!["9999999999999999"; 480].join(","))),
        };
        assert!(carries
            .state
            .as_ref()
            .is_some_and(|s| s.len() <= MAX_STATE_BYTES));
        assert!(
            check_states(&[carries]).is_err(),
            "its echo is 480 bytes longer, past 8 KiB"
        );
        let grows = format!("[{}]", vec!["1e20"; 100].join(","));
        assert_eq!(
            echo_len(&grows),
            2 + 100 * 21 + 99,
            "each 1e20 comes back in 21 digits"
        );
        let big = AwarenessEntry {
            client_id: 1,
            clock: 1,
            state: Some(format!("[{}]", vec!["1e20"; 400].join(","))),
        };
        assert!(big
            .state
            .as_ref()
            .is_some_and(|s| s.len() < MAX_STATE_BYTES));
        assert!(
            check_states(&[big]).is_err(),
            "a state whose echo would be refused is refused"
        );
    }

    #[test]
    fn encoded_messages_decode_to_what_was_encoded() {
        let entries = vec![
            AwarenessEntry {
                client_id: 7,
                clock: 3,
                state: Some(r#"{"user":{"name":"ann"}}"#.into()),
            },
            AwarenessEntry {
                client_id: 300_000,
                clock: 1,
                state: None,
            },
        ];
        let awareness = encode_awareness(&entries);
        let cases: Vec<(&str, Vec<u8>, Message)> = vec![
            (
                "step 1",
                encode_sync_step1(&[1, 2]),
                Message::SyncStep1(&[1, 2]),
            ),
            (
                "step 2",
                encode_sync_step2(&[0, 0]),
                Message::SyncStep2(&[0, 0]),
            ),
            ("update", encode_update(&[9]), Message::Update(&[9])),
            ("query awareness", vec![3], Message::QueryAwareness),
            ("auth", vec![2, 0, 5], Message::Auth),
        ];
        for (name, frame, expected) in cases {
            assert_eq!(decode(&frame).expect(name), expected, "{name}");
        }
        match decode(&awareness).expect("awareness") {
            Message::Awareness(update) => assert_eq!(update.entries, entries, "awareness entries"),
            other => panic!("awareness decoded as {other:?}"),
        }
    }

    #[test]
    fn json_null_with_whitespace_around_it_is_a_removal_as_json_parse_reads_it() {
        let state_of = |json: &str| {
            let entry = AwarenessEntry {
                client_id: 1,
                clock: 2,
                state: Some(json.into()),
            };
            match decode(&encode_awareness(&[entry])) {
                Ok(Message::Awareness(update)) => update.entries[0].state.clone(),
                other => panic!("{json:?} decoded as {other:?}"),
            }
        };
        for removal in ["null", " null", "null ", "\nnull", "\t\r\n null \r\n\t"] {
            assert_eq!(state_of(removal), None, "{removal:?} is a removal");
        }
        // Not JSON whitespace (JSON.parse refuses them, as check_states does): states, refused as such.
        for state in [
            "\u{a0}null",
            "null\u{2028}",
            "\u{b}null",
            "nul",
            "\"null\"",
            "[null]",
        ] {
            assert_eq!(
                state_of(state).as_deref(),
                Some(state),
                "{state:?} is a state"
            );
        }
    }

    #[test]
    fn malformed_frames_are_refused_with_a_reason() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty frame", &[], "message type"),
            ("unknown type", &[9], "unknown message type"),
            ("unknown sync type", &[0, 7, 0], "unknown sync type"),
            ("truncated payload", &[0, 2, 5, 1], "sync payload"),
            ("trailing bytes", &[0, 2, 1, 0, 0], "trailing"),
            ("awareness count lies", &[1, 2, 100, 1], "exceeds"),
            ("unterminated varint", &[0x80, 0x80], "message type"),
            (
                "awareness count past a third of the payload",
                &[1, 7, 3, 1, 1, 4, b'n', b'u', b'l', b'l'],
                "exceeds",
            ),
            (
                // Client id 2^53: 0x80 0x80 0x80 0x80 0x80 0x80 0x80 0x10.
                "awareness client id past 2^53",
                &[
                    1, 15, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 4, b'n', b'u',
                    b'l', b'l',
                ],
                "2^53",
            ),
        ];
        for (name, frame, reason) in cases {
            let error = decode(frame).expect_err(name);
            assert!(error.0.contains(reason), "{name}: {error}");
        }
        // A state that is not JSON decodes (a copy that is not news is dropped unparsed); it is refused by
        // check_states before anything keeps or relays it.
        let Ok(Message::Awareness(update)) = decode(&[1, 6, 1, 1, 1, 2, b'{', b'x']) else {
            panic!("an awareness message")
        };
        let error = check_states(&update.entries).expect_err("not JSON");
        assert!(error.0.contains("not JSON"), "{error}");
        // A state over MAX_STATE_BYTES is refused whole, before anything reads it.
        let big = AwarenessEntry {
            client_id: 1,
            clock: 1,
            state: Some(format!("\"{}\"", "x".repeat(MAX_STATE_BYTES))),
        };
        let error = decode(&encode_awareness(&[big])).expect_err("too big");
        assert!(error.0.contains("over 8192 bytes"), "{error}");
        // A newcomer's echo of a full room's presence: hundreds of entries decode; past MAX_ENTRIES, none.
        let awareness_of = |n: u64| {
            let entries: Vec<AwarenessEntry> = (0..n)
                .map(|id| AwarenessEntry {
                    client_id: id,
                    clock: 1,
                    state: None,
                })
                .collect();
            encode_awareness(&entries)
        };
        assert!(decode(&awareness_of(1000)).is_ok(), "1,000 entries");
        let error = decode(&awareness_of(8_193)).expect_err("8,193 entries");
        assert!(error.0.contains("is over 8192"), "{error}");
    }
}
