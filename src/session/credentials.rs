//! The login body and its rules: `{"email", "password"}`, the email normalised (trimmed, lower-cased, NFC) and
//! checked for shape only, the password bounded in length and compared in NFKC. Parse, don't validate: handlers only
//! see [`Credentials`]. The Unicode forms are applied by the caller's normaliser — at the edge the runtime's
//! `String.prototype.normalize` (ICU in V8: no normalisation tables in the wasm), on the host a stand-in.

use serde::Deserialize;

use crate::error::ApiError;

/// Longest accepted email (RFC 5321's path limit, 254) and password, both in characters as sent, as the OpenAPI
/// document's `maxLength` counts them: counted in bytes, a password of 600 `é` that the published schema admits was
/// refused, as was an email of 200 `é` (and one padded with spaces past the schema's limit was let in, its length
/// read after trimming). PBKDF2 cost does not depend on the length.
pub const MAX_EMAIL: usize = 254;
pub const MAX_PASSWORD: usize = 1024;

/// The raw login body. Its `Debug` never prints the password.
#[derive(Deserialize)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A Unicode normalisation form (UAX #15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Canonical composition: one spelling of `é` however it was typed (U+00E9, or `e` + U+0301).
    Nfc,
    /// Compatibility composition: NFC, and compatibility characters folded too (fullwidth `ｐ` is `p`, `ﬁ` is `fi`).
    Nfkc,
}

impl Form {
    /// The form's name as `String.prototype.normalize` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nfc => "NFC",
            Self::Nfkc => "NFKC",
        }
    }
}

/// A login attempt that passed the shape rules. Its `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub email: String,
    /// The password in NFKC (NIST SP 800-63B §5.1.1.2): the same secret whichever way a keyboard or input method
    /// composed it — macOS and iOS may send `e` + U+0301 where Windows sends `é`.
    pub password: String,
    /// The password as sent, when NFKC changed it: a hash stored before logins normalised was made from it.
    pub password_as_sent: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// The normalised email (trimmed, lower-cased, NFC by `normalise`), or 400 `invalid_email` (the message never
/// echoes the input).
pub fn normalise_email(
    raw: &str,
    normalise: impl Fn(&str, Form) -> String,
) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("invalid_email", "email must look like name@domain");
    if raw.chars().nth(MAX_EMAIL).is_some() {
        return Err(invalid());
    }
    let email = normalise(&raw.trim().to_lowercase(), Form::Nfc);
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let well_formed = !local.is_empty()
        && domain.len() >= 3
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed {
        Ok(email)
    } else {
        Err(invalid())
    }
}

impl LoginBody {
    /// The body from a JSON value, which must be an object (a JSON array could otherwise stand in for the fields, as
    /// serde allows for structs); 400 `invalid_json` otherwise, never echoing values. The value is read with
    /// [`crate::config::Unique`], so a body naming `email` or `password` twice was already refused: serde keeps the
    /// last of two keys, and whatever in front of the Worker reads the first (a WAF rule, a rate limit or a leaked-
    /// credentials check keyed on the body's email) would judge another login than the one served (RFC 8259 §4).
    pub fn from_value(value: serde_json::Value) -> Result<Self, ApiError> {
        let shape = || {
            ApiError::bad_request(
                "invalid_json",
                "the body must be an object with string fields email and password",
            )
        };
        match value {
            object @ serde_json::Value::Object(_) => {
                serde_json::from_value(object).map_err(|_| shape())
            }
            _ => Err(shape()),
        }
    }
}

