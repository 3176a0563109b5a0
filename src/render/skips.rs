//! The members of a content document (`CONTENT_KV`) left out because they did not read — one bad member of a manifest
//! or a flags document must not take the others with it — counted, the first named by where it was and why, for the
//! page's one log line about them. Pure.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skips<K> {
    /// How many members were left out.
    pub count: usize,
    /// The first left out: where it was (an index, a name) and serde's reason without quoted input
    /// (`crate::body::strip_input`).
    pub first: Option<(K, String)>,
}

impl<K> Default for Skips<K> {
    fn default() -> Self {
        Self {
            count: 0,
            first: None,
        }
    }
}

impl<K> Skips<K> {
    /// Counts a member that did not read; `at` names it when it is the first.
    pub fn note(&mut self, at: impl FnOnce() -> K, error: &serde_json::Error) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((at(), crate::body::strip_input(error)));
        }
    }
}

impl<K: Serialize> Skips<K> {
    /// The page's line about them (`{"key", "skipped", <at>: where the first was, "detail" (why), "request_id"}`), or none
    /// when every member read.
    pub fn line(&self, key: &str, at: &str, request_id: &str) -> Option<serde_json::Value> {
        let (first, error) = self.first.as_ref()?;
        let mut line = serde_json::json!({"key": key, "skipped": self.count, "detail": error,
            "request_id": request_id});
        line[at] = serde_json::json!(first);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_member_left_out_is_named_and_every_one_counted() {
        let error = |json: &str| serde_json::from_str::<bool>(json).expect_err("not a boolean");
        let mut skips = Skips::default();
        assert_eq!(
            skips.line("flags", "feature", "r1"),
            None,
            "none left out: no line"
        );
        skips.note(|| "beta", &error("1"));
        skips.note(
            || unreachable!("only the first is named"),
            &error("\"yes\""),
        );
        assert_eq!(
            skips.line("flags", "feature", "r1"),
            Some(
                serde_json::json!({"key": "flags", "skipped": 2, "feature": "beta",
                "detail": "invalid type: integer, expected a boolean", "request_id": "r1"})
            )
        );
    }
}
