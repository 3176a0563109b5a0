//! `Html`: markup that is safe to send. Untrusted text can only enter it escaped (`push_text`); raw markup enters
//! only from `&'static` literals in our templates or through `Html::trusted`, which names its trusted source.
//!
//! Escaping is `html-escape`'s `encode_safe` (escapes `& < > " ' /`), so the same escaping is right for element
//! text and quoted attribute values.

use std::fmt;

/// A piece of HTML that is safe to write to the page.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    pub fn new() -> Self {
        Self(String::new())
    }

    /// Markup from a source the operator controls and vouches for (fragments from KV or the fragment origin,
    /// configured fallbacks). `source` documents at the call site why it is trusted; it is not stored.
    pub fn trusted(markup: impl Into<String>, source: TrustedSource) -> Self {
        let _ = source;
        Self(markup.into())
    }

    /// Text escaped for element content or a quoted attribute value.
    pub fn text(text: &str) -> Self {
        let mut out = Self::new();
        out.push_text(text);
        out
    }

    /// Appends a literal from the templates (a `&'static str`, so it cannot carry request data).
    pub fn push_lit(&mut self, literal: &'static str) -> &mut Self {
        self.0.push_str(literal);
        self
    }

    /// Appends `text`, escaped.
    pub fn push_text(&mut self, text: &str) -> &mut Self {
        html_escape::encode_safe_to_string(text, &mut self.0);
        self
    }

    /// Appends already-safe markup.
    pub fn push_html(&mut self, html: &Html) -> &mut Self {
        self.0.push_str(&html.0);
        self
    }

    /// Appends CSS inside a `<style>` element carrying `nonce` (the response's, which its `Content-Security-Policy`
    /// names): the only sequence that could end the element early (`</`) is neutralised, so operator CSS cannot
    /// break out into markup.
    pub fn push_style(&mut self, css: &str, nonce: &str) -> &mut Self {
        self.0.push_str("<style nonce=\"");
        self.push_text(nonce);
        self.0.push_str("\">");
        self.0.push_str(&css.replace("</", "<\\/"));
        self.0.push_str("</style>");
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

impl fmt::Debug for Html {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Html({:?})", self.0)
    }
}

/// Where trusted markup comes from (the reasons `Html::trusted` accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedSource {
    /// A fragment body from `CONTENT_KV` or the configured fragment origin (operator-written markup).
    Fragment,
    /// A fallback from the `RENDER_FRAGMENTS` configuration.
    ConfiguredFallback,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        let cases = [
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;&#x2F;script&gt;",
            ),
            ("\" onmouseover=\"x", "&quot; onmouseover=&quot;x"),
            ("it's & more", "it&#x27;s &amp; more"),
            ("plain", "plain"),
        ];
        for (input, expected) in cases {
            assert_eq!(Html::text(input).as_str(), expected, "input {input:?}");
        }
    }

    #[test]
    fn literals_and_trusted_markup_are_kept_and_text_is_not() {
        let mut page = Html::new();
        page.push_lit("<p>")
            .push_text("<b>")
            .push_html(&Html::trusted("<i>ok</i>", TrustedSource::Fragment))
            .push_lit("</p>");
        assert_eq!(page.as_str(), "<p>&lt;b&gt;<i>ok</i></p>");
    }

    #[test]
    fn css_cannot_close_its_style_element() {
        let mut page = Html::new();
        page.push_style("a{color:red}</style><script>x()</script>", "n\"1");
        assert!(
            page.as_str().starts_with("<style nonce=\"n&quot;1\">"),
            "{page:?}"
        );
        assert_eq!(page.as_str().matches("</style>").count(), 1, "{page:?}");
        assert!(
            page.as_str().contains("<\\/style><script>x()<\\/script>"),
            "{page:?}"
        );
    }
}
