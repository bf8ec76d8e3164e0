//! `status` tells the truth about what the next open will do and what a salvage did. A cache
//! directory that cannot exist is the same question on both backends with different answers: a
//! share's file is served directly, a server has no direct mode and the open fails.

use sharecache::{Cache, Mode};

use crate::support::remote::{Backend, Remote};
use crate::support::{Share, sharecache};

crate::both_backends!(a_cache_directory_under_a_regular_file_is_reported_as_the_next_open_meets_it);

fn a_cache_directory_under_a_regular_file_is_reported_as_the_next_open_meets_it(backend: Backend) {
    let remote = Remote::new(backend);
    let file = remote.tmp().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let cfg_path = remote.config_file("a");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let cache_dir = remote.tmp().join("cache-a");
    std::fs::write(
        &cfg_path,
        text.replace(
            &cache_dir.display().to_string(),
            &file.join("cache").display().to_string(),
        ),
    )
    .unwrap();
    let out = sharecache()
        .args(["--config", cfg_path.to_str().unwrap(), "status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let status = &json;
    let reason = status["mode_reason"].as_str().unwrap();
    assert!(
        reason.contains("not a directory") && reason.contains(&file.display().to_string()),
        "{reason}"
    );
    let mut cfg = remote.config("a");
    cfg.cache_directory = file.join("cache");
    // What the open then does, indeed.
    match backend {
        Backend::Share => {
            assert_eq!(status["mode"], "direct", "{json}");
            assert!(matches!(
                Cache::open(cfg).unwrap().mode(),
                Mode::Direct { .. }
            ));
        }
        Backend::Postgres => {
            assert_eq!(status["state"], "failed", "{json}");
            assert!(reason.contains("no direct mode"), "{reason}");
            let e = Cache::open(cfg).unwrap_err();
            assert_eq!(e.kind(), sharecache::ErrorKind::Local, "{e}");
            assert!(
                e.to_string().contains(&file.display().to_string()),
                "the error names the directory: {e}"
            );
        }
    }
}

// The share's own: the reason direct mode gives after a salvage.

#[test]
fn the_salvage_message_says_once_what_happened_what_was_kept_where_and_names_the_file() {
    let share = Share::new();
    let path = {
        let a = share.client("a");
        a.conn()
            .execute("INSERT INTO notes (id, body) VALUES (66, 'pending')", [])
            .unwrap();
        a.cache_path().unwrap().to_path_buf()
    };
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    // Damage the pages that hold sharecache's own tables too, past the header.
    let bytes = std::fs::read(&path).unwrap();
    let mut damaged = bytes.clone();
    for b in damaged.iter_mut().skip(100) {
        *b = 0x5a;
    }
    std::fs::write(&path, damaged).unwrap();
    let a = share.client("a");
    let Mode::Direct { reason } = a.mode() else {
        panic!("expected direct mode")
    };
    assert!(!reason.contains("cache :"), "an empty path: {reason}");
    assert_eq!(
        reason.matches("the file is damaged").count(),
        1,
        "the damage is said once: {reason}"
    );
    assert!(
        reason.contains(&format!("cache {}: the file is damaged", path.display())),
        "{reason}"
    );
    assert!(reason.contains("kept at"), "{reason}");
    assert!(
        reason.contains("the next open makes a new cache"),
        "{reason}"
    );
}
