//! The rendering plan from configuration: which pages exist, the slots each page writes in document order, and per
//! fragment its KV TTL, time budget and fallback. Parsed once per isolate (`RENDER_*` vars); errors name the entry.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::html::{Html, TrustedSource};
use crate::config::{ConfigError, Vars};

/// The slot name that stands for the edge-rendered, personalised offers block (greeting, prices, A/B headline).
pub const OFFERS_SLOT: &str = "@offers";
/// The page served at `/`.
pub const HOME_PAGE: &str = "home";
/// KV's smallest allowed `expirationTtl`.
pub const MIN_TTL_S: u64 = 60;
/// KV's largest `expirationTtl`: workerd reads it as a 32-bit int and throws on anything longer (about 68 years).
pub const MAX_TTL_S: u64 = i32::MAX as u64;

/// The `Content-Security-Policy` of a page unless `RENDER_CSP` says otherwise: the page's one inline element, the
/// critical CSS, carries the response's nonce (`{nonce}`, a fresh one per response); scripts only from the page's
/// own origin (the templates inline none), no plugins, no `<base>` re-pointing relative URLs, framed only by the
/// site itself. Images, fonts and fetches are left open: fragments are the operator's markup and may load them
/// from anywhere.
pub const DEFAULT_CSP: &str =
    "script-src 'self'; style-src 'self' 'nonce-{nonce}'; object-src 'none'; \
                               base-uri 'none'; frame-ancestors 'self'";

/// Where a page's CSP names the response's nonce.
pub const NONCE_PLACEHOLDER: &str = "{nonce}";

/// `RENDER_CSP`: the policy (`off` for none), checked to be a header value (visible ASCII and spaces) naming at least
/// one directive, each known and named once, whose only braces are `{nonce}` placeholders.
fn parse_csp(value: &str) -> Result<Option<String>, ConfigError> {
    let bad = |problem: &str| ConfigError::new("RENDER_CSP", problem);
    if value == "off" {
        return Ok(None);
    }
    if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(bad(
            "must be visible ASCII and spaces (a header value), or off",
        ));
    }
    // Empty (the var is trimmed: spaces alone are empty too) or only separators, it would go out as a policy that
    // enforces nothing: turning the policy off is said with `off`.
    if value
        .split(';')
        .all(|directive| directive.trim().is_empty())
    {
        return Err(bad("must name at least one directive, or be off"));
    }
    if value.replace(NONCE_PLACEHOLDER, "").contains(['{', '}']) {
        return Err(bad("may hold braces only as {nonce}"));
    }
    // A browser skips a directive it does not know and every repeat of one it read (CSP3 §2.2.1, names ASCII
    // case-insensitive): a typo or a second `script-src` would go out weaker than written, said only in a console.
    let mut named: Vec<String> = Vec::new();
    for directive in value.split(';') {
        let Some(name) = directive.split_ascii_whitespace().next() else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if !CSP_DIRECTIVES.contains(&name.as_str()) {
            return Err(bad(&format!("names an unknown directive `{name}`")));
        }
        if named.contains(&name) {
            return Err(bad(&format!(
                "names `{name}` twice (browsers read only the first)"
            )));
        }
        named.push(name);
    }
    if let Some(directive) = blocks_inline_style(value) {
        return Err(bad(&format!(
            "its `{directive}` lets no inline style through, so browsers would block the page's inline critical \
             CSS: add '{NONCE_PLACEHOLDER_SOURCE}' (or 'unsafe-inline' without a nonce or hash)"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// The source expression that lets through the element carrying the response's nonce.
const NONCE_PLACEHOLDER_SOURCE: &str = "nonce-{nonce}";

/// The directive of `policy` that rules the shell's inline `<style nonce>` (CSP3: `style-src-elem`, else `style-src`,
/// else `default-src`) when it can let no inline style through: it names neither the response's nonce, nor a hash
/// (which the operator may have taken of the critical CSS), nor `'unsafe-inline'` without a nonce or hash beside it
/// (either turns it off). `None` when the policy lets the critical CSS through, or names no such directive.
fn blocks_inline_style(policy: &str) -> Option<String> {
    let directives: Vec<(String, Vec<String>)> = policy
        .split(';')
        .filter_map(|directive| {
            let mut words = directive.split_ascii_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_ascii_lowercase).collect()))
        })
        .collect();
    let (name, sources) = ["style-src-elem", "style-src", "default-src"]
        .iter()
        .find_map(|rule| directives.iter().find(|(name, _)| name == rule))?;
    let ours = format!("'{NONCE_PLACEHOLDER_SOURCE}'");
    let nonce = sources.iter().any(|s| s.starts_with("'nonce-"));
    let hash = sources.iter().any(|s| {
        ["'sha256-", "'sha384-", "'sha512-"]
            .iter()
            .any(|p| s.starts_with(p))
    });
    let inline = sources.iter().any(|s| s == "'unsafe-inline'") && !nonce && !hash;
    let passes = sources.contains(&ours) || hash || inline;
    (!passes).then(|| name.clone())
}

/// The directives browsers read: CSP Level 3's, and those of the specifications that add to it (Mixed Content,
/// Upgrade Insecure Requests, Trusted Types, Fenced Frames), with the deprecated ones some browsers still honour.
const CSP_DIRECTIVES: &[&str] = &[
    "base-uri",
    "block-all-mixed-content",
    "child-src",
    "connect-src",
    "default-src",
    "fenced-frame-src",
    "font-src",
    "form-action",
    "frame-ancestors",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "navigate-to",
    "object-src",
    "plugin-types",
    "prefetch-src",
    "report-to",
    "report-uri",
    "require-sri-for",
    "require-trusted-types-for",
    "sandbox",
    "script-src",
    "script-src-attr",
    "script-src-elem",
    "style-src",
    "style-src-attr",
    "style-src-elem",
    "trusted-types",
    "upgrade-insecure-requests",
    "webrtc",
    "worker-src",
];

/// How a page is sent: streamed (default) or rendered whole before sending (`?render=whole`, the benchmark's
/// non-streaming baseline of the same code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stream,
    Whole,
}

