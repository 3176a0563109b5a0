//! JWT verification for the gateway with `jwt-compact`: a JWKS document (RFC 7517) parsed into verifying keys with a
//! per-key algorithm allow-list, key selection by `kid`, signature checks for HS256, RS256, ES256 and EdDSA, and the
//! claim rules (`exp`/`nbf`/`iat` with leeway, `iss`, `aud`, `sub`). Every refusal carries a short description that
//! becomes `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`. Pure: `now` is a parameter, and
//! the one step the edge does better natively — public-key arithmetic — can be handed out ([`Screened::verifier`]).

use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPublicKey};
use jwt_compact::jwk::{JsonWebKey, JwkError};
use jwt_compact::{Algorithm, AlgorithmExt, Claims, ParseError, UntrustedToken, ValidationError};
use serde::Deserialize;
use std::collections::HashMap;

/// Why a token was refused; the text is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError(pub String);

fn err<T>(description: impl Into<String>) -> Result<T, JwtError> {
    Err(JwtError(description.into()))
}

/// The signature algorithms the gateway verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    /// The algorithm a JOSE `alg` names (case-sensitive, RFC 7515 §4.1.1), in a token's header or a key's JWK.
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            // RFC 9864 §2.2: `Ed25519` is the fully-specified name of EdDSA on Ed25519, the one curve the keys here
            // have (jwt-compact reads OKP keys of `crv` Ed25519 only), so the two names mean one algorithm.
            "EdDSA" | "Ed25519" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

enum Material {
    Hs256(Hs256Key),
    Rs256(RsaPublicKey),
    Es256(<Es256 as Algorithm>::VerifyingKey),
    EdDsa(<Ed25519 as Algorithm>::VerifyingKey),
}

struct Key {
    kid: Option<String>,
    /// The algorithms this key may verify: its JWK `alg` if given, else the one its type implies.
    allowed: Vec<Alg>,
    material: Material,
    /// For an asymmetric key, what a WebCrypto verifier needs; HS256 secrets stay here (`None`).
    public: Option<PublicKeyInfo>,
}

/// An asymmetric key as WebCrypto imports and uses it.
struct PublicKeyInfo {
    /// The public half as a JWK (JSON; jwt-compact writes it from the parsed key, so private members never appear).
    jwk: String,
    /// Signatures this key makes have exactly this many bytes (64 for ES256 and EdDSA, the modulus for RS256).
    signature_len: usize,
    /// WebCrypto's `importKey` and `verify` algorithm objects, as JSON.
    import_as: &'static str,
    verify_as: &'static str,
}

/// A parsed key set.
pub struct Jwks {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        write!(f, "Jwks {kids:?}")
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    /// Parses a JWKS document. Keys that cannot be used (unknown type, `alg` not matching the key type, bad
    /// material, `use` other than `sig`, a private half published) are left out and described in the second value, so one bad key does not
    /// lock everyone out (the first [`MAX_SKIPPED_REASONS`] reasons, then how many more); a document that is not a
    /// JWKS at all is an error.
    pub fn parse(text: &str) -> Result<(Self, Vec<String>), String> {
        // Bounded, in bytes, before it is read: every request of a cold isolate waits on this parse, and each key
        // costs CPU (an RSA modulus, an Ed25519 point check) — 10,000 RSA keys (3.9 MB) took 2 s in a host debug
        // build, each re-read again.
        if text.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "document of {} bytes; at most {MAX_JWKS_BYTES} are read",
                text.len()
            ));
        }
        let doc: JwksDocument = serde_json::from_str(text).map_err(|e| {
            // Without the strings serde quotes: one where the list belongs may be a pasted key.
            format!("not a JWKS document: {}", crate::body::strip_strings(&e))
        })?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        let mut more = 0usize;
        // The first reasons, each cut short, and a count of the rest: they go into one log line.
        let mut skip = |reason: String| {
            if skipped.len() < MAX_SKIPPED_REASONS {
                skipped.push(match reason.char_indices().nth(MAX_REASON_CHARS) {
                    Some((end, _)) => format!("{}…", &reason[..end]),
                    None => reason,
                });
            } else {
                more += 1;
            }
        };
        // The algorithms each kid is kept for, so that a key's kid is looked up once rather than against every key
        // kept before it (quadratic in the keys).
        let mut kept_for: HashMap<String, Vec<Alg>> = HashMap::new();
        for (index, value) in doc.keys.iter().enumerate() {
            match parse_key(value) {
                // Two keys under one kid for one algorithm: a token could name either, so the later is left out
                // (and said) rather than silently never used. Keys sharing a kid for different algorithms stay:
                // the token's `alg` picks between them.
                Ok(key)
                    if key
                        .kid
                        .as_ref()
                        .and_then(|kid| kept_for.get(kid))
                        .is_some_and(|algs| algs.iter().any(|a| key.allowed.contains(a))) =>
                {
                    skip(format!(
                        "key {index}: kid {:?} is already used by an earlier key for the same algorithm",
                        key.kid.as_deref().unwrap_or("")
                    ));
                }
                Ok(key) => {
                    if let Some(kid) = &key.kid {
                        let algs = kept_for.entry(kid.clone()).or_default();
                        algs.extend(key.allowed.iter().copied());
                    }
                    keys.push(key);
                }
                Err(problem) => skip(format!("key {index}: {problem}")),
            }
        }
        if more > 0 {
            skipped.push(format!("and {more} more keys skipped"));
        }
        Ok((Self { keys }, skipped))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a token names: by `kid`, the one for the token's algorithm where keys share a kid.
    fn select(&self, kid: Option<&str>, alg: Alg) -> Result<&Key, JwtError> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let first = named.clone().next();
                match named.find(|k| k.allowed.contains(&alg)).or(first) {
                    Some(key) => Ok(key),
                    None => err("unknown key id"),
                }
            }
            None if self.keys.len() == 1 => Ok(&self.keys[0]),
            None if self.keys.is_empty() => err("no verification keys are configured"),
            None => err("token has no kid and several keys exist"),
        }
    }
}

fn parse_key(value: &serde_json::Value) -> Result<Key, String> {
    // RFC 7517 §4: these members are strings. One of another type is a broken key, not an absent member: read as
    // absent, `"use": ["enc"]` would make an encryption key a signing one and `"kid": 7` a key any kid-less token
    // selects.
    let member = |name: &str| match value.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!("{name} {other} is not a string")),
    };
    let kid = member("kid")?.map(str::to_owned);
    if let Some(usage) = member("use")? {
        if usage != "sig" {
            return Err(format!("use {usage:?} is not sig"));
        }
    }
    // RFC 7517 §4.3: a key that lists its operations may be used for those only.
    if let Some(ops) = value.get("key_ops") {
        let Some(list) = ops.as_array() else {
            return Err(format!("key_ops {ops} is not a list"));
        };
        if !list.iter().any(|op| op.as_str() == Some("verify")) {
            return Err(format!("key_ops {ops} does not include verify"));
        }
    }
    // RFC 7517 §9.2/§9.3, RFC 7518 §6.2.2/§6.3.2, RFC 8037 §2: `d` (and RSA's `p`, `q`, `dp`, `dq`, `qi`, `oth`) are
    // the private key. A key set is a public document (copied from an identity provider, pasted by an operator); one
    // carrying them has leaked the key, and anyone who read it can sign tokens it verifies. Such a key is skipped,
    // not its private half dropped and the rest trusted (before, a pasted private JWK verified as if public).
    if let Some(name) = value
        .as_object()
        .filter(|_| member("kty").ok().flatten() != Some("oct"))
        .and_then(|o| PRIVATE_MEMBERS.iter().find(|name| o.contains_key(**name)))
    {
        return Err(format!(
            "private key member {name} present: the key is exposed by the key set, publish its public half only"
        ));
    }
    // Without the strings serde quotes (`invalid value: string "…"`): an HMAC `k` that is not base64url (a secret
    // pasted in standard base64) is the secret itself, and this reason goes into a log line.
    let jwk: JsonWebKey<'_> = serde_json::from_value(value.clone()).map_err(|e| {
        not_base64url(value)
            .unwrap_or_else(|| format!("not a JWK: {}", crate::body::strip_strings(&e)))
    })?;
    let (implied, material) = match &jwk {
        // RFC 7518 §3.2: an HS256 key has at least 256 bits. An empty or short `k` (a template with its secret
        // unset) would let anyone who guesses it mint tokens.
        JsonWebKey::Symmetric { secret } if secret.len() < MIN_HMAC_BYTES => {
            return Err(format!(
                "HMAC key of {} bytes; at least {MIN_HMAC_BYTES} are required",
                secret.len()
            ))
        }
        JsonWebKey::Symmetric { .. } => (
            Alg::Hs256,
            Material::Hs256(Hs256Key::try_from(&jwk).map_err(|e| e.to_string())?),
        ),
        JsonWebKey::Rsa { modulus, .. } => {
            let bits = modulus.iter().position(|b| *b != 0).map_or(0, |first| {
                (modulus.len() - first) * 8 - modulus[first].leading_zeros() as usize
            });
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at most {MAX_RSA_BITS} are supported"
                ));
            }
            (
                Alg::Rs256,
                Material::Rs256(RsaPublicKey::try_from(&jwk).map_err(|e| format!("RSA key: {e}"))?),
            )
        }
        JsonWebKey::EllipticCurve { .. } => (
            Alg::Es256,
            Material::Es256(<Es256 as Algorithm>::VerifyingKey::try_from(&jwk).map_err(
                |e| match e {
                    // Curve and lengths are checked first: the p256 crate's one refusal left is the point's, which
                    // it words "signature error".
                    JwkError::Custom(_) => "EC key (x, y) is not a point on P-256".to_owned(),
                    other => other.to_string(),
                },
            )?),
        ),
        JsonWebKey::KeyPair { .. } => {
            let key =
                <Ed25519 as Algorithm>::VerifyingKey::try_from(&jwk).map_err(|e| e.to_string())?;
            // Parsing checks only the length. A small-order or non-canonical point can never verify a signature in
            // ed25519-compact, but other verifiers (WebCrypto's among them) may accept forgeries for it.
            key.validate()
                .map_err(|_| "weak or non-canonical Ed25519 key".to_owned())?;
            (Alg::EdDsa, Material::EdDsa(key))
        }
        _ => return Err("unsupported key type".to_owned()),
    };
    let allowed = match member("alg")? {
        None => vec![implied],
        // `Ed25519` (RFC 9864) is the name WebCrypto's JWK export gives an Ed25519 key.
        Some(name) => match Alg::from_name(name) {
            Some(alg) if alg == implied => vec![alg],
            Some(_) => return Err(format!("alg {name:?} does not fit the key type")),
            // An algorithm of the right family (PS256, RS512, ES384…) or meant for encryption: said as unsupported,
            // not as a key type mismatch the operator would look for in `kty`.
            None => {
                return Err(format!(
                    "alg {name:?} is not supported (HS256, RS256, ES256 and EdDSA or Ed25519 are verified)"
                ))
            }
        },
    };
    let public = public_key_info(&material);
    Ok(Key {
        kid,
        allowed,
        material,
        public,
    })
}

