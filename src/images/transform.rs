//! One canonical transform from any of the three URL forms:
//! `/images/{w}x{h}/{path}`, `/images/{w}/{path}` and `/images/{path}?w=&h=&fit=&q=&dpr=&format=`
//! (plus `exp=&sig=` for signed URLs). Every number is checked against the configured [`Limits`]; an invalid,
//! zero, over-limit, duplicated or unknown parameter answers 400 naming it. [`Transform::canonical`] is the one
//! spelling used for signatures and cache keys, so equivalent URLs share both.

use percent_encoding::percent_decode_str;

use super::config::Limits;
use super::source::{self, SourcePath};
use crate::error::ApiError;

/// How width and height are applied (Cloudflare's `fit` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    ScaleDown,
    Contain,
    Cover,
    Crop,
    Pad,
}

impl Fit {
    pub const ALL: [Fit; 5] = [
        Fit::ScaleDown,
        Fit::Contain,
        Fit::Cover,
        Fit::Crop,
        Fit::Pad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fit::ScaleDown => "scale-down",
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Crop => "crop",
            Fit::Pad => "pad",
        }
    }
}

/// The output format a request asks for; `Auto` negotiates from `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    Auto,
    Avif,
    Webp,
    Jpeg,
    Png,
}

impl FormatChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            FormatChoice::Auto => "auto",
            FormatChoice::Avif => "avif",
            FormatChoice::Webp => "webp",
            FormatChoice::Jpeg => "jpeg",
            FormatChoice::Png => "png",
        }
    }
}

/// The canonical transform. `dpr` is kept in hundredths so it compares and prints exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub quality: u8,
    pub dpr_hundredths: u32,
    pub format: FormatChoice,
}

impl Transform {
    /// The one spelling of this transform, e.g. `w=300&h=200&fit=scale-down&q=85&dpr=1&format=auto`.
    pub fn canonical(&self) -> String {
        let side = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
        format!(
            "w={}&h={}&fit={}&q={}&dpr={}&format={}",
            side(self.width),
            side(self.height),
            self.fit.as_str(),
            self.quality,
            self.dpr(),
            self.format.as_str()
        )
    }

    /// `dpr` as a short decimal (`1`, `1.5`, `2.25`).
    pub fn dpr(&self) -> String {
        let whole = self.dpr_hundredths / 100;
        let frac = self.dpr_hundredths % 100;
        match frac {
            0 => whole.to_string(),
            f if f % 10 == 0 => format!("{whole}.{}", f / 10),
            f => format!("{whole}.{f:02}"),
        }
    }

    /// The fit the resizer is given: the one asked for when both sides are, else the one it equals there — with no
    /// side, every fit keeps the source's size (`scale-down`); with one, `crop` never enlarges either
    /// (`scale-down`) and `cover` and `pad` scale to it as `contain` does. The cache key names it, so spellings of
    /// one variant share its entry (the signature covers the fit as asked).
    pub fn effective_fit(&self) -> Fit {
        match (self.width, self.height) {
            (Some(_), Some(_)) => self.fit,
            (None, None) => Fit::ScaleDown,
            _ => match self.fit {
                Fit::ScaleDown | Fit::Crop => Fit::ScaleDown,
                Fit::Contain | Fit::Cover | Fit::Pad => Fit::Contain,
            },
        }
    }

    /// The image this transform makes, as the resizer is asked for it: its sides in device pixels at `dpr` 1 (a
    /// `dpr` multiplies the sides and does nothing else; with no side it changes nothing) and the
    /// [`Transform::effective_fit`]. `w=320&dpr=2` is `w=640`'s image, so it is `w=640`'s cache entry too.
    pub fn made(&self) -> Transform {
        Transform {
            width: self.width.map(|w| self.device(w)),
            height: self.height.map(|h| self.device(h)),
            fit: self.effective_fit(),
            dpr_hundredths: 100,
            ..*self
        }
    }