/// The mode named by the `render` query parameter of `url` (`stream` when absent), or why it names none: a value
/// other than `stream` or `whole`, or the parameter given more than once (whatever its values: taking the first let
/// `?render=whole&render=sideways` pass though `sideways` alone is refused, as a repeated image parameter is).
/// Name and value are percent-decoded first, as any URL parser would read them (`?render=%77hole` is `whole`).
pub fn render_mode(url: &str) -> Result<Mode, &'static str> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let decoded = |part: &str| percent_decode_str(part).decode_utf8_lossy().into_owned();
    let mut values = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(key, _)| decoded(key) == "render")
        .map(|(_, value)| decoded(value));
    let value = values.next();
    if values.next().is_some() {
        return Err("parameter `render` is given more than once");
    }
    match value.as_deref() {
        None | Some("stream") => Ok(Mode::Stream),
        Some("whole") => Ok(Mode::Whole),
        Some(_) => Err("render must be stream or whole"),
    }
}

/// One place in a page's body, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A fragment fetched from KV or the origin.
    Fragment(String),
    /// The personalised block rendered at the edge.
    Offers,
}

/// How one fragment is fetched and what replaces it when it cannot be.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentSpec {
    /// Seconds a fragment fetched from the origin stays in KV.
    pub ttl_s: u64,
    /// Milliseconds the fragment may take before its fallback is written instead.
    pub budget_ms: u64,
    /// Markup written when the fragment fails or is late (operator-written).
    pub fallback: String,
}

impl FragmentSpec {
    pub fn fallback_html(&self) -> Html {
        Html::trusted(self.fallback.clone(), TrustedSource::ConfiguredFallback)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    page_type: String,
    title: String,
    slots: Vec<String>,
}

/// A page: its type (selects the bundle manifest), its title and its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSpec {
    pub page_type: String,
    pub title: String,
    pub slots: Vec<Slot>,
}