/// Which of a JWK's key members (RFC 7518 §6: `n`, `e`, `x`, `y`, `k`) is base64 but not base64url, and how: with
/// padding, or in the standard alphabet (as `urlsafe_b64encode` and `b64encode` write them). serde's refusal names
/// no member, and its value cannot be quoted (a `k` is the secret).
fn not_base64url(value: &serde_json::Value) -> Option<String> {
    ["n", "e", "x", "y", "k"].into_iter().find_map(|name| {
        let text = value.get(name)?.as_str()?;
        if text.contains('=') {
            Some(format!(
                "{name} has base64 padding (=); JWK members are base64url without it"
            ))
        } else if text.contains(['+', '/']) {
            Some(format!(
                "{name} is in the standard base64 alphabet (+ or /); JWK members are base64url (- and _)"
            ))
        } else {
            None
        }
    })
}

/// The WebCrypto view of an asymmetric key (`None` for an HMAC secret).
fn public_key_info(material: &Material) -> Option<PublicKeyInfo> {
    let (jwk, signature_len, import_as, verify_as) = match material {
        Material::Hs256(_) => return None,
        Material::Rs256(k) => {
            let jwk = JsonWebKey::from(k);
            let JsonWebKey::Rsa { modulus, .. } = &jwk else {
                return None;
            };
            let len = modulus.len();
            (
                jwk,
                len,
                r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
                r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
            )
        }
        Material::Es256(k) => (
            JsonWebKey::from(k),
            64,
            r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
            r#"{"name":"ECDSA","hash":"SHA-256"}"#,
        ),
        Material::EdDsa(k) => (
            JsonWebKey::from(k),
            64,
            r#"{"name":"Ed25519"}"#,
            r#"{"name":"Ed25519"}"#,
        ),
    };
    Some(PublicKeyInfo {
        jwk: serde_json::to_string(&jwk).ok()?,
        signature_len,
        import_as,
        verify_as,
    })
}

/// The largest JWKS document read (128 KiB): an identity provider's set is a few KiB (a handful of keys, even with
/// their `x5c` certificates), and this holds hundreds of RSA keys, while bounding the parse each read costs. Nimbus
/// JOSE's `RemoteJWKSet` refuses documents over 50 KiB for the same reason. A bound on an input's parse, not a
/// setting (as the image header's window and `tracestate`'s size are): no real key set comes near it, and a var would
/// let a deployment lift what it bounds.
pub const MAX_JWKS_BYTES: usize = 128 * 1024;

/// How many reasons for skipped keys [`Jwks::parse`] gives (then how many more there were): a real key set skips a
/// few (Keycloak's encryption key), while a document of 65,000 malformed entries fits [`MAX_JWKS_BYTES`] and its
/// reasons, all given, made a 6 MB log line.
const MAX_SKIPPED_REASONS: usize = 16;
/// How many characters of a reason are given: one quoting a key's member (a 2048-bit `n`) ran to hundreds.
const MAX_REASON_CHARS: usize = 200;

/// The JWK members that hold a private key (RFC 7518 §6.2.2 for EC and OKP's `d`, §6.3.2 for RSA's).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// RSA keys shorter than this are refused: 1024-bit moduli are within reach of factoring, and every common identity
/// provider signs with 2048 bits or more.
const MIN_RSA_BITS: usize = 2048;
/// RSA keys longer than this are refused: the `rsa` crate jwt-compact builds keys with holds none longer
/// (`RsaPublicKey::MAX_SIZE`), and said as its "modulus too large" the reason named neither the key type nor the bound.
const MAX_RSA_BITS: usize = 4096;
/// HS256 keys shorter than this are refused (RFC 7518 §3.2: at least the hash's 256 bits).
const MIN_HMAC_BYTES: usize = 32;

/// How tokens are judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: i64,
    pub max_token_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
struct Custom {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    email: Option<String>,
}

/// A permission list with each permission once, in the order first named: the list is a set, whatever the issuer
/// (or a user's permissions column) repeated, so the origin is told each once (`read,write,read` was passed on as
/// sent) and a remembered token holds each once. Applied to a token's claims once its signature verified, never
/// while jwt-compact deserializes them: it does that before the signature check, so any client could make this
/// run over the ~13,000 strings a 64 KiB token holds; and an ordered set, not a hash set (whose keys on
/// wasm32-unknown-unknown come from no random source).
pub fn distinct(mut list: Vec<String>) -> Vec<String> {
    if list.len() > 1 {
        let mut seen = std::collections::BTreeSet::new();
        list.retain(|p| seen.insert(p.clone()));
    }
    list
}

/// The identity a verified token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    pub permissions: Vec<String>,
    pub email: Option<String>,
}

impl Verified {
    /// The first of `required` this identity lacks.
    pub fn missing<'a>(&self, required: &'a [String]) -> Option<&'a str> {
        required
            .iter()
            .find(|p| !self.permissions.contains(p))
            .map(String::as_str)
    }
}

/// The token from an `Authorization` header value: `Bearer <token>` (scheme case-insensitive).
pub fn bearer(header: Option<&str>) -> Result<&str, JwtError> {
    let Some(value) = header else {
        return err("missing bearer token");
    };
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("").trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return err("authorization is not a bearer token");
    }
    Ok(token)
}

/// Verifies `token` against `jwks` under `policy` at `now_secs` (seconds since the epoch).
pub fn verify(
    token: &str,
    jwks: &Jwks,
    policy: &JwtPolicy,
    now_secs: i64,
) -> Result<Verified, JwtError> {
    check(&verify_signature(token, jwks, policy)?, policy, now_secs)
}

/// A token whose signature verified against a key of the set. Its claims must still pass [`check`] at the time
/// of each use: a signature stays valid, a token's time window does not.
#[derive(Debug, Clone)]
pub struct Signed(Claims<Custom>);

impl Signed {
    /// `exp` in seconds since the epoch (a token without one never passes [`check`]).
    pub fn expires_at(&self) -> Option<i64> {
        self.0.expiration.map(|t| t.timestamp())
    }

    /// The heap bytes these claims hold beyond `size_of::<Signed>()`: each string's buffer and each list's, with
    /// [`HEAP_BLOCK_BYTES`] for each block. Many short permissions (or audiences) hold several times their text:
    /// `"a",` is 4 bytes of JSON, about 5 of token, but a `String` in the list (12 bytes on wasm32) and a heap
    /// block of its own (16).
    pub fn heap_bytes(&self) -> usize {
        fn string(s: &String) -> usize {
            match s.capacity() {
                0 => 0,
                n => n + HEAP_BLOCK_BYTES,
            }
        }
        fn list(l: &[String], capacity: usize) -> usize {
            let buffer = match capacity {
                0 => 0,
                n => n * std::mem::size_of::<String>() + HEAP_BLOCK_BYTES,
            };
            buffer + l.iter().map(string).sum::<usize>()
        }
        let c = &self.0.custom;
        let aud = match &c.aud {
            Some(Audience::One(a)) => string(a),
            Some(Audience::Many(l)) => list(l, l.capacity()),
            None => 0,
        };
        [&c.iss, &c.sub, &c.email]
            .into_iter()
            .flatten()
            .map(string)
            .sum::<usize>()
            + list(&c.permissions, c.permissions.capacity())
            + aud
    }
}

/// What one heap block costs beyond the bytes asked for, at least: the allocator's header and its rounding up to
/// 8 or 16 bytes (dlmalloc, which Rust's wasm32 target uses, takes 16 bytes for a 1-byte string).
pub const HEAP_BLOCK_BYTES: usize = 16;

/// Whether `permission` reaches the origin as one item of `X-User-Permissions` (a comma-separated list), byte for
/// byte: not empty, printable ASCII (`!` to `~`) but the comma. Whitespace and control characters are out (the
/// runtime trims values), a comma too (an origin splitting the list would read `read,admin` as two), and so is any
/// non-ASCII character: header bytes beyond ASCII have no agreed reading (RFC 9110 §5.5, obs-text; Node's HTTP
/// server reads them as Latin-1), so `lecture-é` reached a Node origin as `lecture-Ã©`. The rule for permissions
/// from tokens and from the sessions' users alike.
pub fn header_list_item(permission: &str) -> bool {
    !permission.is_empty()
        && permission
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
}

/// Whether `sub` reaches the origin as `X-User-ID` byte for byte and names someone: not empty (a token without a
/// subject is refused; an empty `X-User-ID` reads as no user, or as one shared by every such account), printable
/// ASCII (inner spaces and commas included: the field is one value, not a list), no space at either end (the
/// runtime trims values). Non-ASCII is refused rather than passed: its UTF-8 bytes reach an origin as whatever its
/// server reads them as (mojibake in Node), and an origin comparing IDs would see another user. The rule for tokens
/// and sessions' users alike.
pub fn header_value(sub: &str) -> bool {
    !sub.is_empty()
        && sub.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && sub.trim_matches(' ') == sub
}

/// Whether `email` is sent as `X-User-Email` (percent-encoded, [`super::headers::email_header`]): any UTF-8
/// address, but none with control characters or whitespace at either end — no address has them. The rule for
/// tokens and sessions' users alike.
pub fn email_value(email: &str) -> bool {
    !email.chars().any(char::is_control) && email.trim() == email
}

/// The signature half of [`verify`]: size cap, structure, `alg` (never `none`, always one the selected key allows),
/// key selection by `kid`, and the signature.
pub fn verify_signature(token: &str, jwks: &Jwks, policy: &JwtPolicy) -> Result<Signed, JwtError> {
    screen(token, jwks, policy)?.verify()
}

/// The header fields jwt-compact does not read that a verifier must: `crit` (RFC 7515 §4.1.11) lists extensions
/// the verifier has to understand or refuse the token; edgekit understands none, so any `crit` refuses it.
/// Present at all is enough (`"crit": null` is no valid header either: RFC 7515 allows only a non-empty list).
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct HeaderExtensions {
    #[serde(default, deserialize_with = "present")]
    crit: Option<()>,
}

/// `Some(())` for any value, `null` included: the field was there.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<()>, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| Some(()))
}

/// A token that passed [`screen`], with the key its `kid` selected: its signature is checked here
/// ([`verify`](Self::verify)) or, for an asymmetric key, handed to an outside verifier ([`verifier`](Self::verifier)).
pub struct Screened<'t, 'k> {
    token: &'t str,
    untrusted: UntrustedToken<'t, HeaderExtensions>,
    key: &'k Key,
}

impl<'t, 'k> Screened<'t, 'k> {
    /// The signature checked by jwt-compact's own arithmetic (in wasm).
    pub fn verify(&self) -> Result<Signed, JwtError> {
        self.validate(None)
    }

