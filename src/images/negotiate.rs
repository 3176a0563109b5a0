//! Output format negotiation: an explicit `format=` wins; otherwise AVIF or WebP, whichever `Accept` weighs higher
//! (AVIF on a tie, so every browser that lists both gets AVIF), else the source's own format — unless that is WebP or
//! AVIF, which such a client may not show: then JPEG, or PNG when the source may have alpha ([`displayable`]).
//! Wildcards (`image/*`, `*/*`) do not count as support for the newer formats (every browser sends them); `q=0` means
//! "not acceptable".

use super::transform::FormatChoice;
use crate::field_list::split_unquoted;

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

/// The weight `accept` gives `media` when it lists it by name, in thousandths: its highest `q` (1000 when none is
/// given); 0 when it is not listed, or only with a `q` that is 0 or not a qvalue ([`qvalue`]: `inf`, `NaN`, `1e0`,
/// `0.0001`, `1.0000`, `5` refuse the type). Members and parameters are read as RFC 9110 lists (§5.6.1, §5.6.6),
/// split only outside quoted strings: a `,` or `;` in a quoted parameter value (`image/avif;x="a,b";q=0`) ends neither
/// the member nor the parameter.
fn weight(accept: &str, media: &str) -> u16 {
    split_unquoted(accept, b',')
        .into_iter()
        .filter_map(|item| {
            let parameters = split_unquoted(item, b';');
            let mut parts = parameters.into_iter().map(str::trim);
            if !parts.next().unwrap_or("").eq_ignore_ascii_case(media) {
                return None;
            }
            // The q parameter's name is case-insensitive (RFC 9110 §12.4.2).
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1000), |(_, q)| qvalue(q.trim()));
            Some(q.unwrap_or(0))
        })
        .fold(0, u16::max)
}