/// The `render` configuration section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// Base URL of the fragment origin; a fragment `name` is fetched from `{origin}/fragments/{name}`.
    pub origin: String,
    /// Locale used when neither preferences, `Accept-Language` nor the country decide one.
    pub default_locale: String,
    /// Name of the cookie holding an anonymous visitor's id (sticky variant, anonymous preferences).
    pub visitor_cookie: String,
    pub pages: BTreeMap<String, PageSpec>,
    pub fragments: BTreeMap<String, FragmentSpec>,
    /// `RENDER_ORIGIN_TIMEOUT_MS`: how long a fragment's origin fetch (headers and body) may take under
    /// `waitUntil` after the page stopped waiting for it.
    pub origin_timeout_ms: u32,
    /// `RENDER_MAX_FRAGMENT_BYTES`: the largest fragment body read from the origin (larger ones are refused, not
    /// written back), and the largest value read from `CONTENT_KV` (larger ones count as absent): at most 2 MiB,
    /// as every one is copied into pages.
    pub max_fragment_bytes: u32,
    /// `RENDER_CONTENT_BUDGET_MS`: how long each read before the headers (the session check, then the page's
    /// content from KV, read at once) may take; a late one counts as absent (anonymous visitor, default content), so
    /// a slow store delays the first byte by at most twice this.
    pub content_budget_ms: u32,
    /// `RENDER_CSP`: the page's `Content-Security-Policy` with `{nonce}` where the response's nonce goes; `None`
    /// (`off`) sends none.
    pub csp: Option<String>,
}

