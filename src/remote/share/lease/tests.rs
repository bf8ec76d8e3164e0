//! Unit tests of the write lease and its fair turn-taking.

use super::*;

fn opts(ttl_ms: u64, timeout_ms: u64) -> LeaseOptions {
    LeaseOptions {
        origin: "me".into(),
        ttl: Duration::from_millis(ttl_ms),
        timeout: Duration::from_millis(timeout_ms),
    }
}

#[test]
fn a_held_lease_blocks_others_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let a = acquire(&db, &opts(60_000, 100)).unwrap();
    assert!(a.verify().unwrap());
    let err = acquire(&db, &opts(60_000, 100)).unwrap_err();
    assert!(matches!(err, RemoteError::Locked { .. }), "{err}");
    a.release();
    let b = acquire(&db, &opts(60_000, 100)).unwrap();
    assert!(b.verify().unwrap());
}

#[test]
fn a_lease_unchanged_past_its_ttl_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let stuck = acquire(&db, &opts(60_000, 100)).unwrap();
    std::mem::forget(stuck); // a holder that never releases (but whose pid is alive)
    let b = acquire(&db, &opts(150, 2_000)).unwrap();
    assert!(b.verify().unwrap());
}

#[test]
fn a_lease_of_a_dead_process_on_this_host_is_broken_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    fs::write(lease_path(&db), left_by_a_dead_process()).unwrap();
    let held = acquire(&db, &opts(60_000, 100)).unwrap();
    assert!(held.verify().unwrap());
}

#[test]
fn a_lease_seen_unchanged_across_short_waits_is_broken_after_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    fs::write(
        lease_path(&db),
        "sharecache-lease 1\norigin=x\nnonce=1\nhost=another-machine\npid=1\n",
    )
    .unwrap();
    let start = Instant::now();
    let held = loop {
        // Each wait (50 ms) is far shorter than the TTL (300 ms): only sightings kept from
        // one wait to the next can ever add up to it.
        match acquire(&db, &opts(300, 50)) {
            Ok(h) => break h,
            Err(RemoteError::Locked { .. }) => {
                assert!(start.elapsed() < Duration::from_secs(5))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(held.verify().unwrap());
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn this_process_s_own_leftover_lease_is_broken_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let lost = acquire(&db, &opts(60_000, 100)).unwrap();
    let content = lost.content.clone();
    drop(lost);
    // The share failed while releasing: the file is still there, no longer held.
    fs::write(lease_path(&db), &content).unwrap();
    let start = Instant::now();
    let held = acquire(&db, &opts(60_000, 100)).unwrap();
    assert!(held.verify().unwrap());
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_lease_file_this_process_could_not_fill_is_broken_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let path = lease_path(&db);
    // As left by a write that failed half-way: the start of what this process meant.
    seen()
        .unfilled
        .insert(path.clone(), "sharecache-lease 1\norigin=me\n".into());
    fs::write(&path, "sharecache-lease 1\nori").unwrap();
    let held = acquire(&db, &opts(60_000, 100)).unwrap();
    assert!(held.verify().unwrap());
    assert!(!seen().unfilled.contains_key(&path));
}

#[test]
fn a_stolen_lease_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let a = acquire(&db, &opts(60_000, 100)).unwrap();
    fs::write(lease_path(&db), "someone else").unwrap();
    assert!(!a.verify().unwrap());
    drop(a);
    assert_eq!(
        fs::read_to_string(lease_path(&db)).unwrap(),
        "someone else",
        "release leaves others' leases alone"
    );
}

/// Lease (or claim) content naming a process on this host that has exited.
fn left_by_a_dead_process() -> String {
    // The test binary listing its tests: a process that exits at once, on every OS.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    format!(
        "sharecache-lease 1\norigin=x\nnonce=1\nhost={}\npid={pid}\n",
        hostname()
    )
}

#[test]
fn a_waiter_that_claimed_the_next_turn_goes_before_a_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let holder = acquire(&db, &opts(60_000, 100)).unwrap();
    let order = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            let held = acquire(&db, &opts(60_000, 10_000)).unwrap();
            order.lock().unwrap().push("waiter");
            std::thread::sleep(Duration::from_millis(50));
            held.release();
        });
        let turn = turn_path(&lease_path(&db));
        let t = Instant::now();
        while !turn.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the waiter never claimed its turn"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        holder.release();
        // A newcomer arriving the moment the lease is free must not overtake the waiter.
        let held = acquire(&db, &opts(60_000, 10_000)).unwrap();
        order.lock().unwrap().push("newcomer");
        held.release();
    });
    assert_eq!(*order.lock().unwrap(), ["waiter", "newcomer"]);
    assert!(
        !turn_path(&lease_path(&db)).exists(),
        "the claim is withdrawn once used"
    );
}

#[test]
fn a_waiter_that_gives_up_withdraws_its_claim() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let _holder = acquire(&db, &opts(60_000, 100)).unwrap();
    let err = acquire(&db, &opts(60_000, 150)).unwrap_err();
    assert!(matches!(err, RemoteError::Locked { .. }), "{err}");
    assert!(!turn_path(&lease_path(&db)).exists());
}

#[test]
fn a_claim_left_by_a_dead_process_does_not_block_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    fs::write(turn_path(&lease_path(&db)), left_by_a_dead_process()).unwrap();
    let held = acquire(&db, &opts(60_000, 100)).unwrap();
    assert!(held.verify().unwrap());
}

#[test]
fn a_live_claim_of_another_client_holds_back_a_free_lease_until_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    fs::write(
        turn_path(&lease_path(&db)),
        "sharecache-lease 1\norigin=elsewhere\nnonce=3\nhost=another-host\npid=1\n",
    )
    .unwrap();
    let err = acquire(&db, &opts(60_000, 100)).unwrap_err();
    assert!(matches!(err, RemoteError::Locked { .. }), "{err}");
    // Seen unchanged for longer than the TTL: stale, broken.
    let held = acquire(&db, &opts(200, 5_000)).unwrap();
    assert!(held.verify().unwrap());
    assert!(!turn_path(&lease_path(&db)).exists());
}
