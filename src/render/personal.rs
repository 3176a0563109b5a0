//! Personalisation inputs decided at the edge: the visitor's locale (preferences, else `Accept-Language`, else the
//! country), the country's currency, and prices in that currency, formatted for the locale. Pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::skips::Skips;

/// Locales the templates have messages for (see `templates::messages`).
pub const SUPPORTED_LOCALES: &[&str] = &["en", "de", "fr", "ja"];

/// A visitor's stored preferences (`prefs:user:{id}` / `prefs:visitor:{id}` in `CONTENT_KV`). Every field is
/// optional and untrusted: it is shown escaped. Each is read on its own: one of another type (`"locale": 5`) is
/// left out and counted in `skipped`, not the whole document with it (a document that is not an object still is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferences {
    pub locale: Option<String>,
    pub display_name: Option<String>,
    /// The fields left out, the first named.
    pub skipped: Skips<&'static str>,
}

impl<'de> Deserialize<'de> for Preferences {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut raw = serde_json::Map::deserialize(deserializer)?;
        let mut skipped = Skips::default();
        let mut text = |name: &'static str| {
            Option::<String>::deserialize(raw.remove(name).unwrap_or_default())
                .map_err(|e| skipped.note(|| name, &e))
                .ok()
                .flatten()
        };
        Ok(Self {
            locale: text("locale"),
            display_name: text("display_name"),
            skipped,
        })
    }
}

/// Country → currency and default locale (`geo` in `CONTENT_KV`). Read with its codes upper-cased (country keys,
/// currencies): they are compared with `cf.country` and the catalog's price codes, and pick a currency's exponent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawGeo")]
pub struct Geo {
    pub default_country: String,
    pub default_currency: String,
    pub countries: BTreeMap<String, CountryInfo>,
}

impl Default for Geo {
    /// Used when `geo` is missing from KV: everyone is priced in US dollars.
    fn default() -> Self {
        Self {
            default_country: "US".into(),
            default_currency: "USD".into(),
            countries: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CountryInfo {
    pub currency: String,
    pub locale: String,
}

/// `geo` as written.
#[derive(Deserialize)]
struct RawGeo {
    default_country: String,
    default_currency: String,
    countries: BTreeMap<String, CountryInfo>,
}

/// An ISO 4217 currency code in any case (`jpy`, ` Eur`): three ASCII letters, upper-cased.
fn currency_code(code: &str) -> Option<String> {
    let code = code.trim();
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

/// A problem with an operator's code: names the entry, never quotes the value (the malformed-content log line
/// keeps nothing in quotes, `crate::body::strip_input`).
const NOT_A_CURRENCY: &str = "must be a three-letter ISO 4217 currency code";

impl TryFrom<RawGeo> for Geo {
    type Error = String;

    fn try_from(raw: RawGeo) -> Result<Self, String> {
        let default_currency = currency_code(&raw.default_currency)
            .ok_or_else(|| format!("default_currency {NOT_A_CURRENCY}"))?;
        let mut countries = BTreeMap::new();
        for (key, info) in raw.countries {
            let country = key.trim();
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err("countries: every key must be a two-letter country code".to_owned());
            }
            let country = country.to_ascii_uppercase();
            let currency = currency_code(&info.currency)
                .ok_or_else(|| format!("countries.{country}.currency {NOT_A_CURRENCY}"))?;
            let info = CountryInfo {
                currency,
                locale: info.locale,
            };
            if countries.insert(country.clone(), info).is_some() {
                return Err(format!("countries.{country} is named twice (in two cases)"));
            }
        }
        Ok(Self {
            default_country: raw.default_country,
            default_currency,
            countries,
        })
    }
}

/// A product's price points with their currency codes upper-cased (`jpy` is `JPY`); another shape is refused.
fn price_points<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, u64>, D::Error> {
    use serde::de::Error;
    let raw = BTreeMap::<String, u64>::deserialize(deserializer)?;
    let mut prices = BTreeMap::new();
    for (code, amount) in raw {
        let code = currency_code(&code)
            .ok_or_else(|| D::Error::custom(format!("prices: every key {NOT_A_CURRENCY}")))?;
        if prices.insert(code.clone(), amount).is_some() {
            return Err(D::Error::custom(format!(
                "prices: {code} is priced twice (in two cases)"
            )));
        }
    }
    Ok(prices)
}

/// One product with its price points per currency in minor units (`catalog` in `CONTENT_KV`): prices are set per
/// market, not converted at a rate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    #[serde(deserialize_with = "price_points")]
    pub prices: BTreeMap<String, u64>,
}

/// The `catalog` document, a JSON array of products, each read on its own: one the page cannot price (a price code
/// of another shape, a currency priced twice, an amount that is not a whole number of minor units, a missing
/// field) is left out and listed in `skipped` — refusing the whole document for it took every offer off every page.
/// A document that is not an array is still malformed as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub products: Vec<Product>,
    /// The first [`MAX_LISTED_SKIPS`] products left out: each is logged on every page that reads the catalog, and
    /// a document of many bad ones (a bulk import in another price format) wrote a line per product per page.
    pub skipped: Vec<SkippedProduct>,
    /// How many products were left out in all.
    pub skipped_total: usize,
}

/// The most skipped products a [`Catalog`] lists (and a page logs one by one); the rest are only counted.
pub const MAX_LISTED_SKIPS: usize = 5;

/// A product [`Catalog`] left out: where it is and why, never a value it holds but its `sku` (how an operator finds
/// it; at most [`MAX_LOGGED_SKU`] characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedProduct {
    /// Its position in the array, from 0.
    pub index: usize,
    /// Its `sku`, when that is a string.
    pub sku: Option<String>,
    /// serde's reason, without quoted input (`crate::body::strip_input`).
    pub error: String,
}