    /// The variant this transform makes, for its cache key: [`Transform::canonical`] of [`Transform::made`].
    pub fn variant(&self) -> String {
        self.made().canonical()
    }

    /// A side in device pixels (`css * dpr`, rounded).
    pub fn device(&self, css: u32) -> u32 {
        ((u64::from(css) * u64::from(self.dpr_hundredths) + 50) / 100) as u32
    }
}

#[cfg(test)]
impl Transform {
    /// A transform for tests: the given size, fit and dpr; quality 85, format auto.
    pub(crate) fn sized(
        width: Option<u32>,
        height: Option<u32>,
        fit: Fit,
        dpr_hundredths: u32,
    ) -> Self {
        Self {
            width,
            height,
            fit,
            quality: 85,
            dpr_hundredths,
            format: FormatChoice::Auto,
        }
    }
}

/// The signature parameters of a signed URL, as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureParams {
    pub sig: Option<String>,
    pub exp: Option<u64>,
}

/// A fully parsed image request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRequest {
    pub transform: Transform,
    pub source: SourcePath,
    pub signature: SignatureParams,
}

fn bad(param: &str, rule: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_parameter", format!("parameter `{param}` {rule}"))
}

/// Why a query or path value is no number [`whole_number`] takes.
enum NotWhole {
    /// Empty, or other than ASCII digits (a sign, a decimal point, a space).
    NoNumber,
    /// More significant digits than the caller takes.
    TooLong,
}

/// A whole number spelt in ASCII digits alone, its leading zeros aside (they add no digit, and a signature covers the
/// number, not its spelling), of at most `max_digits` (≤ 19) significant digits.
fn whole_number(value: &str, max_digits: usize) -> Result<u64, NotWhole> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotWhole::NoNumber);
    }
    let significant = value.trim_start_matches('0');
    if significant.len() > max_digits {
        return Err(NotWhole::TooLong);
    }
    Ok(significant.parse().unwrap_or(0))
}

/// A positive whole number (signs, decimals and spaces are refused). One of more digits than any side can have is
/// over the limit, not "no whole number": `/images/20240101/a.jpg` (a dated folder read as the size) was told its
/// `w` "must be a whole number of pixels". A number of up to 9 significant digits is returned for [`check_limits`]
/// to name with the dpr it is taken at; a longer one is refused here, naming the limit.
fn parse_side(param: &str, value: &str, max_side: u32) -> Result<u32, ApiError> {
    let n = whole_number(value, 9).map_err(|why| match why {
        NotWhole::NoNumber => bad(param, "must be a whole number of pixels"),
        NotWhole::TooLong => bad(
            param,
            format!("is over the limit: more than 999999999 px (max {max_side})"),
        ),
    })?;
    if n == 0 {
        return Err(bad(param, "must be at least 1"));
    }
    // At most 9 digits: below u32::MAX.
    Ok(n as u32)
}

/// A Unix time in seconds, leading zeros aside: at most 12 significant digits, past which it is refused as too late
/// rather than as no time — `exp=1700000000000` is one in milliseconds, and `exp=0001700000000` (13 digits, 10 of
/// them the time) was told it "must be a Unix time in seconds".
fn parse_exp(value: &str) -> Result<u64, ApiError> {
    whole_number(value, 12).map_err(|why| match why {
        NotWhole::NoNumber => bad("exp", "must be a Unix time in seconds"),
        NotWhole::TooLong => bad(
            "exp",
            "is later than any Unix time in seconds this takes (at most 12 digits; one in milliseconds has 13)",
        ),
    })
}