    /// Who checks the signature. For an asymmetric key (RS256, ES256, EdDSA), someone else — the runtime's
    /// WebCrypto, which verifies natively where jwt-compact's arithmetic runs in wasm (a proxied request verifying
    /// its EdDSA token cost 958 µs of workerd CPU with the wasm check and 709 µs with WebCrypto, bench/ab.mjs).
    /// Everything else stays here: the screening already done, and [`RuntimeCheck::finish`] runs jwt-compact's own
    /// validation (algorithm, signature encoding, claims) with the outside verdict as the one step it did not do.
    /// For an HS256 key, this module: a keyed hash is cheap in wasm, and the secret stays out of the runtime's key
    /// store.
    pub fn verifier(self) -> Verifier<'t, 'k> {
        match &self.key.public {
            Some(public) => Verifier::Runtime(RuntimeCheck {
                screened: self,
                public,
            }),
            None => Verifier::Here(self),
        }
    }

    /// jwt-compact's validation, with `verdict` (when given) standing in for its signature arithmetic.
    fn validate(&self, verdict: Option<bool>) -> Result<Signed, JwtError> {
        fn run<A: Algorithm>(
            alg: A,
            name: &'static str,
            key: &A::VerifyingKey,
            verdict: Option<bool>,
            token: &UntrustedToken<'_, HeaderExtensions>,
        ) -> Result<jwt_compact::Token<Custom, HeaderExtensions>, ValidationError> {
            Checked { alg, name, verdict }
                .validator::<Custom>(key)
                .validate(token)
        }
        let u = &self.untrusted;
        let checked = match &self.key.material {
            Material::Hs256(k) => run(Hs256, "HS256", k, verdict, u),
            Material::Rs256(k) => run(Rsa::rs256(), "RS256", k, verdict, u),
            Material::Es256(k) => run(Es256, "ES256", k, verdict, u),
            // The key's material names the algorithm, so jwt-compact's own check of the header's `alg` still stands
            // behind screening; of an Ed25519 key's two names, the one the header spelled.
            Material::EdDsa(k) => {
                let name = match u.algorithm() {
                    "Ed25519" => "Ed25519",
                    _ => "EdDSA",
                };
                run(Ed25519, name, k, verdict, u)
            }
        };
        signed(checked, self.token)
    }
}

/// Where a screened token's signature is checked (see [`Screened::verifier`]).
pub enum Verifier<'t, 'k> {
    /// By [`Screened::verify`].
    Here(Screened<'t, 'k>),
    /// By an outside verifier, then [`RuntimeCheck::finish`].
    Runtime(RuntimeCheck<'t, 'k>),
}

/// A signature still to verify: the key (as a public JWK), the WebCrypto algorithm, the signing input and the
/// signature bytes, for a verifier outside this module.
pub struct RuntimeCheck<'t, 'k> {
    screened: Screened<'t, 'k>,
    public: &'k PublicKeyInfo,
}

impl RuntimeCheck<'_, '_> {
    /// The public key as a JWK (JSON), for `importKey("jwk", …)`.
    pub fn jwk(&self) -> &str {
        &self.public.jwk
    }

    /// The key's `kid`, to name it in diagnostics.
    pub fn kid(&self) -> Option<&str> {
        self.screened.key.kid.as_deref()
    }

    /// WebCrypto's `importKey` algorithm and `verify` algorithm for this key, as JSON objects.
    pub fn webcrypto_algorithms(&self) -> (&'static str, &'static str) {
        (self.public.import_as, self.public.verify_as)
    }

    /// The bytes the signature covers (`header.payload`, base64url as sent: everything before the last dot, and
    /// screening proved the token has three parts).
    pub fn message(&self) -> &[u8] {
        let token = self.screened.token;
        token
            .rsplit_once('.')
            .map_or(token, |(input, _)| input)
            .as_bytes()
    }

    /// The signature as decoded from the token.
    pub fn signature(&self) -> &[u8] {
        self.screened.untrusted.signature_bytes()
    }

    /// Whether the signature has the length this key's signatures have: anything else is refused by
    /// [`finish`](Self::finish) without asking anyone (WebCrypto may throw on it rather than answer false).
    pub fn well_formed(&self) -> bool {
        self.signature().len() == self.public.signature_len
    }

    /// The token's claims once the signature was found `valid` by the outside verifier: jwt-compact's validation
    /// with that verdict standing in for its own arithmetic, so a malformed signature, claims that are not JSON
    /// and a false verdict are refused exactly as [`verify_signature`] refuses them.
    pub fn finish(&self, valid: bool) -> Result<Signed, JwtError> {
        self.screened.validate(Some(valid && self.well_formed()))
    }

    /// The signature checked here after all (when the outside verifier cannot answer).
    pub fn verify_here(&self) -> Result<Signed, JwtError> {
        self.screened.verify()
    }
}

/// Algorithm `A` as a token names it (`name`: jwt-compact refuses a token whose `alg` is not exactly that, and
/// knows Ed25519 keys only as `EdDSA`), its verification answering `verdict` when one was reached elsewhere (see
/// [`RuntimeCheck::finish`]); its signature decoding stays `A`'s.
struct Checked<A> {
    alg: A,
    name: &'static str,
    verdict: Option<bool>,
}

impl<A: Algorithm> Algorithm for Checked<A> {
    type SigningKey = A::SigningKey;
    type VerifyingKey = A::VerifyingKey;
    type Signature = A::Signature;

    fn name(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(self.name)
    }

    fn sign(&self, signing_key: &Self::SigningKey, message: &[u8]) -> Self::Signature {
        self.alg.sign(signing_key, message)
    }

    fn verify_signature(
        &self,
        signature: &Self::Signature,
        verifying_key: &Self::VerifyingKey,
        message: &[u8],
    ) -> bool {
        match self.verdict {
            Some(valid) => valid,
            None => self.alg.verify_signature(signature, verifying_key, message),
        }
    }
}

/// The checks before any signature arithmetic: size cap, structure, `alg` (never `none`, always one the selected
/// key allows) and key selection by `kid`.
pub fn screen<'t, 'k>(
    token: &'t str,
    jwks: &'k Jwks,
    policy: &JwtPolicy,
) -> Result<Screened<'t, 'k>, JwtError> {
    if token.len() > policy.max_token_bytes {
        return err(format!("token exceeds {} bytes", policy.max_token_bytes));
    }
    let untrusted = UntrustedToken::<HeaderExtensions>::try_from(token).map_err(|e| {
        JwtError(match e {
            ParseError::InvalidTokenStructure => "token is malformed".to_owned(),
            ParseError::InvalidBase64Encoding => "token is not valid base64url".to_owned(),
            ParseError::MalformedHeader(e) => malformed_header(token, &e),
            // RFC 7519 §5.2: `cty: "JWT"` says the claims are a nested token, which edgekit does not unwrap.
            ParseError::UnsupportedContentType(cty)
                if media_type(&cty).eq_ignore_ascii_case("jwt") =>
            {
                "token content type (cty) is a nested JWT, which is not accepted".to_owned()
            }
            ParseError::UnsupportedContentType(_) => {
                "token content type (cty) is not JSON".to_owned()
            }
            _ => "token is malformed".to_owned(),
        })
    })?;
    let alg_name = untrusted.algorithm();
    if alg_name.eq_ignore_ascii_case("none") {
        return err("algorithm none is not accepted");
    }
    if untrusted.header().other_fields.crit.is_some() {
        return err("token names critical header extensions (crit), which are not understood");
    }
    // RFC 8725 §3.11: a token typed as another kind of JWT (a DPoP proof, a logout or security event token) is
    // not taken for an access token, whatever its claims. Untyped tokens (edgekit's own among them), `JWT` and
    // RFC 9068's `at+jwt` are; RFC 7515 §4.1.9: a media type, case-insensitive, `application/` optional.
    if let Some(typ) = &untrusted.header().token_type {
        let media = media_type(typ);
        if !(media.eq_ignore_ascii_case("jwt") || media.eq_ignore_ascii_case("at+jwt")) {
            return err("token type (typ) is not JWT or at+jwt: it is no access token");
        }
    }
    let Some(alg) = Alg::from_name(alg_name) else {
        // Named (briefly) for the client's benefit; the challenge header keeps only safe characters of it.
        let shown: String = alg_name.chars().take(32).collect();
        return err(format!("algorithm {shown} is not supported"));
    };
    let key = jwks.select(untrusted.header().key_id.as_deref(), alg)?;
    if !key.allowed.contains(&alg) {
        return err(format!("algorithm {alg_name} is not allowed for this key"));
    }
    Ok(Screened {
        token,
        untrusted,
        key,
    })
}

/// A `typ` or `cty` value without the `application/` RFC 7515 §4.1.9 allows to be left off (compared
/// case-insensitively).
fn media_type(value: &str) -> &str {
    value
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(value, |_| &value[12..])
}

/// What is wrong with a header jwt-compact could not read: not JSON, not an object, a parameter named twice (RFC 7515
/// §4: names are unique; a parser taking the first `alg` or `kid` and one taking the last would judge two tokens),
/// no `alg`, or a parameter of the wrong type. Names only parameters the header type declares (serde's own field
/// names), never a value the token holds.
fn malformed_header(token: &str, error: &serde_json::Error) -> String {
    use base64::Engine as _;
    use serde_json::Value;
    let value = token
        .split('.')
        .next()
        .and_then(|header| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
    let Some(value) = value else {
        return "token header is not valid JSON".to_owned();
    };
    let Some(header) = value.as_object() else {
        return "token header is not a JSON object".to_owned();
    };
    let said = error.to_string();
    if let Some(name) = said
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
        .filter(|name| {
            name.len() <= 8 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#')
        })
    {
        return format!("token header parameter {name} appears more than once");
    }
    match header.get("alg") {
        None => "token header has no alg".to_owned(),
        Some(alg) if !alg.is_string() => "token header alg is not a string".to_owned(),
        Some(_) => "token header parameters do not have the types expected of them".to_owned(),
    }
}

/// jwt-compact's validation outcome (of `token`) as [`Signed`] claims or the refusal's description.
fn signed(
    checked: Result<jwt_compact::Token<Custom, HeaderExtensions>, ValidationError>,
    token: &str,
) -> Result<Signed, JwtError> {
    let token = checked.map_err(|e| {
        JwtError(match e {
            ValidationError::MalformedClaims(e) => malformed_claims(token, &e),
            ValidationError::AlgorithmMismatch { .. } => {
                "algorithm does not match the key".to_owned()
            }
            _ => "signature is invalid".to_owned(),
        })
    })?;
    let mut claims = token.claims().clone();
    claims.custom.permissions = distinct(std::mem::take(&mut claims.custom.permissions));
    Ok(Signed(claims))
}

/// What is wrong with claims that did not deserialize: not JSON, not an object, or the claim of the wrong type
/// (before, all of these said "not valid JSON", `"permissions": null` included). Names only claims edgekit reads,
/// never a value the token holds.
fn malformed_claims(token: &str, error: &serde_json::Error) -> String {
    use base64::Engine as _;
    use serde_json::Value;
    // The payload as screening decoded it (it has three parts, each valid base64url), read as any JSON.
    let value = token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
    let Some(value) = value else {
        return "token claims are not valid JSON".to_owned();
    };
    let Some(claims) = value.as_object() else {
        return "token claims are not a JSON object".to_owned();
    };
    let strings = |v: &Value| v.as_array().is_some_and(|l| l.iter().all(Value::is_string));
    // jwt-compact's timestamps: a JSON number (a fraction is cut) within chrono's range.
    let seconds = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_u64().and_then(|n| i64::try_from(n).ok()))
            .or_else(|| v.as_f64().map(|f| f as i64))
            .is_some_and(|s| chrono::DateTime::from_timestamp(s, 0).is_some())
    };
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !seconds(v)) {
            return format!("token claim {name} is not a time in seconds");
        }
    }
    for name in ["iss", "sub", "email"] {
        if claims
            .get(name)
            .is_some_and(|v| !(v.is_string() || v.is_null()))
        {
            return format!("token claim {name} is not a string");
        }
    }
    if claims
        .get("aud")
        .is_some_and(|v| !(v.is_string() || v.is_null() || strings(v)))
    {
        return "token claim aud is not a string or a list of strings".to_owned();
    }
    if claims.get("permissions").is_some_and(|v| !strings(v)) {
        return "token claim permissions is not a list of strings".to_owned();
    }
    // RFC 7519 §4: a claim named twice is refused (serde says so naming the field, one of edgekit's own names).
    let said = error.to_string();
    if let Some(name) = said
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    {
        return format!("token claim {name} appears more than once");
    }
    "token claims do not have the types expected of them".to_owned()
}

