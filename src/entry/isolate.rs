//! Per-isolate state: the configuration and the compiled route table, built on the first request and reused by
//! every later one. An invalid configuration is remembered too, so each request answers the same clear 500.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::Env;

use super::env_vars::EnvVars;
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
            let config = Config::parse(&EnvVars(env))?;
            let router = Router::new(config.core.debug_routes);
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
