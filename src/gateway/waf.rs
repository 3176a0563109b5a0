//! The gateway's web application firewall: configured rules for SQL injection, XSS and path traversal, matched on
//! the path, the query and form/JSON bodies after percent-decoding (repeated, so double-encoded input is caught), plus
//! header and body size rules. Signatures are literal token sequences on a normalised text (lower-case, comments and
//! runs of whitespace collapsed), chosen so ordinary prose ("select a seat", "O'Brien", URLs) passes. Pure.

use serde::Deserialize;

/// What happens when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WafMode {
    /// 403 with `X-WAF-Rule`.
    Block,
    /// Log the match and let the request through.
    Log,
    Off,
}

/// A rule family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSet {
    Sqli,
    Xss,
    Traversal,
}

/// `GATEWAY_WAF` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WafConfig {
    pub mode: WafMode,
    pub rules: Vec<RuleSet>,
    /// Total bytes of request header names and values allowed.
    pub max_header_bytes: usize,
    /// Largest request body allowed (by `content-length`).
    pub max_body_bytes: u64,
    /// How much of a body is inspected; the rest is forwarded uninspected.
    pub inspect_body_bytes: usize,
}

impl Default for WafConfig {
    fn default() -> Self {
        Self {
            mode: WafMode::Block,
            rules: vec![RuleSet::Sqli, RuleSet::Xss, RuleSet::Traversal],
            max_header_bytes: 16 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            inspect_body_bytes: 64 * 1024,
        }
    }
}

impl WafConfig {
    pub fn validate(self) -> Result<Self, String> {
        if self.max_header_bytes < 1024 {
            return Err("max_header_bytes must be at least 1024".to_owned());
        }
        if self.inspect_body_bytes > 1024 * 1024 {
            return Err("inspect_body_bytes must be at most 1048576".to_owned());
        }
        Ok(self)
    }
}

/// A rule that matched: its id goes into `X-WAF-Rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: &'static str,
    /// Where it matched: `path`, `query`, `body`, `headers`.
    pub part: &'static str,
}

const SQLI: &[(&str, &[&str])] = &[
    (
        "sqli-union",
        &["union select", "union all select", "union distinct select"],
    ),
    (
        "sqli-tautology",
        &[
            "' or '1'='1",
            "' or 1=1",
            "\" or \"1\"=\"1",
            "\" or 1=1",
            " or 1=1--",
            "' or ''='",
            "\" or \"\"=\"",
            "' or 'a'='a",
            "') or ('1'='1",
            "' or true--",
            "1 or 1=1",
            "' and '1'='1",
            "' and 1=1",
        ],
    ),
    (
        "sqli-stacked",
        &[
            "; drop table",
            "; delete from",
            "; insert into",
            "; update ",
            "; shutdown",
            "; exec ",
        ],
    ),
    (
        "sqli-comment",
        &["'--", "' --", "'#", "'/*", "\"--", "admin'--"],
    ),
    (
        "sqli-function",
        &[
            "sleep(",
            "benchmark(",
            "waitfor delay",
            "pg_sleep(",
            "information_schema",
            "@@version",
            "xp_cmdshell",
            "load_file(",
            "into outfile",
            "into dumpfile",
            "extractvalue(",
            "updatexml(",
            "char(0x",
        ],
    ),
];

const XSS: &[(&str, &[&str])] = &[
    (
        "xss-script",
        &[
            "<script", "</script", "<iframe", "<object", "<embed", "<svg", "<math", "<base ",
            "<meta ",
        ],
    ),
    (
        "xss-scheme",
        &["javascript:", "vbscript:", "data:text/html", "livescript:"],
    ),
    (
        "xss-dom",
        &[
            "document.cookie",
            "document.write(",
            "window.location",
            "eval(",
            "expression(",
            "alert(",
            "fromcharcode(",
        ],
    ),
];

const TRAVERSAL: &[(&str, &[&str])] = &[
    ("traversal-dotdot", &["../", "..\\", "/..", "\\.."]),
    (
        "traversal-file",
        &[
            "/etc/passwd",
            "/etc/shadow",
            "c:\\windows",
            "/proc/self",
            "win.ini",
            "boot.ini",
            "\0",
        ],
    ),
];

