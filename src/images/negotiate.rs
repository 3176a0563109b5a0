//! Output format negotiation: an explicit `format=` wins; otherwise AVIF if `Accept` takes `image/avif`, then WebP
//! if it takes `image/webp`, else the source's own format. Wildcards (`image/*`, `*/*`) do not count as support for
//! the newer formats (every browser sends them); `q=0` means "not acceptable".

use super::transform::FormatChoice;

/// The format a variant is produced in, before the source is seen (`Original` = the source's format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    Avif,
    Webp,
    Jpeg,
    Png,
    Original,
}

impl Negotiated {
    pub fn as_str(self) -> &'static str {
        match self {
            Negotiated::Avif => "avif",
            Negotiated::Webp => "webp",
            Negotiated::Jpeg => "jpeg",
            Negotiated::Png => "png",
            Negotiated::Original => "original",
        }
    }

    /// The MIME type of the output, given the source's MIME type for `Original`.
    pub fn mime(self, source_mime: &str) -> &str {
        match self {
            Negotiated::Avif => "image/avif",
            Negotiated::Webp => "image/webp",
            Negotiated::Jpeg => "image/jpeg",
            Negotiated::Png => "image/png",
            Negotiated::Original => source_mime,
        }
    }
}

/// Whether `accept` lists `media` with a non-zero quality.
fn accepts(accept: &str, media: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let kind = parts.next().unwrap_or("");
        if !kind.eq_ignore_ascii_case(media) {
            return false;
        }
        // A q parameter (its name is case-insensitive, RFC 9110 §12.4.2) that is not a weight above 0 — 0, NaN or
        // not a number — refuses the type.
        !parts.any(|p| {
            p.split_once('=').is_some_and(|(name, q)| {
                name.trim().eq_ignore_ascii_case("q")
                    && !q.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
            })
        })
    })
}

/// The output format for a request's `format` choice and its `Accept` header.
pub fn negotiate(choice: FormatChoice, accept: Option<&str>) -> Negotiated {
    match choice {
        FormatChoice::Avif => Negotiated::Avif,
        FormatChoice::Webp => Negotiated::Webp,
        FormatChoice::Jpeg => Negotiated::Jpeg,
        FormatChoice::Png => Negotiated::Png,
        FormatChoice::Auto => {
            let accept = accept.unwrap_or("");
            if accepts(accept, "image/avif") {
                Negotiated::Avif
            } else if accepts(accept, "image/webp") {
                Negotiated::Webp
            } else {
                Negotiated::Original
            }
        }
    }
}

/// The image MIME types accepted as sources (anything else answers 415).
pub fn source_mime(content_type: &str) -> Option<&'static str> {
    let essence = crate::body::media_type(content_type);
    [
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/avif",
        "image/gif",
    ]
    .into_iter()
    .find(|m| *m == essence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_avif_then_webp_then_the_original() {
        let cases = [
            (
                Some("image/avif,image/webp,image/apng,image/*,*/*;q=0.8"),
                Negotiated::Avif,
            ),
            (Some("image/webp,*/*"), Negotiated::Webp),
            (Some("image/avif;q=0, image/webp"), Negotiated::Webp),
            (Some("IMAGE/AVIF"), Negotiated::Avif),
            (Some("image/*,*/*;q=0.8"), Negotiated::Original),
            (Some("image/jpeg"), Negotiated::Original),
            (Some("image/webp;q=0.0"), Negotiated::Original),
            (Some("image/avif;Q=0, image/webp"), Negotiated::Webp),
            (
                Some("image/avif; q=NaN, image/webp;q=0.5"),
                Negotiated::Webp,
            ),
            (Some(""), Negotiated::Original),
            (None, Negotiated::Original),
        ];
        for (accept, expected) in cases {
            assert_eq!(
                negotiate(FormatChoice::Auto, accept),
                expected,
                "{accept:?}"
            );
        }
    }

    #[test]
    fn an_explicit_format_ignores_accept() {
        assert_eq!(
            negotiate(FormatChoice::Png, Some("image/avif")),
            Negotiated::Png
        );
        assert_eq!(negotiate(FormatChoice::Webp, None), Negotiated::Webp);
    }

    #[test]
    fn only_image_types_are_sources() {
        assert_eq!(source_mime("image/jpeg"), Some("image/jpeg"));
        assert_eq!(source_mime("Image/PNG; charset=binary"), Some("image/png"));
        assert_eq!(source_mime("text/html"), None);
        assert_eq!(source_mime("image/svg+xml"), None);
        assert_eq!(source_mime(""), None);
    }
}
