//! Running the `sharecache` binary against a client's config file.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use super::sharecache;

/// Runs `sharecache --config cfg args…`.
pub fn cli(cfg: &Path, args: &[&str]) -> Output {
    sharecache()
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = cli(cfg, args);
    assert!(
        out.status.success(),
        "sharecache {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must succeed and print JSON.
pub fn json(cfg: &Path, args: &[&str]) -> Value {
    let stdout = ok(cfg, args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// A plain connection on a client's cache file, found through `status --json`.
pub fn cache_file(cfg: &Path) -> Connection {
    let status = json(cfg, &["status", "--json"]);
    let c = Connection::open(status["cache_path"].as_str().unwrap()).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// Polls `check` every 100 ms until it holds; fails after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