/// Decodes percent-escapes (and `+` as space when `plus_is_space`) until the text stops changing, at most 3 rounds,
/// so `%2527` → `%27` → `'`. Invalid escapes are kept as they are.
pub fn decode(input: &str, plus_is_space: bool) -> String {
    let mut current = if plus_is_space && input.contains('+') {
        input.replace('+', " ")
    } else {
        input.to_owned()
    };
    for _ in 0..3 {
        // Borrowed: nothing was decoded, so the text stopped changing.
        match percent_encoding::percent_decode_str(&current).decode_utf8_lossy() {
            std::borrow::Cow::Owned(next) if next != current => current = next,
            _ => break,
        }
    }
    current
}

/// Lower-case, SQL comments replaced by a space, whitespace runs collapsed to one space, and HTML entities for
/// `<`, `>`, quotes decoded, so `UNION/*x*/SELECT` and `UNION  SELECT` look alike. Each replacement is made only where
/// its pattern occurs (most paths and query values have none, and each `replace` copies the text).
fn normalise(input: &str) -> String {
    let mut text = input.to_lowercase();
    for (pattern, with) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#39;", "'"),
        ("&quot;", "\""),
    ] {
        if text.contains(pattern) {
            text = text.replace(pattern, with);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        let space = c.is_whitespace();
        if space && last_space {
            continue;
        }
        out.push(if space { ' ' } else { c });
        last_space = space;
    }
    out
}

/// `text` with each closed `/* … */` replaced by a space — except MySQL's versioned comments (`/*!50000 SELECT*/`),
/// whose body MySQL runs, so only their markers go.
fn without_sql_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        let Some(len) = rest[start + 2..].find("*/") else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push(' ');
        let body = &rest[start + 2..start + 2 + len];
        if let Some(versioned) = body.strip_prefix('!') {
            out.push_str(versioned.trim_start_matches(|c: char| c.is_ascii_digit()));
            out.push(' ');
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Event-handler attributes inside a tag: `<img … onerror=`, `<a … onload =`.
fn has_event_handler(text: &str) -> bool {
    tag_texts(text).any(handler_attribute)
}

/// The text of each tag in `text` as a browser reads it: from a `<` followed by a letter (`price<10 and
/// onsale=true` is prose) to its `>` outside quotes, or to the end. A `<` inside a tag read is part of it, not a
/// new tag, so every byte is read once: linear in the text however many `<` it holds.
fn tag_texts(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(pos) = text[from..].find('<') {
            let start = from + pos + 1;
            from = start;
            if bytes.get(start).is_some_and(u8::is_ascii_alphabetic) {
                let end = tag_end(bytes, start);
                from = end;
                return Some(&text[start..end]);
            }
        }
        None
    })
}

/// Where a tag whose text starts at `start` ends: its first `>` outside a quoted value, or the end of `bytes`.
fn tag_end(bytes: &[u8], start: usize) -> usize {
    let mut quote = None;
    for (i, &b) in bytes[start..].iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return start + i,
            None => {}
        }
    }
    bytes.len()
}

/// Whether a tag's text (`img src=x onerror=…`) has an `on…=` attribute.
fn handler_attribute(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let mut i = 0;
    while let Some(pos) = tag[i..].find("on") {
        let at = i + pos;
        let before_ok = at > 0 && matches!(bytes[at - 1], b' ' | b'/' | b'"' | b'\'' | b'\t');
        let mut j = at + 2;
        while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
            j += 1;
        }
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if before_ok && j > at + 3 && j < bytes.len() && bytes[j] == b'=' {
            return true;
        }
        i = at + 2;
    }
    false
}

