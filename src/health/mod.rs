//! Health: `/health` says the isolate is up and which build it runs, touching no binding; `/health/ready` checks that
//! every binding the Worker depends on (KV, D1, Durable Objects) answers. Vars that look like misspelled keys
//! (`config::keys`) are not its business: they are logged, and the probe, which anyone may call, does not tell a
//! deployment's var names.

pub mod handler;

use serde::Serialize;

use crate::error::ApiError;

/// The newest migration this build needs (`migrations/NNNN_*.sql`), which sets `edge_meta.schema_version` to its
/// number: `/health/ready` refuses a database at an older one.
pub const SCHEMA_VERSION: u32 = 6;

/// Whether a database whose `edge_meta.schema_version` reads `stored` has every migration this build needs.
pub fn schema_current(stored: Option<&str>) -> bool {
    stored
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|v| v >= SCHEMA_VERSION)
}

/// Version from Cargo.toml; build id baked in by `scripts/build` (git commit, `-dirty` when uncommitted changes).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const BUILD_ID: &str = match option_env!("EDGEKIT_BUILD_ID") {
    Some(id) => id,
    None => "dev",
};

#[derive(Debug, Serialize)]
pub struct Health<'a> {
    pub status: &'static str,
    pub name: &'a str,
    pub version: &'static str,
    pub build: &'static str,
}

impl<'a> Health<'a> {
    pub fn new(name: &'a str) -> Self {
        Self {
            status: "ok",
            name,
            version: VERSION,
            build: BUILD_ID,
        }
    }
}

/// The outcome of one readiness check.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    pub binding: &'static str,
    pub ok: bool,
    /// What failed, in fixed words (the runtime's error text goes to the log only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

/// `/health/ready`'s body; ready only when every check passed.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn from_checks(checks: Vec<Check>) -> Self {
        Self {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// 200 when ready, 503 otherwise (what load balancers expect).
    pub fn status(&self) -> u16 {
        if self.ready {
            200
        } else {
            503
        }
    }

    /// The 503 of a failed readiness, as the error answer it is: `error` (`not_ready`) beside `ready` and `checks`,
    /// so the request line names its `error_code` and, in `detail`, the bindings that failed. Answered as a success,
    /// its line said `error` with no code (as an origin's status passed through does), and a probe answered from
    /// the isolate's last check wrote no other line naming what failed. `None` when ready.
    pub fn not_ready(&self) -> Option<ApiError> {
        if self.ready {
            return None;
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.binding)
            .collect();
        let fields = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        Some(
            ApiError::new(
                503,
                "not_ready",
                "at least one binding failed its check; `checks` says which",
            )
            .with_fields(fields)
            .with_internal(format!("not ready: {}", failed.join(", "))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_check() {
        let ok = |b| Check {
            binding: b,
            ok: true,
            detail: None,
        };
        assert_eq!(
            Readiness::from_checks(vec![ok("KV"), ok("DB")]).status(),
            200
        );
        let failed = Check {
            binding: "DB",
            ok: false,
            detail: Some("migrations not applied"),
        };
        assert_eq!(Readiness::from_checks(vec![ok("KV"), failed]).status(), 503);
    }

    #[test]
    fn a_failed_readiness_is_an_error_answer_naming_its_code_and_keeping_its_checks() {
        let ok = Check {
            binding: "KV",
            ok: true,
            detail: None,
        };
        let failed = |binding| Check {
            binding,
            ok: false,
            detail: Some("no answer in time (see the log)"),
        };
        assert!(Readiness::from_checks(vec![ok]).not_ready().is_none());
        let readiness = Readiness::from_checks(vec![
            Check {
                binding: "KV",
                ok: true,
                detail: None,
            },
            failed("DB"),
            failed("ROOMS"),
        ]);
        let error = readiness.not_ready().expect("not ready");
        assert_eq!((error.status(), error.code()), (503, "not_ready"));
        assert_eq!(error.internal_detail(), Some("not ready: DB, ROOMS"));
        let body: serde_json::Value = serde_json::from_str(&error.body()).expect("json");
        assert_eq!(body["error"]["code"], "not_ready");
        assert_eq!(body["ready"], false);
        assert_eq!(
            body["checks"],
            serde_json::to_value(&readiness.checks).expect("checks"),
            "the checks as a ready answer lists them"
        );
    }

    /// The newest migration file is the version the build asks for, and it records that number: a migration added
    /// without both would leave readiness blind to it.
    #[test]
    fn the_newest_migration_records_the_schema_version_the_build_needs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let newest = std::fs::read_dir(&dir)
            .expect("migrations/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .max()
            .expect("a migration");
        let number: u32 = newest[..4].parse().expect("NNNN_ prefix");
        assert_eq!(number, SCHEMA_VERSION, "{newest}");
        let sql = std::fs::read_to_string(dir.join(&newest)).expect("readable");
        assert!(
            sql.contains(&format!(
                "INSERT OR REPLACE INTO edge_meta (key, value) VALUES ('schema_version', '{number}')"
            )),
            "{newest} must set edge_meta.schema_version to {number}"
        );
    }

    #[test]
    fn an_older_or_unreadable_schema_version_is_not_current() {
        let current = SCHEMA_VERSION.to_string();
        let newer = (SCHEMA_VERSION + 1).to_string();
        let older = (SCHEMA_VERSION - 1).to_string();
        assert!(schema_current(Some(&current)));
        assert!(schema_current(Some(&newer)));
        for stored in [None, Some(older.as_str()), Some(""), Some("five")] {
            assert!(!schema_current(stored), "{stored:?}");
        }
    }
}
