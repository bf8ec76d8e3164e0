//! Latency, offline, hang, unmounted and fault-injection modes.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Fixture, errno, names};

#[test]
fn latency_is_applied_to_every_request() {
    let latency = Duration::from_millis(20);
    let fx = Fixture::new(latency);
    let ctl = fx.ctl();
    assert_eq!(ctl.latency(), latency);
    fs::write(fx.b("f"), b"x").unwrap();

    ctl.reset_stats();
    fs::metadata(fx.m("f")).unwrap();
    let per_stat = ctl.stats().total;
    assert!(per_stat >= 1, "a stat must reach the daemon");

    const N: u32 = 5;
    let start = Instant::now();
    for _ in 0..N {
        fs::metadata(fx.m("f")).unwrap();
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= latency * N * per_stat as u32,
        "{N} stats of {per_stat} ops took {elapsed:?}"
    );

    // Lowering the latency takes effect at once.
    ctl.set_latency(Duration::ZERO);
    assert_eq!(ctl.latency(), Duration::ZERO);
    fs::metadata(fx.m("f")).unwrap();
}

#[test]
fn offline_fails_open_handles_and_new_opens_with_eio() {
    let fx = Fixture::fast();
    fs::write(fx.b("a"), b"aaaa").unwrap();
    fs::write(fx.b("b"), b"bbbb").unwrap();
    let ctl = fx.ctl();
    let open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fx.m("a"))
        .unwrap();

    ctl.set_offline(true);
    assert!(ctl.is_offline());
    let mut buf = [0u8; 4];
    assert_eq!(errno(open.read_at(&mut buf, 0)), Some(libc::EIO));
    assert_eq!(errno(open.write_at(b"zz", 0)), Some(libc::EIO));
    assert_eq!(errno(open.sync_all()), Some(libc::EIO));
    assert_eq!(errno(fs::File::open(fx.m("b"))), Some(libc::EIO));
    assert_eq!(errno(fs::metadata(fx.m("b"))), Some(libc::EIO));
    assert_eq!(errno(fs::write(fx.m("c"), b"c")), Some(libc::EIO));
    assert_eq!(errno(fs::remove_file(fx.m("b"))), Some(libc::EIO));
    assert_eq!(errno(fs::rename(fx.m("b"), fx.m("d"))), Some(libc::EIO));
    assert_eq!(errno(fs::read_dir(fx.mount.path())), Some(libc::EIO));
    assert!(ctl.stats().failed >= 9);

    ctl.set_offline(false);
    open.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"aaaa");
    assert_eq!(fs::read(fx.m("b")).unwrap(), b"bbbb");
    assert_eq!(fs::read(fx.b("a")).unwrap(), b"aaaa");
    assert_eq!(names(fx.backing.path()), vec!["a", "b"]);
}

#[test]
fn hang_blocks_until_released() {
    let fx = Fixture::fast();
    fs::write(fx.b("f"), b"x").unwrap();
    let ctl = fx.ctl();

    ctl.set_hang(true);
    let (tx, rx) = mpsc::channel();
    let p = fx.m("f");
    std::thread::spawn(move || tx.send(fs::read(p).map_err(|e| e.raw_os_error())).unwrap());
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "operation completed while the share hangs"
    );
    ctl.set_hang(false);
    let got = rx.recv_timeout(Duration::from_secs(2)).expect("released");
    assert_eq!(got, Ok(b"x".to_vec()));

    // A hang ended by going offline fails with EIO.
    ctl.set_hang(true);
    let (tx, rx) = mpsc::channel();
    let p = fx.m("f");
    std::thread::spawn(move || {
        tx.send(fs::metadata(p).map(|_| ()).map_err(|e| e.raw_os_error()))
            .unwrap()
    });
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    ctl.set_offline(true);
    let got = rx.recv_timeout(Duration::from_secs(2)).expect("released");
    assert_eq!(got, Err(Some(libc::EIO)));
    ctl.set_hang(false);
    ctl.set_offline(false);
    assert_eq!(fs::read(fx.m("f")).unwrap(), b"x");
}

