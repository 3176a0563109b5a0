//! The images section of the configuration: where sources come from, how they are resized (Cloudflare's `cf.image`
//! in production, the Images binding locally), the size limits, signing and the cache lifetime. Each key is read
//! through [`Vars`], so a bad value names its key.

use crate::config::{ConfigError, Vars};

/// How variants are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagesMode {
    /// Production on a zone with Image Resizing: the source fetch carries `cf.image` options.
    CfImage,
    /// The Images binding `IMAGES` (Miniflare implements it with sharp locally; the real one in production).
    Binding,
}

/// Limits every parsed transform must respect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest width or height in device pixels (after `dpr`).
    pub max_side: u32,
    /// If non-empty, the only widths (CSS and device pixels) a request may ask for, and its heights unless
    /// `allowed_heights` lists them.
    pub allowed_widths: Vec<u32>,
    /// The only heights, when `allowed_widths` is set and this is not empty.
    pub allowed_heights: Vec<u32>,
    /// If non-empty, the only qualities (`q`) a request may ask for; `default_quality` is one of them.
    pub allowed_qualities: Vec<u8>,
    /// Source paths must start with one of these (each empty or ending in `/`); empty list = any path.
    pub source_prefixes: Vec<String>,
    /// Quality used when the request gives none.
    pub default_quality: u8,
}

#[cfg(test)]
impl Limits {
    /// Limits with no lists: any width, height, quality and source within `max_side` (the tests' common case).
    pub fn open(max_side: u32) -> Self {
        Self {
            max_side,
            allowed_widths: vec![],
            allowed_heights: vec![],
            allowed_qualities: vec![],
            source_prefixes: vec![],
            default_quality: 85,
        }
    }
}

/// The shortest `IMAGES_SIGNING_SECRET`, in bytes: HMAC-SHA256's output length (RFC 2104 §3).
pub const MIN_SIGNING_SECRET_BYTES: usize = 32;

/// The images settings. Its `Debug` never prints the signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ImagesConfig {
    pub mode: ImagesMode,
    /// Base URL of the image origin (`http(s)://host[:port][/path]`, no trailing slash); unset = the route answers 404.
    pub origin: Option<String>,
    pub limits: Limits,
    /// The HMAC key when signed URLs are required (`IMAGES_SIGNING = true`); `None` when signing is off.
    pub signing_secret: Option<String>,
    /// `max-age` of cached variants, in seconds.
    pub cache_ttl_secs: u64,
    /// Largest source body accepted; larger answers 413.
    pub max_source_bytes: u64,
    /// `IMAGES_SOURCE_TIMEOUT_MS`: how long a source fetch (headers and body; in cf-image mode the resize too) may
    /// take before it is cut off with 504.
    pub source_timeout_ms: u32,
    /// The settings a variant's bytes depend on besides its URL (mode, origin, the bound on open sides, the byte cap
    /// past which the original is stored in a variant's place), as a short hash in every cache key: after a change,
    /// variants made under the old settings are not served for a year.
    pub variant_scope: String,
}

impl std::fmt::Debug for ImagesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagesConfig")
            .field("mode", &self.mode)
            .field("origin", &self.origin)
            .field("limits", &self.limits)
            .field("signing", &self.signing_secret.is_some())
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("max_source_bytes", &self.max_source_bytes)
            .field("source_timeout_ms", &self.source_timeout_ms)
            .field("variant_scope", &self.variant_scope)
            .finish()
    }
}