/// The longest `sku` a skipped product's log line repeats.
pub const MAX_LOGGED_SKU: usize = 64;

impl<'de> Deserialize<'de> for Catalog {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<serde_json::Value>::deserialize(deserializer)?;
        let mut catalog = Catalog::default();
        // The skus offered so far, each with its index in the array.
        let mut offered = BTreeMap::<String, usize>::new();
        for (index, item) in items.into_iter().enumerate() {
            let sku = item
                .get("sku")
                .and_then(serde_json::Value::as_str)
                .map(|sku| sku.chars().take(MAX_LOGGED_SKU).collect());
            // A sku listed twice would be offered twice (two `<li data-sku>` for one product, at two prices
            // maybe): the first is kept and the others are left out like a product the page cannot price.
            let read = Product::deserialize(item)
                .map_err(|e| crate::body::strip_input(&e))
                .and_then(|product| match offered.get(product.sku.as_str()) {
                    Some(first) => Err(format!(
                        "duplicate sku: the product at index {first} is offered under it"
                    )),
                    None => Ok(product),
                });
            if let Ok(product) = &read {
                offered.insert(product.sku.clone(), index);
            }
            match read {
                Ok(product) => catalog.products.push(product),
                Err(_) if catalog.skipped.len() >= MAX_LISTED_SKIPS => catalog.skipped_total += 1,
                Err(error) => {
                    catalog.skipped_total += 1;
                    catalog.skipped.push(SkippedProduct { index, sku, error });
                }
            }
        }
        Ok(catalog)
    }
}

/// Which input decided the locale (reported in `x-locale-source` for operators and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocaleSource {
    Preferences,
    AcceptLanguage,
    Country,
    Default,
}

impl LocaleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preferences => "preferences",
            Self::AcceptLanguage => "accept-language",
            Self::Country => "country",
            Self::Default => "default",
        }
    }
}