#[test]
fn unmounted_shows_empty_scratch_dir() {
    let fx = Fixture::fast();
    fs::write(fx.b("db"), b"data").unwrap();
    let ctl = fx.ctl();
    assert_eq!(names(fx.mount.path()), vec!["db"]);

    ctl.set_unmounted(true);
    assert!(ctl.is_unmounted());
    assert_eq!(names(fx.mount.path()), Vec::<String>::new());
    assert!(!fx.m("db").exists());
    fs::write(fx.m("new.txt"), b"oops").unwrap();
    fs::create_dir(fx.m("sub")).unwrap();
    assert_eq!(names(fx.mount.path()), vec!["new.txt", "sub"]);
    assert_eq!(names(fx.backing.path()), vec!["db"]);
    assert_eq!(ctl.scratch_entries(), vec!["new.txt", "sub"]);

    ctl.set_unmounted(false);
    assert_eq!(names(fx.mount.path()), vec!["db"]);
    assert_eq!(fs::read(fx.m("db")).unwrap(), b"data");
    assert!(!fx.m("new.txt").exists());
    // The scratch dir keeps what was created there until cleared.
    assert_eq!(ctl.scratch_entries(), vec!["new.txt", "sub"]);
    ctl.clear_scratch();
    assert!(ctl.scratch_entries().is_empty());
}

#[test]
fn unmounted_fails_handles_opened_on_the_share() {
    let fx = Fixture::fast();
    fs::write(fx.b("db"), b"data").unwrap();
    let ctl = fx.ctl();
    let f = fs::File::open(fx.m("db")).unwrap();
    ctl.set_unmounted(true);
    let mut buf = [0u8; 4];
    assert_eq!(errno(f.read_at(&mut buf, 0)), Some(libc::EIO));
    ctl.set_unmounted(false);
    f.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"data");
}

#[test]
fn fail_nth_fails_exactly_the_nth_request() {
    let fx = Fixture::fast();
    fs::write(fx.b("f"), b"x").unwrap();
    let ctl = fx.ctl();
    let f = fs::File::open(fx.m("f")).unwrap();
    // Warm up: the first statx may be answered differently by the kernel.
    f.metadata().unwrap();
    ctl.reset_stats();
    f.metadata().unwrap();
    assert_eq!(ctl.stats().total, 1, "one fstat = one GETATTR");

    ctl.fail_nth(3, false);
    let results: Vec<Option<i32>> = (0..6).map(|_| errno(f.metadata())).collect();
    assert_eq!(results, vec![None, None, Some(libc::EIO), None, None, None]);

    ctl.fail_nth(2, true);
    let results: Vec<Option<i32>> = (0..4).map(|_| errno(f.metadata())).collect();
    assert_eq!(
        results,
        vec![None, Some(libc::EIO), Some(libc::EIO), Some(libc::EIO)]
    );
    assert_eq!(ctl.stats().failed, 4);
    assert_eq!(errno(fs::read(fx.m("f"))), Some(libc::EIO));
    ctl.clear_faults();
    assert!(f.metadata().is_ok());
    let released = ctl.stats().release;
    assert_eq!(fs::read(fx.m("f")).unwrap(), b"x");
    // RELEASE is sent asynchronously after close(): let it arrive before
    // arming the next fault, or it may be the request that fails.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ctl.stats().release == released && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }

    // fail_nth(1) hits the very next request, whatever it is.
    ctl.fail_nth(1, false);
    assert_eq!(errno(f.metadata()), Some(libc::EIO));
    assert!(f.metadata().is_ok());
}

#[test]
fn one_failed_revalidation_lookup_is_retried_by_the_kernel() {
    // Documents kernel behaviour: a LOOKUP that revalidates a known name and
    // fails makes the kernel drop the dentry and look it up afresh, so a
    // single injected failure there is invisible to the application.
    let fx = Fixture::fast();
    fs::write(fx.b("f"), b"x").unwrap();
    let ctl = fx.ctl();
    fs::metadata(fx.m("f")).unwrap();
    ctl.reset_stats();
    ctl.fail_nth(1, false);
    assert_eq!(fs::read(fx.m("f")).unwrap(), b"x");
    let s = ctl.stats();
    assert_eq!(s.failed, 1);
    assert!(s.lookup >= 2, "{s:?}");
}

#[test]
fn concurrent_clients_are_not_serialised() {
    let latency = Duration::from_millis(50);
    let fx = Fixture::new(latency);
    fs::write(fx.b("a"), b"a").unwrap();
    fs::write(fx.b("b"), b"b").unwrap();
    const N: u32 = 5;
    let start = Instant::now();
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let p = fx.m(name);
            std::thread::spawn(move || {
                for _ in 0..N {
                    fs::metadata(&p).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    // Each stat is LOOKUP + GETATTR; serialised, 2 * N stats would take at
    // least 2 * N * 2 * latency = 1 s.
    let serial = latency * 2 * N * 2;
    assert!(elapsed >= latency * N * 2, "{elapsed:?}");
    assert!(elapsed < serial * 9 / 10, "clients serialised: {elapsed:?}");
}
