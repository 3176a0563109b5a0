//! Stored password hashes: PBKDF2-HMAC-SHA256 with a 16-byte random salt and a 32-byte output, stored with the
//! algorithm name and iteration count beside it (columns of `users`), so the cost can rise later without breaking
//! old hashes. The derivation itself runs in WebCrypto (`handler`); this module holds the format and the
//! constant-time comparison.
//!
//! Cost: 100,000 iterations by default (`PASSWORD_PBKDF2_ITERATIONS`), the most workerd's WebCrypto accepts. OWASP
//! asks 600,000 for PBKDF2-SHA256; the Workers runtime caps PBKDF2 at 100,000, and the derivation costs tens of ms
//! of CPU per login, which fits the paid plan's CPU limit but not the 10 ms free-plan limit. Unknown emails run the
//! same derivation against a dummy hash, so they cost the same and answer the same.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// The most PBKDF2 iterations workerd's WebCrypto derives.
pub const MAX_ITERATIONS: u64 = 100_000;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The only algorithm written today; the name is stored with each hash.
pub const ALGORITHM: &str = "pbkdf2-sha256";
pub const SALT_BYTES: usize = 16;
pub const HASH_BYTES: usize = 32;

/// A stored hash with the parameters needed to recompute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

impl PasswordHash {
    /// Parses the `users` columns; an unknown algorithm or a malformed value is an error naming the column.
    pub fn from_columns(
        algorithm: &str,
        iterations: i64,
        salt_b64: &str,
        hash_b64: &str,
    ) -> Result<Self, String> {
        if algorithm != ALGORITHM {
            return Err(format!("password_algorithm {algorithm:?} is not supported"));
        }
        // Above the runtime's PBKDF2 cap, WebCrypto refuses to derive: such a hash (imported at OWASP's 600,000,
        // say) is unreadable here, so its login costs and answers like an unknown email's instead of a 500 that
        // would say the account exists.
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| *i > 0 && u64::from(*i) <= MAX_ITERATIONS)
            .ok_or(
                "password_iterations is out of range (1 to 100,000, the runtime's PBKDF2 cap)",
            )?;
        let salt = B64
            .decode(salt_b64)
            .map_err(|_| "password_salt is not base64url")?;
        let hash = B64
            .decode(hash_b64)
            .map_err(|_| "password_hash is not base64url")?;
        if hash.len() != HASH_BYTES || salt.is_empty() {
            return Err("password_hash or password_salt has the wrong length".into());
        }
        Ok(Self {
            iterations,
            salt,
            hash,
        })
    }

    /// The stand-in for an unknown email: same cost as a real hash, matches no password (the stored output is not
    /// the output of any derivation we run, and `matches` also needs the user to exist).
    pub fn dummy(iterations: u32) -> Self {
        Self {
            iterations,
            salt: vec![0x5a; SALT_BYTES],
            hash: vec![0; HASH_BYTES],
        }
    }

    /// Whether `derived` (PBKDF2 of the candidate password with this salt and iteration count) equals the stored
    /// hash, compared in constant time.
    pub fn matches(&self, derived: &[u8]) -> bool {
        derived.len() == self.hash.len() && bool::from(self.hash.ct_eq(derived))
    }

    pub fn salt_b64(&self) -> String {
        B64.encode(&self.salt)
    }

    pub fn hash_b64(&self) -> String {
        B64.encode(&self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_columns_parse_and_round_trip() {
        let stored = PasswordHash {
            iterations: 100_000,
            salt: vec![1; 16],
            hash: vec![2; 32],
        };
        let parsed =
            PasswordHash::from_columns(ALGORITHM, 100_000, &stored.salt_b64(), &stored.hash_b64())
                .expect("parses");
        assert_eq!(parsed, stored);
    }

    #[test]
    fn malformed_columns_are_refused_with_the_column_named() {
        let salt = B64.encode([1u8; 16]);
        let hash = B64.encode([2u8; 32]);
        let cases: &[(&str, i64, &str, &str, &str)] = &[
            ("bcrypt", 10, &salt, &hash, "password_algorithm"),
            (ALGORITHM, 0, &salt, &hash, "password_iterations"),
            (ALGORITHM, -1, &salt, &hash, "password_iterations"),
            (ALGORITHM, 600_000, &salt, &hash, "password_iterations"),
            (ALGORITHM, 1000, "***", &hash, "password_salt"),
            (ALGORITHM, 1000, &salt, "***", "password_hash"),
            (ALGORITHM, 1000, &salt, "AAAA", "length"),
        ];
        for (algorithm, iterations, salt, hash, named) in cases {
            let error = PasswordHash::from_columns(algorithm, *iterations, salt, hash)
                .expect_err("refused");
            assert!(error.contains(named), "{algorithm}/{iterations}: {error}");
        }
    }

    #[test]
    fn only_the_exact_derived_bytes_match() {
        let stored = PasswordHash {
            iterations: 1,
            salt: vec![1; 16],
            hash: vec![9; 32],
        };
        assert!(stored.matches(&[9; 32]));
        let mut one_bit = [9u8; 32];
        one_bit[31] ^= 1;
        for (case, derived) in [
            ("one bit off", one_bit.to_vec()),
            ("short", vec![9; 31]),
            ("long", vec![9; 33]),
            ("empty", vec![]),
        ] {
            assert!(!stored.matches(&derived), "{case}");
        }
    }

    #[test]
    fn the_dummy_costs_the_configured_iterations() {
        assert_eq!(PasswordHash::dummy(100_000).iterations, 100_000);
        assert_eq!(PasswordHash::dummy(1).hash.len(), HASH_BYTES);
    }
}