/// A name usable in a URL path segment, a KV key and a header: `[a-z0-9_-]{1,64}`.
pub fn is_token(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl RenderConfig {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let origin = crate::config::origin_url(
            "RENDER_ORIGIN",
            &vars.string_or("RENDER_ORIGIN", "http://127.0.0.1:8788")?,
        )?;
        let default_locale = vars.string_or("RENDER_DEFAULT_LOCALE", "en")?;
        if !super::personal::SUPPORTED_LOCALES.contains(&default_locale.as_str()) {
            return Err(ConfigError::new(
                "RENDER_DEFAULT_LOCALE",
                format!(
                    "must be one of {}",
                    super::personal::SUPPORTED_LOCALES.join(", ")
                ),
            ));
        }
        let visitor_cookie = vars.string_or("RENDER_VISITOR_COOKIE", "ek_vid")?;
        if !is_token(&visitor_cookie) {
            return Err(ConfigError::new(
                "RENDER_VISITOR_COOKIE",
                "must match [a-z0-9_-]{1,64}",
            ));
        }
        let origin_timeout_ms =
            // At most 25 s: the fetch and its write-back (at most 5 s) run on under waitUntil, which the runtime
            // ends 30 s after the page's answer.
            vars.u64_in("RENDER_ORIGIN_TIMEOUT_MS", 10_000, 100, 25_000)? as u32;
        let max_fragment_bytes = vars.u64_in(
            "RENDER_MAX_FRAGMENT_BYTES",
            256 * 1024,
            1024,
            2 * 1024 * 1024,
        )? as u32;
        let content_budget_ms = vars.u64_in("RENDER_CONTENT_BUDGET_MS", 1_000, 10, 10_000)? as u32;
        let csp = parse_csp(&vars.string_or("RENDER_CSP", DEFAULT_CSP)?)?;
        let fragments: BTreeMap<String, FragmentSpec> = vars
            .entries("RENDER_FRAGMENTS", "fragment")?
            .unwrap_or_default();
        for (name, spec) in &fragments {
            let problem = if !is_token(name) {
                Some("names must match [a-z0-9_-]{1,64}".to_owned())
            } else if spec.ttl_s < MIN_TTL_S {
                Some(format!("ttl_s must be at least {MIN_TTL_S} (KV's minimum)"))
            } else if spec.ttl_s > MAX_TTL_S {
                Some(format!("ttl_s must be at most {MAX_TTL_S} (KV's maximum)"))
            } else if !(1..=30_000).contains(&spec.budget_ms) {
                Some("budget_ms must be between 1 and 30000".to_owned())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::new(
                    "RENDER_FRAGMENTS",
                    format!("fragment {name:?}: {problem}"),
                ));
            }
        }
        let raw_pages: BTreeMap<String, RawPage> =
            vars.entries("RENDER_PAGES", "page")?.unwrap_or_default();
        let mut pages = BTreeMap::new();
        for (name, raw) in raw_pages {
            let bad = |problem: String| {
                ConfigError::new("RENDER_PAGES", format!("page {name:?}: {problem}"))
            };
            if !is_token(&name) || !is_token(&raw.page_type) {
                return Err(bad("name and page_type must match [a-z0-9_-]{1,64}".into()));
            }
            let slots = raw
                .slots
                .iter()
                .map(|slot| {
                    if slot == OFFERS_SLOT {
                        Ok(Slot::Offers)
                    } else if fragments.contains_key(slot) {
                        Ok(Slot::Fragment(slot.clone()))
                    } else {
                        Err(bad(format!(
                            "slot {slot:?} is neither {OFFERS_SLOT} nor a fragment in RENDER_FRAGMENTS"
                        )))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            pages.insert(
                name,
                PageSpec {
                    page_type: raw.page_type,
                    title: raw.title,
                    slots,
                },
            );
        }
        Ok(Self {
            origin,
            default_locale,
            visitor_cookie,
            pages,
            fragments,
            origin_timeout_ms,
            max_fragment_bytes,
            content_budget_ms,
            csp,
        })
    }

    /// The page at `/` (`None`) or `/p/{name}`; `/p/home` is none, the home page being `/` alone (one page at
    /// two addresses).
    pub fn page(&self, name: Option<&str>) -> Option<&PageSpec> {
        match name {
            None => self.pages.get(HOME_PAGE),
            Some(HOME_PAGE) => None,
            Some(name) => self.pages.get(name),
        }
    }

    /// Where a fragment is fetched from on a KV miss.
    pub fn fragment_url(&self, name: &str) -> String {
        format!("{}/fragments/{name}", self.origin)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};

    use super::*;

    fn parse(pairs: &[(&'static str, Value)]) -> Result<RenderConfig, ConfigError> {
        let source: HashMap<&str, Value> = pairs.iter().cloned().collect();
        RenderConfig::parse(&Vars::new(&source))
    }

    fn fragments() -> Value {
        json!({"header": {"ttl_s": 300, "budget_ms": 500, "fallback": "<header></header>"}})
    }

    #[test]
    fn a_page_lists_fragments_and_the_offers_slot_in_document_order() {
        let config = parse(&[
            ("RENDER_FRAGMENTS", fragments()),
            (
                "RENDER_PAGES",
                json!({"home": {"page_type": "home", "title": "Home", "slots": ["header", "@offers"]}}),
            ),
            ("RENDER_ORIGIN", json!("https://origin.example/")),
        ])
        .expect("valid");
        let home = config.page(None).expect("home is the default page");
        assert_eq!(
            home.slots,
            vec![Slot::Fragment("header".into()), Slot::Offers]
        );
        assert_eq!(
            config.fragment_url("header"),
            "https://origin.example/fragments/header",
            "trailing slash of the origin is dropped"
        );
        assert!(config.page(Some("nope")).is_none());
        // The home page is `/` alone: `/p/home` named it at a second address.
        assert!(config.page(Some(HOME_PAGE)).is_none(), "/p/home");
    }

    #[test]
    fn the_render_parameter_selects_the_mode() {
        const INVALID: &str = "render must be stream or whole";
        const REPEATED: &str = "parameter `render` is given more than once";
        let cases = [
            ("https://x/", Ok(Mode::Stream)),
            ("https://x/?a=1", Ok(Mode::Stream)),
            ("https://x/?render=stream", Ok(Mode::Stream)),
            ("https://x/?a=1&render=whole", Ok(Mode::Whole)),
            ("https://x/?render=whole#frag", Ok(Mode::Whole)),
            ("https://x/?render=sideways", Err(INVALID)),
            ("https://x/?render", Err(INVALID)),
            ("https://x/?render=%77hole", Ok(Mode::Whole)),
            ("https://x/?%72ender=whole", Ok(Mode::Whole)),
            ("https://x/?render=%73tream", Ok(Mode::Stream)),
            ("https://x/?render=%77hol", Err(INVALID)),
            ("https://x/?render=%ff", Err(INVALID)),
            // Given twice, the parameter names no mode, whichever its values (the first one used to win).
            ("https://x/?render=whole&render=sideways", Err(REPEATED)),
            ("https://x/?render=stream&render=whole", Err(REPEATED)),
            ("https://x/?render=whole&render=whole", Err(REPEATED)),
            ("https://x/?render=whole&%72ender=stream", Err(REPEATED)),
            ("https://x/?render=whole&a=1&a=2", Ok(Mode::Whole)),
        ];
        for (url, expected) in cases {
            assert_eq!(render_mode(url), expected, "{url}");
        }
    }

    #[test]
    fn invalid_entries_are_named() {
        type Case = (&'static str, Vec<(&'static str, Value)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "origin scheme",
                vec![("RENDER_ORIGIN", json!("ftp://x"))],
                "RENDER_ORIGIN",
            ),
            (
                "origin without a host",
                vec![("RENDER_ORIGIN", json!("https://"))],
                "RENDER_ORIGIN",
            ),
            (
                "origin with a space",
                vec![("RENDER_ORIGIN", json!("https://a b"))],
                "RENDER_ORIGIN",
            ),
            (
                "origin with a query",
                vec![("RENDER_ORIGIN", json!("https://x/?q=1"))],
                "RENDER_ORIGIN",
            ),
            (
                "origin timeout of 0",
                vec![("RENDER_ORIGIN_TIMEOUT_MS", json!(0))],
                "RENDER_ORIGIN_TIMEOUT_MS",
            ),
            (
                "content budget of 0",
                vec![("RENDER_CONTENT_BUDGET_MS", json!(0))],
                "RENDER_CONTENT_BUDGET_MS",
            ),
            (
                "content budget of a minute",
                vec![("RENDER_CONTENT_BUDGET_MS", json!(60_000))],
                "RENDER_CONTENT_BUDGET_MS",
            ),
            (
                "fragment cap of 1 byte",
                vec![("RENDER_MAX_FRAGMENT_BYTES", json!(1))],
                "RENDER_MAX_FRAGMENT_BYTES",
            ),
            (
                "unknown locale",
                vec![("RENDER_DEFAULT_LOCALE", json!("xx"))],
                "RENDER_DEFAULT_LOCALE",
            ),
            (
                "ttl under KV's minimum",
                vec![(
                    "RENDER_FRAGMENTS",
                    json!({"a": {"ttl_s": 10, "budget_ms": 5, "fallback": ""}}),
                )],
                "fragment \"a\"",
            ),
            (
                "bad fragment name",
                vec![(
                    "RENDER_FRAGMENTS",
                    json!({"A/b": {"ttl_s": 60, "budget_ms": 5, "fallback": ""}}),
                )],
                "fragment \"A/b\"",
            ),
            (
                "zero budget",
                vec![(
                    "RENDER_FRAGMENTS",
                    json!({"a": {"ttl_s": 60, "budget_ms": 0, "fallback": ""}}),
                )],
                "budget_ms",
            ),
            (
                "unknown slot",
                vec![
                    ("RENDER_FRAGMENTS", fragments()),
                    (
                        "RENDER_PAGES",
                        json!({"home": {"page_type": "home", "title": "", "slots": ["nav"]}}),
                    ),
                ],
                "page \"home\": slot \"nav\"",
            ),
        ];
        for (case, pairs, needle) in cases {
            let error = parse(&pairs).expect_err(case);
            assert!(error.to_string().contains(needle), "{case}: {error}");
        }
    }

    #[test]
    fn the_page_policy_is_a_header_value_with_braces_only_around_nonce() {
        let csp = |value: &str| parse(&[("RENDER_CSP", json!(value))]).map(|c| c.csp);
        assert_eq!(
            parse(&[]).expect("defaults").csp.as_deref(),
            Some(DEFAULT_CSP)
        );
        assert!(DEFAULT_CSP.contains("'nonce-{nonce}'"));
        assert_eq!(csp("off"), Ok(None));
        let own = "script-src 'nonce-{nonce}' 'strict-dynamic'; object-src 'none'";
        assert_eq!(csp(own), Ok(Some(own.to_owned())));
        for bad in [
            "script-src 'self'\r\nx-injected: 1",
            "style-src 'nonce-{other}'",
            "style-src 'nonce-{nonce'",
            "script-src https://exämple.com",
        ] {
            let error = csp(bad).expect_err(bad);
            assert_eq!(error.key, "RENDER_CSP", "{bad}");
        }
    }

    /// A browser ignores a directive it does not know (`scrpt-src`) and every repeat of one it has read: a typo or a
    /// second `script-src` went out as a policy weaker than written, with a console warning no operator sees.
    #[test]
    fn a_page_policy_naming_an_unknown_or_repeated_directive_is_refused() {
        let csp = |value: &str| parse(&[("RENDER_CSP", json!(value))]).map(|c| c.csp);
        let fine =
            "Default-Src 'self'; script-src-elem 'nonce-{nonce}'; style-src-elem 'nonce-{nonce}'; \
                    upgrade-insecure-requests; report-to csp; trusted-types default; \
                    require-trusted-types-for 'script';";
        assert_eq!(csp(fine), Ok(Some(fine.to_owned())));
        for (bad, says) in [
            (
                "scrpt-src 'self'; object-src 'none'",
                "unknown directive `scrpt-src`",
            ),
            ("script-src 'self'; SCRIPT-SRC 'none'", "`script-src` twice"),
            ("object-src 'none'; 'self'", "unknown directive `'self'`"),
        ] {
            let error = csp(bad).expect_err(bad);
            assert_eq!(error.key, "RENDER_CSP", "{bad}");
            assert!(error.problem.contains(says), "{bad}: {error}");
        }
    }

    /// The shell's critical CSS is an inline `<style nonce>`: a policy whose style rule (`style-src-elem`, else
    /// `style-src`, else `default-src`) can let no inline style through — neither the response's `'nonce-{nonce}'`, nor
    /// `'unsafe-inline'` (without a nonce or hash, which turn it off), nor a hash — blocked the page's own styles in
    /// every browser, said only in a console. `default-src 'self'`, a common first policy, was taken.
    #[test]
    fn a_page_policy_that_blocks_the_inline_critical_css_is_refused() {
        let csp = |value: &str| parse(&[("RENDER_CSP", json!(value))]).map(|c| c.csp);
        for fine in [
            "script-src 'self'",
            "default-src 'self'; style-src 'self' 'nonce-{nonce}'",
            "default-src 'self' 'NONCE-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            "default-src 'none'; style-src-elem 'unsafe-inline'",
            "style-src 'sha256-AAAA'",
            "style-src 'none'; style-src-elem 'nonce-{nonce}'",
        ] {
            assert_eq!(csp(fine), Ok(Some(fine.to_owned())), "{fine}");
        }
        for (bad, names) in [
            ("default-src 'self'", "default-src"),
            ("script-src 'self'; style-src 'self'", "style-src"),
            (
                "style-src 'nonce-{nonce}'; style-src-elem 'self'",
                "style-src-elem",
            ),
            ("style-src 'unsafe-inline' 'nonce-fixed'", "style-src"),
            ("default-src 'none'", "default-src"),
        ] {
            let error = csp(bad).expect_err(bad);
            assert_eq!(error.key, "RENDER_CSP", "{bad}");
            assert!(
                error.problem.contains(names) && error.problem.contains("critical CSS"),
                "{bad}: {error}"
            );
        }
    }

    /// An empty `RENDER_CSP`, or spaces alone, is unset (as every var): the default policy. One holding only
    /// separators passed as visible ASCII and went out as `Content-Security-Policy: ;`, a policy enforcing nothing,
    /// though the var did not say `off`.
    #[test]
    fn a_page_policy_naming_no_directive_is_refused() {
        for unset in ["", "   "] {
            let csp = parse(&[("RENDER_CSP", json!(unset))]).expect(unset).csp;
            assert_eq!(csp.as_deref(), Some(DEFAULT_CSP), "{unset:?}");
        }
        for blank in [";", " ; ", ";;", "; ;"] {
            let error = parse(&[("RENDER_CSP", json!(blank))])
                .map(|c| c.csp)
                .expect_err(blank);
            assert_eq!(error.key, "RENDER_CSP", "{blank:?}");
        }
    }

    /// workerd reads KV's `expirationTtl` as a 32-bit int: a longer TTL was taken at start and then refused on every
    /// write-back, so the fragment was never cached and every page asked the origin again.
    #[test]
    fn a_fragment_ttl_kv_cannot_take_is_refused_at_start() {
        let with_ttl = |ttl: u64| {
            vec![(
                "RENDER_FRAGMENTS",
                json!({"a": {"ttl_s": ttl, "budget_ms": 5, "fallback": ""}}),
            )]
        };
        parse(&with_ttl(2_147_483_647)).expect("KV's largest expirationTtl");
        for ttl in [2_147_483_648, 1_000_000_000_000, u64::MAX] {
            let error = parse(&with_ttl(ttl)).expect_err("over KV's largest");
            assert_eq!(error.key, "RENDER_FRAGMENTS", "{ttl}");
            assert!(
                error
                    .problem
                    .contains("fragment \"a\": ttl_s must be at most 2147483647"),
                "{ttl}: {error}"
            );
        }
    }
}
