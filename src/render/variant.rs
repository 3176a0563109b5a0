//! Feature flags and the A/B experiment (`flags` in `CONTENT_KV`): a visitor's variant is a stable hash of the user
//! id, else of the anonymous visitor id kept in a cookie, so it does not change between requests. Pure.

use durable_objects::hash::fnv1a64;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::keys;
use super::plan::is_token;
use super::skips::Skips;

/// The flags document. Its experiment is read on its own: one that does not read (a variant without `headline`, a
/// `name` that is not a string or no token) is none — no visitor is assigned — and the features are kept; refusing
/// the whole document for it took every feature off every page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub experiment: Option<Experiment>,
    /// The experiment when it did not read (named `experiment`), for the page's log line.
    pub experiment_skipped: Skips<&'static str>,
    /// Named on/off switches (`shipping_banner` shows the free-shipping line in the offers block).
    pub features: Features,
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            experiment: serde_json::Value,
            #[serde(default)]
            features: Features,
        }
        let raw = Raw::deserialize(deserializer)?;
        let mut experiment_skipped = Skips::default();
        let experiment = match Option::<Experiment>::deserialize(raw.experiment) {
            Ok(experiment) => experiment,
            Err(e) => {
                experiment_skipped.note(|| "experiment", &e);
                None
            }
        };
        Ok(Self {
            experiment,
            experiment_skipped,
            features: raw.features,
        })
    }
}

impl Flags {
    pub fn enabled(&self, feature: &str) -> bool {
        self.features.on.get(feature).copied().unwrap_or(false)
    }
}

/// The `features` object, each switch read on its own: one that is not a boolean (`"shipping_banner": "yes"`) is
/// off, counted and the first (in name order) named — refusing the whole document for it also ended the running
/// experiment, for every visitor. A `features` that is not an object is still malformed as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    on: BTreeMap<String, bool>,
    /// The switches left out, the first named (at most [`MAX_LOGGED_FEATURE`] characters).
    pub skipped: Skips<String>,
}

/// The longest feature name a skipped feature's log line repeats.
pub const MAX_LOGGED_FEATURE: usize = 64;

impl<'de> Deserialize<'de> for Features {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut features = Features::default();
        for (name, value) in raw {
            match bool::deserialize(value) {
                Ok(on) => {
                    features.on.insert(name, on);
                }
                Err(e) => features
                    .skipped
                    .note(|| name.chars().take(MAX_LOGGED_FEATURE).collect(), &e),
            }
        }
        Ok(features)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Experiment {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub variants: Vec<Variant>,
}

fn yes() -> bool {
    true
}

/// One arm of the experiment: its name (sent in `x-variant`) and the offers headline it shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Variant {
    #[serde(deserialize_with = "variant_name")]
    pub name: String,
    pub headline: String,
}

/// A variant's name, which goes into the `x-variant` header: `[a-z0-9_-]{1,64}`. Another is refused when the flags
/// are read, so the experiment is skipped and logged (`content_kv_experiment_skipped`) — kept, [`assign`] refused it
/// on every page and the experiment was off for everyone without a word. The error does not quote the name.
fn variant_name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    if !is_token(&name) {
        return Err(serde::de::Error::custom(
            "a variant name must match [a-z0-9_-]{1,64}",
        ));
    }
    Ok(name)
}

/// The variant `subject` (a user id or visitor id) sees, or `None` when there is no usable experiment (absent,
/// disabled, no variants, or a variant name that is not a header-safe token).
pub fn assign<'a>(flags: &'a Flags, subject: &str) -> Option<&'a Variant> {
    let experiment = flags.experiment.as_ref().filter(|e| e.enabled)?;
    if experiment.variants.is_empty() || !experiment.variants.iter().all(|v| is_token(&v.name)) {
        return None;
    }
    let hash = fnv1a64(format!("{}:{subject}", experiment.name).as_bytes());
    experiment
        .variants
        .get((hash % experiment.variants.len() as u64) as usize)
}

/// The visitor id in a `Cookie` header: the first well-formed one (32 lowercase hex digits) of the cookies named
/// `cookie`. A browser sends every cookie of that name its jar holds for the URL (RFC 6265 §5.4: one set for
/// another path or a parent domain, listed first when its path is longer), so the first by name may be another's
/// — reading only it gave such a visitor a new id, a new variant and no preferences on every page.
pub fn visitor_id(cookie_header: Option<&str>, cookie: &str) -> Option<String> {
    cookie_header?
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == cookie)
        .map(|(_, value)| value.trim())
        .find(|v| {
            v.len() == 32
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .map(str::to_owned)
}

/// A new visitor id from 16 random bytes.
pub fn new_visitor_id(random: [u8; 16]) -> String {
    hex::encode(random)
}

/// Who the page is for: where their preferences are, what their variant hashes, and the cookie to set (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `None` for a visitor id drawn for this request: no preferences can be stored under an id never given out,
    /// and reading them was a KV read that always missed — on every page of a visitor without a cookie (a crawler,
    /// a monitor).
    pub prefs_key: Option<String>,
    pub subject: String,
    pub set_cookie: Option<String>,
}

