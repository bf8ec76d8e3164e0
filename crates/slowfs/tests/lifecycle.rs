//! Mount lifecycle: unmount on drop and after the test process dies.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Fixture, names};

fn mounted(path: &std::path::Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let p = path.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(p))
}

#[test]
fn drop_unmounts() {
    let fx = Fixture::fast();
    let path = fx.mount.path().to_path_buf();
    assert!(mounted(&path));
    let ctl = fx.ctl();
    let common::Fixture {
        mount,
        backing: _b,
        mnt: _m,
    } = fx;
    drop(mount);
    assert!(!mounted(&path));
    // A Control that outlives its mount is harmless.
    assert_eq!(ctl.stats().failed, 0);
}

#[test]
fn drop_with_open_files_and_hung_request_does_not_hang() {
    let fx = Fixture::fast();
    fs::write(fx.b("f"), b"x").unwrap();
    let ctl = fx.ctl();
    let open = fs::File::open(fx.m("f")).unwrap();
    ctl.set_hang(true);
    let (tx, rx) = mpsc::channel();
    let p = fx.m("f");
    std::thread::spawn(move || {
        tx.send(fs::metadata(p).map(|_| ()).map_err(|e| e.raw_os_error()))
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(50));

    let common::Fixture {
        mount,
        backing,
        mnt,
    } = fx;
    let start = Instant::now();
    drop(mount);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "drop took {:?}",
        start.elapsed()
    );
    let got = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("hung request released");
    assert!(got.is_err());
    // The open handle no longer reaches the share, and the mountpoint is free.
    let mut buf = [0u8; 1];
    assert!(open.read_at(&mut buf, 0).is_err());
    drop(open);
    assert_eq!(names(mnt.path()), Vec::<String>::new());
    assert_eq!(fs::read(backing.path().join("f")).unwrap(), b"x");

    // Mounting again (even on the same mountpoint) works.
    let again =
        slowfs::SlowFs::mount(backing.path(), mnt.path(), slowfs::Options::default()).unwrap();
    assert_eq!(fs::read(again.path().join("f")).unwrap(), b"x");
}

/// Helper run in a child process by `dying_process_does_not_hang`: mounts,
/// leaves a file open and a request hung, then dies without unmounting.
#[test]
fn dying_child() {
    let Ok(how) = std::env::var("SLOWFS_DYING_CHILD") else {
        return;
    };
    let fx = Fixture::fast();
    fs::write(fx.b("f"), b"x").unwrap();
    let open = fs::File::open(fx.m("f")).unwrap();
    fx.ctl().set_hang(true);
    let p = fx.m("f");
    std::thread::spawn(move || fs::metadata(p));
    std::thread::sleep(Duration::from_millis(50));
    println!("\nMOUNTED {}", fx.mount.path().display());
    std::mem::forget(fx);
    std::mem::forget(open);
    match how.as_str() {
        "abort" => std::process::abort(),
        _ => std::process::exit(0),
    }
}

#[test]
fn dying_process_does_not_hang() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the watchdog needs root");
        return;
    }
    for how in ["exit", "abort"] {
        let start = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "dying_child", "--nocapture", "--test-threads=1"])
            .env("SLOWFS_DYING_CHILD", how)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut mnt = None;
        for line in out.lines() {
            if let Some(p) = line.unwrap().strip_prefix("MOUNTED ") {
                mnt = Some(std::path::PathBuf::from(p));
            }
        }
        let mnt = mnt.expect("child mounted");
        // The child must be gone promptly, not stuck in uninterruptible sleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "{how}: child hangs on exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The watchdog unmounts shortly after.
        while mounted(&mnt) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!mounted(&mnt), "{how}: mount left behind");
        assert!(start.elapsed() < Duration::from_secs(10));
        let _ = fs::remove_dir(&mnt);
    }
}