/// An RFC 9110 §12.4.2 qvalue in thousandths: `0` with at most three decimals, or `1` with at most three zeros after
/// its point — `None` for anything else (a float's `inf`, `NaN`, `1e0`, `+1`, `.5`, a fourth decimal, above 1).
fn qvalue(q: &str) -> Option<u16> {
    let (whole, decimals) = q.split_once('.').unwrap_or((q, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|d| d.is_ascii_digit()) {
        return None;
    }
    let thousandths = decimals
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
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
            let (avif, webp) = (weight(accept, "image/avif"), weight(accept, "image/webp"));
            if avif > 0 && avif >= webp {
                Negotiated::Avif
            } else if webp > 0 {
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
    match essence.as_str() {
        // Common mislabels of JPEGs (uploaders, buckets, old IE's progressive JPEG) and of PNGs.
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Some("image/jpeg"),
        // An animated PNG is a PNG: `image/apng` (IANA, 2022), as web servers label `.apng`, and Mozilla's older type.
        "image/png" | "image/x-png" | "image/apng" | "image/vnd.mozilla.apng" => Some("image/png"),
        "image/webp" => Some("image/webp"),
        "image/avif" => Some("image/avif"),
        "image/gif" => Some("image/gif"),
        _ => None,
    }
}

/// How many leading bytes of a WebP or AVIF [`displayable`] reads: a WebP's header is in its first 30, an AVIF's
/// `meta` box (which names an alpha plane) comes before its pixel data and is a few hundred bytes.
pub const HEADER_BYTES: usize = 4096;

/// The format a WebP or AVIF is given to a client whose `Accept` takes neither (`format=auto` negotiated
/// [`Negotiated::Original`], so sending it as it is would be an image the client cannot show): JPEG when its header
/// shows it has no alpha channel, PNG when it has one or the header does not say (JPEG has no transparency: a logo
/// would get a solid box behind it). `None` for the other sources, which every client shows as they are.
pub fn displayable(source_mime: &str, head: &[u8]) -> Option<Negotiated> {
    let alpha = match source_mime {
        "image/webp" => webp_alpha(head),
        "image/avif" => avif_alpha(head),
        _ => return None,
    };
    Some(if alpha {
        Negotiated::Png
    } else {
        Negotiated::Jpeg
    })
}

/// Whether a WebP may have alpha: its first chunk says (`VP8 ` never; `VP8L` in its header's `alpha_is_used` bit;
/// `VP8X` in its flags' alpha bit). Anything else may.
fn webp_alpha(head: &[u8]) -> bool {
    if !head.starts_with(b"RIFF") || head.get(8..12) != Some(b"WEBP") {
        return true;
    }
    match head.get(12..16) {
        Some(b"VP8 ") => false,
        // The 0x2f signature at 20, then 14 bits width - 1, 14 bits height - 1, alpha_is_used (little-endian).
        Some(b"VP8L") => head
            .get(21..25)
            .is_none_or(|b| (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 28) & 1 == 1),
        Some(b"VP8X") => head.get(20).is_none_or(|flags| flags & 0x10 != 0),
        _ => true,
    }
}

/// Whether an AVIF may have alpha: its top-level `meta` box, read whole within `head`, names an alpha auxiliary image
/// (AV1's or HEVC's URN). A `meta` box not found or not whole in `head` may.
fn avif_alpha(head: &[u8]) -> bool {
    const ALPHA: [&[u8]; 2] = [
        b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha",
        b"urn:mpeg:hevc:2015:auxid:1",
    ];
    let mut at = 0usize;
    while let Some(header) = head.get(at..at.saturating_add(8)) {
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if size < 8 {
            return true; // 0 (to the end of the file) or 1 (a 64-bit size): not walked
        }
        if &header[4..8] == b"meta" {
            return head.get(at..at.saturating_add(size)).is_none_or(|meta| {
                ALPHA
                    .iter()
                    .any(|urn| memchr::memmem::find(meta, urn).is_some())
            });
        }
        at = at.saturating_add(size);
    }
    true
}

/// How many leading bytes [`sniffed_mime`] reads: an AVIF's `ftyp` box, with its compatible brands, fits.
pub const SIGNATURE_BYTES: usize = 64;

/// The image type the first bytes of a body show (its file signature), of the types a source may have: what an
/// original is served as when no variant could be made, so a body that only claims to be an image (an error page
/// labelled `image/png`, an empty body) is not passed on as one.
pub fn sniffed_mime(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if avif_brands(head) {
        Some("image/avif")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

/// Whether `head` opens with an ISO-BMFF `ftyp` box naming an AVIF brand (`avif`, `avis`) as its major brand or
/// among its compatible ones (a `mif1` file listing `avif` is one).
fn avif_brands(head: &[u8]) -> bool {
    if head.get(4..8) != Some(b"ftyp") {
        return false;
    }
    let size = head
        .get(0..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let end = size.min(head.len());
    if end < 16 {
        return false; // not even the major brand and minor version fit in the box
    }
    // The major brand at 8, the minor version at 12, compatible brands from 16 to the box's end.
    std::iter::once(8)
        .chain((16..end).step_by(4))
        .filter_map(|at| head.get(at..(at + 4).min(end)))
        .any(|brand| brand == b"avif" || brand == b"avis")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mislabelled_jpegs_and_pngs_are_read_as_what_they_are() {
        for (given, read) in [
            ("image/jpg", Some("image/jpeg")),
            ("Image/PJPEG; charset=binary", Some("image/jpeg")),
            ("image/x-png", Some("image/png")),
            ("image/apng", Some("image/png")),
            ("Image/Vnd.Mozilla.APNG", Some("image/png")),
            ("image/avif", Some("image/avif")),
            ("image/svg+xml", None),
            ("text/html", None),
            ("", None),
        ] {
            assert_eq!(source_mime(given), read, "{given}");
        }
    }

    #[test]
    fn an_original_is_known_by_its_first_bytes() {
        let cases: [(&[u8], Option<&str>); 12] = [
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], Some("image/jpeg")),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some("image/png")),
            (b"RIFF\x10\0\0\0WEBPVP8 ", Some("image/webp")),
            (b"\0\0\0\x1cftypavif\0\0\0\0", Some("image/avif")),
            (b"GIF89a\x01\0\x01\0", Some("image/gif")),
            (b"<!doctype html><h", None),
            (b"", None),
            (b"\0\0\0\x1cftypmp42", None),
            // A valid AVIF whose major brand is the generic `mif1`, listing `avif` among its compatible brands.
            (
                b"\0\0\0\x20ftypmif1\0\0\0\0mif1avifmiaf\0\0\0\0",
                Some("image/avif"),
            ),
            (b"\0\0\0\x20ftypmif1\0\0\0\0mif1heicmiaf\0\0\0\0", None),
            // A brand past the box's own size is not one of its brands.
            (b"\0\0\0\x10ftypmif1\0\0\0\0avif", None),
            (b"RIFF\x10\0\0\0WAVEfmt ", None),
        ];
        for (head, mime) in cases {
            assert_eq!(sniffed_mime(head), mime, "{head:?}");
        }
    }

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
            // The client's stated preference between the two wins; a tie goes to AVIF.
            (Some("image/avif;q=0.1, image/webp;q=1"), Negotiated::Webp),
            (Some("image/webp, image/avif;q=0.9"), Negotiated::Webp),
            (Some("image/webp;q=0.5, image/avif;q=0.5"), Negotiated::Avif),
            (Some("image/avif;q=0.2, image/webp"), Negotiated::Webp),
            (Some("image/avif;q=0.2, image/webp;q=0"), Negotiated::Avif),
            // A weight above 1 is not a stronger one.
            (Some("image/avif;q=1, image/webp;q=5"), Negotiated::Avif),
            // A q that is no qvalue (RFC 9110 §12.4.2: 0 to 1, at most three decimals) refuses the type, as NaN
            // does: a float parser's `inf` or `1e0` is not the client's top weight, `0.0001` not a weight above 0.
            (Some("image/avif;q=inf, image/webp;q=0.5"), Negotiated::Webp),
            (Some("image/avif;q=1e0, image/webp;q=0.5"), Negotiated::Webp),
            (
                Some("image/avif;q=1.0000, image/webp;q=0.5"),
                Negotiated::Webp,
            ),
            (Some("image/avif;q=0.0001"), Negotiated::Original),
            (Some("image/webp;q=+1"), Negotiated::Original),
            (Some("image/webp;q=.5"), Negotiated::Original),
            (Some("image/webp;q=1.001"), Negotiated::Original),
            (Some("image/webp;q=0.001"), Negotiated::Webp),
            (
                Some("image/avif;q=1.000, image/webp;q=1."),
                Negotiated::Avif,
            ),
            // Three decimals are compared exactly: 0.501 is above 0.5.
            (
                Some("image/avif;q=0.5, image/webp;q=0.501"),
                Negotiated::Webp,
            ),
            (
                Some("image/avif;q=0.500, image/webp;q=0.5"),
                Negotiated::Avif,
            ),
            (
                Some("image/avif;q=0.5, image/avif, image/webp;q=0.9"),
                Negotiated::Avif,
            ),
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
    fn a_quoted_parameter_value_ends_neither_the_member_nor_the_parameter() {
        // A quoted parameter value (RFC 9110 §5.6.4) may hold `,` and `;`: the `q` after it is the type's own, and a
        // `q=0` inside it is no weight. Splitting at every comma gave AVIF the top weight its `q=0` refused.
        for (accept, expected) in [
            ("image/avif;x=\"a,b\";q=0, image/webp", Negotiated::Webp),
            ("image/avif;x=\"a;q=0\", image/webp;q=0.5", Negotiated::Avif),
            // An escaped quote (`\"`) does not close the quoted string.
            (
                "image/avif;x=\"\\\";q=0\", image/webp;q=0.5",
                Negotiated::Avif,
            ),
        ] {
            assert_eq!(
                negotiate(FormatChoice::Auto, Some(accept)),
                expected,
                "{accept}"
            );
        }
    }

    #[test]
    fn a_qvalue_is_read_in_each_form_rfc_9110_allows_and_in_a_long_accept() {
        // `0.` and `1.` are qvalues (a point with no digit after it); the name `Q` is `q`. Whitespace around `=`
        // is not allowed in RFC 9110 parameters (§5.6.6) and no browser sends it, but a client that does means the
        // weight it wrote: `q= 0.5` is read as 0.5, not as no q (the top weight) nor as a refusal.
        for (q, thousandths) in [
            ("0.", Some(0)),
            ("1.", Some(1000)),
            ("0.5", Some(500)),
            ("1.00", Some(1000)),
        ] {
            assert_eq!(qvalue(q), thousandths, "{q}");
        }
        for q in ["", ".", "01", "0.5.", "0,5", "1.5", "-0", "0x1", "\"0.5\""] {
            assert_eq!(qvalue(q), None, "{q}");
        }
        for (accept, avif) in [
            ("image/avif;q=0.", 0),
            ("image/avif;q=1.", 1000),
            ("image/avif;q= 0.5", 500),
            ("image/avif;q =0.5", 500),
            ("image/avif;Q=0.5", 500),
            ("image/avif ; Q = 0.25 ", 250),
        ] {
            assert_eq!(weight(accept, "image/avif"), avif, "{accept}");
        }
        assert_eq!(
            negotiate(FormatChoice::Auto, Some("image/avif;q=0., image/webp;q=1.")),
            Negotiated::Webp
        );
        // An Accept of 1000 items is read whole: the types asked for last still count, the highest q wins.
        let mut items: Vec<String> = (0..998)
            .map(|n| format!("image/x-{n};q=0.{n:03}"))
            .collect();
        items.push("image/webp;q=0.7".into());
        items.push("image/avif;q=0.6".into());
        let long = items.join(", ");
        assert_eq!(weight(&long, "image/avif"), 600);
        assert_eq!(weight(&long, "image/webp"), 700);
        assert_eq!(negotiate(FormatChoice::Auto, Some(&long)), Negotiated::Webp);
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

    #[test]
    fn a_webp_or_avif_for_a_client_taking_neither_is_jpeg_unless_it_may_have_alpha() {
        let vp8l = |alpha: u8| {
            let mut h = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f\0\0\0\0".to_vec();
            h[24] = alpha << 4;
            h
        };
        let vp8x = |flags: u8| {
            let mut h = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
            h[20] = flags;
            h
        };
        let avif = |meta: &[u8]| {
            let mut h = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec();
            h.extend_from_slice(&(8 + meta.len() as u32).to_be_bytes());
            h.extend_from_slice(b"meta");
            h.extend_from_slice(meta);
            h.extend_from_slice(b"\0\0\0\x10mdat\x01\x02\x03\x04\x05\x06\x07\x08");
            h
        };
        let alpha_meta = b"\0\0\0\0....auxC\0\0\0\0urn:mpeg:mpegB:cicp:systems:auxiliary:alpha\0";
        let cases: Vec<(&str, Vec<u8>, Option<Negotiated>, &str)> = vec![
            (
                "image/webp",
                b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec(),
                Some(Negotiated::Jpeg),
                "lossy: no alpha",
            ),
            (
                "image/webp",
                vp8l(0),
                Some(Negotiated::Jpeg),
                "lossless without alpha",
            ),
            (
                "image/webp",
                vp8l(1),
                Some(Negotiated::Png),
                "lossless with alpha",
            ),
            (
                "image/webp",
                vp8x(0x00),
                Some(Negotiated::Jpeg),
                "extended without alpha",
            ),
            (
                "image/webp",
                vp8x(0x10),
                Some(Negotiated::Png),
                "extended with alpha",
            ),
            (
                "image/webp",
                vp8x(0x12),
                Some(Negotiated::Png),
                "animated with alpha",
            ),
            (
                "image/webp",
                b"RIFF\0\0\0\0WEBPVP8L".to_vec(),
                Some(Negotiated::Png),
                "cut short: may have alpha",
            ),
            (
                "image/webp",
                b"<!doctype html>".to_vec(),
                Some(Negotiated::Png),
                "not a WebP: may",
            ),
            (
                "image/avif",
                avif(b"\0\0\0\0hdlrpict"),
                Some(Negotiated::Jpeg),
                "no alpha item",
            ),
            (
                "image/avif",
                avif(alpha_meta),
                Some(Negotiated::Png),
                "an alpha auxiliary item",
            ),
            (
                "image/avif",
                avif(alpha_meta)[..60].to_vec(),
                Some(Negotiated::Png),
                "meta cut short: may",
            ),
            (
                "image/avif",
                b"\0\0\0\x1cftypavif".to_vec(),
                Some(Negotiated::Png),
                "no meta: may",
            ),
            (
                "image/avif",
                b"\0\0\0\x00ftypavif".to_vec(),
                Some(Negotiated::Png),
                "a size-0 box: may",
            ),
            (
                "image/jpeg",
                vec![0xFF, 0xD8, 0xFF],
                None,
                "a JPEG is shown as it is",
            ),
            ("image/png", vec![], None, "a PNG too"),
            ("image/gif", vec![], None, "a GIF too"),
        ];
        for (mime, head, expected, why) in cases {
            assert_eq!(displayable(mime, &head), expected, "{why}");
        }
    }
}
