//! The page templates: the shell (doctype, head with critical CSS, page frame), the edge-rendered offers block and
//! the closing tail. Plain Rust over [`Html`], so every interpolated value is escaped. Pure.

use super::hints::Resource;
use super::html::Html;
use super::personal::{format_price, price, Product};
use super::variant::Variant;

/// The few strings the edge renders itself, per supported locale.
pub struct Messages {
    pub welcome: &'static str,
    pub welcome_named_before: &'static str,
    pub welcome_named_after: &'static str,
    pub offers_title: &'static str,
    pub shipping_banner: &'static str,
}

pub fn messages(locale: &str) -> &'static Messages {
    const EN: Messages = Messages {
        welcome: "Welcome",
        welcome_named_before: "Welcome back, ",
        welcome_named_after: "",
        offers_title: "Today's offers",
        shipping_banner: "Free shipping on every order",
    };
    const DE: Messages = Messages {
        welcome: "Willkommen",
        welcome_named_before: "Willkommen zurück, ",
        welcome_named_after: "",
        offers_title: "Heutige Angebote",
        shipping_banner: "Kostenloser Versand für jede Bestellung",
    };
    const FR: Messages = Messages {
        welcome: "Bienvenue",
        welcome_named_before: "Bon retour, ",
        welcome_named_after: "",
        offers_title: "Offres du jour",
        shipping_banner: "Livraison gratuite pour toute commande",
    };
    const JA: Messages = Messages {
        welcome: "ようこそ",
        welcome_named_before: "おかえりなさい、",
        welcome_named_after: "さん",
        offers_title: "本日のおすすめ",
        shipping_banner: "全品送料無料",
    };
    match locale {
        "de" => &DE,
        "fr" => &FR,
        "ja" => &JA,
        _ => &EN,
    }
}

/// What the shell needs.
pub struct Shell<'a> {
    pub locale: &'a str,
    pub title: &'a str,
    pub critical_css: &'a str,
    /// The response's CSP nonce, on the inline critical CSS.
    pub nonce: &'a str,
    pub variant: Option<&'a str>,
    /// Preloads beyond the `Link` header's (fast clients only).
    pub preloads: &'a [&'a Resource],
}

/// Everything up to the first slot; written before any fragment is awaited.
pub fn shell(s: &Shell) -> Html {
    let mut out = Html::new();
    out.push_lit("<!doctype html><html lang=\"")
        .push_text(s.locale)
        .push_lit("\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>")
        .push_text(s.title)
        .push_lit("</title>");
    if !s.critical_css.is_empty() {
        out.push_style(s.critical_css, s.nonce);
    }
    for r in s.preloads {
        out.push_lit("<link rel=\"preload\" href=\"")
            .push_text(&r.href)
            .push_lit("\" as=\"")
            .push_text(&r.destination)
            .push_lit("\"");
        if let Some(mime) = r.safe_mime() {
            out.push_lit(" type=\"").push_text(mime).push_lit("\"");
        }
        if r.cors() {
            out.push_lit(" crossorigin");
        }
        out.push_lit(">");
    }
    out.push_lit("</head><body");
    if let Some(variant) = s.variant {
        out.push_lit(" data-variant=\"")
            .push_text(variant)
            .push_lit("\"");
    }
    out.push_lit("><div class=\"page\">\n");
    out
}

/// What the offers block needs.
pub struct Offers<'a> {
    pub locale: &'a str,
    pub country: &'a str,
    pub currency: &'a str,
    pub default_currency: &'a str,
    pub display_name: Option<&'a str>,
    pub variant: Option<&'a Variant>,
    pub shipping_banner: bool,
    pub products: &'a [Product],
}

/// The offers block, and the products it left out: priced neither in the visitor's currency nor the default one.
pub struct Offered<'a> {
    pub html: Html,
    /// The first product left out, and how many were.
    pub unpriced: Option<(&'a Product, usize)>,
}

/// The personalised block: greeting, the variant's headline and the catalog priced for the visitor's country.
pub fn offers<'a>(o: &Offers<'a>) -> Offered<'a> {
    let m = messages(o.locale);
    let mut out = Html::new();
    out.push_lit("<section class=\"offers\" data-country=\"")
        .push_text(o.country)
        .push_lit("\" data-currency=\"")
        .push_text(o.currency)
        .push_lit("\"><p class=\"greeting\">");
    match o.display_name.filter(|n| !n.trim().is_empty()) {
        Some(name) => out
            .push_lit(m.welcome_named_before)
            .push_text(name)
            .push_lit(m.welcome_named_after),
        None => out.push_lit(m.welcome),
    };
    out.push_lit("</p><h2>");
    match o.variant {
        Some(v) => out.push_text(&v.headline),
        None => out.push_lit(m.offers_title),
    };
    out.push_lit("</h2>");
    if o.shipping_banner {
        out.push_lit("<p class=\"shipping\">")
            .push_lit(m.shipping_banner)
            .push_lit("</p>");
    }
    out.push_lit("<ul>");
    let mut unpriced: Option<(&Product, usize)> = None;
    for product in o.products {
        let Some((amount, currency)) = price(product, o.currency, o.default_currency) else {
            let (first, count) = unpriced.unwrap_or((product, 0));
            unpriced = Some((first, count + 1));
            continue;
        };
        // The currency its price is shown in: the section's, or the default one for a product not priced in it.
        out.push_lit("<li data-sku=\"")
            .push_text(&product.sku)
            .push_lit("\" data-currency=\"")
            .push_text(currency)
            .push_lit("\">")
            .push_text(&product.name)
            .push_lit(" <span class=\"price\">")
            .push_text(&format_price(amount, currency, o.locale))
            .push_lit("</span></li>");
    }
    out.push_lit("</ul></section>\n");
    Offered {
        html: out,
        unpriced,
    }
}