/// The claim half of [`verify`]: `exp`/`nbf`/`iat` with leeway at `now` (seconds), `iss` and `aud` when the policy
/// names them, and a subject.
pub fn check(signed: &Signed, policy: &JwtPolicy, now: i64) -> Result<Verified, JwtError> {
    let claims = &signed.0;
    let leeway = policy.leeway_secs;
    let Some(exp) = claims.expiration.map(|t| t.timestamp()) else {
        return err("token has no exp");
    };
    // RFC 7519 §4.1.4: not accepted on or after `exp` (plus the leeway).
    if now >= exp + leeway {
        return err("token has expired");
    }
    if claims
        .not_before
        .is_some_and(|t| now + leeway < t.timestamp())
    {
        return err("token is not valid yet");
    }
    if claims
        .issued_at
        .is_some_and(|t| now + leeway < t.timestamp())
    {
        return err("token is issued in the future");
    }
    let custom = &claims.custom;
    if let Some(expected) = &policy.issuer {
        if custom.iss.as_deref() != Some(expected.as_str()) {
            return err("issuer is not accepted");
        }
    }
    if let Some(expected) = &policy.audience {
        let ok = match &custom.aud {
            Some(Audience::One(a)) => a == expected,
            Some(Audience::Many(list)) => list.iter().any(|a| a == expected),
            None => false,
        };
        if !ok {
            return err("audience is not accepted");
        }
    }
    let Some(sub) = custom.sub.clone().filter(|s| !s.is_empty()) else {
        return err("token has no subject");
    };
    // The claims become the origin's X-User-ID / X-User-Permissions / X-User-Email: a value no header can carry
    // would be left off silently, and a permission with a comma would read as two to an origin splitting the list
    // while the gateway's own check saw one.
    // (Surrounding spaces too: the runtime trims header values, so " alice" would reach the origin as "alice".)
    // Descriptions name the claim, never its value (it is what could not be sent).
    if !header_value(&sub) {
        return err("token claim sub is not printable ASCII without surrounding spaces");
    }
    // The email is sent percent-encoded (any UTF-8 address is carried), but one with control characters or
    // surrounding spaces is no address.
    if custom.email.as_deref().is_some_and(|e| !email_value(e)) {
        return err("token claim email has control characters or surrounding spaces");
    }
    if !custom.permissions.iter().all(|p| header_list_item(p)) {
        return err(
            "token claim permissions holds a name that is empty or not printable ASCII without commas",
        );
    }
    Ok(Verified {
        sub,
        permissions: custom.permissions.clone(),
        email: custom.email.clone(),
    })
}

/// A request's bearer token, verified at most once however many steps ask (route auth, admin purge, cache key).
#[derive(Debug, Default)]
pub struct VerifiedOnce {
    outcome: Option<Result<Verified, JwtError>>,
    verifications: u32,
}

impl VerifiedOnce {
    /// The outcome of `verify_fn`, run only on the first call.
    pub fn get_or_verify(
        &mut self,
        verify_fn: impl FnOnce() -> Result<Verified, JwtError>,
    ) -> Result<Verified, JwtError> {
        if self.outcome.is_none() {
            self.verifications += 1;
            self.outcome = Some(verify_fn());
        }
        self.outcome
            .clone()
            .unwrap_or_else(|| err("token was not verified"))
    }

    /// Whether a verification already ran (its result is cached).
    pub fn done(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn verifications(&self) -> u32 {
        self.verifications
    }
}

/// The policy host tests verify under: issuer `edgekit`, audience `edgekit-api`, 30 s leeway, 8 KB cap.
#[cfg(test)]
pub(crate) fn test_policy() -> JwtPolicy {
    JwtPolicy {
        issuer: Some("edgekit".into()),
        audience: Some("edgekit-api".into()),
        leeway_secs: 30,
        max_token_bytes: 8192,
    }
}

#[cfg(test)]
mod tests {
    use jwt_compact::Header;
    use serde_json::{json, Value};

    use super::*;

    /// The keys a JWKS document of `keys` keeps, and why it skipped the others.
    fn parsed(keys: Value) -> (Jwks, Vec<String>) {
        Jwks::parse(&json!({ "keys": keys }).to_string()).expect("document parses")
    }

    const NOW: i64 = 1_800_000_000;
    const K: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";

    fn jwks(keys: Value) -> Jwks {
        Jwks::parse(&json!({ "keys": keys }).to_string())
            .expect("jwks")
            .0
    }

    fn policy() -> JwtPolicy {
        test_policy()
    }

    fn claims(overrides: Value) -> Value {
        let mut c = json!({"iss": "edgekit", "aud": "edgekit-api", "sub": "u1", "permissions": ["read"],
            "email": "u1@example.com", "iat": NOW, "exp": NOW + 600});
        for (k, v) in overrides.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    /// An HS256 token signed with the test secret (`secret` overrides it to forge a bad signature).
    fn hs(kid: Option<&str>, overrides: Value, secret: &[u8]) -> String {
        let mut header = Header::empty();
        if let Some(kid) = kid {
            header = header.with_key_id(kid);
        }
        Hs256
            .token(
                &header,
                &Claims::new(claims(overrides)),
                &Hs256Key::new(secret),
            )
            .expect("signs")
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn b64(v: &Value) -> String {
        base64url(v.to_string().as_bytes())
    }

    fn base64url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn a_token_naming_critical_header_extensions_is_refused() {
        #[derive(serde::Serialize)]
        struct Unencoded {
            crit: Vec<&'static str>,
            b64: bool,
        }
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        fn signed<T: serde::Serialize>(header: Header<T>) -> String {
            Hs256
                .token(
                    &header.with_key_id("h1"),
                    &Claims::new(claims(json!({}))),
                    &Hs256Key::new(SECRET),
                )
                .expect("signs")
        }
        let token = signed(Header::new(Unencoded {
            crit: vec!["b64"],
            b64: false,
        }));
        assert_eq!(
            verify(&token, &keys, &policy(), NOW).map(|v| v.sub),
            Err(JwtError(
                "token names critical header extensions (crit), which are not understood".into()
            ))
        );
        // `"crit": null` is no header RFC 7515 allows either: present is enough.
        #[derive(serde::Serialize)]
        struct NullCrit {
            crit: Option<Vec<&'static str>>,
        }
        let token = signed(Header::new(NullCrit { crit: None }));
        assert_eq!(
            verify(&token, &keys, &policy(), NOW).map(|v| v.sub),
            Err(JwtError(
                "token names critical header extensions (crit), which are not understood".into()
            )),
            "crit: null"
        );
    }

    /// An HS256 token over `payload` (raw JSON text, which may repeat a member) with the test secret.
    fn hs_raw(payload: &str) -> String {
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "kid": "h1"})),
            base64url(payload.as_bytes())
        );
        let signature = Hs256.sign(&Hs256Key::new(SECRET), input.as_bytes());
        format!(
            "{input}.{}",
            base64url(&jwt_compact::AlgorithmSignature::as_bytes(&signature))
        )
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused_naming_the_claim() {
        // Before, each of these said "token claims are not valid JSON" of claims that were valid JSON.
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let permissions = "token claim permissions is not a list of strings";
        for (overrides, expected) in [
            (json!({"permissions": "read"}), permissions),
            (json!({"permissions": 7}), permissions),
            (json!({"permissions": {"read": true}}), permissions),
            (json!({"permissions": ["read", 1]}), permissions),
            (json!({"permissions": [["read"]]}), permissions),
            (json!({"sub": 42}), "token claim sub is not a string"),
            (
                json!({"iss": ["edgekit"]}),
                "token claim iss is not a string",
            ),
            (json!({"email": true}), "token claim email is not a string"),
            (
                json!({"aud": {"edgekit-api": 1}}),
                "token claim aud is not a string or a list of strings",
            ),
            (
                json!({"aud": ["edgekit-api", 2]}),
                "token claim aud is not a string or a list of strings",
            ),
            (
                json!({"exp": "tomorrow"}),
                "token claim exp is not a time in seconds",
            ),
            (
                json!({"nbf": 1e300}),
                "token claim nbf is not a time in seconds",
            ),
            (
                json!({"iat": [NOW]}),
                "token claim iat is not a time in seconds",
            ),
        ] {
            let outcome = verify(
                &hs(Some("h1"), overrides.clone(), SECRET),
                &keys,
                &policy(),
                NOW,
            );
            assert_eq!(outcome, Err(JwtError(expected.into())), "{overrides}");
        }
        // `null` (which the claims helper reads as "leave out"), written out.
        let null = |name: &str| {
            let mut c = claims(json!({}));
            c[name] = Value::Null;
            hs_raw(&c.to_string())
        };
        assert_eq!(
            verify(&null("permissions"), &keys, &policy(), NOW),
            Err(JwtError(permissions.into()))
        );
        assert_eq!(
            verify(&null("exp"), &keys, &policy(), NOW),
            Err(JwtError("token claim exp is not a time in seconds".into()))
        );
        // A null `email` is no email, as before.
        assert_eq!(
            verify(&null("email"), &keys, &policy(), NOW).map(|v| v.email),
            Ok(None)
        );
        for (payload, expected) in [
            ("[1,2]", "token claims are not a JSON object"),
            ("{\"sub\":", "token claims are not valid JSON"),
        ] {
            assert_eq!(
                verify(&hs_raw(payload), &keys, &policy(), NOW),
                Err(JwtError(expected.into())),
                "{payload}"
            );
        }
    }

