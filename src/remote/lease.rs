//! The write lease: a second lock beside SQLite's byte-range locks, which many SMB/NFS/FUSE setups
//! drop or keep local to one machine.
//!
//! Before a write transaction on the remote, a client creates `<db>.sharecache-lease`
//! exclusively (`O_EXCL`, atomic on every share protocol) with its origin id and a random nonce,
//! checks just before `COMMIT` that the file still holds its nonce, and deletes it after. A lease
//! is stale when its holder is a dead process on this same host, when it is this process's own
//! and no longer held (left behind when the share failed before it could be deleted), or when
//! this process has seen the same lease content, unchanged, for longer than the lease TTL on its
//! own monotonic clock (clock skew between machines cannot break it early). Sightings are kept
//! for the whole process, across acquisitions and connections: a lease left by a client that
//! died on another machine is broken `ttl` after it was first seen, however short each wait is.
//! A stale lease is broken by renaming it away first, so two clients breaking the same lease
//! cannot remove each other's fresh one. Waiting clients poll at short, jittered intervals, so
//! no client waits much longer than the others.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::RemoteError;

/// The lease file path for a remote database.
pub fn lease_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sharecache-lease");
    PathBuf::from(s)
}

/// A lease this client holds. Released on drop (best effort).
#[derive(Debug)]
pub struct Held {
    path: PathBuf,
    content: String,
    released: bool,
}

/// Parameters for taking a lease.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// This client's origin id, written into the lease.
    pub origin: String,
    /// A lease unchanged for this long is stale.
    pub ttl: Duration,
    /// Give up (Locked) after waiting this long for a live lease.
    pub timeout: Duration,
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn field<'a>(content: &'a str, key: &str) -> Option<&'a str> {
    content
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Whether the lease names a process on this host that no longer exists.
fn holder_is_dead(content: &str) -> bool {
    if field(content, "host") != Some(hostname().as_str()) {
        return false;
    }
    let Some(pid) = field(content, "pid").and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// What this process knows about lease files: the leases it holds now (by content), and, per
/// lease file, the content last seen there and since when.
#[derive(Default)]
struct Seen {
    held: HashSet<String>,
    sightings: HashMap<PathBuf, (String, Instant)>,
    /// Lease files this process created but could not fill (the share failed in between): what
    /// it meant to write. Such a file holds a prefix of it, maybe nothing.
    unfilled: HashMap<PathBuf, String>,
}

fn seen() -> MutexGuard<'static, Seen> {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    SEEN.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Whether `content` at `path` is stale: its holder is dead, it is this process's own leftover,
/// or it has been seen unchanged for `ttl`. Records the sighting.
fn is_stale(path: &Path, content: &str, ttl: Duration) -> bool {
    if holder_is_dead(content) {
        return true;
    }
    let mut seen = seen();
    let ours = field(content, "host") == Some(hostname().as_str())
        && field(content, "pid") == Some(std::process::id().to_string().as_str());
    if ours && !seen.held.contains(content) {
        return true;
    }
    if seen
        .unfilled
        .get(path)
        .is_some_and(|meant| meant.starts_with(content))
    {
        // Ours, left half-written. Were it another client's lease caught between its creation
        // and its content, breaking it costs that client a retry: its check before COMMIT fails.
        return true;
    }
    match seen.sightings.get(path) {
        Some((c, since)) if c == content => since.elapsed() >= ttl,
        _ => {
            seen.sightings
                .insert(path.to_path_buf(), (content.to_string(), Instant::now()));
            false
        }
    }
}

/// Pause between two looks at a lease someone else holds: short and jittered, the same for
/// every waiter (a growing backoff lets newcomers overtake clients that have waited longest).
fn poll_pause() -> Duration {
    Duration::from_millis(25 + rand::random::<u64>() % 50)
}

fn read_to_string(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// Takes the lease of `db`, waiting (with jittered backoff) while another live client holds it.
pub fn acquire(db: &Path, opts: &LeaseOptions) -> Result<Held, RemoteError> {
    let path = lease_path(db);
    let start = Instant::now();
    let nonce = format!("{:016x}", rand::random::<u64>());
    let content = format!(
        "sharecache-lease 1\norigin={}\nnonce={nonce}\nhost={}\npid={}\ntaken={}\n",
        opts.origin,
        hostname(),
        std::process::id(),
        chrono::Utc::now().to_rfc3339()
    );
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(content.as_bytes()) {
                    drop(f);
                    if fs::remove_file(&path).is_err() {
                        seen().unfilled.insert(path.clone(), content);
                    }
                    return Err(lease_err(&path, e));
                }
                let mut seen = seen();
                seen.held.insert(content.clone());
                seen.unfilled.remove(&path);
                drop(seen);
                return Ok(Held {
                    path,
                    content,
                    released: false,
                });
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(lease_err(&path, e)),
        }
        match read_to_string(&path) {
            Ok(other) => {
                if is_stale(&path, &other, opts.ttl) {
                    tracing::warn!(lease = %path.display(), holder = field(&other, "origin").unwrap_or("?"), "breaking a stale remote write lease");
                    break_stale(&path, &other, &nonce);
                    continue;
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue, // released meanwhile
            Err(e) => return Err(lease_err(&path, e)),
        }
        if start.elapsed() >= opts.timeout {
            return Err(RemoteError::Locked {
                path: db.to_path_buf(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(poll_pause());
    }
}

fn break_stale(path: &Path, observed: &str, nonce: &str) {
    let aside = path.with_extension(format!("sharecache-lease.stale-{nonce}"));
    if fs::rename(path, &aside).is_err() {
        return;
    }
    match read_to_string(&aside) {
        Ok(c) if c == observed => {
            let _ = fs::remove_file(&aside);
        }
        _ => {
            // We moved a fresh lease aside: put it back unless someone took the name meanwhile.
            let _ = fs::hard_link(&aside, path);
            let _ = fs::remove_file(&aside);
        }
    }
}

fn lease_err(path: &Path, source: std::io::Error) -> RemoteError {
    match source.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => RemoteError::Lease {
            path: path.to_path_buf(),
            source,
        },
        _ => RemoteError::Offline {
            path: path.to_path_buf(),
            detail: format!("write lease: {source}"),
        },
    }
}

impl Held {
    /// Whether the lease file still holds this client's lease (checked just before COMMIT).
    pub fn verify(&self) -> Result<bool, RemoteError> {
        match read_to_string(&self.path) {
            Ok(c) => Ok(c == self.content),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RemoteError::from_io(&self.path, &e)),
        }
    }

    /// Releases the lease (only if it is still ours).
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if matches!(read_to_string(&self.path), Ok(c) if c == self.content) {
            let _ = fs::remove_file(&self.path);
        }
        // Left behind if the share failed just now: the next acquisition breaks it at once.
        seen().held.remove(&self.content);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release_inner();
    }
}

#[cfg(test)]
mod tests {
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
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let content = format!(
            "sharecache-lease 1\norigin=x\nnonce=1\nhost={}\npid={pid}\n",
            hostname()
        );
        fs::write(lease_path(&db), content).unwrap();
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
}
