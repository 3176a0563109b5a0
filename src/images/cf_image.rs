//! The `cf.image` options object for production resizing (Cloudflare Image Resizing through `fetch`), in the
//! documented field names: `width`, `height`, `fit`, `quality` (a number), `dpr`, `format`. We build this object
//! ourselves instead of using workers-rs 0.8.7's `ResizeConfig`, which serialises `quality` as `{"value":80}`
//! rather than `80` (see the test in `handler`); unset fields are left out entirely.

use serde::Serialize;

use super::negotiate::Negotiated;
use super::transform::Transform;

/// `cf.image`: only the fields a transform sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CfImage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    pub fit: &'static str,
    pub quality: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
}

impl CfImage {
    /// Options for a transform and its negotiated format (`Original` leaves `format` out: the source format stays).
    pub fn new(t: &Transform, format: Negotiated) -> Self {
        Self {
            width: t.width,
            height: t.height,
            fit: t.fit.as_str(),
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
            serde_json::from_str(&CfImage::new(&t, Negotiated::Avif).cf_json()).expect("json");
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
        let value = serde_json::to_value(CfImage::new(&t, Negotiated::Original)).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"width": 300, "fit": "cover", "quality": 80}),
            "unset fields are absent, not null"
        );
    }
}
