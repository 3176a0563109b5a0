//! Tokens this isolate has already verified, so a client reusing its access token (for minutes, as clients do) pays
//! for the signature once per isolate instead of on every request — the same idea as Envoy's `jwt_cache_config`.
//! Only the signature result is remembered: the claims (`exp`, `nbf`, `iat`, `iss`, `aud`, `sub`) are checked again
//! on every use. Entries are keyed by the SHA-256 of the whole token, so a token that differs in any byte (a forged
//! signature included) is verified afresh; refused tokens are never remembered. The owner clears the memory whenever
//! it re-reads the key set, so a key removed from the JWKS stops admitting its tokens with the next read. The memory
//! is bounded twice: by entries (`GATEWAY_JWT_CACHE_ENTRIES`) and by the bytes its entries hold
//! ([`MAX_REMEMBERED_BYTES`]), so a large entry count with large tokens cannot run an isolate out of memory.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::jwt::{self, Jwks, JwtError, JwtPolicy, Signed, Verified};

/// The most memory an isolate's remembered tokens hold (16 MiB), whatever `GATEWAY_JWT_CACHE_ENTRIES` allows: an
/// entry keeps a token's claims (up to `GATEWAY_JWT_MAX_BYTES`, 64 KiB, of token), and the setting allows a million
/// entries — far past an isolate's 128 MB. Each entry is charged what it holds ([`entry_bytes`]), not its token's
/// length: charged by the text, a token of many short permissions held about 5 times its length (24 bytes a
/// `String` and a heap block for each 5 bytes of token), so the 16 MiB of text came to some 80 MB.
pub const MAX_REMEMBERED_BYTES: usize = 16 * 1024 * 1024;

/// The bytes an entry holding `signed` takes: its share of the table, and the heap its claims hold. The table
/// (hashbrown) has a power of two of buckets, each a slot and a control byte, and grows to twice its buckets when
/// 7/8 of them are taken: just after, it has 16/7 buckets an entry, which each entry is charged (twice a slot left
/// the table's growth uncharged).
pub fn entry_bytes(signed: &Signed) -> usize {
    let bucket = std::mem::size_of::<([u8; 32], (Signed, usize))>() + 1;
    bucket * 16 / 7 + 1 + signed.heap_bytes()
}

/// What the memory knows of a token.
#[derive(Debug)]
pub enum Recall {
    /// Its signature verified before: the verdict on its claims now.
    Known(Result<Verified, JwtError>),
    /// Not seen (or not rememberable: `None`): its signature must be checked.
    Unknown(Option<Memo>),
}

/// Where a token is remembered once its signature verifies: its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memo {
    digest: [u8; 32],
}

/// A bounded memory of signature-verified tokens.
#[derive(Debug)]
pub struct VerifiedTokens {
    capacity: usize,
    max_bytes: usize,
    entries: HashMap<[u8; 32], (Signed, usize)>,
    /// The bytes charged for the entries held.
    bytes: usize,
    signature_checks: u64,
}

impl VerifiedTokens {
    /// At most `capacity` tokens ([`MAX_REMEMBERED_BYTES`] of them at most); 0 remembers nothing (every use
    /// verifies the signature).
    pub fn new(capacity: usize) -> Self {
        Self::within(capacity, MAX_REMEMBERED_BYTES)
    }