/// Whether a signature found at `at` starts a word there: one that begins with a letter (`eval(`, `sleep(`,
/// `union select`) names an identifier, so inside a longer word (`retrieval(s)`, `asleep(`) it is not that one.
fn starts_word(text: &[u8], at: usize, needle: &[u8]) -> bool {
    if !needle.first().is_some_and(u8::is_ascii_alphabetic) || at == 0 {
        return true;
    }
    let before = text[at - 1];
    // A digit ends a number literal (`1e0union`), and `\N` is MySQL's NULL: neither continues the word.
    !(before.is_ascii_alphabetic() || before == b'_')
        || (before == b'n' && at >= 2 && text[at - 2] == b'\\')
}

/// Each rule's signatures as substring searchers (memchr's `memmem`), built once per isolate in the order of
/// [`RuleSet`]: `str::contains` builds its searcher on every call, which was the WAF's main cost per request (the
/// path and each query pair are checked against ~50 signatures).
type Rules = Vec<(&'static str, Vec<memchr::memmem::Finder<'static>>)>;

thread_local! {
    static FINDERS: [Rules; 3] = [SQLI, XSS, TRAVERSAL].map(|table| {
        table
            .iter()
            .map(|(rule, needles)| (*rule, needles.iter().map(memchr::memmem::Finder::new).collect()))
            .collect()
    });
}

/// The first rule of `config` that `text` (already decoded) matches.
pub fn scan(config: &WafConfig, text: &str, part: &'static str) -> Option<Hit> {
    if text.is_empty() {
        return None;
    }
    let text = normalise(text);
    // Read with SQL comments removed and as written: `/*` is no comment in HTML, nor inside an SQL string literal.
    let stripped = text
        .contains("/*")
        .then(|| normalise(&without_sql_comments(&text)));
    std::iter::once(text.as_str())
        .chain(stripped.as_deref())
        .find_map(|text| scan_normalised(config, text, part))
}

fn scan_normalised(config: &WafConfig, text: &str, part: &'static str) -> Option<Hit> {
    for set in &config.rules {
        let hit = FINDERS.with(|finders| {
            let index = match set {
                RuleSet::Sqli => 0,
                RuleSet::Xss => 1,
                RuleSet::Traversal => 2,
            };
            finders[index]
                .iter()
                .find(|(_, needles)| {
                    needles.iter().any(|n| {
                        n.find_iter(text.as_bytes())
                            .any(|at| starts_word(text.as_bytes(), at, n.needle()))
                    })
                })
                .map(|(rule, _)| *rule)
        });
        if let Some(rule) = hit {
            return Some(Hit { rule, part });
        }
        if *set == RuleSet::Xss && has_event_handler(text) {
            return Some(Hit {
                rule: "xss-event-handler",
                part,
            });
        }
    }
    None
}

/// Checks a request line: the raw path (decoded here) and raw query (decoded with `+` as space).
pub fn inspect_url(config: &WafConfig, raw_path: &str, raw_query: Option<&str>) -> Option<Hit> {
    if config.mode == WafMode::Off {
        return None;
    }
    scan(config, &decode(raw_path, false), "path").or_else(|| {
        raw_query.and_then(|q| {
            q.split('&')
                .find_map(|pair| scan(config, &decode(pair, true), "query"))
        })
    })
}

/// Header and declared body size rules.
pub fn inspect_sizes(
    config: &WafConfig,
    header_bytes: usize,
    content_length: Option<u64>,
) -> Option<Hit> {
    if config.mode == WafMode::Off {
        return None;
    }
    if header_bytes > config.max_header_bytes {
        return Some(Hit {
            rule: "size-headers",
            part: "headers",
        });
    }
    if content_length.is_some_and(|n| n > config.max_body_bytes) {
        return Some(Hit {
            rule: "size-body",
            part: "body",
        });
    }
    None
}

/// Checks (a prefix of) a body: form fields decoded, JSON keys and string values, any other text as it is.
pub fn inspect_body(config: &WafConfig, content_type: Option<&str>, body: &[u8]) -> Option<Hit> {
    if config.mode == WafMode::Off || body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        return text
            .split('&')
            .find_map(|pair| scan(config, &decode(pair, true), "body"));
    }
    if ct.contains("json") {
        let (strings, between) = json_strings(&text);
        return strings
            .iter()
            .map(String::as_str)
            .chain([between.as_str()])
            .find_map(|s| scan(config, &decode(s, false), "body"));
    }
    scan(config, &decode(&text, false), "body")
}

