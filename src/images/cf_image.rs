//! The `cf.image` options object for production resizing (Cloudflare Image Resizing through `fetch`), in the
//! documented field names: `width`, `height`, `fit`, `quality` (a number), `dpr`, `format`. We build this object
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
    pub dpr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
}

impl CfImage {
    /// Options for a transform and its negotiated format (`Original` leaves `format` out: the source format stays).
    ///
    /// Cloudflare derives a side the transform leaves open from the source, which this Worker does not see; so a
    /// missing side is given as the largest CSS size within `max_side` (`IMAGES_MAX_SIDE`) device pixels, with a
    /// fit that keeps the one-side result whenever it is within that bound: `scale-down` (or `crop`, which with one
    /// side never enlarges either) becomes `scale-down`, `contain`/`cover`/`pad` (which with one side all scale to
    /// it) become `contain`, and no side at all is `scale-down` into the square bound. Same output as before for
    /// every source whose derived side fits; a very tall or wide one is scaled down to fit, as in binding mode.
    pub fn new(t: &Transform, format: Negotiated, max_side: u32) -> Self {
        let bound = (u64::from(max_side) * 100 / u64::from(t.dpr_hundredths.max(1))).max(1) as u32;
        let (width, height, fit) = (
            t.width.unwrap_or(bound),
            t.height.unwrap_or(bound),
            t.effective_fit(),
        );
        Self {
            width,
            height,
            fit: fit.as_str(),
            quality: t.quality,
            dpr: (t.dpr_hundredths != 100).then(|| f64::from(t.dpr_hundredths) / 100.0),
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
            serde_json::json!({"image": {"width": 300, "height": 200, "fit": "scale-down", "quality": 80, "dpr": 2.0, "format": "avif"}})
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

    #[test]
    fn a_side_left_open_is_bounded_by_the_side_limit_in_css_pixels() {
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
                (200, 1000, "contain"),
                "{fit:?} at dpr 2: 1000 CSS px are 2000 device px"
            );
        }
        assert_eq!(
            sized(&t(None, None, Fit::Cover, 150)),
            (1333, 1333, "scale-down"),
            "no side: the source, scaled down only if it is larger"
        );
        assert_eq!(
            sized(&t(Some(300), Some(200), Fit::Pad, 100)),
            (300, 200, "pad"),
            "both sides asked for: as asked"
        );
    }
}
