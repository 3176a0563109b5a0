//! The login body and its rules: `{"email", "password"}`, the email normalised (trimmed, lower-cased) and checked
//! for shape only, the password bounded in length. Parse, don't validate: handlers only see [`Credentials`].

use serde::Deserialize;

use crate::error::ApiError;

/// Longest accepted email (RFC 5321 path limit) and password (bytes; PBKDF2 cost does not depend on it).
pub const MAX_EMAIL: usize = 254;
pub const MAX_PASSWORD: usize = 1024;

/// The raw login body.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

/// A login attempt that passed the shape rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// The normalised email, or 400 `invalid_email` (the message never echoes the input).
pub fn normalise_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let invalid = || ApiError::bad_request("invalid_email", "email must look like name@domain");
    if email.len() > MAX_EMAIL {
        return Err(invalid());
    }
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
    /// The body from a JSON object (read as a map first, so a JSON array cannot stand in for the fields the way
    /// serde otherwise allows for structs); 400 `invalid_json` otherwise, never echoing values.
    pub fn from_object(
        object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, ApiError> {
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|_| {
            ApiError::bad_request(
                "invalid_json",
                "the body must be an object with string fields email and password",
            )
        })
    }
}

impl Credentials {
    pub fn parse(body: LoginBody) -> Result<Self, ApiError> {
        let email = normalise_email(&body.email)?;
        if body.password.is_empty() || body.password.len() > MAX_PASSWORD {
            return Err(ApiError::bad_request(
                "invalid_password",
                format!("password must be 1 to {MAX_PASSWORD} bytes"),
            ));
        }
        Ok(Self {
            email,
            password: body.password,
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
    fn the_body_must_be_an_object_with_both_string_fields() {
        let object = |v: serde_json::Value| v.as_object().cloned().expect("object");
        assert!(LoginBody::from_object(object(
            serde_json::json!({"email": "a@b.co", "password": "p"})
        ))
        .is_ok());
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
        ] {
            let error = LoginBody::from_object(object(value)).expect_err(case);
            assert_eq!(error.code(), "invalid_json", "{case}");
            assert!(!error.message().contains("secret-value"), "{case}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let c = Credentials::parse(body("  Alice@Example.COM ", "pw")).expect("valid");
        assert_eq!(c.email, "alice@example.com");
    }

    #[test]
    fn quotes_and_sql_in_a_well_formed_email_are_just_characters() {
        let c = Credentials::parse(body("o'brien--@example.com", "pw")).expect("valid shape");
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
            let error = Credentials::parse(body(email, password)).expect_err("refused");
            assert_eq!(error.status(), 400, "{email:?}");
            assert_eq!(error.code(), *code, "{email:?}");
            assert!(
                email.is_empty() || !error.message().contains(email),
                "no echo"
            );
        }
    }
}