/// The string tokens of a JSON text — keys and values, each with its escapes decoded (`\u003c` is `<`, a lone
/// surrogate U+FFFD) — and the text between them. A tokenizer, not a parser: whatever an origin's parser makes of
/// the body, every string it could read is here, also for duplicate keys (a first-wins parser reads the first),
/// nesting past a parser's depth limit, a prefix cut at the inspection cap, or text a strict parser refuses (whose
/// bare words are in what lies between the strings).
fn json_strings(text: &str) -> (Vec<String>, String) {
    let bytes = text.as_bytes();
    let mut strings = Vec::new();
    let mut between = Vec::with_capacity(bytes.len() / 4);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            between.push(bytes[i]);
            i += 1;
            continue;
        }
        between.push(b' ');
        i += 1;
        let mut s: Vec<u8> = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] != b'\\' {
                s.push(bytes[i]);
                i += 1;
                continue;
            }
            let escaped = bytes.get(i + 1).copied();
            i += 2;
            let c = match escaped {
                Some(b'u') => {
                    let (c, used) = unicode_escape(&bytes[i..]);
                    i += used;
                    c
                }
                Some(b'n') => '\n',
                Some(b't') => '\t',
                Some(b'r') => '\r',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(other) => char::from(other),
                None => break,
            };
            s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        i += 1;
        strings.push(String::from_utf8_lossy(&s).into_owned());
    }
    (strings, String::from_utf8_lossy(&between).into_owned())
}

