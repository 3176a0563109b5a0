//! Settings that look like edgekit's but that no code reads: a misspelled key (`SESSION_IDLE_SEC`,
//! `GATEWAY_JWKS_TTL_SECS`, `RATE_LIMITS`) is never read, so its default silently applies while the operator believes
//! the limit is set. Pure: the isolate lists the var and secret names it was given (bindings excluded, see
//! `entry::env_vars`), and the known keys are exactly the ones [`super::Vars`] recorded while parsing — no second
//! list that could drift from the readers.
//!
//! A var that no reader asked for is reported when it looks like one of edgekit's keys:
//! - it is a known key but for letter case or `-` for `_` (`gateway_routes`);
//! - it is within a small edit distance of one (a typo: 1 edit up to 8 characters, 2 up to 16, 3 beyond, so
//!   `_SECS` for `_SECONDS` is caught on every long key);
//! - its `_`-separated words are a known key's, each the same, a synonym (`SIZE`/`BYTES`, `SECRET`/`KEY`,
//!   `SEC`/`SECONDS`, `SESSION`/`AUTH`/`JWT`), the other unit (`GATEWAY_JWKS_TTL_MS`) or within one slip
//!   (`MAX_BODY_SIZE`, `IMAGES_SIGNING_KEY`), or those words with some left out or added (`RATE_LIMITS` for
//!   `RATE_LIMIT_POLICIES`, `PASSWORD_ITERATIONS`), at least two of them matched;
//! - it starts with a prefix edgekit owns: the words that two or more known keys sharing a first word all share
//!   (`GATEWAY_`, `SESSION_`, `ROOMS_`…, `RATE_LIMIT_` — not `RATE_`, which `RATE_CARD_URL` starts with too), which
//!   no other code in this Worker reads.
//!
//! Anything else (`STRIPE_KEY`, `MY_FLAG`) is the user's own and never reported. A report is a warning, not a
//! refusal: edgekit serves with the configuration it did read.

use std::collections::{BTreeMap, BTreeSet};

/// One var no reader asked for, and the known key it most likely meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadKey {
    pub key: String,
    pub did_you_mean: String,
}

impl UnreadKey {
    /// The sentence its log line carries.
    pub fn problem(&self) -> String {
        let mut problem = format!(
            "`{}` is set but edgekit reads no such key, so its default applies; did you mean `{}`?",
            self.key, self.did_you_mean
        );
        // Renamed without converting its value, a duration would be read a thousand times too long or short.
        let unit = |key: &str| {
            let last = key.rsplit(['_', '-']).next().unwrap_or(key);
            match canonical(&last.to_ascii_uppercase()) {
                "SECONDS" => Some("seconds"),
                "MS" => Some("milliseconds"),
                _ => None,
            }
        };
        if let (Some(written), Some(meant)) = (unit(&self.key), unit(&self.did_you_mean)) {
            if written != meant {
                problem.push_str(&format!(
                    " It counts {meant}, not {written}: convert the value."
                ));
            }
        }
        problem
    }
}