impl ImagesConfig {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let mode = match vars
            .one_of("IMAGES_MODE", &["cf-image", "binding"], "binding")?
            .as_str()
        {
            "cf-image" => ImagesMode::CfImage,
            _ => ImagesMode::Binding,
        };
        let origin = vars
            .optional_string("IMAGES_ORIGIN")?
            .map(|o| crate::config::origin_url("IMAGES_ORIGIN", &o))
            .transpose()?;
        let max_side = vars.u64_in("IMAGES_MAX_SIDE", 4096, 16, 12_000)? as u32;
        let sizes = |key: &str| -> Result<Vec<u32>, ConfigError> {
            let listed: Vec<u32> = restricting(vars.list(key)?, key)?;
            match listed.iter().position(|w| *w == 0 || *w > max_side) {
                Some(i) => Err(ConfigError::new(
                    key,
                    format!(
                        "entry {i} ({}) must be between 1 and IMAGES_MAX_SIDE ({max_side})",
                        listed[i]
                    ),
                )),
                None => Ok(listed),
            }
        };
        let allowed_widths = sizes("IMAGES_ALLOWED_WIDTHS")?;
        let allowed_heights = sizes("IMAGES_ALLOWED_HEIGHTS")?;
        if allowed_widths.is_empty() && !allowed_heights.is_empty() {
            return Err(ConfigError::new(
                "IMAGES_ALLOWED_HEIGHTS",
                "needs IMAGES_ALLOWED_WIDTHS: the lists bound the variants together",
            ));
        }
        let default_quality = vars.u64_in("IMAGES_DEFAULT_QUALITY", 85, 1, 100)? as u8;
        let allowed_qualities: Vec<u8> = restricting(
            vars.list::<u64>("IMAGES_ALLOWED_QUALITIES")?,
            "IMAGES_ALLOWED_QUALITIES",
        )?
        .into_iter()
        .enumerate()
        .map(|(i, q)| match u8::try_from(q) {
            Ok(q @ 1..=100) => Ok(q),
            _ => Err(ConfigError::new(
                "IMAGES_ALLOWED_QUALITIES",
                format!("entry {i} ({q}) must be between 1 and 100"),
            )),
        })
        .collect::<Result<_, _>>()?;
        if !allowed_qualities.is_empty() && !allowed_qualities.contains(&default_quality) {
            return Err(ConfigError::new(
                "IMAGES_ALLOWED_QUALITIES",
                format!(
                    "must include IMAGES_DEFAULT_QUALITY ({default_quality}), the quality of a request that gives none"
                ),
            ));
        }
        let source_prefixes: Vec<String> = restricting(
            vars.list("IMAGES_SOURCE_PREFIXES")?,
            "IMAGES_SOURCE_PREFIXES",
        )?;
        for (i, p) in source_prefixes.iter().enumerate() {
            // Compared with decoded request paths, so written decoded: `ph%6Ftos/` could never match.
            let well_formed = p.is_empty()
                || (p.ends_with('/')
                    && !p.contains('%')
                    && crate::images::source::normalise(&p[..p.len() - 1]).is_ok());
            if !well_formed {
                return Err(ConfigError::new(
                    "IMAGES_SOURCE_PREFIXES",
                    format!("entry {i} must be a relative path ending in `/`, not percent-encoded (like \"photos/\")"),
                ));
            }
        }
        let signing = vars.bool_or("IMAGES_SIGNING", false)?;
        // Asked for whether or not signing is on, so the key counts as known to `config::keys` in every
        // configuration; only checked when signing uses it.
        vars.raw("IMAGES_SIGNING_SECRET");
        let signing_secret = if signing {
            let secret = vars.required_string("IMAGES_SIGNING_SECRET")?;
            // Counted in bytes, as HMAC takes the key: its UTF-8 bytes. RFC 2104 §3 discourages a key shorter than
            // the hash's output (32 bytes for SHA-256); a count of characters would only be stricter for non-ASCII
            // text, and says nothing more of the key's entropy.
            if secret.len() < MIN_SIGNING_SECRET_BYTES {
                return Err(ConfigError::new(
                    "IMAGES_SIGNING_SECRET",
                    format!(
                        "must be at least {MIN_SIGNING_SECRET_BYTES} bytes (UTF-8; 32 ASCII characters), the \
                         length of an HMAC-SHA256 output"
                    ),
                ));
            }
            Some(secret)
        } else {
            None
        };
        // At most half an isolate's 128 MB: the source is held whole while it is resized.
        let max_source_bytes = vars.u64_in(
            "IMAGES_MAX_SOURCE_BYTES",
            20 * 1024 * 1024,
            1024,
            64 * 1024 * 1024,
        )?;
        let variant_scope = {
            use sha2::Digest;
            let digest =
                sha2::Sha256::digest(format!("{mode:?}|{origin:?}|{max_side}|{max_source_bytes}"));
            hex::encode(&digest[..6])
        };
        Ok(Self {
            variant_scope,
            mode,
            origin,
            limits: Limits {
                max_side,
                allowed_widths,
                allowed_heights,
                allowed_qualities,
                source_prefixes,
                default_quality,
            },
            signing_secret,
            cache_ttl_secs: vars.u64_in("IMAGES_CACHE_TTL", 31_536_000, 1, 31_536_000)?,
            max_source_bytes,
            source_timeout_ms: vars.u64_in("IMAGES_SOURCE_TIMEOUT_MS", 15_000, 100, 30_000)? as u32,
        })
    }
}