/// A signed-in user is identified by their user id; an anonymous visitor by the id in their cookie, or by a new
/// one from `random` that is set as a cookie (so the variant stays the same on the next request).
pub fn identify(
    user_id: Option<&str>,
    cookie_header: Option<&str>,
    cookie: &str,
    random: [u8; 16],
) -> Identity {
    if let Some(user) = user_id {
        return Identity {
            prefs_key: Some(keys::user_prefs(user)),
            subject: user.to_owned(),
            set_cookie: None,
        };
    }
    let (visitor, set_cookie) = match visitor_id(cookie_header, cookie) {
        Some(id) => (id, None),
        None => {
            let id = new_visitor_id(random);
            let set = visitor_cookie(cookie, &id);
            (id, Some(set))
        }
    };
    Identity {
        prefs_key: set_cookie.is_none().then(|| keys::visitor_prefs(&visitor)),
        subject: visitor,
        set_cookie,
    }
}

/// The `Set-Cookie` value that keeps a visitor id for a year.
pub fn visitor_cookie(cookie: &str, id: &str) -> String {
    format!("{cookie}={id}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(enabled: bool) -> Flags {
        serde_json::from_value(serde_json::json!({
            "experiment": {"name": "offers", "enabled": enabled, "variants": [
                {"name": "control", "headline": "Today's offers"},
                {"name": "bold", "headline": "Deals picked for you"}
            ]},
            "features": {"shipping_banner": true}
        }))
        .expect("flags")
    }

    #[test]
    fn a_subject_always_gets_the_same_variant_and_subjects_spread_over_all() {
        let f = flags(true);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let subject = format!("user-{i}");
            let first = assign(&f, &subject).expect("assigned").name.clone();
            for _ in 0..3 {
                assert_eq!(
                    assign(&f, &subject).expect("assigned").name,
                    first,
                    "{subject}"
                );
            }
            seen.insert(first);
        }
        assert_eq!(seen.len(), 2, "both variants are used: {seen:?}");
    }

    #[test]
    fn no_variant_without_a_usable_experiment() {
        assert_eq!(assign(&flags(false), "u"), None, "disabled");
        assert_eq!(assign(&Flags::default(), "u"), None, "absent");
        let mut bad = flags(true);
        bad.experiment.as_mut().expect("exp").variants[0].name = "Bad Name\r\n".into();
        assert_eq!(assign(&bad, "u"), None, "unsafe header value");
        assert!(flags(true).enabled("shipping_banner"));
        assert!(!flags(true).enabled("other"));
    }

    #[test]
    fn an_experiment_that_does_not_read_is_none_and_the_features_are_kept() {
        // Refusing the whole document for it took every feature off every page.
        let f: Flags = serde_json::from_value(serde_json::json!({
            "experiment": {"name": "offers", "variants": [{"name": "control"}]},
            "features": {"shipping_banner": true}
        }))
        .expect("flags");
        assert_eq!(f.experiment, None);
        assert_eq!(assign(&f, "u"), None);
        assert!(f.enabled("shipping_banner"));
        assert_eq!(
            f.experiment_skipped.first,
            Some(("experiment", "missing field `headline`".to_owned()))
        );
        // Absent or null: none, and nothing left out.
        for doc in [
            serde_json::json!({}),
            serde_json::json!({"experiment": null}),
        ] {
            let f: Flags = serde_json::from_value(doc).expect("flags");
            assert_eq!((f.experiment, f.experiment_skipped.count), (None, 0));
        }
    }

    /// A variant name that cannot go into `x-variant` (`Bold`, `arm a`) leaves no visitor assigned: the experiment
    /// was kept and [`assign`] then refused it on every page, so a running experiment was off for everyone with no
    /// log line saying so. It is an experiment that does not read, named in the page's skipped line.
    #[test]
    fn an_experiment_whose_variant_name_is_no_token_is_skipped_and_named() {
        for name in ["Bold", "arm a", "", "b\r\nx-injected: 1"] {
            let f: Flags = serde_json::from_value(serde_json::json!({
                "experiment": {"name": "offers", "variants": [
                    {"name": "control", "headline": "Today's offers"},
                    {"name": name, "headline": "Deals"}
                ]},
                "features": {"shipping_banner": true}
            }))
            .expect("flags");
            assert_eq!(f.experiment, None, "{name:?}");
            assert_eq!(assign(&f, "u"), None, "{name:?}");
            assert!(f.enabled("shipping_banner"), "{name:?}: features kept");
            let (member, why) = f
                .experiment_skipped
                .first
                .expect("skipped, for the log line");
            assert_eq!(member, "experiment", "{name:?}");
            assert!(why.contains("[a-z0-9_-]{1,64}"), "{name:?}: {why}");
            assert!(
                !why.contains("Bold") && !why.contains("arm a"),
                "the value is not quoted: {why}"
            );
        }
    }

    #[test]
    fn a_feature_that_is_not_a_boolean_is_off_and_the_rest_of_the_document_is_kept() {
        // Refusing the whole document for one such switch took the experiment (x-variant) and every feature away.
        let f: Flags = serde_json::from_value(serde_json::json!({
            "experiment": {"name": "offers", "variants": [{"name": "control", "headline": "Today's offers"}]},
            "features": {"shipping_banner": "yes", "dark_mode": true, "beta": 1, "off": false}
        }))
        .expect("flags");
        assert_eq!(assign(&f, "u").map(|v| v.name.as_str()), Some("control"));
        assert!(f.enabled("dark_mode"));
        assert!(!f.enabled("shipping_banner") && !f.enabled("beta") && !f.enabled("off"));
        assert_eq!(f.features.skipped.count, 2);
        assert_eq!(
            f.features.skipped.first,
            Some((
                "beta".to_owned(),
                "invalid type: integer, expected a boolean".to_owned()
            ))
        );
        // A long name is cut for the log line.
        let long = "f".repeat(200);
        let f: Flags =
            serde_json::from_value(serde_json::json!({"features": {long.as_str(): null}}))
                .expect("flags");
        let (name, _) = f.features.skipped.first.expect("skipped");
        assert_eq!(name.len(), MAX_LOGGED_FEATURE);
        // A `features` that is not an object is still malformed as a whole.
        assert!(serde_json::from_value::<Flags>(serde_json::json!({"features": ["a"]})).is_err());
        assert!(serde_json::from_value::<Flags>(serde_json::json!({"features": {}})).is_ok());
    }

    #[test]
    fn users_are_identified_by_user_id_and_visitors_by_a_cookie_set_once() {
        let known = "0123456789abcdef0123456789abcdef";
        let cookie = format!("ek_vid={known}");
        let cases = [
            (
                Some("u1"),
                Some(cookie.as_str()),
                Some("prefs:user:u1"),
                "u1",
                false,
            ),
            (Some("u1"), None, Some("prefs:user:u1"), "u1", false),
            (
                None,
                Some(cookie.as_str()),
                Some("prefs:visitor:0123456789abcdef0123456789abcdef"),
                known,
                false,
            ),
            // An id drawn now has no preferences anywhere: none are read.
            (None, None, None, "01010101010101010101010101010101", true),
        ];
        for (user, header, prefs_key, subject, sets_cookie) in cases {
            let id = identify(user, header, "ek_vid", [1; 16]);
            assert_eq!(id.prefs_key.as_deref(), prefs_key, "{user:?} {header:?}");
            assert_eq!(id.subject, subject, "{user:?} {header:?}");
            assert_eq!(id.set_cookie.is_some(), sets_cookie, "{user:?} {header:?}");
        }
    }

    #[test]
    fn visitor_ids_are_read_only_when_well_formed() {
        let id = new_visitor_id([0xab; 16]);
        assert_eq!(id.len(), 32);
        let cases = [
            (Some(format!("a=1; ek_vid={id}; b=2")), Some(id.clone())),
            (Some(format!("ek_vid={id}")), Some(id.clone())),
            (Some("ek_vid=short".to_owned()), None),
            (Some(format!("ek_vid={}", id.to_uppercase())), None),
            (Some("other=1".to_owned()), None),
            // Another cookie of the name (a longer path's, a parent domain's) comes first: the visitor's is read.
            (
                Some(format!("ek_vid=legacy-1; ek_vid={id}")),
                Some(id.clone()),
            ),
            (Some(format!("ek_vid=; a=1; ek_vid={id}")), Some(id.clone())),
            (None, None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                visitor_id(header.as_deref(), "ek_vid"),
                expected,
                "{header:?}"
            );
        }
        assert!(visitor_cookie("ek_vid", &id).starts_with(&format!("ek_vid={id}; Path=/;")));
    }
}