/// Closes the frame opened by [`shell`].
pub fn tail() -> Html {
    let mut out = Html::new();
    out.push_lit("</div></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const XSS: &str = "<img src=x onerror=alert(1)>\"'";

    fn product() -> Product {
        Product {
            sku: "mug".into(),
            name: "Mug <b>".into(),
            prices: [("USD".to_owned(), 1200), ("EUR".to_owned(), 1100)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn the_shell_opens_the_page_with_escaped_values() {
        let hero: Resource = serde_json::from_value(serde_json::json!(
            {"href": "/hero.avif?a=1&b=\"2\"", "as": "image", "type": "image/avif"}
        ))
        .expect("resource");
        let font: Resource =
            serde_json::from_value(serde_json::json!({"href": "/f.woff2", "as": "font"}))
                .expect("resource");
        let html = shell(&Shell {
            locale: "de",
            title: XSS,
            critical_css: "body{margin:0}",
            nonce: "abc",
            variant: Some("bold"),
            preloads: &[&hero, &font],
        });
        let s = html.as_str();
        assert!(
            s.contains(
                "<link rel=\"preload\" href=\"&#x2F;hero.avif?a=1&amp;b=&quot;2&quot;\" as=\"image\" \
                 type=\"image&#x2F;avif\"><link rel=\"preload\" href=\"&#x2F;f.woff2\" as=\"font\" crossorigin>\
                 </head>"
            ),
            "{s}"
        );
        assert!(s.starts_with("<!doctype html><html lang=\"de\">"), "{s}");
        assert!(
            s.contains("<style nonce=\"abc\">body{margin:0}</style>"),
            "{s}"
        );
        assert!(s.contains("data-variant=\"bold\""), "{s}");
        assert!(!s.contains("<img"), "title escaped: {s}");
        assert!(
            !s.contains("</body>"),
            "the shell leaves the frame open: {s}"
        );
    }

    #[test]
    fn the_offers_block_escapes_every_interpolated_value() {
        let variant = Variant {
            name: "bold".into(),
            headline: XSS.into(),
        };
        let products = [product()];
        let html = offers(&Offers {
            locale: "en",
            country: "DE",
            currency: "EUR",
            default_currency: "USD",
            display_name: Some(XSS),
            variant: Some(&variant),
            shipping_banner: false,
            products: &products,
        })
        .html;
        let s = html.as_str();
        assert!(!s.contains("<img"), "{s}");
        assert!(!s.contains("<b>"), "{s}");
        assert_eq!(
            s.matches("&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;")
                .count(),
            2,
            "{s}"
        );
        assert!(s.contains("€11.00"), "{s}");
    }

    /// The section's `data-currency` is the visitor's (the country's) currency; a product without a price in it is
    /// shown in the default currency, and each item says which currency its price is in, as shown.
    #[test]
    fn each_price_is_labelled_with_the_currency_it_is_shown_in() {
        let usd_only = Product {
            sku: "usd-only".into(),
            name: "Import".into(),
            prices: [("USD".to_owned(), 700)].into_iter().collect(),
        };
        let products = [product(), usd_only];
        let s = offers(&Offers {
            locale: "en",
            country: "DE",
            currency: "EUR",
            default_currency: "USD",
            display_name: None,
            variant: None,
            shipping_banner: false,
            products: &products,
        })
        .html
        .into_string();
        assert!(
            s.contains("data-country=\"DE\" data-currency=\"EUR\""),
            "{s}"
        );
        assert!(
            s.contains("<li data-sku=\"mug\" data-currency=\"EUR\">Mug &lt;b&gt; <span class=\"price\">€11.00</span>"),
            "{s}"
        );
        assert!(
            s.contains("<li data-sku=\"usd-only\" data-currency=\"USD\">Import <span class=\"price\">$7.00</span>"),
            "the fallback price is labelled USD, not EUR: {s}"
        );
    }

    #[test]
    fn locale_variant_and_flags_change_the_block() {
        let products = [product()];
        let base = Offers {
            locale: "ja",
            country: "JP",
            currency: "JPY",
            default_currency: "USD",
            display_name: Some("Aiko"),
            variant: None,
            shipping_banner: true,
            products: &products,
        };
        let s = offers(&base).html.into_string();
        assert!(s.contains("おかえりなさい、Aikoさん"), "{s}");
        assert!(s.contains("本日のおすすめ"), "default headline: {s}");
        assert!(s.contains("全品送料無料"), "banner flag: {s}");
        assert!(s.contains("$12.00"), "no JPY price: default currency: {s}");
        let variant = Variant {
            name: "bold".into(),
            headline: "Deals".into(),
        };
        let s = offers(&Offers {
            variant: Some(&variant),
            shipping_banner: false,
            ..base
        })
        .html
        .into_string();
        assert!(s.contains("<h2>Deals</h2>"), "{s}");
        assert!(!s.contains("全品送料無料"), "{s}");
    }
}
