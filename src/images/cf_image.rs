//! The `cf.image` options object for production resizing (Cloudflare Image Resizing through `fetch`), in the
//! documented field names: `width`, `height` (in device pixels: no `dpr`), `fit`, `quality` (a number), `format`. We build this object
//! ourselves instead of using workers-rs 0.8.7's `ResizeConfig`, which serialises `quality` as `{"value":80}`
//! rather than `80` (see the test in `handler`); unset fields are left out entirely.

use serde::Serialize;

use super::negotiate::Negotiated;
use super::transform::Transform;

/// `cf.image`: both sides (see [`CfImage::new`]), and only the other fields a transform sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CfImage {
    pub width: u32,
    pub height: u32,
    pub fit: &'static str,
    pub quality: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
}

impl CfImage {
    /// Options for a transform and its negotiated format (`Original` leaves `format` out: the source format stays).
    ///
    /// Cloudflare derives a side the transform leaves open from the source, which this Worker does not see; so a
    /// missing side is given as `max_side` (`IMAGES_MAX_SIDE`) device pixels, with a
    /// fit that keeps the one-side result whenever it is within that bound: `scale-down` (or `crop`, which with one
    /// side never enlarges either) becomes `scale-down`, `contain`/`cover`/`pad` (which with one side all scale to
    /// it) become `contain`, and no side at all is `scale-down` into the square bound. Same output as before for
    /// every source whose derived side fits; a very tall or wide one is scaled down to fit, as in binding mode.
    ///
    /// It is built from the image the cache key names ([`Transform::made`]): sides in device pixels and no `dpr`, so
    /// every URL sharing a key asks for the same image (`w=200&dpr=3` bounded its open side at 1365 CSS px, 4095
    /// device px, where `w=600`, its key, bounded it at 4096).
    pub fn new(t: &Transform, format: Negotiated, max_side: u32) -> Self {
        let made = t.made();
        Self {
            width: made.width.unwrap_or(max_side),
            height: made.height.unwrap_or(max_side),
            fit: made.fit.as_str(),
            quality: made.quality,
            format: match format {
                Negotiated::Original => None,
                other => Some(other.as_str()),
            },
        }
    }

    /// The JSON text of `{ "image": { ... } }`, the request's `cf` property.
    pub fn cf_json(&self) -> String {
        serde_json::json!({ "image": self }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::transform::{Fit, FormatChoice};

    #[test]
    fn the_options_use_the_documented_field_names_and_plain_values() {
        let t = Transform {
            width: Some(300),
            height: Some(200),
            fit: Fit::ScaleDown,
            quality: 80,
            dpr_hundredths: 200,
            format: FormatChoice::Auto,
        };
        let value: serde_json::Value =
            serde_json::from_str(&CfImage::new(&t, Negotiated::Avif, 4096).cf_json())
                .expect("json");
        assert_eq!(
            value,
            serde_json::json!({"image": {"width": 600, "height": 400, "fit": "scale-down", "quality": 80, "format": "avif"}}),
            "sides in device pixels: dpr 2 doubles them"
        );
        let t = Transform {
            height: None,
            dpr_hundredths: 100,
            fit: Fit::Cover,
            ..t
        };
        let value =
            serde_json::to_value(CfImage::new(&t, Negotiated::Original, 4096)).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"width": 300, "height": 4096, "fit": "contain", "quality": 80}),
            "unset fields are absent, not null"
        );
    }

    /// `cf.image` is built from the variant the cache key names (`Transform::made`), so every URL that shares a key
    /// asks Cloudflare for the same image: sides in device pixels, no `dpr` (a multiplier of them and nothing else).
    /// With `dpr` sent, `w=200&dpr=3` bounded its open side at 1365 CSS px (4095 device px) where `w=600` bounded it
    /// at 4096: one key, two images.
    #[test]
    fn urls_that_share_a_cache_key_ask_for_the_same_image() {
        let t = Transform::sized;
        let options = |t: &Transform| {
            serde_json::to_value(CfImage::new(t, Negotiated::Webp, 4096)).expect("json")
        };
        for (by_dpr, device) in [
            (
                t(Some(200), None, Fit::ScaleDown, 300),
                t(Some(600), None, Fit::ScaleDown, 100),
            ),
            (
                t(Some(300), Some(200), Fit::Cover, 150),
                t(Some(450), Some(300), Fit::Cover, 100),
            ),
            (
                t(None, None, Fit::ScaleDown, 300),
                t(None, None, Fit::ScaleDown, 100),
            ),
            (
                t(None, Some(333), Fit::Pad, 150),
                t(None, Some(500), Fit::Contain, 100),
            ),
        ] {
            assert_eq!(by_dpr.variant(), device.variant(), "one key");
            assert_eq!(options(&by_dpr), options(&device), "{by_dpr:?}: one image");
            assert!(options(&by_dpr).get("dpr").is_none(), "no dpr: {by_dpr:?}");
        }
        assert_eq!(
            options(&t(Some(200), None, Fit::ScaleDown, 300)),
            serde_json::json!({"width": 600, "height": 4096, "fit": "scale-down", "quality": 85, "format": "webp"})
        );
    }

    #[test]
    fn a_side_left_open_is_bounded_by_the_side_limit_in_device_pixels() {
        let t = Transform::sized;
        let sized = |t: &Transform| {
            let o = CfImage::new(t, Negotiated::Original, 2000);
            (o.width, o.height, o.fit)
        };
        assert_eq!(
            sized(&t(Some(200), None, Fit::ScaleDown, 100)),
            (200, 2000, "scale-down")
        );
        assert_eq!(
            sized(&t(None, Some(300), Fit::Crop, 100)),
            (2000, 300, "scale-down"),
            "crop with one side never enlarges: scale-down into the box"
        );
        for fit in [Fit::Contain, Fit::Cover, Fit::Pad] {
            assert_eq!(
                sized(&t(Some(200), None, fit, 200)),
                (400, 2000, "contain"),
                "{fit:?} at dpr 2: in device pixels"
            );
        }
        assert_eq!(
            sized(&t(None, None, Fit::Cover, 150)),
            (2000, 2000, "scale-down"),
            "no side: the source, scaled down only if it is larger"
        );
        assert_eq!(
            sized(&t(Some(300), Some(200), Fit::Pad, 100)),
            (300, 200, "pad"),
            "both sides asked for: as asked"
        );
    }
}