/// A ratio from 1 to 4 in hundredths. Zeros that are no digit of it — leading ones, trailing decimals — are aside, as
/// a side's leading zeros are: `dpr=02` and `dpr=1.500` (`toFixed(3)`) are 2 and 1.5 (they were told they "must be a
/// number from 1 to 4 with at most two decimals").
fn parse_dpr(value: &str) -> Result<u32, ApiError> {
    let rule = "must be a number from 1 to 4 with at most two decimals";
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) {
        return Err(bad("dpr", rule));
    }
    let (whole, frac) = (whole.trim_start_matches('0'), frac.trim_end_matches('0'));
    if whole.len() > 1 || frac.len() > 2 {
        return Err(bad("dpr", rule));
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    let frac_value = match frac.len() {
        0 => 0,
        1 => frac.parse::<u32>().map_err(|_| bad("dpr", rule))? * 10,
        _ => frac.parse::<u32>().map_err(|_| bad("dpr", rule))?,
    };
    let hundredths = whole.parse::<u32>().map_err(|_| bad("dpr", rule))? * 100 + frac_value;
    if !(100..=400).contains(&hundredths) {
        return Err(bad("dpr", rule));
    }
    Ok(hundredths)
}

/// `300x200` → (300, 200); `300` → (300, none); anything else is not a size segment.
fn size_segment(segment: &str) -> Option<(&str, Option<&str>)> {
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match segment.split_once('x') {
        Some((w, h)) if is_digits(w) && is_digits(h) => Some((w, Some(h))),
        None if is_digits(segment) => Some((segment, None)),
        _ => None,
    }
}

/// Parses the part of the path after `/images/` (still percent-encoded) and the query string. A first segment
/// shaped like a size (`300`, `300x200`) is the size — unless the query gives `w` or `h`: then it is the first
/// folder of the source path, so a source under a numbered folder (`2024/…`) is reached as `/images/2024/…?w=300`.
pub fn parse(rest: &str, query: Option<&str>, limits: &Limits) -> Result<ImageRequest, ApiError> {
    let sized_by_query = query.unwrap_or("").split('&').any(|pair| {
        let raw_name = pair.split_once('=').map_or(pair, |(name, _)| name);
        matches!(
            &*percent_decode_str(raw_name).decode_utf8_lossy(),
            "w" | "h"
        )
    });
    let (path_size, raw_source) = match rest.split_once('/') {
        Some((first, tail)) if !sized_by_query => match size_segment(first) {
            Some(size) => (Some(size), tail),
            None => (None, rest),
        },
        _ => (None, rest),
    };

    let mut width = None;
    let mut height = None;
    if let Some((w, h)) = path_size {
        width = Some(parse_side("w", w, limits.max_side)?);
        height = h.map(|h| parse_side("h", h, limits.max_side)).transpose()?;
    }
    let mut fit = None;
    let mut quality = None;
    let mut dpr = None;
    let mut format = None;
    let mut signature = SignatureParams::default();
    let mut seen: Vec<String> = Vec::new();

    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode_str(raw_name)
            .decode_utf8_lossy()
            .into_owned();
        let value = percent_decode_str(raw_value)
            .decode_utf8_lossy()
            .into_owned();
        if seen.contains(&name) {
            return Err(bad(&name, "is given more than once"));
        }
        seen.push(name.clone());
        match name.as_str() {
            "w" => width = Some(parse_side("w", &value, limits.max_side)?),
            "h" => height = Some(parse_side("h", &value, limits.max_side)?),
            "fit" => {
                fit = Some(
                    Fit::ALL
                        .into_iter()
                        .find(|f| f.as_str() == value)
                        .ok_or_else(|| {
                            bad(
                                "fit",
                                "must be one of scale-down, contain, cover, crop, pad",
                            )
                        })?,
                )
            }
            "q" => {
                let q = parse_side("q", &value, 100).map_err(|_| bad("q", "must be 1 to 100"))?;
                if q > 100 {
                    return Err(bad("q", "must be 1 to 100"));
                }
                quality = Some(q as u8);
            }
            "dpr" => dpr = Some(parse_dpr(&value)?),
            "format" => {
                format = Some(match value.as_str() {
                    "auto" => FormatChoice::Auto,
                    "avif" => FormatChoice::Avif,
                    "webp" => FormatChoice::Webp,
                    "jpeg" => FormatChoice::Jpeg,
                    "png" => FormatChoice::Png,
                    _ => return Err(bad("format", "must be one of auto, avif, webp, jpeg, png")),
                })
            }
            "sig" => signature.sig = Some(value),
            "exp" => signature.exp = Some(parse_exp(&value)?),
            _ => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!(
                        "parameter `{name}` is not known; use w, h, fit, q, dpr, format, exp, sig"
                    ),
                ))
            }
        }
    }

    let transform = Transform {
        width,
        height,
        fit: fit.unwrap_or(Fit::ScaleDown),
        quality: quality.unwrap_or(limits.default_quality),
        dpr_hundredths: dpr.unwrap_or(100),
        format: format.unwrap_or(FormatChoice::Auto),
    };
    check_limits(&transform, limits)?;

    let source = source::normalise(raw_source)?;
    if !source::allowed_by(&source, &limits.source_prefixes) {
        return Err(ApiError::forbidden(
            "source_not_allowed",
            "the source path is outside the allowed prefixes",
        ));
    }
    Ok(ImageRequest {
        transform,
        source,
        signature,
    })
}

