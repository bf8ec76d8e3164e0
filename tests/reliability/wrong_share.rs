//! Unmounted share, wrong file (issue 5, item 5): the remote path shows an empty directory (the
//! share is not mounted), or something else is at the path: a directory, an empty file, a file
//! that is not SQLite, an SQLite database sharecache never set up, or another sharecache remote.
//! Checked every time: the sync fails with an error that says why; `status` (local files only)
//! says why too; nothing is created, written or deleted at the path (names, sizes and bytes of
//! everything there are unchanged); nothing is lost locally (the cache's rows and pending writes
//! are unchanged, and the app keeps writing); once the real share is back, everything syncs.
//!
//! `tests/share_safety.rs` covers the basic cases with a fresh client (first open, an empty
//! file, a non-SQLite file, another database seen once); this module runs every case against a
//! cache with data and pending writes, through the library and the command line, and covers a
//! remote replaced while a client has it open.

use std::collections::BTreeMap;
use std::path::Path;

use sharecache::{Cache, ErrorKind, State};

use super::{content, figures, synced_tables};
use crate::support::{Share, one, sharecache};

/// Everything under `dir`: relative path → (size, bytes hash).
fn listing(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, u64)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), (0, 0));
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                out.insert(rel, (bytes.len() as u64, h));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Another database sharecache set up (its own identity), with the same schema and other rows.
fn other_sharecache_remote(path: &Path) {
    let share = Share::with_schema(crate::support::SCHEMA);
    let c = share.client("setup");
    c.conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (666, 'from the other database')",
            [],
        )
        .unwrap();
    c.sync_now().unwrap();
    drop(c);
    std::fs::copy(share.backing().join("app.db"), path).unwrap();
}

struct Case {
    name: &'static str,
    /// Puts the thing at the path (inside the scratch directory shown while "unmounted").
    make: fn(&Path),
    kind: ErrorKind,
    /// Words the error (and status) must contain.
    says: &'static str,
    state: State,
}

const CASES: &[Case] = &[
    Case {
        name: "the share is not mounted (an empty directory)",
        make: |_| {},
        kind: ErrorKind::Offline,
        says: "is the share mounted?",
        state: State::Offline,
    },
    Case {
        name: "a directory at the path",
        make: |p| std::fs::create_dir(p).unwrap(),
        kind: ErrorKind::Remote,
        says: "directory",
        state: State::Failed,
    },
    Case {
        name: "an empty file at the path",
        make: |p| std::fs::write(p, b"").unwrap(),
        kind: ErrorKind::Remote,
        says: "empty",
        state: State::Failed,
    },
    Case {
        name: "a file that is not SQLite",
        make: |p| std::fs::write(p, vec![b'x'; 8192]).unwrap(),
        kind: ErrorKind::Remote,
        says: "not a usable SQLite database",
        state: State::Failed,
    },
    Case {
        name: "an SQLite database sharecache never set up",
        make: |p| {
            rusqlite::Connection::open(p)
                .unwrap()
                .execute_batch(crate::support::SCHEMA)
                .unwrap();
        },
        kind: ErrorKind::Remote,
        says: "not the database the cache was made from",
        state: State::Failed,
    },
    Case {
        name: "another sharecache remote",
        make: other_sharecache_remote,
        kind: ErrorKind::Remote,
        says: "not the database the cache was made from",
        state: State::Failed,
    },
];

