//! Output dimensions for a transform and a source size, following Cloudflare's `fit` rules. The Images binding is
//! given these exact dimensions (with `fit`), which makes local results match production even though Miniflare's
//! sharp-backed binding always resizes with sharp's own `contain` and ignores `fit`.

use super::transform::{Fit, Transform};

/// (width, height) in device pixels of the variant of a `source_w`×`source_h` image.
pub fn output_size(t: &Transform, source_w: u32, source_h: u32) -> (u32, u32) {
    let (sw, sh) = (f64::from(source_w.max(1)), f64::from(source_h.max(1)));
    let w = t.width.map(|w| f64::from(t.device(w)));
    let h = t.height.map(|h| f64::from(t.device(h)));
    let scaled = |s: f64| (px(sw * s), px(sh * s));
    match (w, h) {
        (None, None) => (source_w, source_h),
        (Some(w), None) => match t.fit {
            Fit::ScaleDown | Fit::Crop => scaled((w / sw).min(1.0)),
            _ => scaled(w / sw),
        },
        (None, Some(h)) => match t.fit {
            Fit::ScaleDown | Fit::Crop => scaled((h / sh).min(1.0)),
            _ => scaled(h / sh),
        },
        (Some(w), Some(h)) => match t.fit {
            Fit::ScaleDown => scaled((w / sw).min(h / sh).min(1.0)),
            Fit::Contain => scaled((w / sw).min(h / sh)),
            Fit::Cover | Fit::Pad => (px(w), px(h)),
            Fit::Crop => (px(w.min(sw)), px(h.min(sh))),
        },
    }
}

/// `(w, h)` scaled down, keeping its aspect ratio, so neither side exceeds `max_side` (`IMAGES_MAX_SIDE`): a size
/// derived from the source — one side asked for on a very tall or wide source, or none at all — is bounded like a
/// size asked for.
pub fn within(size: (u32, u32), max_side: u32) -> (u32, u32) {
    let (w, h) = size;
    let longest = w.max(h);
    if longest <= max_side {
        return size;
    }
    let s = f64::from(max_side) / f64::from(longest);
    (
        px(f64::from(w) * s).min(max_side),
        px(f64::from(h) * s).min(max_side),
    )
}

/// Cloudflare's limit on the area of a source it transforms (Images, "Limits and formats", remote images): 100
/// megapixels.
pub const MAX_SOURCE_PIXELS: u64 = 100_000_000;

/// Whether an original of `source_w`×`source_h` px (as its header declares) may be served in its variant's place:
/// at most the area Cloudflare decodes itself to make a variant. Past it, a few hundred bytes of PNG can declare
/// 50,000 × 50,000 px (a decompression bomb for whoever decodes it). A long side alone is no bomb: a phone's
/// panorama (16,000 × 3,700 px) or a page-long screenshot (1,440 × 14,000 px) is an honest image whose variant
/// Cloudflare may refuse to make (its 12,000 px a side, which does not even apply to WebP), and its original is
/// served as any failed transform's is.
pub fn servable_original(source_w: u32, source_h: u32) -> bool {
    u64::from(source_w) * u64::from(source_h) <= MAX_SOURCE_PIXELS
}