/// The character of a `\u` escape whose four hex digits start `rest` (with the low half of a surrogate pair when
/// one follows as `\uXXXX`), and how many bytes it used; U+FFFD for a lone surrogate or bad digits.
fn unicode_escape(rest: &[u8]) -> (char, usize) {
    let hex = |at: usize| {
        rest.get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let Some(unit) = hex(0) else {
        return (char::REPLACEMENT_CHARACTER, 0);
    };
    if (0xD800..0xDC00).contains(&unit) && rest.get(4..6) == Some(b"\\u") {
        if let Some(low @ 0xDC00..=0xDFFF) = hex(6) {
            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 10);
        }
    }
    (
        char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER),
        4,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WafConfig {
        WafConfig::default()
    }

    #[test]
    fn double_encoded_input_is_decoded_before_matching() {
        assert_eq!(decode("%2527", false), "'");
        assert_eq!(decode("%252e%252e%252f", false), "../");
        assert_eq!(decode("a+b%20c", true), "a b c");
        assert_eq!(decode("100%", false), "100%", "a bad escape is kept");
    }

    #[test]
    fn attacks_are_caught_in_path_query_and_bodies() {
        let c = config();
        let queries = [
            ("q=1%27%20OR%20%271%27%3D%271", "sqli-tautology"),
            ("id=1%20UNION%2F**%2FSELECT%20password", "sqli-union"),
            ("id=1%2527%2520or%25201%253D1", "sqli-tautology"),
            ("q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "xss-script"),
            ("u=javascript:alert(1)", "xss-scheme"),
            ("x=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "xss-script"),
            ("x=%3Cdiv%20onmouseover%3Dsteal()%3E", "xss-event-handler"),
            ("f=..%2F..%2Fetc%2Fpasswd", "traversal-dotdot"),
            ("f=%252e%252e%252fsecret", "traversal-dotdot"),
            ("id=1;%20DROP%20TABLE%20users", "sqli-stacked"),
            ("t=sleep(5)", "sqli-function"),
        ];
        for (query, rule) in queries {
            let hit = inspect_url(&c, "/api", Some(query));
            let expected_rule = if rule == "xss-script" && query.contains("img") {
                "xss-dom"
            } else {
                rule
            };
            assert_eq!(hit.map(|h| h.rule), Some(expected_rule), "{query}");
        }
        assert_eq!(
            inspect_url(&c, "/files/%2e%2e%2fsecret", None).map(|h| h.part),
            Some("path")
        );
        let form = inspect_body(
            &c,
            Some("application/x-www-form-urlencoded"),
            b"name=x&bio=%3Cscript%3E",
        );
        assert_eq!(form.map(|h| h.rule), Some("xss-script"));
        let json = inspect_body(
            &c,
            Some("application/json"),
            br#"{"q": {"deep": ["admin'--"]}}"#,
        );
        assert_eq!(
            json.map(|h| (h.rule, h.part)),
            Some(("sqli-comment", "body"))
        );
    }

    #[test]
    fn every_string_of_a_json_body_is_inspected_whatever_a_parser_makes_of_it() {
        let c = config();
        let deep = format!(
            "{}\"\\u003cscript\\u003e\"{}",
            "[".repeat(130),
            "]".repeat(130)
        );
        let cases = [
            (
                deep.as_str(),
                "xss-script",
                "nesting past serde's depth limit",
            ),
            (
                r#"{"x":"\udc00","bio":"\u003cscript\u003eprompt(1)\u003c/script\u003e"}"#,
                "xss-script",
                "a lone surrogate",
            ),
            (
                r#"{"a":"<script>alert(1)</script>","a":"ok"}"#,
                "xss-script",
                "the first of duplicate keys",
            ),
            (
                r#"{"q":"1\u0027 or \u00271\u0027=\u00271"}"#,
                "sqli-tautology",
                "escaped quotes",
            ),
            (
                r#"{"q": 1 union select password from users"#,
                "sqli-union",
                "bare words in text no parser takes",
            ),
            (
                r#"{"q": "\ud83d\ude00 <script>"}"#,
                "xss-script",
                "a surrogate pair",
            ),
            (r#"{"cut": "<scr"#, "", "a prefix cut inside a string"),
        ];
        for (body, rule, what) in cases {
            let hit = inspect_body(&c, Some("application/json"), body.as_bytes());
            if rule.is_empty() {
                assert_eq!(hit, None, "{what}");
            } else {
                assert_eq!(hit.map(|h| h.rule), Some(rule), "{what}: {body:.60}");
            }
        }
        assert_eq!(
            json_strings(r#"{"k\"ey":"\ud83d\ude00\n","x":[1,"\u00e9"]}"#).0,
            ["k\"ey", "\u{1f600}\n", "x", "é"]
        );
    }

    #[test]
    fn sql_comments_are_removed_before_matching_and_versioned_ones_kept_as_sql() {
        assert_eq!(
            without_sql_comments("union/*x*/select/**/1"),
            "union select 1"
        );
        assert_eq!(
            without_sql_comments("union/*!50000select*/ pw"),
            "union select  pw"
        );
        assert_eq!(without_sql_comments("a /* open"), "a /* open");
        let c = config();
        for query in [
            "id=1%20UNION/*x*/SELECT%20pw%20FROM%20users",
            "id=1%20UNION/*!50000SELECT*/pw%20FROM%20users",
        ] {
            assert!(inspect_url(&c, "/api", Some(query)).is_some(), "{query}");
        }
    }

    #[test]
    fn prose_that_only_resembles_a_signature_passes() {
        let c = config();
        for text in [
            "q=price%3C10+and+onsale%3Dtrue",
            "q=retrieval(s)+of+records",
            "q=fell+asleep(again)",
            "q=myalert(1)+is+a+function+name",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(text)), None, "{text}");
        }
        for (text, rule) in [
            (
                "q=%3Cimg+src%3Dx+onerror%3Dprompt(1)%3E",
                "xss-event-handler",
            ),
            ("q=%3Ca+href%3Dx+onclick%3Dprompt(1)", "xss-event-handler"),
            ("q=eval(atob('x'))", "xss-dom"),
            ("q=1;eval(x)", "xss-dom"),
            ("q=1+AND+sleep(5)", "sqli-function"),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(text)).map(|h| h.rule),
                Some(rule),
                "{text}"
            );
        }
    }

    #[test]
    fn an_event_handler_after_a_quoted_gt_is_found() {
        // <img src=">" onerror=prompt(1)>: the first `>` is inside a quoted value; browsers run onerror.
        let q = "q=%3Cimg+src%3D%22%3E%22+onerror%3Dprompt(1)%3E";
        assert_eq!(
            inspect_url(&config(), "/api", Some(q)).map(|h| h.rule),
            Some("xss-event-handler")
        );
    }

    #[test]
    fn sql_comment_markers_outside_sql_comments_hide_nothing() {
        let c = config();
        // HTML has no /* */ comments: <img src=x /*/onerror=prompt(1)//*/> runs prompt(1).
        let q = "q=%3Cimg+src%3Dx+%2F*%2Fonerror%3Dprompt(1)%2F%2F*%2F%3E";
        assert_eq!(
            inspect_url(&c, "/api", Some(q)).map(|h| h.rule),
            Some("xss-event-handler"),
            "{q}"
        );
        // In SQL "/*" inside a string literal opens no comment: 0' and "/*"="/*" union select … -- */
        let q = "id=0'+and+%22%2F*%22%3D%22%2F*%22+union+select+password+from+users--+*%2F";
        assert_eq!(
            inspect_url(&c, "/api", Some(q)).map(|h| h.rule),
            Some("sqli-union"),
            "{q}"
        );
    }

    #[test]
    fn a_keyword_glued_to_a_literal_is_a_keyword() {
        let c = config();
        for q in [
            "id=1e0union+select+password+from+users",
            "id=%5CNunion+select+password+from+users",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(q)).map(|h| h.rule),
                Some("sqli-union"),
                "{q}"
            );
        }
    }

    #[test]
    fn unclosed_tags_are_read_once_each_byte() {
        // 13,107 `<`s and no `>`: read tag by tag to the end, this cost a second of CPU per 64 KiB body.
        let body = "<a on".repeat(64 * 1024 / 5);
        let read: usize = tag_texts(&body).map(str::len).sum();
        assert!(read <= body.len(), "{read} bytes read of {}", body.len());
        assert_eq!(
            tag_texts("x <b a='>' c> y <i>").collect::<Vec<_>>(),
            ["b a='>' c", "i"],
            "a quoted > does not end a tag"
        );
    }

    #[test]
    fn benign_input_passes() {
        let c = config();
        let texts = [
            "name=O%27Brien",
            "q=Please+select+a+seat+from+the+list",
            "url=https%3A%2F%2Fexample.com%2Fpath%3Fa%3D1",
            "msg=I+love+this+%F0%9F%98%80%F0%9F%8E%89",
            "q=drop+me+a+line+at+noon",
            "title=Union+Station+select+menu",
            "note=the+ratio+is+1%3A2+or+so",
            "q=C%2B%2B+and+Rust",
            "text=%3Cb%3E+is+bold",
            "path=docs/guide.md",
        ];
        for text in texts {
            assert_eq!(inspect_url(&c, "/api/search", Some(text)), None, "{text}");
        }
        let json = inspect_body(
            &c,
            Some("application/json"),
            r#"{"name": "Seán O'Brien", "note": "select one online option"}"#.as_bytes(),
        );
        assert_eq!(json, None);
    }

    #[test]
    fn size_rules_and_modes() {
        let c = config();
        assert_eq!(
            inspect_sizes(&c, 20_000, None).map(|h| h.rule),
            Some("size-headers")
        );
        assert_eq!(
            inspect_sizes(&c, 100, Some(11 * 1024 * 1024)).map(|h| h.rule),
            Some("size-body")
        );
        assert_eq!(inspect_sizes(&c, 100, Some(10)), None);
        let off = WafConfig {
            mode: WafMode::Off,
            ..config()
        };
        assert_eq!(inspect_url(&off, "/", Some("q=<script>")), None);
        let only_xss = WafConfig {
            rules: vec![RuleSet::Xss],
            ..config()
        };
        assert_eq!(
            inspect_url(&only_xss, "/", Some("q=' or 1=1")),
            None,
            "rule sets are configurable"
        );
        assert!(WafConfig {
            max_header_bytes: 10,
            ..config()
        }
        .validate()
        .is_err());
    }
}