/// The vars among `set` that no reader asked for (`read`) and that look like edgekit's, in `set`'s order, each with
/// its nearest known key.
pub fn unread_keys<'a>(
    set: impl IntoIterator<Item = &'a str>,
    read: &BTreeSet<String>,
) -> Vec<UnreadKey> {
    let known: Vec<Key> = read.iter().map(|k| Key::new(k)).collect();
    let prefixes = owned_prefixes(read);
    set.into_iter()
        .filter(|key| !read.contains(*key))
        .filter_map(|key| {
            let unknown = Key::new(key);
            let prefix = prefixes
                .iter()
                .find(|p| unknown.normal.starts_with(p.as_str()));
            // The best-ranked known key this one could be a slip for.
            let nearest = known
                .iter()
                .filter_map(|k| Some((unknown.rank(k)?, k)))
                .min_by(|(a, ka), (b, kb)| a.cmp(b).then_with(|| ka.raw.cmp(&kb.raw)))
                .map(|(_, k)| k);
            let did_you_mean = match (nearest, prefix) {
                (Some(k), _) => k.raw.clone(),
                // Only the prefix says it is ours: the key sharing the most of its words beyond the prefix's
                // (wherever they stand: `JWT_LEEWAY_SECS` is `GATEWAY_JWT_LEEWAY_SECONDS`), else the nearest key
                // under that prefix.
                (None, Some(p)) => {
                    let prefix_words = p.split('_').filter(|w| !w.is_empty()).count();
                    known
                        .iter()
                        .map(|k| (unknown.shared_words(k), k))
                        .filter(|(shared, _)| *shared > prefix_words)
                        .max_by(|(a, ka), (b, kb)| {
                            a.cmp(b).then_with(|| {
                                distance(&unknown.normal, &kb.normal)
                                    .cmp(&distance(&unknown.normal, &ka.normal))
                                    .then_with(|| kb.raw.cmp(&ka.raw))
                            })
                        })
                        .map(|(_, k)| k)
                        .or_else(|| {
                            known
                                .iter()
                                .filter(|k| k.normal.starts_with(p.as_str()))
                                .min_by_key(|k| {
                                    (distance(&unknown.normal, &k.normal), k.raw.clone())
                                })
                        })?
                        .raw
                        .clone()
                }
                (None, None) => return None,
            };
            Some(UnreadKey {
                key: key.to_owned(),
                did_you_mean,
            })
        })
        .collect()
}

/// The prefixes edgekit owns: for each first word that two or more known keys share, the words (with their `_`) all
/// keys under it share, short of a whole key: `SESSION_`, but `RATE_LIMIT_` (for `RATE_LIMIT_POLICIES` and
/// `RATE_LIMIT_SHARD_KEY`), not `RATE_`, which users' own keys start with (`RATE_CARD_URL`).
pub(crate) fn owned_prefixes(read: &BTreeSet<String>) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    for key in read {
        let words: Vec<&str> = key.split('_').collect();
        if words.len() >= 2 {
            groups.entry(words[0]).or_default().push(words);
        }
    }
    groups
        .into_values()
        .filter(|keys| keys.len() >= 2)
        .map(|keys| {
            let shortest = keys.iter().map(Vec::len).min().unwrap_or(1);
            let shared = (1..shortest)
                .take_while(|&i| keys.iter().all(|k| k[..i] == keys[0][..i]))
                .last()
                .unwrap_or(1);
            format!("{}_", keys[0][..shared].join("_"))
        })
        .collect()
}

/// Whether a plain object's field names are a version-metadata binding's (`[version_metadata]` in wrangler.toml):
/// exactly `id`, `tag` and `timestamp`, in any order. A binding, never a var — and no table var edgekit reads has
/// that shape, so a misspelling of one is never taken for it.
pub fn version_metadata_fields(fields: &[String]) -> bool {
    let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    fields.sort_unstable();
    fields == ["id", "tag", "timestamp"]
}

/// A key as written and as compared: upper case, `-` read as `_`.
struct Key {
    raw: String,
    normal: String,
}

impl Key {
    fn new(raw: &str) -> Self {
        Self {
            raw: raw.to_owned(),
            normal: raw.to_ascii_uppercase().replace('-', "_"),
        }
    }

    /// Its `_`-separated words, as written (compared as [`canonical`] spells them where synonyms count).
    fn words(&self) -> Vec<&str> {
        self.normal.split('_').filter(|w| !w.is_empty()).collect()
    }

    /// How many of this key's words (as [`canonical`] spells them) `known` has too, wherever they stand.
    fn shared_words(&self, known: &Key) -> usize {
        let theirs: BTreeSet<&str> = known.words().into_iter().map(canonical).collect();
        let mine: BTreeSet<&str> = self.words().into_iter().map(canonical).collect();
        mine.intersection(&theirs).count()
    }