/// A list that bounds what requests may ask for, unset (empty) when it bounds nothing. Written `[]` it is refused: an
/// empty list reads as "nothing allowed" to whoever wrote it (a template that emptied it, say), and was served as no
/// bound at all — every size, every source path.
fn restricting<T>(listed: Option<Vec<T>>, key: &str) -> Result<Vec<T>, ConfigError> {
    match listed {
        Some(listed) if listed.is_empty() => Err(ConfigError::new(
            key,
            "must list at least one entry: an empty list would allow any; leave it unset for that",
        )),
        listed => Ok(listed.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};

    use super::*;

    fn parse(pairs: &[(&'static str, Value)]) -> Result<ImagesConfig, ConfigError> {
        let src: HashMap<&str, Value> = pairs.iter().cloned().collect();
        ImagesConfig::parse(&Vars::new(&src))
    }

    /// `[]` was taken as unset, so a list emptied to allow nothing allowed everything.
    #[test]
    fn an_empty_list_that_would_bound_nothing_is_refused() {
        for (key, with) in [
            ("IMAGES_ALLOWED_WIDTHS", None),
            (
                "IMAGES_ALLOWED_HEIGHTS",
                Some(("IMAGES_ALLOWED_WIDTHS", json!([320]))),
            ),
            ("IMAGES_SOURCE_PREFIXES", None),
            ("IMAGES_ALLOWED_QUALITIES", None),
        ] {
            for empty in [json!([]), json!("[]")] {
                let mut pairs = vec![(key, empty.clone())];
                pairs.extend(with.clone());
                let error = parse(&pairs).expect_err(key);
                assert_eq!(error.key, key, "{empty}: {error}");
                assert!(error.problem.contains("at least one entry"), "{error}");
            }
            let mut unset = vec![(key, json!(""))];
            unset.extend(with);
            parse(&unset).expect("an empty string is unset");
        }
    }

    #[test]
    fn defaults_are_binding_mode_unsigned_with_a_year_of_cache() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.mode, ImagesMode::Binding);
        assert_eq!(c.origin, None);
        assert_eq!(c.signing_secret, None);
        assert_eq!(c.cache_ttl_secs, 31_536_000);
        assert_eq!(c.limits.max_side, 4096);
    }

    #[test]
    fn the_variant_scope_follows_the_settings_a_variant_depends_on() {
        let scope = |vars: &[(&'static str, Value)]| parse(vars).expect("valid").variant_scope;
        let base = scope(&[("IMAGES_ORIGIN", json!("https://a.example"))]);
        assert_eq!(
            base,
            scope(&[("IMAGES_ORIGIN", json!("https://a.example"))]),
            "stable"
        );
        assert_eq!(
            base,
            scope(&[
                ("IMAGES_ORIGIN", json!("https://a.example")),
                ("IMAGES_CACHE_TTL", json!(60))
            ]),
            "the TTL does not change a variant's bytes"
        );
        for other in [
            scope(&[("IMAGES_ORIGIN", json!("https://b.example"))]),
            scope(&[
                ("IMAGES_ORIGIN", json!("https://a.example")),
                ("IMAGES_MODE", json!("cf-image")),
            ]),
            scope(&[
                ("IMAGES_ORIGIN", json!("https://a.example")),
                ("IMAGES_MAX_SIDE", json!(2000)),
            ]),
            // Past the cap, the original is stored in a variant's place: a raised cap must make the variant.
            scope(&[
                ("IMAGES_ORIGIN", json!("https://a.example")),
                ("IMAGES_MAX_SOURCE_BYTES", json!(5_000_000)),
            ]),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_full_configuration_is_read() {
        let c = parse(&[
            ("IMAGES_MODE", json!("cf-image")),
            ("IMAGES_ORIGIN", json!("https://img.example.com/base/")),
            ("IMAGES_ALLOWED_WIDTHS", json!([100, 300])),
            ("IMAGES_SOURCE_PREFIXES", json!(["photos/", ""])),
            ("IMAGES_SIGNING", json!("true")),
            ("IMAGES_SIGNING_SECRET", json!("s".repeat(32))),
        ])
        .expect("valid");
        assert_eq!(c.mode, ImagesMode::CfImage);
        assert_eq!(c.origin.as_deref(), Some("https://img.example.com/base"));
        assert_eq!(c.limits.allowed_widths, vec![100, 300]);
        let q = parse(&[
            ("IMAGES_ALLOWED_QUALITIES", json!([60, 85])),
            ("IMAGES_DEFAULT_QUALITY", json!(60)),
        ])
        .expect("qualities");
        assert_eq!(q.limits.allowed_qualities, vec![60, 85]);
        assert!(c.signing_secret.is_some());
        assert!(
            !format!("{c:?}").contains(&"s".repeat(32)),
            "Debug never prints the secret"
        );
    }

    #[test]
    fn every_invalid_setting_names_its_key() {
        let cases: &[(&[(&'static str, Value)], &str)] = &[
            (&[("IMAGES_MODE", json!("magic"))], "IMAGES_MODE"),
            (&[("IMAGES_ORIGIN", json!("ftp://x"))], "IMAGES_ORIGIN"),
            (
                &[("IMAGES_ORIGIN", json!("https://u:p@x"))],
                "IMAGES_ORIGIN",
            ),
            (&[("IMAGES_ORIGIN", json!("https://"))], "IMAGES_ORIGIN"),
            (
                &[("IMAGES_ORIGIN", json!("https://img.example:99999"))],
                "IMAGES_ORIGIN",
            ),
            (
                &[("IMAGES_ORIGIN", json!("https://img.example:0"))],
                "IMAGES_ORIGIN",
            ),
            (
                &[("IMAGES_ORIGIN", json!("https://img.example:http"))],
                "IMAGES_ORIGIN",
            ),
            (&[("IMAGES_ORIGIN", json!("https://[::1"))], "IMAGES_ORIGIN"),
            (
                &[("IMAGES_ORIGIN", json!("https://img.example/a/%2e%2e/b"))],
                "IMAGES_ORIGIN",
            ),
            (
                &[("IMAGES_SOURCE_PREFIXES", json!(["ph%6Ftos/"]))],
                "IMAGES_SOURCE_PREFIXES",
            ),
            (
                &[("IMAGES_MAX_SOURCE_BYTES", json!(64 * 1024 * 1024 + 1))],
                "IMAGES_MAX_SOURCE_BYTES",
            ),
            (&[("IMAGES_MAX_SIDE", json!(0))], "IMAGES_MAX_SIDE"),
            (
                &[("IMAGES_ALLOWED_WIDTHS", json!([0]))],
                "IMAGES_ALLOWED_WIDTHS",
            ),
            (
                &[("IMAGES_ALLOWED_WIDTHS", json!([99999]))],
                "IMAGES_ALLOWED_WIDTHS",
            ),
            (
                &[("IMAGES_ALLOWED_WIDTHS", json!("wide"))],
                "IMAGES_ALLOWED_WIDTHS",
            ),
            (
                &[("IMAGES_ALLOWED_HEIGHTS", json!([200]))],
                "IMAGES_ALLOWED_HEIGHTS",
            ),
            (
                &[
                    ("IMAGES_ALLOWED_WIDTHS", json!([300])),
                    ("IMAGES_ALLOWED_HEIGHTS", json!([0])),
                ],
                "IMAGES_ALLOWED_HEIGHTS",
            ),
            (
                &[("IMAGES_ALLOWED_QUALITIES", json!([0]))],
                "IMAGES_ALLOWED_QUALITIES",
            ),
            (
                &[("IMAGES_ALLOWED_QUALITIES", json!([101]))],
                "IMAGES_ALLOWED_QUALITIES",
            ),
            (
                // The quality used when a request gives none must be one the list allows.
                &[("IMAGES_ALLOWED_QUALITIES", json!([60, 75]))],
                "IMAGES_ALLOWED_QUALITIES",
            ),
            (
                &[("IMAGES_SOURCE_PREFIXES", json!(["../"]))],
                "IMAGES_SOURCE_PREFIXES",
            ),
            (
                &[("IMAGES_SOURCE_PREFIXES", json!(["photos"]))],
                "IMAGES_SOURCE_PREFIXES",
            ),
            (&[("IMAGES_SIGNING", json!(true))], "IMAGES_SIGNING_SECRET"),
            (
                &[
                    ("IMAGES_SIGNING", json!(true)),
                    ("IMAGES_SIGNING_SECRET", json!("short")),
                ],
                "IMAGES_SIGNING_SECRET",
            ),
            (&[("IMAGES_CACHE_TTL", json!(0))], "IMAGES_CACHE_TTL"),
            (
                &[("IMAGES_DEFAULT_QUALITY", json!(101))],
                "IMAGES_DEFAULT_QUALITY",
            ),
            (
                &[("IMAGES_MAX_SOURCE_BYTES", json!("big"))],
                "IMAGES_MAX_SOURCE_BYTES",
            ),
            (
                &[("IMAGES_SOURCE_TIMEOUT_MS", json!(0))],
                "IMAGES_SOURCE_TIMEOUT_MS",
            ),
        ];
        for (pairs, key) in cases {
            let error = parse(pairs).expect_err("must be refused");
            assert_eq!(error.key, *key, "case {pairs:?}: {error}");
        }
    }

    /// The secret's floor is counted as HMAC takes the key, in UTF-8 bytes, and the refusal (like README) says so:
    /// it said "characters" while counting bytes, so 16 `é` (32 bytes) passed a rule they read as unmet.
    #[test]
    fn the_signing_secrets_floor_is_32_bytes_and_says_so() {
        let signed = |secret: String| {
            parse(&[
                ("IMAGES_SIGNING", json!(true)),
                ("IMAGES_SIGNING_SECRET", json!(secret)),
            ])
        };
        let error = signed("s".repeat(31)).expect_err("31 bytes refused");
        assert!(error.problem.contains("at least 32 bytes"), "{error}");
        assert!(signed("s".repeat(32)).is_ok());
        assert!(signed("é".repeat(16)).is_ok(), "16 characters, 32 bytes");
        assert!(signed(format!("{}s", "é".repeat(15))).is_err(), "31 bytes");
    }
}
