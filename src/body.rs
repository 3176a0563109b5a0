//! Rules for request bodies that handlers read whole: no content coding, the content type must be JSON in UTF-8, the
//! size must be under a cap, and the bytes must parse into the handler's type. Pure; `entry::body` reads the bytes
//! and applies these rules.

use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::field_list::split_unquoted;

/// A `Content-Type`'s media type without its parameters, lower-case: `Text/HTML; charset=utf-8` → `text/html`.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The value of a `Content-Type`'s parameter `name` (case-insensitive name, quotes removed): `charset` of
/// `application/json; Charset="UTF-8"` → `UTF-8`. A `;` inside a quoted value separates nothing
/// (`profile="a;charset=latin1"` names no charset, nor does `profile="a\";charset=latin1"`: `\"` is escaped).
fn parameter<'a>(content_type: &'a str, name: &str) -> Option<&'a str> {
    // The segments after the media type, split by the one RFC 9110 reader (`\"` does not close a quoted value).
    let segments = split_unquoted(content_type, b';');
    let (_media_type, parameters) = segments.split_first()?;
    parameters.iter().find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Charset labels whose bytes a UTF-8 reading takes as meant: the WHATWG Encoding Standard's labels of UTF-8, and
/// ASCII (a subset). An empty value names none.
const UTF8_LABELS: &[&str] = &[
    "",
    "utf-8",
    "utf8",
    "unicode-1-1-utf-8",
    "unicode11utf8",
    "unicode20utf8",
    "x-unicode20utf8",
    "us-ascii",
    "ascii",
];

/// The `charset` a `Content-Type` names when it is not one whose bytes a UTF-8 reading takes as meant (none named,
/// or a UTF-8 or ASCII label, is `None`): `text/html; charset=utf-16le` → `Some("utf-16le")`.
pub fn non_utf8_charset(content_type: &str) -> Option<&str> {
    parameter(content_type, "charset")
        .filter(|charset| !UTF8_LABELS.iter().any(|l| charset.eq_ignore_ascii_case(l)))
}

/// Whether text in `charset` is byte for byte the same as UTF-8 when every byte is ASCII: the legacy encodings that
/// extend ASCII — ISO 8859 parts, Windows and KOI8 code pages, and the CJK multi-byte ones, whose lead bytes are all
/// above 0x7F (labels as in the WHATWG Encoding Standard). A servlet container labels markup `ISO-8859-1` unless told
/// otherwise. Not UTF-16 (ASCII markup in it is NUL-strewn ASCII bytes), nor the 7-bit encodings that write other
/// characters with ASCII bytes (ISO-2022-JP, UTF-7, HZ).
pub fn extends_ascii(charset: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "iso-8859-",
        "iso8859",
        "iso_8859-",
        "windows-125",
        "cp125",
        "x-cp125",
        "koi8",
    ];
    const LABELS: &[&str] = &[
        "latin1",
        "l1",
        "cp819",
        "ibm819",
        "csisolatin1",
        "iso-ir-100",
        "ansi_x3.4-1968",
        "shift_jis",
        "windows-31j",
        "euc-jp",
        "euc-kr",
        "gbk",
        "gb2312",
        "gb18030",
        "big5",
    ];
    let charset = charset.to_ascii_lowercase();
    PREFIXES.iter().any(|p| charset.starts_with(p)) || LABELS.contains(&charset.as_str())
}

/// `bytes` as UTF-8 text the way a browser decodes a resource (WHATWG Encoding, "UTF-8 decode"): a leading byte
/// order mark, which editors and `wrangler kv key put --path` leave in a file, is not part of the text.
pub fn utf8_text(mut bytes: Vec<u8>) -> Result<String, std::string::FromUtf8Error> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    String::from_utf8(bytes)
}

/// 415 unless the `content-type` is `application/json` in UTF-8: a `charset` parameter other than `utf-8` (RFC 8259
/// §8.1: JSON between systems is UTF-8) is refused as a type the route does not take, rather than read as UTF-8 and
/// answered 400 bad JSON. Other parameters are allowed.
pub fn require_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    match content_type.map(media_type).as_deref() {
        Some("application/json") => match content_type.and_then(non_utf8_charset) {
            Some(charset) => Err(ApiError::unsupported_media_type(format!(
                "expected application/json in UTF-8, got charset {charset}"
            ))),
            None => Ok(()),
        },
        Some(other) => Err(ApiError::unsupported_media_type(format!(
            "expected content-type application/json, got {other}"
        ))),
        None => Err(ApiError::unsupported_media_type(
            "expected content-type application/json, got none",
        )),
    }
}

