//! `status` tells the truth about what the next open will do and what a salvage did.

use sharecache::{Cache, Mode};

use crate::support::{Share, sharecache};

#[test]
fn a_cache_directory_under_a_regular_file_is_reported_as_direct_mode() {
    let share = Share::new();
    let file = share.tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let cfg_path = share.config_file("a");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let cache_dir = share.tmp.path().join("cache-a");
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
    assert_eq!(status["mode"], "direct", "{json}");
    let reason = status["mode_reason"].as_str().unwrap();
    assert!(
        reason.contains("not a directory") && reason.contains(&file.display().to_string()),
        "{reason}"
    );
    // What the open then does, indeed.
    let mut cfg = share.config("a");
    cfg.cache_directory = file.join("cache");
    assert!(matches!(
        Cache::open(cfg).unwrap().mode(),
        Mode::Direct { .. }
    ));
}

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
