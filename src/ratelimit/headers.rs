//! The IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy: "<name>";q=<limit>;w=<window>`
//! and `RateLimit: "<name>";r=<remaining>;t=<seconds to reset>`, and the 429 error that carries them with
//! `Retry-After`, and an error to a counted request with them ([`RateLimitHeaders::listed_on`]). Pure;
//! `RateLimitHeaders::stamp` (in the handler) puts them on a counted request's answer, whatever it is.

use crate::error::ApiError;

/// The headers one limited request answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub policy: String,
    pub limit: u32,
    pub window_s: u64,
    /// `(remaining, seconds to reset)`; `None` when the limiter could not be asked (failing open).
    pub standing: Option<(u32, u64)>,
}

/// Whole seconds for a header, rounded up (a client told "0" would retry too early).
pub fn seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl RateLimitHeaders {
    /// `RateLimit-Policy` value.
    pub fn policy_value(&self) -> String {
        format!("\"{}\";q={};w={}", self.policy, self.limit, self.window_s)
    }

    /// `RateLimit` value, when the standing is known.
    pub fn state_value(&self) -> Option<String> {
        self.standing
            .map(|(remaining, reset_s)| format!("\"{}\";r={remaining};t={reset_s}", self.policy))
    }

    /// The header pairs of several policies one response passed (a login passes two): each field is a list, one
    /// member per policy, in the order given; `RateLimit` lists the policies whose standing is known.
    pub fn joined(limits: &[&RateLimitHeaders]) -> Vec<(&'static str, String)> {
        let join = |values: Vec<String>| values.join(", ");
        let policies = join(limits.iter().map(|l| l.policy_value()).collect());
        let states: Vec<String> = limits.iter().filter_map(|l| l.state_value()).collect();
        let mut pairs = vec![("ratelimit-policy", policies)];
        if !states.is_empty() {
            pairs.push(("ratelimit", join(states)));
        }
        pairs
    }

    /// `error` answering a request `limits` counted, with their fields: the fields describe the client's quota
    /// whatever the answer's status (draft-ietf-httpapi-ratelimit-headers), and the request spent a unit of it. Put
    /// in front of the fields `error` has (a 429 of a later limit names the one that refused), else set.
    pub fn listed_on(limits: &[&RateLimitHeaders], error: ApiError) -> ApiError {
        if limits.is_empty() {
            return error;
        }
        Self::joined(limits)
            .into_iter()
            .fold(error, |e, (name, value)| e.with_list_head(name, value))
    }

    /// Header name/value pairs, lower-case names.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("ratelimit-policy", self.policy_value())];
        if let Some(state) = self.state_value() {
            pairs.push(("ratelimit", state));
        }
        pairs
    }

    /// The 429 for a refused request: these headers plus `Retry-After` (whole seconds, at least 1), and `t` the same
    /// moment (draft-ietf-httpapi-ratelimit-headers: `t` and `Retry-After` name one point in time; with `r=0`, `t` is
    /// when the next request may pass, not when the whole quota is back).
    pub fn refusal(&self, retry_after_ms: u64) -> ApiError {
        let retry = seconds(retry_after_ms).max(1);
        let error = ApiError::too_many_requests(
            format!("rate limit `{}` exceeded; retry in {retry} s", self.policy),
            retry,
        );
        let refused = Self {
            standing: self.standing.map(|(remaining, _)| (remaining, retry)),
            ..self.clone()
        };
        refused
            .pairs()
            .into_iter()
            .fold(error, |e, (name, value)| e.with_header(name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_policies_are_listed_in_one_field_each() {
        let ip = headers(Some((9, 60)));
        let email = RateLimitHeaders {
            policy: "login-email".into(),
            limit: 3,
            window_s: 60,
            standing: None,
        };
        assert_eq!(
            RateLimitHeaders::joined(&[&ip, &email]),
            vec![
                (
                    "ratelimit-policy",
                    format!("{}, \"login-email\";q=3;w=60", ip.policy_value())
                ),
                ("ratelimit", ip.state_value().unwrap_or_default()),
            ]
        );
        assert_eq!(RateLimitHeaders::joined(&[&ip]), ip.pairs());
    }

    #[test]
    fn an_error_to_a_counted_request_lists_the_limits_that_counted_it() {
        let ip = headers(Some((8, 60)));
        let fields = |e: &ApiError| {
            e.headers()
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
        };
        let failed = RateLimitHeaders::listed_on(&[&ip], ApiError::bad_gateway("down"));
        assert_eq!(
            fields(&failed),
            vec![
                "ratelimit-policy=\"api\";q=100;w=60",
                "ratelimit=\"api\";r=8;t=60"
            ],
            "an error of its own: the counted limit's fields"
        );
        let email = RateLimitHeaders {
            policy: "login-email".into(),
            limit: 3,
            window_s: 60,
            standing: Some((0, 20)),
        };
        let refused = RateLimitHeaders::listed_on(&[&ip], email.refusal(20_000));
        assert_eq!(
            fields(&refused),
            vec![
                "retry-after=20",
                "ratelimit-policy=\"api\";q=100;w=60, \"login-email\";q=3;w=60",
                "ratelimit=\"api\";r=8;t=60, \"login-email\";r=0;t=20"
            ],
            "a later limit's 429: the counted one first, one field each"
        );
        let plain = ApiError::bad_gateway("down");
        assert_eq!(
            RateLimitHeaders::listed_on(&[], plain).headers(),
            &[] as &[(&str, String)],
            "no limit: no empty field"
        );
    }

    fn headers(standing: Option<(u32, u64)>) -> RateLimitHeaders {
        RateLimitHeaders {
            policy: "api".into(),
            limit: 100,
            window_s: 60,
            standing,
        }
    }

    #[test]
    fn values_follow_the_ietf_draft_syntax() {
        let h = headers(Some((42, 17)));
        assert_eq!(
            h.pairs(),
            vec![
                ("ratelimit-policy", "\"api\";q=100;w=60".to_owned()),
                ("ratelimit", "\"api\";r=42;t=17".to_owned()),
            ]
        );
        assert_eq!(
            headers(None).pairs().len(),
            1,
            "failing open: only the policy is known"
        );
    }

    #[test]
    fn a_refusal_is_a_429_with_retry_after_and_both_headers() {
        let error = headers(Some((0, 60))).refusal(1_001);
        assert_eq!((error.status(), error.code()), (429, "rate_limited"));
        let names: Vec<_> = error
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(
            names,
            vec![
                "retry-after=2",
                "ratelimit-policy=\"api\";q=100;w=60",
                "ratelimit=\"api\";r=0;t=2"
            ],
            "Retry-After rounds up, and t with it"
        );
        assert_eq!(
            headers(Some((0, 1))).refusal(0).headers()[0].1,
            "1",
            "never Retry-After: 0"
        );
    }

    /// draft-ietf-httpapi-ratelimit-headers: on an answer with both fields, `t` names the moment `Retry-After` does
    /// (-08 §5), and `Retry-After` is never earlier than the end of the effective window (-11 §6): "r=0;t=60" beside
    /// "Retry-After: 2" told a client reading `t` to wait a whole window for a quota back in 2 s, and one reading
    /// `Retry-After` that it could go on before `t`.
    #[test]
    fn a_refusals_t_is_its_retry_after() {
        for (reset_s, retry_ms, retry_s) in [(60, 1_001, "2"), (60, 0, "1"), (2, 59_000, "59")] {
            let error = headers(Some((0, reset_s))).refusal(retry_ms);
            let field = |name: &str| {
                error
                    .headers()
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(field("retry-after").as_deref(), Some(retry_s), "{retry_ms}");
            assert_eq!(
                field("ratelimit"),
                Some(format!("\"api\";r=0;t={retry_s}")),
                "{retry_ms} ms: t is Retry-After"
            );
        }
    }

    #[test]
    fn seconds_round_up() {
        for (ms, s) in [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2), (60_000, 60)] {
            assert_eq!(seconds(ms), s, "{ms} ms");
        }
    }
}