    /// A header that is valid JSON but not what a JWS header must be was said to be "not valid JSON" (a repeated
    /// member), or "malformed" (`cty: "JWT"`, a nested token, RFC 7519 §5.2): each now says what is wrong, naming
    /// only header parameters edgekit reads, never a value the token holds.
    #[test]
    fn a_header_that_is_json_but_no_jws_header_says_what_is_wrong() {
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let body = b64(&claims(json!({})));
        for (header, description) in [
            (
                r#"{"alg":"HS256","kid":"h1","cty":"JWT"}"#,
                "token content type (cty) is a nested JWT, which is not accepted",
            ),
            (
                r#"{"alg":"HS256","kid":"h1","cty":"application/jwt"}"#,
                "token content type (cty) is a nested JWT, which is not accepted",
            ),
            (
                r#"{"alg":"HS256","kid":"h1","cty":"secret-value"}"#,
                "token content type (cty) is not JSON",
            ),
            (
                r#"{"alg":"HS256","alg":"none","kid":"h1"}"#,
                "token header parameter alg appears more than once",
            ),
            (
                r#"{"alg":"HS256","kid":"h1","kid":"h2"}"#,
                "token header parameter kid appears more than once",
            ),
            (
                r#"{"alg":"HS256","kid":"h1","typ":"JWT","typ":"dpop+jwt"}"#,
                "token header parameter typ appears more than once",
            ),
            (
                r#"{"alg":"HS256","kid":"h1","cty":"JWT","cty":"json"}"#,
                "token header parameter cty appears more than once",
            ),
            (r#"["HS256"]"#, "token header is not a JSON object"),
            (r#"{"kid":"h1"}"#, "token header has no alg"),
            (
                r#"{"alg":5,"kid":"h1"}"#,
                "token header alg is not a string",
            ),
            (
                r#"{"alg":"HS256","kid":7}"#,
                "token header parameters do not have the types expected of them",
            ),
            (r#"{"alg":"HS256""#, "token header is not valid JSON"),
        ] {
            let token = format!("{}.{body}.c2ln", base64url(header.as_bytes()));
            assert_eq!(
                verify(&token, &keys, &policy(), NOW).map(|v| v.sub),
                Err(JwtError(description.into())),
                "{header}: the description is exactly this, so no value of the token is in it"
            );
        }
    }

    #[test]
    fn a_token_typed_as_another_kind_of_jwt_is_refused() {
        // RFC 8725 §3.11: explicit typing keeps one kind of JWT from being taken for another. A DPoP proof, a
        // logout token or a security event token signed by the same issuer is no access token, whatever its claims.
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let typed = |typ: Value| {
            let mut header = json!({"alg": "HS256", "kid": "h1"});
            if !typ.is_null() {
                header["typ"] = typ;
            }
            let input = format!("{}.{}", b64(&header), b64(&claims(json!({}))));
            let signature = Hs256.sign(&Hs256Key::new(SECRET), input.as_bytes());
            format!(
                "{input}.{}",
                base64url(&jwt_compact::AlgorithmSignature::as_bytes(&signature))
            )
        };
        // RFC 7515 §4.1.9: a media type, compared case-insensitively, `application/` may be left off.
        for typ in [
            Value::Null,
            json!("JWT"),
            json!("jwt"),
            json!("application/jwt"),
            json!("at+jwt"),
            json!("AT+JWT"),
            json!("application/at+jwt"),
            json!("Application/At+JWT"),
        ] {
            assert_eq!(
                verify(&typed(typ.clone()), &keys, &policy(), NOW).map(|v| v.sub),
                Ok("u1".into()),
                "typ {typ}"
            );
        }
        for typ in [
            "dpop+jwt",
            "logout+jwt",
            "secevent+jwt",
            "application/secevent+jwt",
            "JOSE",
            "",
        ] {
            assert_eq!(
                verify(&typed(json!(typ)), &keys, &policy(), NOW),
                Err(JwtError(
                    "token type (typ) is not JWT or at+jwt: it is no access token".into()
                )),
                "typ {typ}"
            );
        }
    }

    #[test]
    fn a_claim_named_twice_is_refused() {
        // RFC 7519 §4: claim names are unique; a parser taking the first `sub` and one taking the last would see two
        // users in one token.
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let rest = format!(
            r#""iss":"edgekit","aud":"edgekit-api","iat":{NOW},"exp":{}"#,
            NOW + 600
        );
        for (payload, name) in [
            (format!(r#"{{"sub":"u1","sub":"admin",{rest}}}"#), "sub"),
            (
                format!(r#"{{"sub":"u1","permissions":["read"],"permissions":["admin"],{rest}}}"#),
                "permissions",
            ),
            (format!(r#"{{"sub":"u1","exp":1,{rest}}}"#), "exp"),
        ] {
            let outcome = verify(&hs_raw(&payload), &keys, &policy(), NOW).map(|v| v.sub);
            assert_eq!(
                outcome,
                Err(JwtError(format!(
                    "token claim {name} appears more than once"
                ))),
                "{payload}"
            );
        }
    }

    #[test]
    fn a_permission_named_twice_is_held_once() {
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let v = verify(
            &hs(
                Some("h1"),
                json!({"permissions": ["read", "write", "read", "write", "admin"]}),
                SECRET,
            ),
            &keys,
            &policy(),
            NOW,
        )
        .expect("valid");
        assert_eq!(v.permissions, ["read", "write", "admin"]);
    }

    #[test]
    fn an_ed25519_alg_in_the_header_is_eddsa_on_an_ed25519_key_and_on_no_other() {
        // RFC 9864 §2.2 registers `Ed25519` for JWS: a token may name it instead of the polymorphic `EdDSA`.
        let (_, _, pair) = ed(json!({}));
        let ed25519 = |kid: &str, overrides: Value| {
            let input = format!(
                "{}.{}",
                b64(&json!({"alg": "Ed25519", "kid": kid})),
                b64(&claims(overrides))
            );
            let signature = pair.sk.sign(input.as_bytes(), None);
            format!("{input}.{}", base64url(signature.as_ref()))
        };
        let mut public =
            serde_json::to_value(jwt_compact::jwk::JsonWebKey::from(&pair.pk)).expect("jwk");
        for alg in [None, Some("EdDSA"), Some("Ed25519")] {
            public["kid"] = json!("e1");
            match alg {
                Some(alg) => public["alg"] = json!(alg),
                None => {
                    public.as_object_mut().expect("object").remove("alg");
                }
            }
            let keys = jwks(json!([public.clone()]));
            let token = ed25519("e1", json!({"sub": "fully-specified"}));
            assert_eq!(
                verify(&token, &keys, &policy(), NOW).map(|v| v.sub),
                Ok("fully-specified".into()),
                "key alg {alg:?}"
            );
            // The outside verifier is handed it as any EdDSA token, and its verdict decides.
            let check = runtime_check(&token, &keys, &policy())
                .expect("screened")
                .expect("an Ed25519 key");
            assert_eq!(check.webcrypto_algorithms().1, r#"{"name":"Ed25519"}"#);
            assert!(check.finish(true).is_ok());
            assert_eq!(check.finish(false).unwrap_err().0, "signature is invalid");
            // Tampered claims: the signature no longer covers them.
            let (head, rest) = token.split_once('.').expect("parts");
            let (_, signature) = rest.split_once('.').expect("parts");
            let tampered = format!(
                "{head}.{}.{signature}",
                b64(&claims(json!({"sub": "admin"})))
            );
            assert_eq!(
                verify(&tampered, &keys, &policy(), NOW),
                Err(JwtError("signature is invalid".into()))
            );
        }
        // On any other key type, the name is refused before any signature work (alg confusion).
        public["kid"] = json!("e1");
        let others = jwks(json!([
            public,
            {"kty": "oct", "kid": "h1", "k": K},
            {"kty": "RSA", "kid": "r", "n": RSA_2048_N, "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "e", "x": P256_X, "y": P256_Y},
        ]));
        for kid in ["h1", "r", "e"] {
            assert_eq!(
                screen(&ed25519(kid, json!({})), &others, &policy()).err(),
                Some(JwtError(
                    "algorithm Ed25519 is not allowed for this key".into()
                )),
                "{kid}"
            );
        }
        // JOSE names are case-sensitive.
        let lower = ed25519("e1", json!({})).replacen(
            &b64(&json!({"alg": "Ed25519", "kid": "e1"})),
            &b64(&json!({"alg": "ed25519", "kid": "e1"})),
            1,
        );
        assert_eq!(
            verify(&lower, &others, &policy(), NOW),
            Err(JwtError("algorithm ed25519 is not supported".into()))
        );
    }

    #[test]
    fn claims_that_identity_headers_could_not_carry_faithfully_are_refused() {
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        for (overrides, expected) in [
            (json!({"permissions": ["read,admin"]}), "claim permissions "),
            (json!({"permissions": ["read admin"]}), "claim permissions "),
            (json!({"permissions": [""]}), "claim permissions "),
            (json!({"permissions": ["lecture-é"]}), "claim permissions "),
            (json!({"permissions": ["read\u{7f}"]}), "claim permissions "),
            (
                json!({"sub": "u1\r\nX-User-Permissions: admin"}),
                "claim sub ",
            ),
            (json!({"sub": "Seán Ó"}), "claim sub "),
            (json!({"sub": "日本"}), "claim sub "),
            (json!({"sub": "u1\u{a0}"}), "claim sub "),
            (json!({"sub": " alice"}), "claim sub "),
            (json!({"email": "a@b.c\n"}), "claim email "),
            (json!({"email": " a@b.c"}), "claim email "),
        ] {
            let refused = verify(
                &hs(Some("h1"), overrides.clone(), SECRET),
                &keys,
                &policy(),
                NOW,
            )
            .map(|v| v.sub)
            .expect_err("refused");
            assert!(refused.0.contains(expected), "{overrides}: {refused:?}");
            for value in ["admin", "é", "Seán", "日本", "alice", "a@b.c"] {
                assert!(
                    !refused.0.contains(value),
                    "{overrides}: value echoed in {refused:?}"
                );
            }
        }
        let carried = verify(
            &hs(
                Some("h1"),
                json!({"sub": "CN=Ann Lee,O=Example", "email": "josé@例え.jp",
                       "permissions": ["users:read", "a.b-c_d", "~!#$%&*+/=?^|"]}),
                SECRET,
            ),
            &keys,
            &policy(),
            NOW,
        )
        .expect("a comma and inner spaces in sub, a UTF-8 email (sent percent-encoded) pass");
        assert_eq!(carried.sub, "CN=Ann Lee,O=Example");
        assert_eq!(carried.email.as_deref(), Some("josé@例え.jp"));
        // A session's users.id is held to the same rule (a token's empty sub never gets this far: no subject).
        for (id, sent) in [
            ("", false),
            ("u1", true),
            ("CN=Ann Lee,O=Example", true),
            (" u1", false),
            ("usuário-7", false),
        ] {
            assert_eq!(header_value(id), sent, "{id:?}");
        }
    }

    #[test]
    fn a_valid_token_yields_its_identity() {
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let v = verify(&hs(Some("h1"), json!({}), SECRET), &keys, &policy(), NOW).expect("valid");
        assert_eq!(v.sub, "u1");
        assert_eq!(v.permissions, vec!["read"]);
        assert_eq!(v.email.as_deref(), Some("u1@example.com"));
        assert_eq!(v.missing(&["read".into()]), None);
        assert_eq!(v.missing(&["read".into(), "admin".into()]), Some("admin"));
        let single = jwks(json!([{"kty": "oct", "k": K}]));
        assert!(
            verify(&hs(None, json!({}), SECRET), &single, &policy(), NOW).is_ok(),
            "one key needs no kid"
        );
        let listed = verify(
            &hs(Some("h1"), json!({"aud": ["other", "edgekit-api"]}), SECRET),
            &keys,
            &policy(),
            NOW,
        );
        assert!(listed.is_ok(), "aud may be a list containing ours");
    }

    #[test]
    fn every_rejection_class_has_its_description() {
        let two =
            jwks(json!([{"kty": "oct", "kid": "h1", "k": K}, {"kty": "oct", "kid": "h2", "k": K}]));
        let header_none = b64(&json!({"alg": "none", "kid": "h1"}));
        let body = b64(&claims(json!({})));
        let cases: Vec<(String, &str, &str)> = vec![
            (
                hs(Some("h1"), json!({}), b"another-secret-another-secret-xx"),
                "signature is invalid",
                "bad signature",
            ),
            (
                format!("{header_none}.{body}."),
                "algorithm none is not accepted",
                "alg none",
            ),
            (
                hs(None, json!({}), SECRET),
                "token has no kid and several keys exist",
                "missing kid",
            ),
            (
                hs(Some("zz"), json!({}), SECRET),
                "unknown key id",
                "unknown kid",
            ),
            ("abc.def".to_owned(), "token is malformed", "two parts"),
            (
                "a$b.c*d.e!f".to_owned(),
                "token is not valid base64url",
                "bad base64",
            ),
            (
                format!("{}.{body}.sig", base64url(b"{not json")),
                "token header is not valid JSON",
                "bad header json",
            ),
            (
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "HS256", "kid": "h1"})),
                    base64url(b"[1,")
                ),
                "signature is invalid",
                "bad claims json, unsigned",
            ),
            ("x".repeat(8193), "token exceeds 8192 bytes", "oversize"),
            (
                hs(Some("h1"), json!({"exp": NOW - 31}), SECRET),
                "token has expired",
                "expired beyond leeway",
            ),
            (
                hs(Some("h1"), json!({"exp": null}), SECRET),
                "token has no exp",
                "no exp",
            ),
            (
                hs(Some("h1"), json!({"nbf": NOW + 31}), SECRET),
                "token is not valid yet",
                "nbf",
            ),
            (
                hs(Some("h1"), json!({"iat": NOW + 3600}), SECRET),
                "token is issued in the future",
                "iat",
            ),
            (
                hs(Some("h1"), json!({"iss": "evil"}), SECRET),
                "issuer is not accepted",
                "iss",
            ),
            (
                hs(Some("h1"), json!({"aud": "other"}), SECRET),
                "audience is not accepted",
                "aud",
            ),
            (
                hs(Some("h1"), json!({"sub": null}), SECRET),
                "token has no subject",
                "sub",
            ),
            (
                format!("{}.{body}.x", b64(&json!({"alg": "HS512", "kid": "h1"})))
                    .replace(".x", ".eHl6"),
                "algorithm HS512 is not supported",
                "unsupported alg",
            ),
        ];
        for (token, description, case) in cases {
            let outcome = verify(&token, &two, &policy(), NOW);
            assert_eq!(
                outcome,
                Err(JwtError(description.to_owned())),
                "case: {case}"
            );
        }
        let ok_in_leeway = verify(
            &hs(
                Some("h1"),
                json!({"exp": NOW - 29, "nbf": NOW + 29}),
                SECRET,
            ),
            &two,
            &policy(),
            NOW,
        );
        assert!(ok_in_leeway.is_ok(), "leeway applies to exp and nbf");
        let exactly_at_the_edge = verify(
            &hs(Some("h1"), json!({"exp": NOW - 30}), SECRET),
            &two,
            &policy(),
            NOW,
        );
        assert_eq!(
            exactly_at_the_edge,
            Err(JwtError("token has expired".into())),
            "not accepted on or after exp + leeway"
        );
    }

    #[test]
    fn keys_allow_only_their_algorithm_and_bad_keys_are_skipped_with_a_reason() {
        let (keys, skipped) = parsed(json!([
            {"kty": "oct", "kid": "h1", "k": K, "alg": "HS256"},
            {"kty": "oct", "kid": "bad-alg", "k": K, "alg": "RS256"},
            {"kty": "oct", "kid": "enc", "k": K, "use": "enc"},
            {"kty": "oct", "kid": "sign-only", "k": K, "key_ops": ["sign"]},
            {"kty": "oct", "kid": "ops-not-a-list", "k": K, "key_ops": "verify"},
            {"kty": "oct", "kid": "h2", "k": K, "key_ops": ["sign", "verify"]},
            {"kty": "XYZ", "kid": "weird"},
            {"kty": "OKP", "kid": "short", "crv": "Ed25519", "x": "AAAA"},
            {"kty": "oct", "kid": "empty", "k": ""},
            {"kty": "oct", "kid": "six-bytes", "k": "c2VjcmV0"},
            // Members of the wrong type are broken keys, not absent members.
            {"kty": "oct", "kid": "use-list", "k": K, "use": ["enc"]},
            {"kty": "oct", "kid": 7, "k": K},
            {"kty": "oct", "kid": "alg-number", "k": K, "alg": 5},
        ]));
        assert_eq!(keys.len(), 2, "only the good keys are kept");
        assert_eq!(skipped.len(), 11, "{skipped:?}");
        for (i, member) in [(8, "use"), (9, "kid"), (10, "alg")] {
            assert!(
                skipped[i].starts_with(&format!("key {}: {member} ", i + 2))
                    && skipped[i].ends_with("is not a string"),
                "{skipped:?}"
            );
        }
        assert!(
            skipped[6].starts_with("key 8: HMAC key of 0 bytes")
                && skipped[7].starts_with("key 9: HMAC key of 6 bytes"),
            "{skipped:?}"
        );
        assert!(
            skipped[2].starts_with("key 3: key_ops [\"sign\"] does not include verify"),
            "{skipped:?}"
        );
        assert!(
            skipped[3].starts_with("key 4: key_ops \"verify\" is not a list"),
            "{skipped:?}"
        );
        assert!(
            skipped[0].starts_with("key 1: alg \"RS256\""),
            "{skipped:?}"
        );
        assert!(Jwks::parse("{\"nokeys\": 1}").is_err());
        let rs_header = b64(&json!({"alg": "RS256", "kid": "h1"}));
        let token = format!("{rs_header}.{}.c2ln", b64(&claims(json!({}))));
        assert_eq!(
            verify(&token, &keys, &policy(), NOW),
            Err(JwtError(
                "algorithm RS256 is not allowed for this key".into()
            )),
            "an RS256 header cannot use an HMAC key"
        );
    }

    #[test]
    fn bearer_tokens_are_taken_from_the_authorization_header() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Ok("abc"));
        assert!(bearer(None).is_err());
        assert!(bearer(Some("Basic dXNlcg==")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
    }

    #[test]
    fn a_token_is_verified_at_most_once_per_request() {
        let mut once = VerifiedOnce::default();
        let keys = jwks(json!([{"kty": "oct", "kid": "h1", "k": K}]));
        let token = hs(Some("h1"), json!({}), SECRET);
        for _ in 0..3 {
            let v = once.get_or_verify(|| verify(&token, &keys, &policy(), NOW));
            assert!(v.is_ok());
        }
        assert_eq!(once.verifications(), 1);
        let mut failing = VerifiedOnce::default();
        for _ in 0..2 {
            assert!(failing.get_or_verify(|| err("nope")).is_err());
        }
        assert_eq!(failing.verifications(), 1, "a failure is remembered too");
    }

    /// The outside check of `token`, `None` for an HMAC key.
    fn runtime_check<'t, 'k>(
        token: &'t str,
        jwks: &'k Jwks,
        policy: &JwtPolicy,
    ) -> Result<Option<RuntimeCheck<'t, 'k>>, JwtError> {
        Ok(match screen(token, jwks, policy)?.verifier() {
            Verifier::Runtime(check) => Some(check),
            Verifier::Here(_) => None,
        })
    }

    /// An EdDSA token under the fixed test key pair, and that key set (public half only).
    fn ed(overrides: Value) -> (String, Jwks, ed25519_compact::KeyPair) {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([9; 32]));
        let mut public =
            serde_json::to_value(jwt_compact::jwk::JsonWebKey::from(&pair.pk)).expect("jwk");
        public["kid"] = json!("e1");
        let token = Ed25519
            .token(
                &Header::empty().with_key_id("e1"),
                &Claims::new(claims(overrides)),
                &pair.sk,
            )
            .expect("signs");
        (token, jwks(json!([public])), pair)
    }

    /// The public JWK of `pair` under `kid`.
    fn ed_public(pair: &ed25519_compact::KeyPair, kid: &str) -> Value {
        let mut public =
            serde_json::to_value(jwt_compact::jwk::JsonWebKey::from(&pair.pk)).expect("jwk");
        public["kid"] = json!(kid);
        public
    }

    #[test]
    fn an_ed25519_key_naming_its_algorithm_ed25519_verifies_eddsa_tokens() {
        // RFC 9864 registers `Ed25519` as the JOSE algorithm of EdDSA on that curve, and WebCrypto's JWK export of an
        // Ed25519 key writes `"alg": "Ed25519"` (node's does): such a published key is the signing key's public half.
        let (token, _, pair) = ed(json!({}));
        let mut public = ed_public(&pair, "e1");
        public["alg"] = json!("Ed25519");
        let (keys, skipped) =
            Jwks::parse(&json!({ "keys": [public.clone()] }).to_string()).expect("jwks");
        assert_eq!(skipped, Vec::<String>::new());
        assert_eq!(
            verify(&token, &keys, &policy(), NOW).map(|v| v.sub),
            Ok("u1".into())
        );
        // The name does not stretch to other key types.
        let (keys, skipped) = Jwks::parse(
            &json!({"keys": [{"kty": "oct", "kid": "h", "k": K, "alg": "Ed25519"}]}).to_string(),
        )
        .expect("jwks");
        assert!(
            keys.is_empty() && skipped[0].contains("does not fit the key type"),
            "{skipped:?}"
        );
    }

    #[test]
    fn keys_sharing_a_kid_are_picked_by_algorithm_and_same_algorithm_duplicates_are_skipped() {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([9; 32]));
        let public = ed_public(&pair, "h1");
        let (keys, skipped) = parsed(json!([
            public,
            {"kty": "oct", "kid": "h1", "k": K},
            {"kty": "oct", "kid": "h1", "k": "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE"},
        ]));
        assert_eq!(keys.len(), 2);
        assert_eq!(
            skipped,
            ["key 2: kid \"h1\" is already used by an earlier key for the same algorithm"]
        );
        let v = verify(&hs(Some("h1"), json!({}), SECRET), &keys, &policy(), NOW);
        assert!(
            v.is_ok(),
            "HS256 meets the HMAC key under the shared kid: {v:?}"
        );
        let ed_token = Ed25519
            .token(
                &Header::empty().with_key_id("h1"),
                &Claims::new(claims(json!({}))),
                &pair.sk,
            )
            .expect("signs");
        let check = runtime_check(&ed_token, &keys, &policy()).expect("screened");
        assert!(check.is_some(), "EdDSA meets the Ed25519 key");
    }

    #[test]
    fn a_runtime_check_hands_out_exactly_what_the_signature_covers() {
        let (token, keys, pair) = ed(json!({}));
        let check = runtime_check(&token, &keys, &policy())
            .expect("screened")
            .expect("an Ed25519 key");
        // The public half only, as WebCrypto imports it.
        let jwk: Value = serde_json::from_str(check.jwk()).expect("json");
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["x"], base64url(pair.pk.as_ref()));
        assert!(jwk.get("d").is_none());
        assert_eq!(check.webcrypto_algorithms().1, r#"{"name":"Ed25519"}"#);
        assert!(check.well_formed());
        let (input, _) = token.rsplit_once('.').expect("three parts");
        assert_eq!(check.message(), input.as_bytes());
        let signature =
            ed25519_compact::Signature::from_slice(check.signature()).expect("64 bytes");
        assert!(pair.pk.verify(check.message(), &signature).is_ok());
        // The outside verdict decides; the claims come out as jwt-compact's own path gives them.
        let signed = check.finish(true).expect("valid");
        assert_eq!(
            check_claims(&signed),
            check_claims(&verify_signature(&token, &keys, &policy()).expect("valid"))
        );
        assert_eq!(check.finish(false).unwrap_err().0, "signature is invalid");
    }

    fn check_claims(signed: &Signed) -> Verified {
        check(signed, &policy(), NOW).expect("claims pass")
    }

    #[test]
    fn a_true_verdict_cannot_bless_what_jwt_compact_refuses() {
        let (token, keys, _) = ed(json!({}));
        let (head, rest) = token.split_once('.').expect("parts");
        let (_, signature) = rest.split_once('.').expect("parts");
        // A signature of the wrong length, and claims that are not JSON: refused whatever the verifier said.
        let short = format!("{head}.{}.{}", b64(&claims(json!({}))), &signature[..40]);
        let check = runtime_check(&short, &keys, &policy())
            .expect("screened")
            .expect("ed key");
        assert_eq!(check.finish(true).unwrap_err().0, "signature is invalid");
        let not_json = format!("{head}.{}.{signature}", base64url(b"[1,2"));
        let check = runtime_check(&not_json, &keys, &policy())
            .expect("screened")
            .expect("ed key");
        assert_eq!(
            check.finish(true).unwrap_err().0,
            "token claims are not valid JSON"
        );
        // Screening refusals come before any signature work, as on the in-wasm path.
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "e1"})),
            b64(&claims(json!({})))
        );
        assert_eq!(
            runtime_check(&none, &keys, &policy())
                .err()
                .map(|e| e.0)
                .as_deref(),
            Some("algorithm none is not accepted")
        );
        // A key of another type is verified here, not handed out.
        let hs_keys = jwks(json!([{"kty": "oct", "kid": "h1", "alg": "HS256", "k": K}]));
        assert!(
            runtime_check(&hs(Some("h1"), json!({}), SECRET), &hs_keys, &policy())
                .expect("screened")
                .is_none()
        );
    }

