//! The rule that keeps logic testable: only runtime files may mention the `worker` crate. Runtime files are the
//! entry (`src/entry/`), capability `handler` modules (`handler.rs` or `handler/`) and Durable Object `object` modules.
//! Any other file that names `worker::` or `use worker` fails this test, so pure logic stays host-testable.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` (also read by `observability::log`'s field-name check).
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_runtime_file(path: &Path) -> bool {
    let parts: Vec<_> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.iter().any(|p| {
        p == "entry" || p == "handler" || p == "handler.rs" || p == "object.rs" || p == "object"
    })
}

fn mentions_worker(source: &str) -> bool {
    source
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .any(|line| {
            line.contains("worker::")
                || line.starts_with("use worker")
                || line.contains("worker_sys")
        })
}

#[test]
fn only_runtime_files_mention_the_worker_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("durable_objects/src"), &mut files);
    assert!(files.len() > 5, "found the sources");
    let offenders: Vec<_> = files
        .iter()
        .filter(|p| !is_runtime_file(p.strip_prefix(root).unwrap_or(p)))
        // This file spells the forbidden names in its own checks.
        .filter(|p| !p.ends_with("src/boundary.rs"))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|s| mentions_worker(&s)))
        .collect();
    assert!(
        offenders.is_empty(),
        "pure files must not use the worker crate: {offenders:?}"
    );
}

#[test]
fn the_rule_recognises_what_it_polices() {
    assert!(mentions_worker("use worker::Request;"));
    assert!(mentions_worker("    let x = worker::Date::now();"));
    assert!(!mentions_worker("// worker:: in a comment is fine"));
    assert!(!mentions_worker("let workers = 3;"));
    assert!(is_runtime_file(Path::new("src/gateway/handler.rs")));
    assert!(is_runtime_file(Path::new("src/entry/mod.rs")));
    assert!(is_runtime_file(Path::new(
        "durable_objects/src/room/object.rs"
    )));
    assert!(!is_runtime_file(Path::new("src/gateway/jwt.rs")));
}