impl Credentials {
    /// The attempt in `body`, its strings put in their forms by `normalise` (the length rule reads the password as
    /// sent: NFKC may lengthen it, at most 18-fold, which PBKDF2's cost does not depend on).
    pub fn parse(
        body: LoginBody,
        normalise: impl Fn(&str, Form) -> String,
    ) -> Result<Self, ApiError> {
        let email = normalise_email(&body.email, &normalise)?;
        if body.password.is_empty() || body.password.chars().nth(MAX_PASSWORD).is_some() {
            return Err(ApiError::bad_request(
                "invalid_password",
                format!("password must be 1 to {MAX_PASSWORD} characters"),
            ));
        }
        // PBKDF2's HMAC zero-fills a key shorter than its 64-byte block (RFC 2104 §2): `pw` and `pw\0` are one
        // secret to it. No password holds NUL, so no two spellings of a password name the same account secret.
        if body.password.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid_password",
                "password must not contain U+0000 (NUL)",
            ));
        }
        let password = normalise(&body.password, Form::Nfkc);
        let password_as_sent = (password != body.password).then_some(body.password);
        Ok(Self {
            email,
            password,
            password_as_sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(email: &str, password: &str) -> LoginBody {
        LoginBody {
            email: email.into(),
            password: password.into(),
        }
    }

    #[test]
    fn debug_never_prints_a_password() {
        let raw = body("a@b.c", "hunter2-secret");
        assert!(!format!("{raw:?}").contains("hunter2"), "{raw:?}");
        let checked = Credentials {
            email: "a@b.c".into(),
            password: "hunter2-secret".into(),
            password_as_sent: Some("hunter2-as-sent".into()),
        };
        assert!(!format!("{checked:?}").contains("hunter2"), "{checked:?}");
    }

    /// Strings kept as they are (ASCII inputs have no other form).
    fn as_is(s: &str, _: Form) -> String {
        s.to_owned()
    }

    /// A stand-in for the runtime's normaliser that knows two foldings: `e` + U+0301 composes to `é` in both forms,
    /// fullwidth `ｐ` folds to `p` in NFKC only.
    fn stand_in(s: &str, form: Form) -> String {
        let composed = s.replace("e\u{301}", "\u{e9}");
        match form {
            Form::Nfc => composed,
            Form::Nfkc => composed.replace('\u{ff50}', "p"),
        }
    }

    #[test]
    fn the_email_is_compared_in_nfc_and_the_password_in_nfkc_keeping_the_password_as_sent_when_it_differs(
    ) {
        let c = Credentials::parse(
            body(" Jose\u{301}@Example.com", "cafe\u{301} ｐass"),
            stand_in,
        )
        .expect("valid");
        assert_eq!(c.email, "jos\u{e9}@example.com");
        assert_eq!(c.password, "caf\u{e9} pass");
        assert_eq!(c.password_as_sent.as_deref(), Some("cafe\u{301} ｐass"));
        // NFC alone leaves a fullwidth letter in an email (no compatibility folding there).
        let c = Credentials::parse(body("ｐ@example.com", "plain"), stand_in).expect("valid");
        assert_eq!(c.email, "ｐ@example.com");
        assert_eq!(
            c.password_as_sent, None,
            "nothing to remember when the form changed nothing"
        );
    }

    #[test]
    fn the_body_must_be_an_object_with_both_string_fields() {
        assert!(
            LoginBody::from_value(serde_json::json!({"email": "a@b.co", "password": "p"})).is_ok()
        );
        for (case, value) in [
            ("missing password", serde_json::json!({"email": "a@b.co"})),
            (
                "number email",
                serde_json::json!({"email": 42, "password": "secret-value"}),
            ),
            (
                "null password",
                serde_json::json!({"email": "a@b.co", "password": null}),
            ),
            (
                "an array of the fields",
                serde_json::json!(["a@b.co", "secret-value"]),
            ),
        ] {
            let error = LoginBody::from_value(value).expect_err(case);
            assert_eq!(error.code(), "invalid_json", "{case}");
            assert!(!error.message().contains("secret-value"), "{case}");
        }
    }

    #[test]
    fn a_body_naming_a_field_twice_is_refused_without_echoing_it() {
        // serde keeps the last `email`; a reader in front of the Worker may take the first.
        let body = br#"{"email":"decoy@example.com","password":"p","email":"victim@example.com"}"#;
        let error = crate::body::parse_json::<crate::config::Unique>(body)
            .err()
            .expect("a repeated key is refused");
        assert_eq!(error.status(), 400);
        assert_eq!(error.code(), "invalid_json");
        assert!(
            error.message().contains("repeats the key"),
            "{}",
            error.message()
        );
        assert!(!error.message().contains("example.com"), "no echo");
        let once = br#"{"email":"a@example.com","password":"p","other":{"email":1}}"#;
        let crate::config::Unique(value) = crate::body::parse_json::<crate::config::Unique>(once)
            .expect("each key once per object");
        assert!(LoginBody::from_value(value).is_ok());
    }

    #[test]
    fn the_password_limit_counts_characters_as_the_published_schema_does() {
        let accented = "\u{e9}".repeat(MAX_PASSWORD); // 2,048 bytes
        let c =
            Credentials::parse(body("a@example.com", &accented), as_is).expect("1,024 characters");
        assert_eq!(c.password, accented);
        let error = Credentials::parse(body("a@example.com", &format!("{accented}x")), as_is)
            .expect_err("1,025 characters");
        assert_eq!(error.code(), "invalid_password");
    }

    /// The email's limit counts characters as sent, as the published schema's `maxLength` does: counted in bytes
    /// after trimming, an address of 200 `é` that the schema admits was refused, and one padded with spaces to 260
    /// characters that the schema refuses was let in.
    #[test]
    fn the_email_limit_counts_characters_as_sent_as_the_published_schema_does() {
        let accented = format!("{}@example.com", "\u{e9}".repeat(MAX_EMAIL - 12)); // 254 characters, 496 bytes
        assert_eq!(accented.chars().count(), MAX_EMAIL);
        let c = Credentials::parse(body(&accented, "pw"), as_is).expect("254 characters");
        assert_eq!(c.email, accented);
        let longer = format!("\u{e9}{accented}");
        let error = Credentials::parse(body(&longer, "pw"), as_is).expect_err("255 characters");
        assert_eq!(error.code(), "invalid_email");
        let padded = format!("{}{}@example.com", " ".repeat(10), "a".repeat(240));
        let error =
            Credentials::parse(body(&padded, "pw"), as_is).expect_err("262 characters as sent");
        assert_eq!(error.code(), "invalid_email");
    }

    /// PBKDF2's HMAC zero-fills a key shorter than SHA-256's 64-byte block (RFC 2104 §2), so `pw` and `pw\0\0`
    /// derived the same hash: a password holding U+0000 is refused, as the same secret as one without it or not.
    #[test]
    fn a_password_holding_nul_is_refused() {
        for password in ["pw\0", "pw\0\0\0", "\0pw", "p\0w", "\0"] {
            let error =
                Credentials::parse(body("a@example.com", password), as_is).expect_err(password);
            assert_eq!(error.status(), 400, "{password:?}");
            assert_eq!(error.code(), "invalid_password", "{password:?}");
        }
        assert!(Credentials::parse(body("a@example.com", "pw\u{2400}"), as_is).is_ok());
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let c = Credentials::parse(body("  Alice@Example.COM ", "pw"), as_is).expect("valid");
        assert_eq!(c.email, "alice@example.com");
    }

    #[test]
    fn quotes_and_sql_in_a_well_formed_email_are_just_characters() {
        let c =
            Credentials::parse(body("o'brien--@example.com", "pw"), as_is).expect("valid shape");
        assert_eq!(c.email, "o'brien--@example.com");
    }

    #[test]
    fn malformed_emails_and_passwords_are_400_with_their_own_code() {
        let long_email = format!("{}@example.com", "a".repeat(250));
        let long_password = "p".repeat(MAX_PASSWORD + 1);
        let cases: &[(&str, &str, &str)] = &[
            ("", "pw", "invalid_email"),
            ("no-at-sign", "pw", "invalid_email"),
            ("' OR 1=1 --", "pw", "invalid_email"),
            ("@example.com", "pw", "invalid_email"),
            ("a@b", "pw", "invalid_email"),
            ("a@@example.com", "pw", "invalid_email"),
            ("a b@example.com", "pw", "invalid_email"),
            ("a@example.com.", "pw", "invalid_email"),
            ("a\u{0}@example.com", "pw", "invalid_email"),
            (&long_email, "pw", "invalid_email"),
            ("a@example.com", "", "invalid_password"),
            ("a@example.com", &long_password, "invalid_password"),
        ];
        for (email, password, code) in cases {
            let error = Credentials::parse(body(email, password), as_is).expect_err("refused");
            assert_eq!(error.status(), 400, "{email:?}");
            assert_eq!(error.code(), *code, "{email:?}");
            assert!(
                email.is_empty() || !error.message().contains(email),
                "no echo"
            );
        }
    }
}