    /// At most `capacity` tokens, holding at most `max_bytes` ([`entry_bytes`] each).
    pub fn within(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            entries: HashMap::new(),
            bytes: 0,
            signature_checks: 0,
        }
    }

    /// [`jwt::verify`], with the signature check skipped for a token verified before.
    pub fn verify(
        &mut self,
        token: &str,
        jwks: &Jwks,
        policy: &JwtPolicy,
        now_secs: i64,
    ) -> Result<Verified, JwtError> {
        match self.recall(token, policy, now_secs) {
            Recall::Known(verdict) => verdict,
            Recall::Unknown(key) => {
                let signed = jwt::verify_signature(token, jwks, policy);
                self.learn(key, signed, policy, now_secs)
            }
        }
    }

    /// The verdict on a token verified before (its claims checked again at `now_secs`), or the key to
    /// [`learn`](Self::learn) its signature check under. The two halves of [`verify`](Self::verify), for a caller
    /// whose signature check is asynchronous (the runtime's WebCrypto).
    pub fn recall(&self, token: &str, policy: &JwtPolicy, now_secs: i64) -> Recall {
        if self.capacity == 0 || token.len() > policy.max_token_bytes {
            return Recall::Unknown(None);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        match self.entries.get(&digest) {
            Some((signed, _)) => Recall::Known(jwt::check(signed, policy, now_secs)),
            None => Recall::Unknown(Some(Memo { digest })),
        }
    }

    /// Counts a signature check and its outcome `signed`, whose claims are then checked at `now_secs`; a token that
    /// passes both is remembered under `key` (from [`recall`](Self::recall)).
    pub fn learn(
        &mut self,
        key: Option<Memo>,
        signed: Result<Signed, JwtError>,
        policy: &JwtPolicy,
        now_secs: i64,
    ) -> Result<Verified, JwtError> {
        self.signature_checks += 1;
        let signed = signed?;
        let verdict = jwt::check(&signed, policy, now_secs);
        if let (Some(key), true) = (key, verdict.is_ok()) {
            self.remember(key, signed, now_secs - policy.leeway_secs);
        }
        verdict
    }

    /// Adds an entry; when it would not fit (entries or bytes), first drops the tokens expired at `expired_before`,
    /// then everything. An entry larger than the whole budget is not kept (its token is checked on every use).
    fn remember(&mut self, memo: Memo, signed: Signed, expired_before: i64) {
        if let Some((_, bytes)) = self.entries.remove(&memo.digest) {
            self.bytes -= bytes;
        }
        let charge = entry_bytes(&signed);
        if charge > self.max_bytes {
            return;
        }
        let full = |t: &Self| t.entries.len() >= t.capacity || t.bytes + charge > t.max_bytes;
        // Dropping entries gives their buckets back too: a table emptied (`clear`, `retain`) keeps its buckets,
        // which no entry is charged for any more, so the memory would hold the table its most numerous (small)
        // entries needed on top of the bytes its next (large) entries are charged.
        if full(self) {
            self.entries
                .retain(|_, (s, _)| s.expires_at().is_some_and(|exp| exp >= expired_before));
            self.entries.shrink_to_fit();
            self.bytes = self.entries.values().map(|(_, bytes)| bytes).sum();
        }
        if full(self) {
            self.entries = HashMap::new();
            self.bytes = 0;
        }
        self.entries.insert(memo.digest, (signed, charge));
        self.bytes += charge;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many signature verifications ran (for tests and diagnostics).
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks
    }
}