/// 415 with `Accept-Encoding: identity` for a body in a content coding (`Content-Encoding: gzip`): no route decodes
/// one, and reading compressed bytes as the plain body would answer a misleading 400 (RFC 9110 §15.5.16 and §12.5.3:
/// the header tells the client which coding to use instead). `identity` (or an empty value) is no coding.
pub fn require_identity_encoding(content_encoding: Option<&str>) -> Result<(), ApiError> {
    let Some(codings) = content_encoding else {
        return Ok(());
    };
    match codings
        .split(',')
        .map(str::trim)
        .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
    {
        None => Ok(()),
        Some(coding) => Err(ApiError::unsupported_media_type(format!(
            "the body is in content coding {coding}; send it uncompressed (identity)"
        ))
        .with_header("accept-encoding", "identity")),
    }
}

/// Whether the runtime hands over a fetched response's body decoded: with no `Content-Encoding`, `identity`, or
/// exactly `gzip` or `br` (workerd's stream encodings, matched as sent). Any other coding (`deflate`, `x-gzip`,
/// `GZIP`, a stack, an unknown token) stays on the bytes it reads, under the header that names it.
pub fn runtime_decoded(content_encoding: Option<&str>) -> bool {
    matches!(content_encoding, None | Some("gzip" | "br" | "identity"))
}

/// The `Content-Length` a request's body is read by: none when it also names a `Transfer-Encoding`, which overrides
/// it (RFC 9112 §6.3) — the runtime reads such a body by its chunks, so the length beside them says nothing of it.
pub fn declared_length<'a>(
    content_length: Option<&'a str>,
    transfer_encoding: Option<&str>,
) -> Option<&'a str> {
    content_length.filter(|_| transfer_encoding.is_none())
}

/// 413 when a declared or actual length exceeds `max` bytes.
pub fn require_size(len: u64, max: u64) -> Result<(), ApiError> {
    if len > max {
        Err(too_large(max))
    } else {
        Ok(())
    }
}

/// The 413 for a body over `max` bytes.
pub fn too_large(max: u64) -> ApiError {
    ApiError::payload_too_large(format!("the body is over the {max}-byte limit"))
}

/// Whether the client holds its body back until it is told to send it (`Expect: 100-continue`, RFC 9110 §10.1.1:
/// a token, in any case, maybe among others). A drain before a refusal waits for such a body only briefly
/// (`entry::body`): nothing of it arrives unless asked for, and workerd never sends the `100 Continue` that asks.
pub fn awaits_continue(expect: Option<&str>) -> bool {
    expect.is_some_and(|value| {
        value
            .split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("100-continue"))
    })
}

/// The 417 for a client awaiting `100 Continue` that sent none of its body in the time allowed: workerd never sends
/// the interim answer, so it would wait until it gave up; 417 says the expectation cannot be met here (RFC 9110
/// §15.5.18), and a client such as curl sends the request again without it (a 408 had it send the same request, to
/// wait again).
pub fn continue_refused() -> ApiError {
    ApiError::new(
        417,
        "expectation_failed",
        "this server cannot send 100 Continue: send the body without waiting for it",
    )
}

/// Parses JSON, answering 400 `invalid_json` with where and why parsing failed (never echoing the body). A leading
/// byte order mark is not part of the text (RFC 8259 §8.1 lets a parser ignore it, as Express, ASP.NET and Jackson
/// do, and as the WAF reads a body).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "does not match the expected fields",
            serde_json::error::Category::Eof => "ends too early",
            _ => "is not valid JSON",
        };
        ApiError::bad_request(
            "invalid_json",
            format!(
                "the body {what} (line {}, column {}): {}",
                e.line(),
                e.column(),
                strip_input(&e)
            ),
        )
    })
}

/// serde_json's message without any echo of input values: its position suffix is cut, and quoted (`"…"`) or
/// backticked values are left out — except a missing field's name and the fields an unknown one is not, which come
/// from our schema, not the input.
/// (`invalid type: string "hunter2", expected a map` → `invalid type: string, expected a map`.)
pub fn strip_input(e: &serde_json::Error) -> String {
    without_quoted(e, &['"', '`'])
}

/// serde_json's message without the strings it quotes (`"…"`), names and numbers (backticked) kept: for a document
/// whose names are the reader's to know (a JWK's `kty` variants, its fields) but whose strings may be secrets (an HMAC
/// key's `k` in the wrong alphabet: `invalid value: string "…", expected base64url-encoded data`).
pub fn strip_strings(e: &serde_json::Error) -> String {
    without_quoted(e, &['"'])
}