fn check_limits(t: &Transform, limits: &Limits) -> Result<(), ApiError> {
    check_listed_sizes(t, &limits.allowed_widths, &limits.allowed_heights)?;
    // Each quality is another transform and cache entry of every size: `IMAGES_ALLOWED_QUALITIES` bounds them as the
    // sizes' lists bound sizes.
    let qualities = &limits.allowed_qualities;
    if !qualities.is_empty() && !qualities.contains(&t.quality) {
        let list: Vec<String> = qualities.iter().map(u8::to_string).collect();
        return Err(bad(
            "q",
            format!(
                "must be one of {} (IMAGES_ALLOWED_QUALITIES)",
                list.join(", ")
            ),
        ));
    }
    for (param, side) in [("w", t.width), ("h", t.height)] {
        if let Some(css) = side {
            if t.device(css) > limits.max_side {
                return Err(bad(
                    param,
                    format!(
                        "is over the limit: {} px at dpr {} (max {})",
                        css,
                        t.dpr(),
                        limits.max_side
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// With `IMAGES_ALLOWED_WIDTHS` set, the operator bounds how many variants of a source can exist (each one an origin
/// fetch, a transform and a cache entry): every size asked for — `w`, `h`, and each of them in device pixels (times
/// `dpr`) — must be listed (heights in `IMAGES_ALLOWED_HEIGHTS` when that is set, else in the widths' list), and a
/// `dpr` other than 1 needs a size to apply to (alone it changes nothing but the cache key). Without the list, any
/// size within `IMAGES_MAX_SIDE` goes.
fn check_listed_sizes(t: &Transform, widths: &[u32], heights: &[u32]) -> Result<(), ApiError> {
    if widths.is_empty() {
        return Ok(());
    }
    let (heights, heights_key) = if heights.is_empty() {
        (widths, "IMAGES_ALLOWED_WIDTHS")
    } else {
        (heights, "IMAGES_ALLOWED_HEIGHTS")
    };
    let sides = [
        ("w", t.width, widths, "IMAGES_ALLOWED_WIDTHS"),
        ("h", t.height, heights, heights_key),
    ];
    for (param, side, listed, key) in sides {
        let Some(css) = side else { continue };
        let list = || {
            listed
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !listed.contains(&css) {
            return Err(bad(param, format!("must be one of {} ({key})", list())));
        }
        let device = t.device(css);
        if !listed.contains(&device) {
            return Err(bad(
                "dpr",
                format!(
                    "makes {param} {device} device pixels, which must also be one of {} ({key})",
                    list()
                ),
            ));
        }
    }
    if t.width.is_none() && t.height.is_none() && t.dpr_hundredths != 100 {
        return Err(bad(
            "dpr",
            "needs w or h to apply to when IMAGES_ALLOWED_WIDTHS is set",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::open(2000)
    }

    fn ok(rest: &str, query: Option<&str>) -> ImageRequest {
        parse(rest, query, &limits()).unwrap_or_else(|e| panic!("{rest}?{query:?} refused: {e}"))
    }

    #[test]
    fn the_three_url_forms_parse_into_the_same_canonical_transform() {
        let cases = [
            ("300x200/photo.jpg", None),
            ("photo.jpg", Some("w=300&h=200")),
            ("photo.jpg", Some("h=200&w=300&fit=scale-down")),
            ("photo.jpg", Some("w=300&h=200&q=85&dpr=1&format=auto")),
            ("300x200/photo.jpg", Some("dpr=1.00")),
        ];
        for (rest, query) in cases {
            let request = ok(rest, query);
            assert_eq!(
                request.transform.canonical(),
                "w=300&h=200&fit=scale-down&q=85&dpr=1&format=auto",
                "{rest}?{query:?}"
            );
            assert_eq!(request.source.as_str(), "photo.jpg", "{rest}?{query:?}");
        }
    }

    #[test]
    fn width_only_forms_and_every_option_are_read() {
        let t = ok("640/photos/a.png", None).transform;
        assert_eq!((t.width, t.height), (Some(640), None));
        let t = ok("a.png", Some("w=100&fit=cover&q=50&dpr=2.5&format=webp")).transform;
        assert_eq!(
            t.canonical(),
            "w=100&h=-&fit=cover&q=50&dpr=2.5&format=webp"
        );
        assert_eq!(t.device(100), 250);
        let t = ok("a.png", None).transform;
        assert_eq!(
            t.canonical(),
            "w=-&h=-&fit=scale-down&q=85&dpr=1&format=auto"
        );
        let r = ok("a.png", Some("w=10&exp=1700000000&sig=abc"));
        assert_eq!(r.signature.exp, Some(1_700_000_000));
        assert_eq!(r.signature.sig.as_deref(), Some("abc"));
        // A first segment that is not a size belongs to the path.
        assert_eq!(ok("300px/a.png", None).source.as_str(), "300px/a.png");
        assert_eq!(ok("x300/a.png", None).source.as_str(), "x300/a.png");
        // With the size in the query, a numbered first folder is part of the path.
        let r = ok("1984/a.png", Some("w=300"));
        assert_eq!(
            (r.source.as_str(), r.transform.width),
            ("1984/a.png", Some(300))
        );
        let r = ok("300x200/a.png", Some("%68=100"));
        assert_eq!(
            (r.source.as_str(), r.transform.height),
            ("300x200/a.png", Some(100))
        );
        assert_eq!(
            ok("1984/a.png", None).source.as_str(),
            "a.png",
            "without one, it is the size"
        );
    }

    #[test]
    fn an_exp_of_many_digits_is_a_time_or_too_late_not_no_time() {
        // Leading zeros are not digits of the time: the signature covers the number (it was told it "must be a
        // Unix time in seconds").
        for spelt in ["0001700000000", "00000000000000001700000000"] {
            let r = ok("a.png", Some(&format!("exp={spelt}&sig=abc")));
            assert_eq!(r.signature.exp, Some(1_700_000_000), "{spelt}");
        }
        assert_eq!(ok("a.png", Some("exp=000")).signature.exp, Some(0));
        // Past 12 significant digits it is too late to be meant, named so (13 is a time in milliseconds).
        for long in ["1700000000000", "99999999999999999999999"] {
            let error = parse("a.png", Some(&format!("exp={long}")), &limits()).expect_err(long);
            assert_eq!(
                (error.status(), error.message()),
                (400, "parameter `exp` is later than any Unix time in seconds this takes (at most 12 digits; one in milliseconds has 13)"),
                "{long}"
            );
        }
        let error = parse("a.png", Some("exp=-1"), &limits()).expect_err("a sign");
        assert_eq!(
            error.message(),
            "parameter `exp` must be a Unix time in seconds"
        );
    }

    #[test]
    fn a_side_of_many_digits_is_over_the_limit_not_no_number() {
        // A dated folder read as the size, and sides past any limit: each a whole number, so the error says the
        // limit it is over (it said "must be a whole number of pixels").
        let cases = [
            (
                "20240101/a.jpg",
                None,
                "parameter `w` is over the limit: 20240101 px at dpr 1 (max 2000)",
            ),
            (
                "300x123456/a.jpg",
                None,
                "parameter `h` is over the limit: 123456 px at dpr 1 (max 2000)",
            ),
            (
                "a.jpg",
                Some("w=99999999999"),
                "parameter `w` is over the limit: more than 999999999 px (max 2000)",
            ),
            (
                "a.jpg",
                Some("h=000000000000000000004000"),
                "parameter `h` is over the limit: 4000 px at dpr 1 (max 2000)",
            ),
        ];
        for (rest, query, message) in cases {
            let error = parse(rest, query, &limits()).expect_err("over the limit");
            assert_eq!(
                (error.status(), error.message()),
                (400, message),
                "{rest}?{query:?}"
            );
        }
        // Leading zeros do not count: a side within the limit, however spelt, is that side.
        assert_eq!(
            ok("a.jpg", Some("w=000000000300")).transform.width,
            Some(300)
        );
        assert_eq!(ok("a.jpg", Some("q=0000000080")).transform.quality, 80);
        let zero = parse("a.jpg", Some("w=0000000000000"), &limits()).expect_err("zero");
        assert_eq!(zero.message(), "parameter `w` must be at least 1");
    }

    #[test]
    fn bad_parameters_answer_400_naming_the_parameter() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("0x200/a.jpg", None, "`w`"),
            ("300x0/a.jpg", None, "`h`"),
            ("0/a.jpg", None, "`w`"),
            ("a.jpg", Some("w=0"), "`w`"),
            ("a.jpg", Some("w=-5"), "`w`"),
            ("a.jpg", Some("w=1e3"), "`w`"),
            ("a.jpg", Some("w=12.5"), "`w`"),
            ("a.jpg", Some("w="), "`w`"),
            ("a.jpg", Some("w=99999999999"), "`w`"),
            ("a.jpg", Some("w=2001"), "`w`"),
            ("a.jpg", Some("h=5000"), "`h`"),
            ("a.jpg", Some("w=1500&dpr=2"), "`w`"),
            ("a.jpg", Some("w=1&w=2"), "`w`"),
            ("a.jpg", Some("fit=stretch"), "`fit`"),
            ("a.jpg", Some("q=0"), "`q`"),
            ("a.jpg", Some("q=101"), "`q`"),
            ("a.jpg", Some("q=high"), "`q`"),
            ("a.jpg", Some("dpr=0"), "`dpr`"),
            ("a.jpg", Some("dpr=5"), "`dpr`"),
            ("a.jpg", Some("dpr=1.234"), "`dpr`"),
            ("a.jpg", Some("dpr=NaN"), "`dpr`"),
            ("a.jpg", Some("dpr=00"), "`dpr`"),
            ("a.jpg", Some("dpr=0.5"), "`dpr`"),
            ("a.jpg", Some("dpr=.5"), "`dpr`"),
            ("a.jpg", Some("dpr=10"), "`dpr`"),
            ("a.jpg", Some("dpr=1.2340"), "`dpr`"),
            ("a.jpg", Some("format=gif"), "`format`"),
            ("a.jpg", Some("exp=soon"), "`exp`"),
            ("a.jpg", Some("width=300"), "`width`"),
            ("a.jpg", Some("blur=5"), "`blur`"),
        ];
        for (rest, query, named) in cases {
            let error = parse(rest, *query, &limits()).expect_err("must be refused");
            assert_eq!(error.status(), 400, "{rest}?{query:?}: {error}");
            assert!(error.message().contains(named), "{rest}?{query:?}: {error}");
        }
    }

    #[test]
    fn allowed_widths_and_prefixes_come_from_configuration() {
        let strict = Limits {
            allowed_widths: vec![320, 640],
            allowed_heights: vec![],
            source_prefixes: vec!["photos/".to_owned()],
            ..limits()
        };
        assert!(parse("photos/a.jpg", Some("w=320"), &strict).is_ok());
        let e = parse("photos/a.jpg", Some("w=321"), &strict).expect_err("width not allowed");
        assert!(e.message().contains("320, 640"), "{e}");
        // The list bounds every size a variant can have, so the variants of a source stay countable.
        for fine in [
            "w=320&dpr=2",
            "w=320&h=640",
            "320x320/",
            "",
            "q=50&format=webp",
        ] {
            let (rest, query) = match fine.strip_suffix('/') {
                Some(size) => (format!("{size}/photos/a.jpg"), None),
                None => ("photos/a.jpg".to_owned(), Some(fine)),
            };
            assert!(parse(&rest, query, &strict).is_ok(), "{fine}");
        }
        for (query, named) in [
            ("h=1500", "`h`"),
            ("w=320&h=321", "`h`"),
            ("w=320&dpr=3.33", "`dpr`"),
            ("w=640&dpr=2", "`dpr`"),
            ("h=320&dpr=1.5", "`dpr`"),
            ("dpr=2", "`dpr`"),
        ] {
            let e = parse("photos/a.jpg", Some(query), &strict).expect_err(query);
            assert_eq!(e.status(), 400, "{query}");
            assert!(e.message().contains(named), "{query}: {e}");
        }
        let e = parse("100x100/photos/a.jpg", None, &strict).expect_err("size path");
        assert!(e.message().contains("`w`"), "{e}");
        // Without a list, any size within the limit goes.
        assert!(parse("photos/a.jpg", Some("h=1500&dpr=1.33"), &limits()).is_ok());
        // Heights from their own list when one is given.
        let heights = Limits {
            allowed_heights: vec![180, 360],
            ..strict.clone()
        };
        assert!(parse("photos/a.jpg", Some("w=320&h=180"), &heights).is_ok());
        assert!(parse("photos/a.jpg", Some("w=320&h=180&dpr=2"), &heights).is_ok());
        assert!(parse("320x180/photos/a.jpg", None, &heights).is_ok());
        let e = parse("photos/a.jpg", Some("w=320&h=320"), &heights).expect_err("h from heights");
        assert!(
            e.message().contains("180, 360 (IMAGES_ALLOWED_HEIGHTS)"),
            "{e}"
        );
        let e = parse("private/a.jpg", Some("w=320"), &strict).expect_err("prefix");
        assert_eq!(e.status(), 403);
    }

    #[test]
    fn qualities_are_bounded_by_their_list_when_one_is_set() {
        let listed = Limits {
            allowed_qualities: vec![60, 85],
            ..limits()
        };
        for fine in ["q=60", "q=85", "q=060", ""] {
            let query = (!fine.is_empty()).then_some(fine);
            assert!(parse("a.jpg", query, &listed).is_ok(), "{fine}");
        }
        for query in ["q=61", "q=100", "w=300&q=1"] {
            let e = parse("a.jpg", Some(query), &listed).expect_err(query);
            assert_eq!(e.status(), 400, "{query}");
            assert!(
                e.message().contains("`q`")
                    && e.message().contains("60, 85 (IMAGES_ALLOWED_QUALITIES)"),
                "{query}: {e}"
            );
        }
        // Without a list, any quality goes.
        assert!(parse("a.jpg", Some("q=61"), &limits()).is_ok());
    }

    #[test]
    fn dpr_prints_canonically() {
        for (given, printed) in [
            ("1", "1"),
            ("1.0", "1"),
            ("1.5", "1.5"),
            ("1.50", "1.5"),
            ("2.25", "2.25"),
            ("4", "4"),
            // Zeros that add no digit are aside (they were refused).
            ("02", "2"),
            ("0001.5", "1.5"),
            ("1.500", "1.5"),
            ("2.2500000", "2.25"),
            ("3.", "3"),
        ] {
            let t = ok("a.jpg", Some(&format!("dpr={given}"))).transform;
            assert_eq!(t.dpr(), printed, "{given}");
        }
    }
}