fn px(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_sizes_stay_within_the_side_limit() {
        assert_eq!(
            within((2000, 200_000), 4096),
            (41, 4096),
            "a tall banner asked 2000 wide"
        );
        assert_eq!(
            within((10_000, 5_000), 4096),
            (4096, 2048),
            "an untouched large source"
        );
        assert_eq!(
            within((4096, 100), 4096),
            (4096, 100),
            "at the limit: unchanged"
        );
        assert_eq!(
            within((1, 100_000), 4096),
            (1, 4096),
            "never below one pixel"
        );
    }

    #[test]
    fn only_originals_past_cloudflares_area_limit_are_not_served() {
        for (w, h, servable, why) in [
            (10_000, 10_000, true, "exactly 100 megapixels"),
            (10_001, 10_000, false, "over 100 megapixels"),
            (
                16_128,
                3_760,
                true,
                "a phone's panorama: a long side, 61 megapixels",
            ),
            (1_440, 14_000, true, "a page-long screenshot"),
            (16_383, 16_383, false, "WebP's largest, 268 megapixels"),
            (100_000_000, 1, true, "100 megapixels in one row"),
            (50_000, 50_000, false, "a decompression bomb's header"),
            (u32::MAX, u32::MAX, false, "no overflow"),
            (1, 1, true, "one pixel"),
            (0, 0, true, "no pixels (a JPEG whose height comes later)"),
        ] {
            assert_eq!(servable_original(w, h), servable, "{w}x{h}: {why}");
        }
    }

    /// Binding mode sizes a variant from the transform asked for; its cache key names `Transform::made` (device
    /// pixels, the effective fit): both must give one size, or a key would hold two images.
    #[test]
    fn the_transform_a_cache_key_names_gives_the_size_asked_for() {
        for fit in Fit::ALL {
            for dpr in [100, 133, 150, 200, 317, 400] {
                for (w, h) in [
                    (Some(333), None),
                    (None, Some(97)),
                    (None, None),
                    (Some(251), Some(77)),
                ] {
                    let asked = Transform::sized(w, h, fit, dpr);
                    for (sw, sh) in [(800, 600), (90, 4000), (5000, 12)] {
                        assert_eq!(
                            output_size(&asked, sw, sh),
                            output_size(&asked.made(), sw, sh),
                            "{asked:?} of {sw}x{sh}"
                        );
                    }
                }
            }
        }
    }

    fn t(width: Option<u32>, height: Option<u32>, fit: Fit, dpr_hundredths: u32) -> Transform {
        Transform::sized(width, height, fit, dpr_hundredths)
    }

    #[test]
    fn each_fit_gives_cloudflares_dimensions_for_an_800_by_600_source() {
        let cases = [
            (
                t(Some(300), Some(200), Fit::ScaleDown, 100),
                (267, 200),
                "scale-down fits inside",
            ),
            (
                t(Some(300), Some(200), Fit::Contain, 100),
                (267, 200),
                "contain fits inside",
            ),
            (
                t(Some(300), Some(200), Fit::Cover, 100),
                (300, 200),
                "cover fills",
            ),
            (
                t(Some(300), Some(200), Fit::Crop, 100),
                (300, 200),
                "crop fills when smaller",
            ),
            (
                t(Some(300), Some(200), Fit::Pad, 100),
                (300, 200),
                "pad fills",
            ),
            (
                t(Some(1600), Some(1000), Fit::ScaleDown, 100),
                (800, 600),
                "scale-down never enlarges",
            ),
            (
                t(Some(1600), Some(1000), Fit::Contain, 100),
                (1333, 1000),
                "contain enlarges",
            ),
            (
                t(Some(1000), Some(400), Fit::Crop, 100),
                (800, 400),
                "crop never enlarges",
            ),
            (
                t(Some(400), None, Fit::ScaleDown, 100),
                (400, 300),
                "width only",
            ),
            (
                t(None, Some(150), Fit::Cover, 100),
                (200, 150),
                "height only",
            ),
            (
                t(Some(2000), None, Fit::ScaleDown, 100),
                (800, 600),
                "width only, no enlarging",
            ),
            (
                t(Some(2000), None, Fit::Contain, 100),
                (2000, 1500),
                "width only, contain enlarges",
            ),
            (
                t(Some(200), None, Fit::ScaleDown, 200),
                (400, 300),
                "dpr multiplies",
            ),
            (
                t(None, None, Fit::Cover, 100),
                (800, 600),
                "no size keeps the source size",
            ),
        ];
        for (transform, expected, why) in cases {
            assert_eq!(output_size(&transform, 800, 600), expected, "{why}");
        }
    }
}