/// serde_json's message, its position suffix cut and each span between a pair of `quotes` left out (but a missing
/// field's name).
fn without_quoted(e: &serde_json::Error, quotes: &[char]) -> String {
    let message = e.to_string();
    let message = match message.find(" at line ") {
        Some(at) => &message[..at],
        None => message.as_str(),
    };
    if message.starts_with("missing field") {
        return message.to_owned();
    }
    // An unknown field's name is the input's; the fields expected after it are our schema's, and say what to send
    // (left out, the message read "unknown field, expected"). The last `, expected` is serde's own: a name holding
    // the words comes before it.
    if let Some(rest) = message
        .strip_prefix("unknown field `")
        .filter(|_| quotes.contains(&'`'))
    {
        if let Some(at) = rest.rfind("`, expected ") {
            return format!("unknown field{}", &rest[at + 1..]);
        }
    }
    // Outside quotes, characters are kept; inside, dropped up to the closing quote, skipping backslash escapes
    // (serde_json quotes strings in their debug form, `\"` inside). An unclosed quote drops the rest.
    let mut out = String::with_capacity(message.len());
    let mut quote = None;
    let mut escaped = false;
    for c in message.chars() {
        match quote {
            None if quotes.contains(&c) => {
                out.truncate(out.trim_end().len());
                quote = Some(c);
            }
            None => out.push(c),
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_awaiting_100_continue_is_recognised_in_any_case_and_list() {
        for (expect, awaits) in [
            (None, false),
            (Some(""), false),
            (Some("100-continue"), true),
            (Some("100-Continue"), true),
            (Some(" foo=bar , 100-CONTINUE "), true),
            (Some("200-continue"), false),
            (Some("100-continued"), false),
        ] {
            assert_eq!(awaits_continue(expect), awaits, "Expect: {expect:?}");
        }
    }

    #[derive(serde::Deserialize, Debug)]
    struct Login {
        #[allow(dead_code)]
        email: String,
    }

    #[test]
    fn content_types() {
        let cases: &[(Option<&str>, bool)] = &[
            (Some("application/json"), true),
            (Some("Application/JSON; charset=utf-8"), true),
            (Some("application/json;charset=\"UTF-8\""), true),
            (Some("application/json; Charset=UTF-8; foo=bar"), true),
            (Some("application/json; charset=utf-16"), false),
            (Some("application/json; charset=utf8"), true),
            (Some("application/json; charset=UTF8"), true),
            (Some("application/json; charset=us-ascii"), true),
            (Some("application/json; charset="), true),
            (Some("application/json; charset=\"\""), true),
            (
                Some("application/json; profile=\"a;charset=latin1\"; charset=utf-8"),
                true,
            ),
            (Some("application/json; profile=\"a;charset=latin1\""), true),
            (Some("application/json; charset=iso-8859-1"), false),
            (Some("application/json; CHARSET=\"utf-16le\""), false),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("application/jsonx"), false),
            (None, false),
        ];
        for (ct, ok) in cases {
            let result = require_json_content_type(*ct);
            assert_eq!(result.is_ok(), *ok, "{ct:?}");
            if let Err(e) = result {
                assert_eq!(e.status(), 415);
            }
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_part_of_the_text() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"\xEF\xBB\xBFbody{margin:0}", Some("body{margin:0}")),
            (b"body{margin:0}", Some("body{margin:0}")),
            (b"\xEF\xBB\xBF", Some("")),
            (b"a\xEF\xBB\xBFb", Some("a\u{feff}b")),
            (b"\xEF\xBB\xBF\xEF\xBB\xBFx", Some("\u{feff}x")),
            (b"\xEF\xBB", None),
            (b"\xFF\xFEx", None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                utf8_text(bytes.to_vec()).ok().as_deref(),
                *expected,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn charsets_that_read_ascii_as_ascii() {
        for extends in [
            "ISO-8859-1",
            "iso-8859-15",
            "iso8859-1",
            "iso88591",
            "latin1",
            "windows-1252",
            "CP1251",
            "koi8-r",
            "Shift_JIS",
            "euc-jp",
            "gb18030",
            "big5",
        ] {
            assert!(extends_ascii(extends), "{extends}");
        }
        for other in [
            "utf-16",
            "utf-16le",
            "UTF-16BE",
            "utf-32",
            "iso-2022-jp",
            "utf-7",
            "hz-gb-2312",
            "x-user-defined",
            "ebcdic-cp-us",
        ] {
            assert!(!extends_ascii(other), "{other}");
        }
    }

    #[test]
    fn a_charset_other_than_utf8_is_named() {
        let cases: &[(&str, Option<&str>)] = &[
            ("text/html", None),
            ("text/html; charset=utf-8", None),
            ("text/html; Charset=\"UTF-8\"", None),
            ("text/html; charset=us-ascii", None),
            ("text/html; charset=", None),
            ("text/html; charset=utf-16le", Some("utf-16le")),
            ("text/html; CHARSET=\"UTF-16\"", Some("UTF-16")),
            ("text/html; charset=iso-8859-1", Some("iso-8859-1")),
            ("text/html; profile=\"a;charset=latin1\"", None),
            // `\"` inside a quoted string is an escaped quote (RFC 9110 §5.6.4), not its end: the `;` after it is
            // still quoted, and the charset after the real closing quote is the type's own.
            ("text/html; profile=\"a\\\";charset=latin1\"", None),
            (
                "text/html; profile=\"a\\\";charset=utf-8\"; charset=latin1",
                Some("latin1"),
            ),
        ];
        for (ct, expected) in cases {
            assert_eq!(non_utf8_charset(ct), *expected, "{ct:?}");
        }
    }

    #[test]
    fn the_runtime_decodes_gzip_and_br_as_sent_and_nothing_else() {
        for decoded in [None, Some("gzip"), Some("br"), Some("identity")] {
            assert!(runtime_decoded(decoded), "{decoded:?}");
        }
        for coded in [
            "deflate", "x-gzip", "GZIP", "gzip, br", "zstd", "x-weird", "",
        ] {
            assert!(!runtime_decoded(Some(coded)), "{coded}");
        }
    }

    #[test]
    fn content_codings_are_refused_with_the_one_accepted() {
        for ok in [
            None,
            Some("identity"),
            Some("Identity"),
            Some(""),
            Some(" identity , "),
        ] {
            assert!(require_identity_encoding(ok).is_ok(), "{ok:?}");
        }
        for coded in ["gzip", "br", "deflate", "identity, gzip", "x-unknown"] {
            let e = require_identity_encoding(Some(coded)).expect_err(coded);
            assert_eq!(e.status(), 415, "{coded}");
            assert_eq!(e.code(), "unsupported_media_type");
            assert_eq!(
                e.headers(),
                &[("accept-encoding", "identity".to_owned())],
                "{coded}"
            );
        }
    }

    #[test]
    fn a_length_beside_a_transfer_encoding_declares_nothing() {
        assert_eq!(declared_length(Some("10"), None), Some("10"));
        assert_eq!(declared_length(Some("10"), Some("chunked")), None);
        assert_eq!(declared_length(None, Some("chunked")), None);
        assert_eq!(declared_length(None, None), None);
    }

    #[test]
    fn sizes() {
        assert!(require_size(10, 10).is_ok());
        assert_eq!(require_size(11, 10).expect_err("over").status(), 413);
    }

    #[test]
    fn json_errors_say_why_without_echoing_input() {
        let cases: &[(&str, &str)] = &[
            ("{", "ends too early"),
            ("nope", "is not valid JSON"),
            (r#"{"email": 5}"#, "does not match"),
            (r#"{"other": "secret-value"}"#, "does not match"),
            (r#""secret-value""#, "invalid type: string, expected"),
            (r#"{"email": ["secret-value"]}"#, "does not match"),
            (r#"{"email": 5, "secret-value": 1}"#, "does not match"),
            (r#""pass\"secret-value""#, "invalid type: string, expected"),
        ];
        for (input, why) in cases {
            let e = parse_json::<Login>(input.as_bytes()).expect_err("bad");
            assert_eq!(e.status(), 400, "{input}");
            assert_eq!(e.code(), "invalid_json");
            assert!(e.message().contains(why), "{input}: {}", e.message());
            assert!(
                !e.message().contains("secret-value"),
                "{input}: {}",
                e.message()
            );
        }
        assert!(parse_json::<Login>(br#"{"email":"a@b.c"}"#).is_ok());
        assert!(
            parse_json::<Login>(b"\xEF\xBB\xBF{\"email\":\"a@b.c\"}").is_ok(),
            "a leading byte order mark is not part of the JSON text"
        );
        let missing = parse_json::<Login>(b"{}").expect_err("missing");
        assert!(
            missing.message().contains("missing field `email`"),
            "{}",
            missing.message()
        );
    }

    /// A field the body may not have is named by the fields it may (our schema's), never by its own name (the
    /// input's): the message read "unknown field, expected", saying nothing of what to send.
    #[test]
    fn an_unknown_field_is_answered_with_the_fields_expected_and_not_echoed() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Tags {
            tags: Vec<String>,
        }
        for body in [
            br#"{"tags":[],"dry_run":true}"#.as_slice(),
            br#"{"hunter2, expected `x`":1}"#.as_slice(),
            br#"{"a`, expected `secret":1}"#.as_slice(),
        ] {
            let message = parse_json::<Tags>(body)
                .expect_err("refused")
                .message()
                .to_owned();
            assert!(
                message.ends_with("unknown field, expected `tags`"),
                "{message}"
            );
            for echoed in ["dry_run", "hunter2", "secret"] {
                assert!(!message.contains(echoed), "{message}");
            }
        }
    }
}