    /// Public keys made with Node's crypto (`generateKeyPairSync`), fixed so the tests need no key generation.
    const RSA_2048_N: &str = "yey5NhDnZLeOSts-RcBPahonAqs5_EslzdpgpFZxXKZ98uJkHMNtC-7ltO2IU5bhd0lRsL6W_EkZ-OURRqcgG05ulTEKtz4UAPkMtEMzOQbUwuSMlzLlCTkmB42LLtXZt2cW3jO7cH8aJtICszEWb8tXDT6jkNywrmKA6fPEay64pC7nWKZt5eLswGw3wlsq7sAjzz9FX-1bHf4AFHB4Oh9NEYGD3QUTJE9cAAKuSQneveKbYdBxMjGkcmUxMnKR6BkW01d-2K3fE3NoaHzmEhJK35sxKL-ckmajPrN9N9esAfhOzughw-MZmTjuSpp6EbYggiad59UCiJkFiwjKWQ";
    const RSA_1024_N: &str = "rgbPSnYfNmfE0obV5J76pRPOOp9kvmgzgnnihWs4Ju9DwSLTSMujQwAPMtfZX_-EEiAPuF2Km0bihIhvUceOCSJlPHZS_rdDV08bsKzN5HtChNAvnpx4-u1c8D6pzgxj5GHNGob1D7YcD9pZL22xklNKjZhfp6Ka194X1pi61DM";
    const P256_X: &str = "1TW9TrUJhTZysU7xlP9XeV424SXbSTF8k8Kr0hgJcNY";
    const P256_Y: &str = "Tg076gclMbdwtLH2Crv38u7lGS2EWFn5vpfBv61UQpk";

