//! `sharecache daemon` as a child process (against both backends), and `status` against a hung
//! share.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::cli::{cache_file, json, ok, wait_until};
use crate::support::remote::{Backend, Remote};
use crate::support::{Share, sharecache};

crate::both_backends!(
    the_daemon_pushes_writes_of_other_programs_shows_in_status_and_stops_on_sigterm
);

fn stop(child: &mut Child) -> Option<i32> {
    // SAFETY: kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the daemon did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn the_daemon_pushes_writes_of_other_programs_shows_in_status_and_stops_on_sigterm(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("sync_interval: 30", "sync_interval: 0.5"),
    )
    .unwrap();
    let mut daemon = sharecache()
        .arg("--config")
        .arg(&cfg)
        .arg("daemon")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = scopeguard(&mut daemon);

    wait_until("status to show the daemon", Duration::from_secs(20), || {
        let s = json(&cfg, &["status", "--json"]);
        s["worker_running"] == true && s["cache_exists"] == true
    });
    let status = json(&cfg, &["status", "--json"]);
    assert!(
        status["worker"].as_str().unwrap().contains("pid="),
        "{status}"
    );

    cache_file(&cfg)
        .execute("INSERT INTO notes (id, body) VALUES (31, 'via sqlite')", [])
        .unwrap();
    wait_until(
        "the daemon to push the write",
        Duration::from_secs(10),
        || remote.one::<i64>("SELECT count(*) FROM notes WHERE id = 31") == 1,
    );

    let daemon = guard.release();
    assert_eq!(stop(daemon), Some(0), "clean stop on SIGTERM");
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("sync success"), "{log}");
    assert!(log.contains("daemon stopped"), "{log}");
    assert_eq!(json(&cfg, &["status", "--json"])["worker_running"], false);
}

/// Kills the daemon if the test fails before stopping it.
struct Guard<'a>(Option<&'a mut Child>);

fn scopeguard(child: &mut Child) -> Guard<'_> {
    Guard(Some(child))
}

impl<'a> Guard<'a> {
    fn release(mut self) -> &'a mut Child {
        self.0.take().unwrap()
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn status_answers_within_seconds_when_the_share_hangs() {
    let share = Share::new();
    let cfg = share.config_file("a");
    ok(&cfg, &["sync"]);
    // `auto` asks the filesystem whether the path is on a network share: that hangs too.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("enable_cache: true", "enable_cache: auto"),
    )
    .unwrap();
    share.control.set_hang(true);
    let start = Instant::now();
    let mut child = sharecache()
        .arg("--config")
        .arg(&cfg)
        .args(["status", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The process cannot finish exiting while its probe waits on the hung share, so read the
    // output as it comes instead of waiting for the exit.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    let status: Value = loop {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(chunk) => out.extend(chunk),
            Err(_) => {
                share.control.set_hang(false);
                let _ = child.kill();
                panic!("status printed nothing within 15 s on a hung share");
            }
        }
        if let Ok(v) = serde_json::from_slice(&out) {
            break v;
        }
    };
    let took = start.elapsed();
    share.control.set_hang(false);
    let code = child.wait().unwrap().code();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(code, Some(0));
    assert_eq!(status["share_reachable"], false);
    assert!(
        status["share_check"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{status}"
    );
    assert_eq!(
        status["mode"], "cached",
        "a share that hangs is a network share"
    );
    assert_eq!(status["state"], "success");
}