#[test]
fn a_missing_or_wrong_remote_is_refused_with_a_reason_and_nothing_is_written_there_or_lost_locally()
{
    let share = Share::new();
    let cfg_file = share.config_file("a");
    let a = Cache::open(sharecache::Config::load(&cfg_file).unwrap()).unwrap();
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (10, 'synced')", [])
        .unwrap();
    a.sync_now().unwrap();
    let tables = synced_tables(&a.conn());
    let mut checks = 0u64;
    for (i, case) in CASES.iter().enumerate() {
        let what = case.name;
        // A pending write, and the cache's state before.
        a.conn()
            .execute(
                "INSERT INTO notes (id, body) VALUES (?1, 'pending')",
                [100 + i as i64],
            )
            .unwrap();
        share.control.set_unmounted(true);
        share.control.clear_scratch();
        (case.make)(&share.control.scratch_path().join("app.db"));
        let there = listing(share.control.scratch_path());
        let local_before = content(&a.conn(), &tables);
        let pending_before = a.status().unwrap().pending_writes;

        for attempt in 0..2 {
            let err = a.sync_now().unwrap_err();
            assert_eq!(err.kind(), case.kind, "{what} (sync {attempt}): {err}");
            assert!(err.to_string().contains(case.says), "{what}: {err}");
        }
        let status = a.status().unwrap();
        assert_eq!(status.state, case.state, "{what}: status {status:?}");
        let reason = status.last_run.as_ref().and_then(|r| r.error.clone());
        assert!(
            reason.as_deref().is_some_and(|r| r.contains(case.says)),
            "{what}: status must say why: {reason:?}"
        );
        // The command line says so too, with the documented exit code.
        let out = sharecache()
            .arg("--config")
            .arg(&cfg_file)
            .arg("sync")
            .output()
            .unwrap();
        let code = match case.kind {
            ErrorKind::Offline => 4,
            _ => 6,
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
        assert!(stderr.contains(case.says), "{what}: {stderr}");
        // A handle opened now works (local files only), and the app keeps writing.
        let again = Cache::open(sharecache::Config::load(&cfg_file).unwrap()).unwrap();
        assert!(again.sync_now().is_err(), "{what}");
        drop(again);

        assert_eq!(
            listing(share.control.scratch_path()),
            there,
            "{what}: something was created, written or deleted at the remote path"
        );
        assert_eq!(
            content(&a.conn(), &tables),
            local_before,
            "{what}: the cache changed"
        );
        assert_eq!(a.status().unwrap().pending_writes, pending_before, "{what}");
        assert!(
            a.status()
                .unwrap()
                .unsynced_tables
                .iter()
                .all(|t| t.name == "audit_log"),
            "{what}: the cache's tables are as they were"
        );
        checks += 1;
    }
    // The real share is back: everything pending arrives, nothing from the impostors does.
    share.control.set_unmounted(false);
    share.control.clear_scratch();
    a.sync_now().unwrap();
    let remote = share.remote();
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM notes WHERE body = 'pending'"),
        CASES.len() as i64
    );
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM notes WHERE id = 666"),
        0
    );
    super::assert_same_content("after remount", &a.conn(), &remote);
    figures(
        "wrong_share",
        &[
            ("cases", checks),
            ("syncs_refused", checks * 4),
            ("lost", 0),
        ],
    );
}

/// The remote file is replaced by another database (another sharecache remote) while the
/// client has it open: renamed over it (a new file), or copied over it (the same file, new
/// bytes), as a restore or a mistaken copy would. The client must notice before writing: its
/// pending write stays pending, nothing goes into the other database, and nothing from the
/// other database comes into the cache.
#[test]
fn a_remote_replaced_by_another_database_while_a_client_has_it_open_is_refused() {
    let mut failures = Vec::new();
    for how in ["renamed over", "copied over"] {
        let share = Share::new();
        let a = share.client("a");
        a.sync_now().unwrap(); // the client now holds a connection on the remote
        a.conn()
            .execute(
                "INSERT INTO notes (id, body) VALUES (20, 'must not go astray')",
                [],
            )
            .unwrap();
        let backing = share.backing().join("app.db");
        let original = share.tmp.path().join("original.db");
        std::fs::copy(&backing, &original).unwrap();
        let other = share.tmp.path().join("other.db");
        other_sharecache_remote(&other);
        match how {
            "renamed over" => std::fs::rename(&other, &backing).unwrap(),
            _ => {
                std::fs::copy(&other, &backing).unwrap();
            }
        }
        let replaced = std::fs::read(&backing).unwrap();
        let r = a.sync_now();
        let mut wrong = Vec::new();
        if !matches!(&r, Err(e) if e.to_string().contains("not the database the cache was made from"))
        {
            wrong.push(format!("the sync did not refuse the other database: {r:?}"));
        }
        if a.status().unwrap().pending_writes != 1 {
            wrong.push("the pending write is no longer pending".to_string());
        }
        if std::fs::read(&backing).unwrap() != replaced {
            let c = rusqlite::Connection::open(&backing).unwrap();
            let n: i64 = one(&c, "SELECT count(*) FROM notes WHERE id = 20");
            wrong.push(format!(
                "the other database was written to (it has the pending row: {})",
                n == 1
            ));
        }
        if one::<i64>(&a.conn(), "SELECT count(*) FROM notes WHERE id = 666") != 0 {
            wrong.push("rows of the other database came into the cache".to_string());
        }
        if !wrong.is_empty() {
            failures.push(format!("{how}: {}", wrong.join("; ")));
        }
        // Putting the right database back, the write must arrive.
        std::fs::copy(&original, &backing).unwrap();
        let r = a.sync_now();
        let arrived: i64 = one(&share.remote(), "SELECT count(*) FROM notes WHERE id = 20");
        if r.is_err() || arrived != 1 {
            failures.push(format!(
                "{how}: with the right database back, the write did not arrive ({r:?}): lost"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