    /// A token with `header` and the default claims, signed with `signature` (raw bytes, not checked here).
    fn with_signature(header: Value, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(&header),
            b64(&claims(json!({}))),
            base64url(signature)
        )
    }

    #[test]
    fn weak_and_short_keys_are_skipped_with_a_reason() {
        // The Ed25519 identity point: a small-order key some verifiers accept a forged signature for.
        let identity = base64url(&{
            let mut x = [0u8; 32];
            x[0] = 1;
            x
        });
        let (keys, skipped) = parsed(json!([
            {"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": identity},
            {"kty": "RSA", "kid": "short", "n": RSA_1024_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "ok", "n": RSA_2048_N, "e": "AQAB"},
        ]));
        assert_eq!(keys.len(), 1, "{skipped:?}");
        assert_eq!(
            skipped,
            vec![
                "key 0: weak or non-canonical Ed25519 key".to_owned(),
                "key 1: RSA key of 1024 bits; at least 2048 are required".to_owned(),
            ]
        );
    }

    /// The reasons keys were skipped go into one log line per read (`jwks keys skipped`): a document within its bound
    /// of `[0,0,…]` made 65,527 of them, a 6 MB line, and a reason quoting a key's member (a 2048-bit `n` in the
    /// wrong alphabet) ran to hundreds of characters. The first few are given, each cut short, and the rest counted.
    #[test]
    fn the_reasons_for_skipped_keys_are_bounded_in_number_and_length() {
        let many = format!("{{\"keys\":[{}0]}}", "0,".repeat(999));
        let (keys, skipped) = Jwks::parse(&many).expect("a JWKS");
        assert!(keys.is_empty());
        assert_eq!(skipped.len(), MAX_SKIPPED_REASONS + 1, "{skipped:?}");
        assert!(skipped[0].starts_with("key 0: not a JWK"), "{skipped:?}");
        assert_eq!(
            skipped[MAX_SKIPPED_REASONS],
            format!("and {} more keys skipped", 1000 - MAX_SKIPPED_REASONS)
        );
        // Up to the bound, every reason is given.
        let fit = format!("{{\"keys\":[{}0]}}", "0,".repeat(MAX_SKIPPED_REASONS - 1));
        assert_eq!(
            Jwks::parse(&fit).expect("a JWKS").1.len(),
            MAX_SKIPPED_REASONS
        );
        // A reason quoting a long value is cut short (on a character boundary).
        let (_, skipped) = Jwks::parse(
            &json!({"keys": [{"kty": "RSA", "n": RSA_2048_N, "e": "AQAB", "key_ops": ["é".repeat(400)]}]})
                .to_string(),
        )
        .expect("a JWKS");
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].starts_with("key 0: key_ops [\"éé")
                && skipped[0].ends_with('…')
                && skipped[0].chars().count() == MAX_REASON_CHARS + 1,
            "{skipped:?}"
        );
    }

    #[test]
    fn a_jwks_document_over_its_bound_is_refused_before_it_is_parsed() {
        // Before, any size was parsed: 10,000 RSA keys (3.9 MB) took seconds of CPU on each read.
        let document = |keys: usize, pad: usize| {
            let keys: Vec<Value> = (0..keys)
                .map(
                    |i| json!({"kty": "RSA", "kid": format!("r{i}"), "n": RSA_2048_N, "e": "AQAB"}),
                )
                .collect();
            let text = json!({ "keys": keys }).to_string();
            format!("{text}{}", " ".repeat(pad))
        };
        let one = document(1, 0).len();
        let fit = document(1, MAX_JWKS_BYTES - one);
        assert_eq!(fit.len(), MAX_JWKS_BYTES);
        assert_eq!(Jwks::parse(&fit).map(|(k, _)| k.len()), Ok(1));
        let over = document(1, MAX_JWKS_BYTES - one + 1);
        assert_eq!(
            Jwks::parse(&over).err(),
            Some(format!(
                "document of {} bytes; at most {MAX_JWKS_BYTES} are read",
                MAX_JWKS_BYTES + 1
            ))
        );
        // Counted in bytes, as KV stores the document, not in characters: one of two-byte characters that fits the
        // bound in characters is over it in bytes.
        let wide = |n: usize| {
            json!({"keys": [{"kty": "RSA", "kid": "é".repeat(n), "n": RSA_2048_N, "e": "AQAB"}]})
                .to_string()
        };
        let n = MAX_JWKS_BYTES - wide(0).len();
        let wide = wide(n);
        assert_eq!(wide.chars().count(), MAX_JWKS_BYTES);
        assert_eq!(
            Jwks::parse(&wide).err(),
            Some(format!(
                "document of {} bytes; at most {MAX_JWKS_BYTES} are read",
                MAX_JWKS_BYTES + n
            ))
        );
        let many = document(10_000, 0);
        assert!(
            Jwks::parse(&many)
                .is_err_and(|e| e.starts_with(&format!("document of {} bytes;", many.len()))),
            "10,000 keys"
        );
    }

    /// Coverage only (these were refused at 921e2e0 already, by jwt-compact and the rsa crate): the key shapes an
    /// attacker's or a careless operator's document may hold that no verifier should trust, each skipped.
    #[test]
    fn keys_of_other_curves_bad_exponents_and_wrong_lengths_are_skipped() {
        let cases = [
            // e = 1 makes the signature its own padded message; even exponents are no RSA key.
            json!({"kty": "RSA", "n": RSA_2048_N, "e": "AQ"}),
            json!({"kty": "RSA", "n": RSA_2048_N, "e": "Ag"}),
            json!({"kty": "RSA", "n": RSA_2048_N, "e": "AQAA"}),
            json!({"kty": "EC", "crv": "P-384", "x": P256_X, "y": P256_Y}),
            json!({"kty": "EC", "crv": "secp256k1", "x": P256_X, "y": P256_Y}),
            json!({"kty": "EC", "crv": "P-256", "x": &P256_X[..40], "y": P256_Y}),
            json!({"kty": "OKP", "crv": "X448", "x": P256_X}),
            json!({"kty": "OKP", "crv": "Ed448", "x": P256_X}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": &P256_X[..40]}),
        ];
        for key in cases {
            let (keys, skipped) =
                Jwks::parse(&json!({ "keys": [key.clone()] }).to_string()).expect("a JWKS");
            assert!(keys.is_empty() && skipped.len() == 1, "{key}: {skipped:?}");
        }
    }

    /// An RSA key the wasm verifier cannot hold (over 4096 bits: the `rsa` crate's bound, which jwt-compact keeps) or
    /// that is no RSA key says so, naming the key type and, for its size, the bits it has and the most read. Before,
    /// the log said "modulus too large" or "invalid exponent", naming neither the key type nor the bound.
    #[test]
    fn an_rsa_key_too_large_or_malformed_is_skipped_saying_why() {
        let huge = base64url(&[0xff; 1024]);
        let (keys, skipped) = parsed(json!([
            {"kty": "RSA", "kid": "huge", "n": huge, "e": "AQAB"},
            {"kty": "RSA", "kid": "even-e", "n": RSA_2048_N, "e": "AQAA"},
            {"kty": "RSA", "kid": "ok", "n": RSA_2048_N, "e": "AQAB"},
        ]));
        assert_eq!(keys.len(), 1, "{skipped:?}");
        assert_eq!(
            skipped,
            vec![
                "key 0: RSA key of 8192 bits; at most 4096 are supported".to_owned(),
                "key 1: RSA key: invalid exponent".to_owned(),
            ]
        );
    }

    /// A key member in base64 with padding or in the standard alphabet — as Python's `urlsafe_b64encode` and
    /// `b64encode` write them — is skipped naming the member and what is wrong with it (never its value). Before,
    /// every such key said "invalid value: string, expected base64url-encoded data", naming no member.
    #[test]
    fn a_key_member_in_padded_or_standard_base64_is_named_in_its_reason() {
        let (keys, skipped) = parsed(json!([
            {"kty": "RSA", "kid": "padded", "n": format!("{RSA_2048_N}=="), "e": "AQAB"},
            {"kty": "EC", "kid": "standard", "crv": "P-256", "x": format!("/{}", &P256_X[1..]), "y": P256_Y},
            {"kty": "oct", "kid": "h", "k": format!("{K}+")},
            {"kty": "RSA", "kid": "ok", "n": RSA_2048_N, "e": "AQAB"},
        ]));
        assert_eq!(keys.len(), 1, "{skipped:?}");
        assert_eq!(
            skipped,
            vec![
                "key 0: n has base64 padding (=); JWK members are base64url without it".to_owned(),
                "key 1: x is in the standard base64 alphabet (+ or /); JWK members are base64url (- and _)"
                    .to_owned(),
                "key 2: k is in the standard base64 alphabet (+ or /); JWK members are base64url (- and _)"
                    .to_owned(),
            ]
        );
    }

    /// A P-256 key whose coordinates have the right length but are no point on the curve (a corrupted or hand-edited
    /// key, or an invalid-curve attack's) is skipped saying so. Before, the log said only "signature error", which
    /// reads as a token's failure, not the key's.
    #[test]
    fn an_ec_key_off_its_curve_is_skipped_saying_so() {
        let (keys, skipped) = parsed(json!([
            {"kty": "EC", "kid": "off", "crv": "P-256", "x": P256_X, "y": P256_X},
            {"kty": "EC", "kid": "on", "crv": "P-256", "x": P256_X, "y": P256_Y},
        ]));
        assert_eq!(keys.len(), 1, "{skipped:?}");
        assert_eq!(skipped, ["key 0: EC key (x, y) is not a point on P-256"]);
    }

    /// Identity providers publish keys for algorithms the gateway does not verify (Keycloak's RS512 or ES384 realm
    /// keys, Auth0's PS256, an enc key's RSA-OAEP): the log says the algorithm is unsupported, and names those it
    /// verifies. Before, it said the `alg` "does not fit the key type" of an RSA key marked RS512, sending the
    /// operator to look for a wrong `kty`. A supported algorithm on the wrong key type is still said to be that.
    #[test]
    fn a_key_for_an_algorithm_not_verified_here_is_skipped_as_unsupported() {
        let (keys, skipped) = parsed(json!([
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": RSA_2048_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "rs512", "alg": "RS512", "n": RSA_2048_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": RSA_2048_N, "e": "AQAB"},
            {"kty": "oct", "kid": "hs512", "alg": "HS512", "k": K},
            {"kty": "EC", "kid": "es", "alg": "ES256", "crv": "P-256", "x": P256_X, "y": P256_Y},
            {"kty": "EC", "kid": "rs-on-ec", "alg": "RS256", "crv": "P-256", "x": P256_X, "y": P256_Y},
        ]));
        assert_eq!(keys.len(), 1, "{skipped:?}");
        let unsupported = |i: usize, alg: &str| {
            format!(
                "key {i}: alg {alg:?} is not supported (HS256, RS256, ES256 and EdDSA or Ed25519 are verified)"
            )
        };
        assert_eq!(
            skipped,
            vec![
                unsupported(0, "PS256"),
                unsupported(1, "RS512"),
                unsupported(2, "RSA-OAEP"),
                unsupported(3, "HS512"),
                "key 5: alg \"RS256\" does not fit the key type".to_owned(),
            ]
        );
    }

    #[test]
    fn a_key_published_with_its_private_half_is_skipped() {
        // A private JWK pasted into the key set (or an identity provider serving one): whoever read the document can
        // sign. Before, each of these was kept and verified tokens as if it were public.
        let (_, _, pair) = ed(json!({}));
        let mut ed_private = ed_public(&pair, "e1");
        ed_private["d"] = json!(base64url(&pair.sk.seed()[..]));
        let (keys, skipped) = parsed(json!([
            ed_private,
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": P256_X, "y": P256_Y, "d": P256_X},
            {"kty": "RSA", "kid": "rsa-d", "n": RSA_2048_N, "e": "AQAB", "d": "AQAB"},
            // RSA's other private members alone are the private key too (its CRT form).
            {"kty": "RSA", "kid": "rsa-p", "n": RSA_2048_N, "e": "AQAB", "p": "AQAB", "q": "AQAB"},
            // The public halves are kept, and so is a symmetric key, whose `k` is its whole point.
            {"kty": "RSA", "kid": "rsa", "n": RSA_2048_N, "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "ec-public", "x": P256_X, "y": P256_Y},
            {"kty": "oct", "kid": "h1", "k": K},
        ]));
        let exposed = |i: usize, name: &str| {
            format!(
                "key {i}: private key member {name} present: the key is exposed by the key set, publish its \
                 public half only"
            )
        };
        assert_eq!(
            skipped,
            vec![
                exposed(0, "d"),
                exposed(1, "d"),
                exposed(2, "d"),
                exposed(3, "p")
            ]
        );
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(
            runtime_check(&ed(json!({})).0, &keys, &policy())
                .err()
                .map(|e| e.0)
                .as_deref(),
            Some("unknown key id"),
            "a token of the exposed Ed25519 key names a kid no key answers to"
        );
    }

    #[test]
    fn a_skipped_key_is_never_quoted_in_its_reason() {
        // An HMAC secret pasted in standard base64 (`+`, `/`, padding) instead of base64url: the key is skipped, and
        // its reason goes into a log line. serde's refusal quotes the string it refused — the secret itself.
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA+/==";
        let (keys, skipped) = parsed(json!([
            {"kty": "oct", "kid": "h1", "k": secret},
            // Neither alphabet: serde's refusal, its string left out.
            {"kty": "oct", "kid": "h2", "k": format!("{}!\"", &secret[..40])},
            // Names stay: the operator is told which key types there are.
            {"kty": "XYZ", "kid": "x"},
        ]));
        assert!(keys.is_empty());
        assert_eq!(
            skipped,
            vec![
                "key 0: k has base64 padding (=); JWK members are base64url without it",
                "key 1: not a JWK: invalid value: string, expected base64url-encoded data",
                "key 2: not a JWK: unknown variant `XYZ`, expected one of `RSA`, `EC`, `oct`, `OKP`",
            ]
        );
        // A document that is no key set says so without the string it met.
        let document = Jwks::parse(&json!({"keys": secret}).to_string()).err();
        assert_eq!(
            document.as_deref(),
            Some("not a JWKS document: invalid type: string, expected a sequence")
        );
    }

    #[test]
    fn rs256_and_es256_checks_carry_their_webcrypto_algorithms_and_signature_lengths() {
        let keys = jwks(json!([
            {"kty": "RSA", "kid": "r", "n": RSA_2048_N, "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "e", "x": P256_X, "y": P256_Y},
        ]));
        let rs = with_signature(json!({"alg": "RS256", "kid": "r"}), &[7; 256]);
        let check = runtime_check(&rs, &keys, &policy())
            .expect("screened")
            .expect("RSA key");
        let jwk: Value = serde_json::from_str(check.jwk()).expect("json");
        assert_eq!(
            (jwk["kty"].as_str(), jwk["n"].as_str(), jwk["e"].as_str()),
            (Some("RSA"), Some(RSA_2048_N), Some("AQAB"))
        );
        assert_eq!(
            check.webcrypto_algorithms(),
            (
                r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
                r#"{"name":"RSASSA-PKCS1-v1_5"}"#
            )
        );
        assert_eq!(check.kid(), Some("r"));
        // A signature of the modulus' length: the outside verdict decides, either way.
        assert!(check.well_formed());
        assert!(check.finish(true).is_ok());
        assert_eq!(check.finish(false).unwrap_err().0, "signature is invalid");
        // Any other length is refused whatever the verdict (RSA signatures have no fixed length to decode).
        for len in [0, 255, 257, 512] {
            let t = with_signature(json!({"alg": "RS256", "kid": "r"}), &vec![7; len]);
            let check = runtime_check(&t, &keys, &policy())
                .expect("screened")
                .expect("RSA key");
            assert!(!check.well_formed(), "{len}");
            assert_eq!(
                check.finish(true).unwrap_err().0,
                "signature is invalid",
                "{len}"
            );
        }
        let es = with_signature(json!({"alg": "ES256", "kid": "e"}), &[7; 64]);
        let check = runtime_check(&es, &keys, &policy())
            .expect("screened")
            .expect("EC key");
        let jwk: Value = serde_json::from_str(check.jwk()).expect("json");
        assert_eq!(
            (jwk["crv"].as_str(), jwk["x"].as_str(), jwk["y"].as_str()),
            (Some("P-256"), Some(P256_X), Some(P256_Y))
        );
        assert_eq!(
            check.webcrypto_algorithms(),
            (
                r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
                r#"{"name":"ECDSA","hash":"SHA-256"}"#
            )
        );
        let der = with_signature(json!({"alg": "ES256", "kid": "e"}), &[7; 72]);
        let check = runtime_check(&der, &keys, &policy())
            .expect("screened")
            .expect("EC key");
        assert_eq!(check.finish(true).unwrap_err().0, "signature is invalid");
    }
}