    /// How close `known` is, lower first, when this key could be a slip for it: (0, _) the same but for case or
    /// separators; (1, d) the same words, each the same or a synonym or one slip away (the first only as its plural or
    /// singular: `MAX_BODY_SIZE`, `IMAGES_SIGNING_KEY`; a unit word as the other unit: `GATEWAY_JWKS_TTL_MS`); (2, d)
    /// those words with some left out or added; (3, d) a typo `d` edits away.
    ///
    /// Every var is ranked against every known key once per isolate start, so the edit table is filled only where
    /// it can matter: two lengths further apart than the typo budget are that many edits apart already.
    fn rank(&self, known: &Key) -> Option<(u8, usize)> {
        if self.normal == known.normal {
            return Some((0, 0));
        }
        let (mine, theirs) = (self.words(), known.words());
        if mine.len() == theirs.len()
            && mine
                .first()
                .zip(theirs.first())
                .is_some_and(|(a, b)| same_head(canonical(a), canonical(b)))
            && mine
                .iter()
                .zip(&theirs)
                .all(|(a, b)| same_word(canonical(a), canonical(b)) || other_unit(a, b))
        {
            return Some((1, distance(&self.normal, &known.normal)));
        }
        if words_within(&mine, &theirs) || words_within(&theirs, &mine) {
            return Some((2, distance(&self.normal, &known.normal)));
        }
        let budget = typo_budget(self.normal.len());
        if self.normal.len().abs_diff(known.normal.len()) > budget {
            return None;
        }
        let d = distance(&self.normal, &known.normal);
        (d <= budget).then_some((3, d))
    }
}

/// Edits a typo may take in a key `len` characters long.
fn typo_budget(len: usize) -> usize {
    match len {
        0..=4 => 0,
        5..=8 => 1,
        9..=16 => 2,
        _ => 3,
    }
}

/// Whether every word of `few` matches a word of `many`, in order, with at least two matched and `few` shorter.
fn words_within<'a>(few: &[&'a str], many: &[&'a str]) -> bool {
    if few.len() < 2 || few.len() >= many.len() {
        return false;
    }
    // Synonyms count only where the first words meet (`SESSION_SECRET` in `AUTH_SIGNING_KEY`): taken anywhere, they
    // made a user's own two words the tail of some key (`CACHE_SECONDS` of `SESSION_CACHE_SECS`, `MESSAGE_SIZE` of
    // `ROOMS_MAX_MESSAGE_BYTES`), as the same words written the key's way were not.
    let aligned = same_head(canonical(few[0]), canonical(many[0]));
    let word = |w: &'a str| if aligned { canonical(w) } else { w };
    // The first word (which names what the key is of: `OAUTH_SECRET` is not `AUTH_SIGNING_KEY`'s) only as itself, a
    // synonym or its plural; any other slip in it is the typo tier's to find.
    let mut rest = many.iter();
    few.iter().enumerate().all(|(i, w)| {
        rest.by_ref().any(|m| {
            if i == 0 {
                same_head(word(w), word(m))
            } else {
                same_word(word(w), word(m))
            }
        })
    })
}

/// Whether two first words name the same thing: equal (synonyms are already one word), or one the other's plural
/// (`ROOM_TICKET_TTL` is `ROOMS_TICKET_TTL_SECONDS` misspelt, `IMAGE_SIGNING_KEY` `IMAGES_SIGNING_SECRET`). A slip
/// elsewhere in the word is not taken: `OAUTH` is its own section, not `AUTH` mistyped.
fn same_head(a: &str, b: &str) -> bool {
    let plural = |one: &str, many: &str| many.len() >= 4 && many.strip_suffix('S') == Some(one);
    a == b || plural(a, b) || plural(b, a)
}

/// A word as edgekit's keys spell what it means: other names operators give the same thing (`SIZE` for `BYTES`,
/// `SECRET` for `KEY`, `SEC` for `SECONDS`) compare equal, as do `SESSION`, `AUTH` and `JWT`, the words of one
/// section (sessions and the tokens that sign them in: `SESSION_SECRET` means `AUTH_SIGNING_KEY`). Only whole
/// words are compared so: no key is suggested that is not one.
fn canonical(word: &str) -> &str {
    match word {
        "SIZE" | "BYTE" | "BYTES" => "BYTES",
        "SECRET" | "KEY" => "KEY",
        "S" | "SEC" | "SECS" | "SECOND" | "SECONDS" => "SECONDS",
        "MS" | "MILLIS" | "MILLISECONDS" => "MS",
        "SESSION" | "SESSIONS" | "AUTH" | "JWT" => "AUTH",
        _ => word,
    }
}