/// The supported locale a tag like `de-AT` or `DE` names, if any.
fn supported(tag: &str) -> Option<&'static str> {
    let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    SUPPORTED_LOCALES.iter().copied().find(|l| *l == primary)
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`) in thousandths; integer parsing keeps float code out of the wasm.
fn qvalue(text: &str) -> Option<u32> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u32>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// An `Accept-Language` header's items: each language range with its qvalue in thousandths (1000 without one;
/// `None` for one that is not a qvalue).
fn language_items(header: &str) -> impl Iterator<Item = (&str, Option<u32>)> {
    header.split(',').map(|item| {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        // Parameter names are case-insensitive (RFC 9110 §5.6.6): `Q=0` refuses a language as `q=0` does.
        let q = parts
            .find_map(|p| {
                let p = p.trim();
                p.get(..2)
                    .filter(|name| name.eq_ignore_ascii_case("q="))
                    .and_then(|_| p.get(2..))
            })
            .map_or(Some(1000), qvalue);
        (tag, q)
    })
}

/// The best supported locale in an `Accept-Language` header (by q-value, then order); `q=0` means "not this".
pub fn from_accept_language(header: &str) -> Option<&'static str> {
    let mut best: Option<(u32, &'static str)> = None;
    for (tag, q) in language_items(header) {
        let (Some(q), Some(locale)) = (q, supported(tag)) else {
            continue;
        };
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, locale));
        }
    }
    best.map(|(_, l)| l)
}

/// Whether an `Accept-Language` header refuses `locale` outright: an item naming it (its language range is the
/// locale itself, in any case) with `q=0` (RFC 9110 §12.5.4: "not acceptable"), or, when no item names it, a `*`
/// with `q=0` — `*` "matches every tag not matched by any other range" (§12.5.4), so `es, *;q=0` is Spanish only.
/// `de-AT;q=0` refuses only Austrian German, not `de`.
fn refuses(header: &str, locale: &str) -> bool {
    let mut named = false;
    let mut wildcard_refuses = false;
    for (tag, q) in language_items(header) {
        if tag.eq_ignore_ascii_case(locale) {
            if q == Some(0) {
                return true;
            }
            named = true;
        } else if tag == "*" && q == Some(0) {
            wildcard_refuses = true;
        }
    }
    wildcard_refuses && !named
}

/// The locale for this visitor and what decided it. The country's locale is passed over when the visitor's
/// `Accept-Language` refuses it (`de;q=0, es` from Germany, `es` not offered: the default, not German); the
/// default stands even then, as there is nothing else to serve.
pub fn choose_locale(
    prefs: &Preferences,
    accept_language: Option<&str>,
    country: &str,
    geo: &Geo,
    default: &str,
) -> (&'static str, LocaleSource) {
    if let Some(l) = prefs.locale.as_deref().and_then(supported) {
        return (l, LocaleSource::Preferences);
    }
    if let Some(l) = accept_language.and_then(from_accept_language) {
        return (l, LocaleSource::AcceptLanguage);
    }
    if let Some(l) = geo
        .countries
        .get(country)
        .and_then(|c| supported(&c.locale))
        .filter(|l| !accept_language.is_some_and(|h| refuses(h, l)))
    {
        return (l, LocaleSource::Country);
    }
    (supported(default).unwrap_or("en"), LocaleSource::Default)
}

/// The visitor's country: the runtime's `cf.country` when it is a two-letter code, else the configured default
/// when it is one (it is operator-written KV content, and goes into a header), else `US`.
pub fn country(cf_country: Option<&str>, geo: &Geo) -> String {
    let code = |c: &str| {
        let c = c.trim();
        (c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic())).then(|| c.to_ascii_uppercase())
    };
    cf_country
        .and_then(code)
        .or_else(|| code(&geo.default_country))
        .unwrap_or_else(|| "US".to_owned())
}

/// The currency charged in `country`.
pub fn currency(country: &str, geo: &Geo) -> String {
    geo.countries
        .get(country)
        .map(|c| c.currency.clone())
        .unwrap_or_else(|| geo.default_currency.clone())
}

/// Digits after the decimal point: the currency's ISO 4217 exponent (List One), 2 for a code not listed there.
/// Any currency `geo` names can be priced, and prices are minor units, so every exponent other than 2 is listed.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

fn symbol(currency: &str) -> Option<&'static str> {
    match currency {
        "USD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    }
}

/// `amount` (minor units of `currency`) as the locale writes it: `$19.99`, `19,99 €`, `¥2,900`.
pub fn format_price(amount: u64, currency: &str, locale: &str) -> String {
    let digits = minor_digits(currency);
    let scale = 10u64.pow(digits);
    let (group, decimal) = match locale {
        "de" => ('.', ','),
        "fr" => ('\u{202f}', ','),
        _ => (',', '.'),
    };
    let whole = (amount / scale).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(group);
        }
        grouped.push(c);
    }
    let number = if digits == 0 {
        grouped
    } else {
        format!(
            "{grouped}{decimal}{:0width$}",
            amount % scale,
            width = digits as usize
        )
    };
    match (symbol(currency), locale) {
        (Some(s), "de" | "fr") => format!("{number}\u{a0}{s}"),
        (Some(s), _) => format!("{s}{number}"),
        (None, _) => format!("{number}\u{a0}{currency}"),
    }
}

/// The product's price in `currency`, else in the default currency: `(amount, currency)`.
pub fn price<'a>(
    product: &Product,
    currency: &'a str,
    default_currency: &'a str,
) -> Option<(u64, &'a str)> {
    product
        .prices
        .get(currency)
        .map(|a| (*a, currency))
        .or_else(|| {
            product
                .prices
                .get(default_currency)
                .map(|a| (*a, default_currency))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geo {
        let mut countries = BTreeMap::new();
        for (code, currency, locale) in [
            ("DE", "EUR", "de"),
            ("JP", "JPY", "ja"),
            ("GB", "GBP", "en"),
        ] {
            countries.insert(
                code.to_owned(),
                CountryInfo {
                    currency: currency.to_owned(),
                    locale: locale.to_owned(),
                },
            );
        }
        Geo {
            default_country: "US".into(),
            default_currency: "USD".into(),
            countries,
        }
    }

    #[test]
    fn accept_language_picks_the_best_supported_tag() {
        let cases = [
            ("de-AT,de;q=0.9,en;q=0.8", Some("de")),
            ("xx, fr;q=0.5", Some("fr")),
            ("en;q=0.2, ja;q=0.9", Some("ja")),
            ("de;q=0, en;q=0.1", Some("en")),
            ("pt-BR", None),
            ("", None),
            ("en;q=abc", None),
            ("en;q=1.5", None),
            ("de;q=0.25, fr;q=0.3", Some("fr")),
            ("de;q=0.300, fr;q=0.3", Some("de")),
            ("de;Q=0, en", Some("en")),
            ("de;Q=0.5, fr;q=0.6", Some("fr")),
            ("fr;é=1, de", Some("fr")),
        ];
        for (header, expected) in cases {
            assert_eq!(from_accept_language(header), expected, "header {header:?}");
        }
    }

    #[test]
    fn preferences_win_then_accept_language_then_country_then_default() {
        let prefs_de = Preferences {
            locale: Some("de".into()),
            ..Preferences::default()
        };
        let none = Preferences::default();
        let cases = [
            (
                &prefs_de,
                Some("fr"),
                "JP",
                ("de", LocaleSource::Preferences),
            ),
            (
                &none,
                Some("fr-CA"),
                "JP",
                ("fr", LocaleSource::AcceptLanguage),
            ),
            (&none, Some("pt"), "JP", ("ja", LocaleSource::Country)),
            (&none, None, "DE", ("de", LocaleSource::Country)),
            (&none, None, "BR", ("en", LocaleSource::Default)),
            // The country's locale refused outright: the default; refused only in a regional form: the country's.
            (
                &none,
                Some("de;q=0, es"),
                "DE",
                ("en", LocaleSource::Default),
            ),
            (&none, Some("DE;Q=0"), "DE", ("en", LocaleSource::Default)),
            (
                &none,
                Some("de-AT;q=0"),
                "DE",
                ("de", LocaleSource::Country),
            ),
            (
                &none,
                Some("de;q=0.1, es"),
                "DE",
                ("de", LocaleSource::AcceptLanguage),
            ),
            // `*` stands for every language no other item names (RFC 9110 §12.5.4): `*;q=0` refuses the country's
            // locale unless an item names it — only Spanish, from Germany, is not German.
            (
                &none,
                Some("es, *;q=0"),
                "DE",
                ("en", LocaleSource::Default),
            ),
            (
                &none,
                Some("*;Q=0.000"),
                "DE",
                ("en", LocaleSource::Default),
            ),
            (
                &none,
                Some("es, *;q=0.5"),
                "DE",
                ("de", LocaleSource::Country),
            ),
            // Named by an item of its own (even one without a valid qvalue), `*` does not speak for it.
            (
                &none,
                Some("es, de;q=x, *;q=0"),
                "DE",
                ("de", LocaleSource::Country),
            ),
            (
                &none,
                Some("es, de-AT, *;q=0"),
                "DE",
                ("de", LocaleSource::AcceptLanguage),
            ),
        ];
        for (prefs, accept, country, expected) in cases {
            assert_eq!(
                choose_locale(prefs, accept, country, &geo(), "en"),
                expected,
                "prefs {prefs:?}, accept {accept:?}, country {country}"
            );
        }
    }

    #[test]
    fn country_and_currency_follow_the_geo_table() {
        let g = geo();
        assert_eq!(country(Some("de"), &g), "DE");
        assert_eq!(country(Some("XX1"), &g), "US", "malformed falls back");
        assert_eq!(country(None, &g), "US");
        // The default is operator-written KV content that goes into a header: used only when it is a code.
        for (default, expected) in [("fr", "FR"), ("U\nS", "US"), ("Ünited", "US"), ("", "US")] {
            let custom = Geo {
                default_country: default.to_owned(),
                ..geo()
            };
            assert_eq!(country(None, &custom), expected, "default {default:?}");
        }
        assert_eq!(currency("DE", &g), "EUR");
        assert_eq!(currency("JP", &g), "JPY");
        assert_eq!(
            currency("BR", &g),
            "USD",
            "unknown country pays the default"
        );
    }

    #[test]
    fn prices_are_formatted_per_locale_and_currency() {
        let cases = [
            (1999, "USD", "en", "$19.99"),
            (1899, "EUR", "de", "18,99\u{a0}€"),
            (123456, "EUR", "fr", "1\u{202f}234,56\u{a0}€"),
            (2900, "JPY", "ja", "¥2,900"),
            (100005, "GBP", "en", "£1,000.05"),
            (5, "CHF", "en", "0.05\u{a0}CHF"),
        ];
        for (amount, currency, locale, expected) in cases {
            assert_eq!(
                format_price(amount, currency, locale),
                expected,
                "{amount} {currency} {locale}"
            );
        }
    }

    /// Prices are stored in minor units, so a currency whose ISO 4217 exponent is not 2 read as if it were shows a
    /// price 100 times too small (CLP, VND: no minor unit) or 10 times too large (KWD, BHD: three digits).
    #[test]
    fn prices_use_each_currencys_iso_4217_exponent() {
        let cases = [
            (9990, "CLP", "en", "9,990\u{a0}CLP"),
            (250000, "VND", "en", "250,000\u{a0}VND"),
            (5000, "XOF", "fr", "5\u{202f}000\u{a0}XOF"),
            (1500, "ISK", "en", "1,500\u{a0}ISK"),
            (12500, "KWD", "en", "12.500\u{a0}KWD"),
            (1050, "BHD", "de", "1,050\u{a0}BHD"),
            (10000, "CLF", "en", "1.0000\u{a0}CLF"),
            (1999, "CHF", "en", "19.99\u{a0}CHF"),
        ];
        for (amount, currency, locale, expected) in cases {
            assert_eq!(
                format_price(amount, currency, locale),
                expected,
                "{amount} {currency} {locale}"
            );
        }
    }

    #[test]
    fn a_missing_price_falls_back_to_the_default_currency() {
        let product = Product {
            sku: "a".into(),
            name: "A".into(),
            prices: [("USD".to_owned(), 100)].into_iter().collect(),
        };
        assert_eq!(price(&product, "EUR", "USD"), Some((100, "USD")));
        assert_eq!(price(&product, "USD", "USD"), Some((100, "USD")));
    }

    /// `geo` and `catalog` are operator-written KV documents, and codes were compared as written: `"jpy"` in `geo`
    /// got 2 decimals (`minor_digits` lists `JPY`) and missed the catalog's `JPY` prices (the page showed dollars),
    /// and a `"jp"` country key never matched the upper-cased `cf.country`. Codes are upper-cased when read.
    #[test]
    fn geo_and_catalog_codes_are_read_in_any_case() {
        let g: Geo = serde_json::from_value(serde_json::json!({
            "default_country": "US", "default_currency": " usd",
            "countries": {"jp": {"currency": "jpy", "locale": "ja"}, "DE": {"currency": "Eur", "locale": "de"}},
        }))
        .expect("codes in any case");
        assert_eq!(g.default_currency, "USD");
        assert_eq!(currency("JP", &g), "JPY");
        assert_eq!(currency("DE", &g), "EUR");
        let mug: Product = serde_json::from_value(serde_json::json!(
            {"sku": "mug", "name": "Mug", "prices": {"jpy": 1800, "USD": 1200}}
        ))
        .expect("price codes in any case");
        let jp = currency("JP", &g);
        let (amount, code) = price(&mug, &jp, &g.default_currency).expect("priced");
        assert_eq!(format_price(amount, code, "ja"), "¥1,800");
    }

    /// A code of another shape can match nothing (no catalog price, no exponent): the document is refused, and the
    /// error (logged as `content_kv_malformed`, which keeps no quoted input) names the entry.
    #[test]
    fn a_geo_or_catalog_code_of_another_shape_is_refused_naming_its_entry() {
        let geo_error = |value: serde_json::Value| {
            let e = serde_json::from_value::<Geo>(value).expect_err("refused");
            crate::body::strip_input(&e)
        };
        let country = |key: &str, currency: &str| {
            serde_json::json!({"default_country": "US", "default_currency": "USD",
                "countries": {key: {"currency": currency, "locale": "en"}}})
        };
        for (value, names) in [
            (country("JP", "yens"), "countries.JP.currency"),
            (country("JP", "JP¥"), "countries.JP.currency"),
            (country("JP", ""), "countries.JP.currency"),
            (country("JPN", "JPY"), "countries"),
            (
                serde_json::json!({"default_country": "US", "default_currency": "dollars", "countries": {}}),
                "default_currency",
            ),
            (
                serde_json::json!({"default_country": "US", "default_currency": "USD",
                    "countries": {"jp": {"currency": "JPY", "locale": "ja"}, "JP": {"currency": "JPY", "locale": "ja"}}}),
                "countries.JP",
            ),
        ] {
            let message = geo_error(value.clone());
            assert!(message.contains(names), "{value}: {message}");
        }
        let e = serde_json::from_value::<Vec<Product>>(serde_json::json!(
            [{"sku": "mug", "name": "Mug", "prices": {"US$": 1200}}]
        ))
        .expect_err("refused");
        let message = crate::body::strip_input(&e);
        assert!(message.contains("prices"), "{message}");
        let e = serde_json::from_value::<Vec<Product>>(serde_json::json!(
            [{"sku": "mug", "name": "Mug", "prices": {"usd": 1200, "USD": 1100}}]
        ))
        .expect_err("one currency priced twice");
        assert!(crate::body::strip_input(&e).contains("USD"), "{e}");
    }

    /// A field of another type (`"locale": 5`) dropped the whole document, the visitor's display name with it: each
    /// field is read on its own, the bad one left out and named for the page's log line.
    #[test]
    fn a_preference_of_another_type_is_left_out_alone() {
        let prefs: Preferences =
            serde_json::from_str(r#"{"locale": 5, "display_name": "Ann", "theme": "dark"}"#)
                .expect("read");
        assert_eq!(prefs.display_name.as_deref(), Some("Ann"));
        assert_eq!(prefs.locale, None);
        assert_eq!(
            prefs.skipped.line("prefs:user:*", "field", "r1"),
            Some(
                serde_json::json!({"key": "prefs:user:*", "skipped": 1, "field": "locale",
                "detail": "invalid type: integer, expected a string", "request_id": "r1"})
            )
        );
        let prefs: Preferences =
            serde_json::from_str(r#"{"locale": "de", "display_name": {"first": "Ann"}}"#)
                .expect("read");
        assert_eq!(prefs.locale.as_deref(), Some("de"));
        assert_eq!(prefs.display_name, None);
        assert_eq!(prefs.skipped.count, 1);
        let prefs: Preferences = serde_json::from_str(r#"{"locale": null, "display_name": "Ann"}"#)
            .expect("null is absent");
        assert_eq!(prefs.skipped.count, 0);
        assert!(
            serde_json::from_str::<Preferences>("[1]").is_err(),
            "not an object: malformed as a whole"
        );
    }

    /// One product the page cannot price took every offer with it: it is left out, saying where and why.
    #[test]
    fn a_catalog_leaves_out_the_products_it_cannot_price_and_keeps_the_others() {
        let catalog: Catalog = serde_json::from_value(serde_json::json!([
            {"sku": "mug", "name": "Mug", "prices": {"USD": 1200}},
            {"sku": "odd", "name": "Odd", "prices": {"yens": 100}},
            {"sku": "twice", "name": "Twice", "prices": {"usd": 1, "USD": 2}},
            {"sku": "neg", "name": "Negative", "prices": {"USD": -5}},
            {"name": "No sku", "prices": {"USD": 5}},
            {"sku": "x".repeat(100), "name": "Long", "prices": {"USD": "ten"}},
            "not an object",
            {"sku": "tee", "name": "Tee", "prices": {"usd": 2500}},
        ]))
        .expect("read");
        let skus: Vec<_> = catalog.products.iter().map(|p| p.sku.as_str()).collect();
        assert_eq!(skus, ["mug", "tee"]);
        assert_eq!(catalog.products[1].prices.get("USD"), Some(&2500));
        let skipped: Vec<_> = catalog
            .skipped
            .iter()
            .map(|s| (s.index, s.sku.as_deref().map(str::len)))
            .collect();
        assert_eq!(
            skipped,
            [
                (1, Some(3)),
                (2, Some(5)),
                (3, Some(3)),
                (4, None),
                (5, Some(64)),
            ]
        );
        // Past MAX_LISTED_SKIPS, only counted (each listed one is logged on every page).
        assert_eq!(catalog.skipped_total, 6);
        assert!(
            catalog.skipped[0].error.contains("prices"),
            "{:?}",
            catalog.skipped[0]
        );
        assert!(
            catalog.skipped[3].error.contains("missing field"),
            "{:?}",
            catalog.skipped[3]
        );
        for s in &catalog.skipped {
            assert!(
                !s.error.contains("yens") && !s.error.contains("ten"),
                "{s:?}"
            );
        }
        assert!(
            serde_json::from_value::<Catalog>(serde_json::json!({"sku": "mug"})).is_err(),
            "not a list: malformed as a whole"
        );
    }
}
