//! `sharecache demo`: the whole flow on a demo "share" folder, narrated.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::Connection;
use sharecache::{Cache, Config, OpenOptions};

const MARKER: &str = ".sharecache-demo";

fn create_remote(path: &Path) -> anyhow::Result<()> {
    let db = Connection::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = DELETE;
         CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, updated_at TEXT);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, task_id TEXT, body TEXT);
         CREATE TABLE audit_log (at TEXT, message TEXT);
         INSERT INTO tasks (id, title, updated_at) VALUES
           ('7f1c2e9a-0001', 'Order toner', '2026-01-05T09:00:00.000Z'),
           ('7f1c2e9a-0002', 'Renew the domain', '2026-01-05T09:00:00.000Z'),
           ('7f1c2e9a-0003', 'Back up the share', '2026-01-05T09:00:00.000Z');
         INSERT INTO notes (task_id, body) VALUES ('7f1c2e9a-0001', 'Brand X, model 42');
         INSERT INTO audit_log VALUES ('2026-01-05T09:00:00Z', 'database created');",
    )?;
    Ok(())
}

fn write_config(dir: &Path, who: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{who}.yaml"));
    std::fs::write(
        &path,
        format!(
            "# demo client {who}\ndatabase:\n  path: share/app.db\n  sync_interval: 30\n  enable_cache: true\n  cache_directory: cache-{who}\nsync:\n  batch_size: 500\n"
        ),
    )?;
    Ok(path)
}

fn title(c: &Cache, id: &str) -> anyhow::Result<String> {
    Ok(c.conn()
        .query_row("SELECT title FROM tasks WHERE id = ?1", [id], |r| r.get(0))?)
}

fn step(n: u32, text: &str) {
    println!("\n{n}. {text}");
}

/// Runs the demo in `dir` (recreated; refuses to touch a directory it did not create).
pub fn run(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by `sharecache demo`; pass --dir to use another directory",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("share"))?;
    std::fs::write(dir.join(MARKER), "made by sharecache demo\n")?;
    let remote = dir.join("share/app.db");
    create_remote(&remote)?;
    println!("sharecache demo in {}", dir.display());
    println!(
        "   the \"share\": {} (tasks, notes, and audit_log without a primary key)",
        remote.display()
    );

    step(
        1,
        "Alice opens the database through sharecache: the first open copies it into her local cache.",
    );
    let alice = Cache::open_with(
        Config::load(&write_config(dir, "alice")?)?,
        OpenOptions::default().background(false),
    )?;
    println!(
        "   cache file: {}",
        alice
            .cache_path()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );

    step(
        2,
        "Alice works locally (no network round trips): adds a task and ticks one off.",
    );
    alice.conn().execute_batch(
        "INSERT INTO tasks (id, title) VALUES ('7f1c2e9a-0004', 'Call the printer guy');
         UPDATE tasks SET done = 1 WHERE id = '7f1c2e9a-0002';",
    )?;
    let stamped: String = alice.conn().query_row(
        "SELECT updated_at FROM tasks WHERE id = '7f1c2e9a-0004'",
        [],
        |r| r.get(0),
    )?;
    println!(
        "   the trigger stamped updated_at = {stamped}; pending writes: {}",
        alice.status()?.pending_writes
    );

    step(3, "Alice syncs: one short transaction on the share.");
    let r = alice.sync_now()?;
    println!(
        "   pushed {}, pulled {}, conflicts {} in {} ms",
        r.pushed,
        r.pulled,
        r.conflicts,
        r.duration.as_millis()
    );

    step(
        4,
        "Bob opens the same database on his machine and sees Alice's task.",
    );
    let bob = Cache::open_with(
        Config::load(&write_config(dir, "bob")?)?,
        OpenOptions::default().background(false),
    )?;
    println!("   Bob reads: {:?}", title(&bob, "7f1c2e9a-0004")?);

    step(
        5,
        "Both rename 'Order toner' while offline from each other; Alice first, Bob a moment later.",
    );
    alice.conn().execute(
        "UPDATE tasks SET title = 'Order toner (Alice)' WHERE id = '7f1c2e9a-0001'",
        [],
    )?;
    std::thread::sleep(std::time::Duration::from_millis(5));
    bob.conn().execute(
        "UPDATE tasks SET title = 'Order toner (Bob)' WHERE id = '7f1c2e9a-0001'",
        [],
    )?;
    let a = alice.sync_now()?;
    let b = bob.sync_now()?;
    let a2 = alice.sync_now()?;
    println!(
        "   Alice syncs ({} conflicts), Bob syncs ({} conflicts), Alice syncs again (pulled {})",
        a.conflicts, b.conflicts, a2.pulled
    );
    println!(
        "   newest edit wins everywhere: Alice sees {:?}, Bob sees {:?}",
        title(&alice, "7f1c2e9a-0001")?,
        title(&bob, "7f1c2e9a-0001")?
    );
    let (loser, origin): (String, String) = alice.conn().query_row(
        "SELECT loser_row, loser_origin FROM sync_conflicts ORDER BY id DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    println!("   the losing version is kept in the conflict log (origin {origin}): {loser}");

    step(6, "Alice's status:");
    let s = alice.status()?;
    println!(
        "   {} {:?}, {} pending, {} conflicts logged, mode {}",
        s.state.indicator(),
        s.state,
        s.pending_writes,
        s.conflicts,
        s.mode
    );
    for t in &s.unsynced_tables {
        println!("   not synced: {} — {}", t.name, t.reason);
    }
    println!(
        "\nTry: sharecache --config {} status",
        dir.join("alice.yaml").display()
    );
    Ok(())
}
