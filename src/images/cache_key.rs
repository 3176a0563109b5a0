//! The Cache API key of a variant: the settings it was made under (`ImagesConfig::variant_scope`), the source path,
//! the canonical transform of the image made (`Transform::made`: its fit as the resizer is given it, its sides in device pixels) and the negotiated format, as a URL on a reserved host. Equivalent request URLs (`?w=300&h=200` and `/300x200/`, `?w=300&fit=cover` and `?w=300&fit=contain`, `?w=300&dpr=2` and `?w=600`) therefore share one entry, and the
//! `Accept` header only matters through the format it negotiated (so the entry itself never needs `Vary`).

use super::negotiate::Negotiated;
use super::transform::ImageRequest;

/// The keys' version, raised when what a key's entry holds changes, so an older build's entries are not served as
/// this one's: v2, `out=original` of a WebP or AVIF source is a JPEG or PNG; v3, every entry carries its `ETag`; v4,
/// `out=original` is the format the source's bytes are, not the one its label names.
const VERSION: &str = "v4";

/// Host of every cache key; `.invalid` is reserved, so a key can never be a real URL.
pub const CACHE_HOST: &str = "images.edgekit.invalid";

pub fn cache_key(scope: &str, request: &ImageRequest, format: Negotiated) -> String {
    format!(
        "https://{CACHE_HOST}/{VERSION}/{scope}/{}?{}&out={}",
        request.source.as_str(),
        request.transform.variant(),
        format.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::config::Limits;
    use crate::images::transform::parse;

    #[test]
    fn equivalent_urls_share_a_key_and_formats_do_not() {
        let limits = Limits::open(4096);
        let a = parse("300x200/p.jpg", None, &limits).expect("path form");
        let b = parse("p.jpg", Some("h=200&w=300"), &limits).expect("query form");
        let signed = parse("p.jpg", Some("h=200&w=300&exp=9&sig=ab"), &limits).expect("signed");
        assert_eq!(
            cache_key("s", &a, Negotiated::Webp),
            cache_key("s", &b, Negotiated::Webp)
        );
        assert_eq!(
            cache_key("s", &a, Negotiated::Webp),
            cache_key("s", &signed, Negotiated::Webp)
        );
        assert_ne!(
            cache_key("s", &a, Negotiated::Webp),
            cache_key("s", &a, Negotiated::Avif)
        );
        assert_eq!(
            cache_key("s", &a, Negotiated::Original),
            "https://images.edgekit.invalid/v4/s/p.jpg?w=300&h=200&fit=scale-down&q=85&dpr=1&format=auto&out=original"
        );
        assert_ne!(
            cache_key("s", &a, Negotiated::Webp),
            cache_key("t", &a, Negotiated::Webp),
            "settings the variant depends on separate keys"
        );
    }

    /// A `dpr` is a multiplier of the sides and nothing else (Cloudflare's `cf.image.dpr`; binding mode multiplies
    /// it in itself): `w=320&dpr=2` is the image `w=640` is, and a `dpr` with no side changes nothing. Each spelling
    /// was an entry, a source fetch and a transform of its own — two of every srcset size allowed by
    /// `IMAGES_ALLOWED_WIDTHS = [320, 640]`, and 301 of the full-size image (`?dpr=1.01` … `?dpr=4`) without it.
    #[test]
    fn a_dpr_shares_the_key_of_the_device_pixels_it_makes() {
        let limits = Limits::open(4096);
        let key = |rest: &str, query: &str| {
            let request = parse(rest, Some(query), &limits).expect(query);
            cache_key("s", &request, Negotiated::Webp)
        };
        for (by_dpr, device, why) in [
            (("p.jpg", "w=320&dpr=2"), ("p.jpg", "w=640"), "width"),
            (("p.jpg", "h=100&dpr=1.5"), ("p.jpg", "h=150"), "height"),
            (
                ("300x200/p.jpg", "dpr=2"),
                ("600x400/p.jpg", ""),
                "size segment",
            ),
            (
                ("p.jpg", "w=333&dpr=1.5&fit=cover"),
                ("p.jpg", "w=500&fit=contain"),
                "rounded, one side",
            ),
            (
                ("p.jpg", "dpr=2"),
                ("p.jpg", ""),
                "no side: dpr changes nothing",
            ),
            (
                ("p.jpg", "dpr=3.17&fit=pad"),
                ("p.jpg", ""),
                "no side, any fit",
            ),
        ] {
            assert_eq!(key(by_dpr.0, by_dpr.1), key(device.0, device.1), "{why}");
        }
        assert_ne!(
            key("p.jpg", "w=320&dpr=2"),
            key("p.jpg", "w=320"),
            "other pixels"
        );
    }

    /// A `fit` that cannot change the variant — any, with no side asked for; `crop` beside `scale-down`, and `cover`
    /// or `pad` beside `contain`, with one side — is no variant of its own: each spelling was a cache entry (and a
    /// transform) of the same image, so an allow-listed source had five where it has one or two.
    #[test]
    fn a_fit_that_changes_nothing_shares_the_key_of_the_fit_it_equals() {
        let limits = Limits {
            max_side: 4096,
            allowed_widths: vec![320],
            allowed_heights: vec![],
            allowed_qualities: vec![],
            source_prefixes: vec![],
            default_quality: 85,
        };
        let key = |query: &str| {
            let request = parse("p.jpg", Some(query), &limits).expect(query);
            cache_key("s", &request, Negotiated::Webp)
        };
        for fit in ["contain", "cover", "crop", "pad"] {
            assert_eq!(key(&format!("fit={fit}")), key(""), "no side: {fit}");
        }
        assert_eq!(key("w=320&fit=crop"), key("w=320"), "one side: crop");
        for fit in ["cover", "pad"] {
            assert_eq!(
                key(&format!("h=320&fit={fit}")),
                key("h=320&fit=contain"),
                "one side: {fit}"
            );
        }
        assert_ne!(
            key("w=320&fit=contain"),
            key("w=320"),
            "contain may enlarge"
        );
        assert_ne!(
            key("w=320&h=320&fit=cover"),
            key("w=320&h=320&fit=pad"),
            "both sides: as asked"
        );
    }
}
