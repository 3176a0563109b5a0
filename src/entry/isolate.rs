//! Per-isolate state: the configuration and the compiled route table, built on the first request and reused by
//! every later one. An invalid configuration is remembered too, so each request answers the same clear 500. A var
//! that looks like one of edgekit's keys but that no reader asked for (`config::keys`) is logged once per isolate as
//! a `config_key_unread` warning — with an invalid configuration too, as the misspelling may be what broke it.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use worker::Env;

use super::env_vars::EnvVars;
use crate::config::keys::unread_keys;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::router::Router;

/// What an isolate computes once.
pub struct Isolate {
    pub config: Config,
    pub router: Router,
}

thread_local! {
    static ISOLATE: OnceCell<Result<Rc<Isolate>, ConfigError>> = const { OnceCell::new() };
}

/// The isolate's state, built from `env` on first use.
pub fn get(env: &Env) -> Result<Rc<Isolate>, ApiError> {
    ISOLATE.with(|cell| {
        cell.get_or_init(|| {
            let vars = EnvVars(env);
            let names = vars.var_names();
            let log_unread = |read: &BTreeSet<String>| {
                for key in unread_keys(names.iter().map(String::as_str), read) {
                    super::log::warn(
                        "config_key_unread",
                        serde_json::json!({"key": key.key, "did_you_mean": key.did_you_mean,
                            "detail": key.problem()}),
                    );
                }
            };
            let (config, read) = Config::parse_reading(&vars).inspect_err(|_| {
                // Said too when the configuration is invalid: the misspelling may be why (a misspelled
                // RATE_LIMIT_POLICIES fails on the login policies it leaves undefined).
                log_unread(&Config::known_keys());
            })?;
            super::log::set_service(&config.core.service_name);
            let router = Router::new(config.core.debug_routes);
            log_unread(&read);
            Ok(Rc::new(Isolate { config, router }))
        })
        .clone()
        // The same text in the request's log line (`detail`), where an operator looks first: it names the key and
        // the rule, never a value, like the answer.
        .map_err(|e| {
            ApiError::new(500, "config_invalid", e.to_string()).with_internal(e.to_string())
        })
    })
}