/// Whether two words are the two units edgekit's durations come in (`_SECONDS`, `_MS`, in any spelling): a key
/// written in the other unit has the same words as the one meant, and only its value needs converting.
fn other_unit(a: &str, b: &str) -> bool {
    let unit = |w: &str| matches!(canonical(w), "SECONDS" | "MS");
    unit(a) && unit(b)
}

/// Equal, or one slip apart when both are long enough for a slip to be one (`LIMITS`/`LIMIT`).
fn same_word(a: &str, b: &str) -> bool {
    a == b || (a.len() >= 4 && b.len() >= 4 && distance(a, b) <= 1)
}

/// Optimal string alignment distance (insertions, deletions, substitutions, adjacent swaps), over bytes: keys are
/// short, so the quadratic table is a few hundred cells.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let width = b.len() + 1;
    #[cfg(test)]
    tests::CELLS.with(|c| c.set(c.get() + (a.len() + 1) * width));
    let mut table = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            table[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (table[(i - 1) * width + j] + 1)
                    .min(table[i * width + j - 1] + 1)
                    .min(table[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(table[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    table[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Edit-table cells `distance` filled on this thread: the work a ranking took, counted rather than timed.
        pub(super) static CELLS: Cell<usize> = const { Cell::new(0) };
    }

    fn read() -> BTreeSet<String> {
        [
            "SERVICE_NAME",
            "ENVIRONMENT",
            "MAX_BODY_BYTES",
            "DEBUG_ROUTES",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
            "RATE_LIMIT_POLICIES",
            "PASSWORD_PBKDF2_ITERATIONS",
            "SESSION_IDLE_SECS",
            "SESSION_MAX_SECS",
            "GATEWAY_JWKS_TTL_SECONDS",
            "GATEWAY_ROUTES",
            "IMAGES_SIGNING",
            "IMAGES_SIGNING_SECRET",
            "AUTH_SIGNING_KEY",
            "ROOMS_MAX_MESSAGE_BYTES",
            "ROOMS_MAX_MEMBERS",
            "ROOMS_TICKET_TTL_SECONDS",
        ]
        .map(str::to_owned)
        .into()
    }

    fn meant(key: &str) -> Option<String> {
        let found = unread_keys([key], &read());
        assert!(found.len() <= 1);
        found.into_iter().next().map(|u| u.did_you_mean)
    }

    #[test]
    fn slips_of_a_known_key_are_reported_with_the_key_they_meant() {
        for (written, key) in [
            ("GATEWAY_JWKS_TTL_SECOND", "GATEWAY_JWKS_TTL_SECONDS"),
            ("GATEWAY_JWKS_TTL_SECS", "GATEWAY_JWKS_TTL_SECONDS"),
            ("SESSION_IDLE_SEC", "SESSION_IDLE_SECS"),
            ("SESSION_IDLE_SECONDS", "SESSION_IDLE_SECS"),
            ("SESSION_IDLE", "SESSION_IDLE_SECS"),
            ("ROOMS_MAX_MEMBER", "ROOMS_MAX_MEMBERS"),
            ("ROOMS_TICKET_TTL_SECS", "ROOMS_TICKET_TTL_SECONDS"),
            ("RATE_LIMITS", "RATE_LIMIT_POLICIES"),
            ("RATE_LIMIT_POLICY", "RATE_LIMIT_POLICIES"),
            ("gateway_routes", "GATEWAY_ROUTES"),
            ("RATE-LIMIT-POLICIES", "RATE_LIMIT_POLICIES"),
            ("ENVIRONMNET", "ENVIRONMENT"),
            ("ESSION_MAX_SECS", "SESSION_MAX_SECS"),
            ("DEBUG_ROUTE", "DEBUG_ROUTES"),
            ("MAX_BODY", "MAX_BODY_BYTES"),
            ("PASSWORD_ITERATIONS", "PASSWORD_PBKDF2_ITERATIONS"),
            ("IMAGES_SECRET", "IMAGES_SIGNING_SECRET"),
            ("JWT_ISSUR", "JWT_ISSUER"),
            ("GATEWAY_SOMETHING_NEW", "GATEWAY_ROUTES"),
        ] {
            assert_eq!(meant(written).as_deref(), Some(key), "{written}");
        }
    }

    /// A first word written singular for plural or back (`ROOM_` for `ROOMS_`, `IMAGE_` for `IMAGES_`) is the same
    /// section misspelt: the key meant is found by its words, as before first words were compared exactly, and the
    /// typo tier (whole keys) is too short-sighted to find it when another word was left out or is a synonym.
    #[test]
    fn a_first_word_singular_for_plural_is_still_the_key_meant() {
        for (written, key) in [
            ("ROOM_TICKET_TTL", "ROOMS_TICKET_TTL_SECONDS"),
            ("ROOM_MAX_MESSAGE_SIZE", "ROOMS_MAX_MESSAGE_BYTES"),
            ("IMAGE_SIGNING_KEY", "IMAGES_SIGNING_SECRET"),
            ("IMAGE_SECRET", "IMAGES_SIGNING_SECRET"),
            ("GATEWAYS_JWKS_TTL", "GATEWAY_JWKS_TTL_SECONDS"),
            ("SESSIONS_IDLE_SECONDS", "SESSION_IDLE_SECS"),
        ] {
            assert_eq!(meant(written).as_deref(), Some(key), "{written}");
        }
    }

    /// A key written in the other unit (`_MS` for `_SECONDS`, or back) is the key meant: the same words, the value
    /// to convert. Before, the unit word counted as a typo and the nearest key by letters won — another knob in the
    /// same unit: `GATEWAY_JWKS_HOLD_SECONDS` was told to be `GATEWAY_JWKS_TTL_SECONDS`, `GATEWAY_JWKS_TTL_MS`
    /// `GATEWAY_JWKS_HOLD_MS`, and following the hint would have set the wrong one.
    #[test]
    fn a_key_written_in_another_unit_is_the_key_meant() {
        let known = crate::config::Config::known_keys();
        for (written, key) in [
            ("GATEWAY_JWKS_TTL_MS", "GATEWAY_JWKS_TTL_SECONDS"),
            ("GATEWAY_JWKS_HOLD_SECONDS", "GATEWAY_JWKS_HOLD_MS"),
            ("GATEWAY_JWKS_HOLD_SECS", "GATEWAY_JWKS_HOLD_MS"),
            ("GATEWAY_REFRESH_HOLD_SECONDS", "GATEWAY_REFRESH_HOLD_MS"),
            ("SESSION_IDLE_MS", "SESSION_IDLE_SECS"),
            ("ROOMS_LIST_MEMORY_SECONDS", "ROOMS_LIST_MEMORY_MS"),
        ] {
            let found = unread_keys([written], &known);
            assert_eq!(
                found.first().map(|u| u.did_you_mean.as_str()),
                Some(key),
                "{written}"
            );
        }
        // The hint says the value is to be converted: renamed as it is, 30000 ms would be read as 30000 s.
        let found = unread_keys(["GATEWAY_JWKS_TTL_MS"], &known);
        assert_eq!(
            found[0].problem(),
            "`GATEWAY_JWKS_TTL_MS` is set but edgekit reads no such key, so its default applies; did you mean \
             `GATEWAY_JWKS_TTL_SECONDS`? It counts seconds, not milliseconds: convert the value."
        );
        // A key in the same unit says nothing of it.
        assert!(!unread_keys(["GATEWAY_JWKS_TTL_SECS"], &known)[0]
            .problem()
            .contains("convert"));
    }

    /// A key that only an owned prefix marks as edgekit's is told the known key sharing its words past that prefix,
    /// wherever they stand, before the nearest key by letters under the prefix: `JWT_LEEWAY_SECS` was told
    /// `JWT_AUDIENCE`, the leeway being `GATEWAY_JWT_LEEWAY_SECONDS`.
    #[test]
    fn a_prefixed_key_is_told_the_key_sharing_its_words() {
        let known = crate::config::Config::known_keys();
        for (written, key) in [
            ("JWT_LEEWAY_SECS", "GATEWAY_JWT_LEEWAY_SECONDS"),
            ("JWT_LEEWAY", "GATEWAY_JWT_LEEWAY_SECONDS"),
            ("JWT_JWKS_TTL_SECONDS", "GATEWAY_JWKS_TTL_SECONDS"),
            ("JWT_MAX_BYTES", "GATEWAY_JWT_MAX_BYTES"),
            // Nothing shared past the prefix: the nearest key under it, as before.
            ("RATE_LIMIT_WINDOW", "RATE_LIMIT_POLICIES"),
            ("JWT_SOMETHING_NEW", "JWT_AUDIENCE"),
        ] {
            let found = unread_keys([written], &known);
            assert_eq!(
                found.first().map(|u| u.did_you_mean.as_str()),
                Some(key),
                "{written}"
            );
        }
    }

    /// Other words operators use for what a key's word says (`SIZE` for `BYTES`, `SECRET` for `KEY`, `SEC` for
    /// `SECONDS`; `SESSION`, `AUTH` and `JWT` for the one section) are matched as words: the key they meant is
    /// suggested, not a shorter key that is its prefix (`IMAGES_SIGNING`) or the nearest by letters under the same
    /// prefix (`SESSION_IDLE_SECS` for `SESSION_SECRET`), and a synonym alone reports nothing new.
    #[test]
    fn synonyms_of_a_keys_words_find_the_key_they_meant() {
        for (written, key) in [
            ("IMAGES_SIGNING_KEY", "IMAGES_SIGNING_SECRET"),
            ("MAX_BODY_SIZE", "MAX_BODY_BYTES"),
            ("ROOMS_MAX_MESSAGE_SIZE", "ROOMS_MAX_MESSAGE_BYTES"),
            ("SESSION_IDLE_SECONDS", "SESSION_IDLE_SECS"),
            ("SESSION_SECRET", "AUTH_SIGNING_KEY"),
            ("JWT_SECRET", "AUTH_SIGNING_KEY"),
            ("JWT_SIGNING_KEY", "AUTH_SIGNING_KEY"),
            ("AUTH_SECRET", "AUTH_SIGNING_KEY"),
        ] {
            assert_eq!(meant(written).as_deref(), Some(key), "{written}");
        }
        // Against every key edgekit reads, too.
        let known = crate::config::Config::known_keys();
        for (written, key) in [
            ("IMAGES_SIGNING_KEY", Some("IMAGES_SIGNING_SECRET")),
            ("SESSION_SECRET", Some("AUTH_SIGNING_KEY")),
            ("MAX_BODY_SIZE", Some("MAX_BODY_BYTES")),
            ("MY_OWN_FLAG", None),
            ("API_BASE_URL", None),
            ("SENTRY_DSN", None),
        ] {
            let found = unread_keys([written], &known);
            assert_eq!(
                found.first().map(|u| u.did_you_mean.as_str()),
                key,
                "{written}"
            );
        }
    }

    #[test]
    fn keys_edgekit_reads_and_the_users_own_keys_are_not_reported() {
        for key in read() {
            assert_eq!(meant(&key), None, "{key} is read");
        }
        for own in [
            "STRIPE_KEY",
            "MY_FLAG",
            "API_TOKEN",
            "SERVICE_URL",
            "MAX_RETRIES",
            "DEBUG",
            "NAME",
            "ENV",
            "DB_URL",
            "MY_OWN_FLAG",
            "API_BASE_URL",
            "SENTRY_DSN",
            "SECRET_KEY",
            "API_KEY",
            "APP_SECRET",
            "WEBHOOK_SECRET",
            "STRIPE_SECRET_KEY",
            "MAX_UPLOAD_SIZE",
            "CACHE_TTL_S",
            "USER_SESSION_KEY",
            "OAUTH_SECRET",
            "OAUTH_KEY",
            "AUTHS_URL",
            // A user's own words that a synonym made the tail of a key.
            "CACHE_SECONDS",
            "MAX_SECONDS",
            "IDLE_SECONDS",
            "MESSAGE_SIZE",
            "BODY_SIZE",
            "MAX_DOCUMENT_SIZE",
            "ACCESS_TTL_SECONDS",
        ] {
            assert_eq!(meant(own), None, "{own} is the user's");
        }
    }

    #[test]
    fn prefixes_are_first_words_shared_by_two_known_keys() {
        assert_eq!(
            owned_prefixes(&read()),
            ["GATEWAY_", "IMAGES_", "JWT_", "ROOMS_", "SESSION_"]
        );
    }

    /// `RATE_` is a word users' own keys start with (`RATE_CARD_URL`, `RATE_PLAN`): edgekit's rate keys share
    /// `RATE_LIMIT_`, and only that is its own. Before, every `RATE_…` var was reported as a slip for
    /// `RATE_LIMIT_POLICIES`. A prefix is the words all keys under a first word share.
    #[test]
    fn a_prefix_is_the_words_edgekits_keys_share_not_only_the_first() {
        let known = crate::config::Config::known_keys();
        let meant = |written: &str| {
            unread_keys([written], &known)
                .first()
                .map(|u| u.did_you_mean.clone())
        };
        for own in ["RATE_CARD_URL", "RATE_PLAN", "RATE_TABLE_ID"] {
            assert_eq!(meant(own), None, "{own} is the user's");
        }
        for (written, key) in [
            ("RATE_LIMIT_WINDOW", "RATE_LIMIT_POLICIES"),
            ("RATE_LIMITS", "RATE_LIMIT_POLICIES"),
            ("RATE_LIMIT_SHARD_SECRET", "RATE_LIMIT_SHARD_KEY"),
        ] {
            assert_eq!(meant(written).as_deref(), Some(key), "{written}");
        }
        assert!(
            meant("GATEWAY_SOMETHING_NEW").is_some(),
            "other prefixes stay"
        );
        assert!(owned_prefixes(&known).contains(&"RATE_LIMIT_".to_owned()));
        assert!(!owned_prefixes(&known).contains(&"RATE_".to_owned()));
    }

    #[test]
    fn reports_keep_the_order_they_were_given_in_and_say_what_to_do() {
        let found = unread_keys(["ROOMS_MAX_MEMBER", "MY_FLAG", "SESSION_IDLE_SEC"], &read());
        assert_eq!(
            found.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(),
            ["ROOMS_MAX_MEMBER", "SESSION_IDLE_SEC"]
        );
        assert_eq!(
            found[0].problem(),
            "`ROOMS_MAX_MEMBER` is set but edgekit reads no such key, so its default applies; did you mean \
             `ROOMS_MAX_MEMBERS`?"
        );
    }

    /// Each var is ranked against every known key when an isolate starts, on its first request's CPU: filling the
    /// whole edit table for every pair took 27-105 ms (host, release) for 128 vars, several times a request's
    /// budget on some plans. Keys whose lengths differ by more than the typo budget need no table.
    #[test]
    fn ranking_many_vars_fills_few_edit_tables() {
        let known = crate::config::Config::known_keys();
        for pattern in ["STRIPE_KEY_{i}", "MY_APP_SETTING_NUMBER_{i}_VALUE"] {
            let names: Vec<String> = (0..128)
                .map(|i| pattern.replace("{i}", &i.to_string()))
                .collect();
            CELLS.with(|c| c.set(0));
            assert_eq!(
                unread_keys(names.iter().map(String::as_str), &known),
                vec![]
            );
            let per_var = CELLS.with(Cell::get) / names.len();
            assert!(per_var <= 16_000, "{pattern}: {per_var} cells per var");
        }
    }

    #[test]
    fn a_version_metadata_binding_is_told_from_a_table_var_by_its_fields() {
        let fields = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert!(version_metadata_fields(&fields(&[
            "id",
            "tag",
            "timestamp"
        ])));
        assert!(version_metadata_fields(&fields(&[
            "timestamp",
            "id",
            "tag"
        ])));
        for table in [
            &["id", "tag"][..],
            &["id", "tag", "timestamp", "mode"],
            &["mode", "rules"],
            &[],
        ] {
            assert!(!version_metadata_fields(&fields(table)), "{table:?}");
        }
    }

    #[test]
    fn distance_counts_edits_and_adjacent_swaps() {
        for (a, b, d) in [
            ("", "", 0),
            ("ABC", "", 3),
            ("SECS", "SECONDS", 3),
            ("ENVIRONMNET", "ENVIRONMENT", 1),
            ("KITTEN", "SITTING", 3),
        ] {
            assert_eq!(distance(a, b), d, "{a} {b}");
            assert_eq!(distance(b, a), d, "{b} {a}");
        }
    }
}