#[cfg(test)]
mod tests {
    use jwt_compact::alg::{Hs256, Hs256Key};
    use jwt_compact::{AlgorithmExt, Claims, Header};
    use serde_json::{json, Value};

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> Jwks {
        let jwks = json!({"keys": [{"kty": "oct", "kid": "h1", "alg": "HS256",
            "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]});
        Jwks::parse(&jwks.to_string()).expect("jwks").0
    }

    fn policy() -> JwtPolicy {
        jwt::test_policy()
    }

    /// A token for `sub` holding `permissions`, signed with the test secret.
    fn token_with(sub: &str, permissions: &[String]) -> String {
        signed(
            json!({"iss": "edgekit", "aud": "edgekit-api", "sub": sub, "iat": NOW,
                "exp": NOW + 600, "permissions": permissions}),
            SECRET,
        )
    }

    fn token(sub: &str, exp: i64, secret: &[u8]) -> String {
        signed(
            json!({"iss": "edgekit", "aud": "edgekit-api", "sub": sub, "iat": NOW, "exp": exp}),
            secret,
        )
    }

    /// `claims` as an HS256 token of key `h1`, signed with `secret`.
    fn signed(claims: Value, secret: &[u8]) -> String {
        Hs256
            .token(
                &Header::empty().with_key_id("h1"),
                &Claims::new(claims),
                &Hs256Key::new(secret),
            )
            .expect("signs")
    }

    #[test]
    fn a_reused_token_is_signature_checked_once_and_answers_the_same() {
        let (jwks, policy) = (keys(), policy());
        let mut cache = VerifiedTokens::new(10);
        let t = token("u1", NOW + 600, SECRET);
        let first = cache.verify(&t, &jwks, &policy, NOW).expect("valid");
        for later in [NOW + 1, NOW + 60, NOW + 300] {
            assert_eq!(
                cache.verify(&t, &jwks, &policy, later),
                Ok(first.clone()),
                "at {later}"
            );
        }
        assert_eq!(
            cache.signature_checks(),
            1,
            "one signature check for four uses"
        );
    }

    #[test]
    fn claims_are_rechecked_on_every_use_so_a_remembered_token_still_expires() {
        let (jwks, policy) = (keys(), policy());
        let mut cache = VerifiedTokens::new(10);
        let t = token("u1", NOW + 60, SECRET);
        assert!(cache.verify(&t, &jwks, &policy, NOW).is_ok());
        let late = cache.verify(&t, &jwks, &policy, NOW + 60 + 31);
        assert_eq!(
            late,
            Err(JwtError("token has expired".into())),
            "past exp + leeway"
        );
        assert_eq!(
            cache.signature_checks(),
            1,
            "refused from memory, without a signature check"
        );
    }

    #[test]
    fn a_token_differing_in_any_byte_is_verified_afresh_and_refusals_are_not_remembered() {
        let (jwks, policy) = (keys(), policy());
        let mut cache = VerifiedTokens::new(10);
        let good = token("u1", NOW + 600, SECRET);
        assert!(cache.verify(&good, &jwks, &policy, NOW).is_ok());
        let forged = token("u1", NOW + 600, b"another secret, another signature");
        for round in 0..2 {
            let verdict = cache.verify(&forged, &jwks, &policy, NOW);
            assert_eq!(
                verdict,
                Err(JwtError("signature is invalid".into())),
                "round {round}"
            );
        }
        assert_eq!(
            cache.signature_checks(),
            3,
            "the forged token was checked both times"
        );
        assert_eq!(cache.len(), 1, "only the good token is remembered");
    }

    #[test]
    fn the_memory_stays_within_capacity_dropping_expired_tokens_first() {
        let (jwks, policy) = (keys(), policy());
        let mut cache = VerifiedTokens::new(3);
        let short = token("short", NOW + 10, SECRET);
        assert!(cache.verify(&short, &jwks, &policy, NOW).is_ok());
        for sub in ["a", "b"] {
            assert!(cache
                .verify(&token(sub, NOW + 600, SECRET), &jwks, &policy, NOW)
                .is_ok());
        }
        // Later, `short` has expired: adding a fourth token evicts it and keeps the two live ones.
        let later = NOW + 100;
        assert!(cache
            .verify(&token("c", NOW + 600, SECRET), &jwks, &policy, later)
            .is_ok());
        assert_eq!(cache.len(), 3);
        let checks = cache.signature_checks();
        assert!(cache
            .verify(&token("a", NOW + 600, SECRET), &jwks, &policy, later)
            .is_ok());
        assert_eq!(
            cache.signature_checks(),
            checks,
            "a live token survived the eviction"
        );
        // Full of live tokens: the next one clears the memory rather than growing it.
        assert!(cache
            .verify(&token("d", NOW + 600, SECRET), &jwks, &policy, later)
            .is_ok());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_memory_stays_within_its_bytes_whatever_the_entry_count_allows() {
        let (jwks, policy) = (keys(), policy());
        // What one entry holds (the tokens below differ only in a one-letter `sub`).
        let one = entry_bytes(
            &jwt::verify_signature(&token("a", NOW + 600, SECRET), &jwks, &policy).expect("valid"),
        );
        // Room for two entries, with a million entries allowed.
        let mut cache = VerifiedTokens::within(1_000_000, 2 * one + one / 2);
        for sub in ["a", "b"] {
            assert!(cache
                .verify(&token(sub, NOW + 600, SECRET), &jwks, &policy, NOW)
                .is_ok());
        }
        assert_eq!(cache.len(), 2);
        assert!(cache
            .verify(&token("c", NOW + 600, SECRET), &jwks, &policy, NOW)
            .is_ok());
        assert_eq!(
            cache.len(),
            1,
            "a third would pass the bytes: the memory starts over"
        );
        // An entry larger than the whole budget is never kept: its token is checked every time.
        let mut small = VerifiedTokens::within(10, one - 1);
        for _ in 0..2 {
            assert!(small
                .verify(&token("a", NOW + 600, SECRET), &jwks, &policy, NOW)
                .is_ok());
        }
        assert_eq!((small.signature_checks(), small.len()), (2, 0));
    }

    #[test]
    fn the_bytes_bound_counts_what_an_entry_holds_not_its_token_text() {
        // Many short permissions: `"7f",` is 5 bytes of JSON, under 7 of token, but a whole `String` (24 bytes on
        // this host) and a heap block each once remembered. Charged by token text, the memory held several times
        // its bound.
        let (jwks, mut policy) = (keys(), policy());
        policy.max_token_bytes = 65_536;
        let permissions: Vec<String> = (0..2000).map(|i| format!("{i:x}")).collect();
        let budget = 256 * 1024;
        let mut cache = VerifiedTokens::within(1_000, budget);
        for n in 0..40 {
            let t = token_with(&format!("u{n}"), &permissions);
            assert!(t.len() < 20_000, "{} bytes of token", t.len());
            let v = cache.verify(&t, &jwks, &policy, NOW).expect("valid");
            assert_eq!(v.permissions.len(), 2000);
        }
        // What the entries hold at the least: the permissions' `String`s alone.
        let held = cache.len() * permissions.len() * std::mem::size_of::<String>();
        assert!(
            !cache.is_empty(),
            "tokens of this size are still remembered"
        );
        assert!(
            held <= budget,
            "{} entries hold at least {held} bytes, past the {budget} allowed",
            cache.len()
        );
    }

    /// What the memory really holds: its table's buckets (hashbrown: a power of two of them, 7/8 usable, each a slot
    /// and a control byte), whether or not entries fill them, and the heap of the claims it keeps.
    fn footprint(cache: &VerifiedTokens) -> usize {
        let buckets = match cache.entries.capacity() {
            0 => 0,
            usable if usable < 7 => usable + 1,
            usable => usable / 7 * 8,
        };
        buckets * (std::mem::size_of::<([u8; 32], (Signed, usize))>() + 1)
            + cache
                .entries
                .values()
                .map(|(signed, _)| signed.heap_bytes())
                .sum::<usize>()
    }

    #[test]
    fn the_bytes_bound_covers_the_table_as_it_grows_and_after_it_is_emptied() {
        let (jwks, mut policy) = (keys(), policy());
        policy.max_token_bytes = 65_536;
        let small = |n: usize| token(&format!("u{n:05}"), NOW + 600, SECRET);
        let one = entry_bytes(&jwt::verify_signature(&small(0), &jwks, &policy).expect("valid"));
        // Small entries, as many as fit: the table grows by doubling its buckets when 7/8 are taken, so right after
        // it grew it has 16/7 buckets an entry. Budgets that fit exactly that many entries show whether that is
        // charged.
        let mut cache = VerifiedTokens::within(1_000_000, 0);
        for buckets in [64, 256, 1024] {
            let fitting = buckets / 8 * 7 + 1;
            let budget = fitting * one;
            cache = VerifiedTokens::within(1_000_000, budget);
            for n in 0..fitting {
                assert!(cache.verify(&small(n), &jwks, &policy, NOW).is_ok());
                assert!(
                    footprint(&cache) <= budget,
                    "{} entries in {} usable buckets hold {} bytes, past the {budget} allowed",
                    cache.len(),
                    cache.entries.capacity(),
                    footprint(&cache)
                );
            }
            assert_eq!(cache.len(), fitting, "all of them are remembered");
        }
        let budget = cache.max_bytes;
        // Then large entries: the memory starts over, and the buckets the small ones needed must not stay
        // allocated, uncharged, under entries charged as if the table were theirs alone.
        let permissions: Vec<String> = (0..2000).map(|i| format!("{i:x}")).collect();
        for n in 0..20 {
            let t = token_with(&format!("big{n}"), &permissions);
            assert!(cache.verify(&t, &jwks, &policy, NOW).is_ok());
            assert!(
                footprint(&cache) <= budget,
                "{} entries (large ones after small) in {} usable buckets hold {} bytes, past the {budget} allowed",
                cache.len(),
                cache.entries.capacity(),
                footprint(&cache)
            );
        }
    }

    #[test]
    fn capacity_zero_checks_every_signature() {
        let (jwks, policy) = (keys(), policy());
        let mut cache = VerifiedTokens::new(0);
        let t = token("u1", NOW + 600, SECRET);
        for _ in 0..3 {
            assert!(cache.verify(&t, &jwks, &policy, NOW).is_ok());
        }
        assert_eq!((cache.signature_checks(), cache.len()), (3, 0));
    }
}
