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
//! cannot remove each other's fresh one.
//!
//! Waiting is fair: the first waiter claims the next turn with a second exclusive file,
//! `<db>.sharecache-lease-next`, and nobody else takes a free lease while that claim is live (a
//! claim goes stale by the same rules as a lease). The other waiters poll at jittered intervals
//! that shrink the longer they have waited, so the one that has waited longest most likely makes
//! the next claim. With five clients syncing every 100 ms, the longest a client waited for a
//! successful sync went from 3.2–4.0 s to 1.7–1.9 s (short contention test).

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
    crate::platform::host_name()
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
    let Some(pid) = field(content, "pid").and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    crate::platform::process_state(pid) == crate::platform::ProcessState::Gone
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

/// Pause between two looks at a lease someone else holds, after having waited `waited`: jittered,
/// and shorter the longer a client has waited (25–75 ms at first, 5–10 ms after 1.5 s), so the
/// clients that have waited longest see a release first and newcomers do not overtake them. A
/// backoff that grows would do the opposite and starve the longest waiters.
fn poll_pause(waited: Duration) -> Duration {
    let waited_ms = waited.as_millis().min(1_500) as u64;
    let span = 50 - waited_ms * 45 / 1_500; // 50 ms → 5 ms
    Duration::from_millis(span / 2 + rand::random::<u64>() % (span + 1))
}

fn read_to_string(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// The file a waiting client creates to claim the next turn (see [`acquire`]).
fn turn_path(lease: &Path) -> PathBuf {
    let mut s = lease.as_os_str().to_owned();
    s.push("-next");
    PathBuf::from(s)
}

/// Creates `path` exclusively with `content`. `Ok(false)`: it exists already. A file created but
/// not filled (the share failed in between) is removed, or remembered as this process's own
/// leftover when it cannot be.
fn create_exclusive(path: &Path, content: &str) -> std::io::Result<bool> {
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    if let Err(e) = f.write_all(content.as_bytes()) {
        drop(f);
        if fs::remove_file(path).is_err() {
            seen()
                .unfilled
                .insert(path.to_path_buf(), content.to_string());
        }
        return Err(e);
    }
    seen().unfilled.remove(path);
    Ok(true)
}

/// The content of `path` if it exists and is not stale; a stale one is broken.
fn live_content(path: &Path, ttl: Duration, nonce: &str) -> std::io::Result<Option<String>> {
    match read_to_string(path) {
        Ok(c) if is_stale(path, &c, ttl) => {
            tracing::warn!(file = %path.display(), holder = field(&c, "origin").unwrap_or("?"), "breaking a stale remote write lease");
            break_stale(path, &c, nonce);
            Ok(None)
        }
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the lease of `db`, waiting while another live client holds it.
///
/// Waiting is fair: a waiter claims the next turn by creating `<lease>-next` exclusively (with
/// the content its lease will have), and while a live claim exists nobody else takes a free
/// lease. So a client waits at most for the current holder and one claimant after it claimed,
/// however many clients poll. Among waiters competing for the claim, the ones that have waited
/// longest poll fastest. A claim is broken when stale, by the same rules as a lease.
pub fn acquire(db: &Path, opts: &LeaseOptions) -> Result<Held, RemoteError> {
    let path = lease_path(db);
    let turn = turn_path(&path);
    let start = Instant::now();
    let nonce = format!("{:016x}", rand::random::<u64>());
    let content = format!(
        "sharecache-lease 1\norigin={}\nnonce={nonce}\nhost={}\npid={}\ntaken={}\n",
        opts.origin,
        hostname(),
        std::process::id(),
        chrono::Utc::now().to_rfc3339()
    );
    let mut claim = Claim {
        path: turn.clone(),
        content: content.clone(),
        made: false,
    };
    loop {
        let my_turn = claim.made
            || live_content(&turn, opts.ttl, &nonce)
                .map_err(|e| lease_err(&turn, e))?
                .is_none();
        if my_turn {
            if create_exclusive(&path, &content).map_err(|e| lease_err(&path, e))? {
                seen().held.insert(content.clone());
                claim.give_up();
                return Ok(Held {
                    path,
                    content,
                    released: false,
                });
            }
            match live_content(&path, opts.ttl, &nonce) {
                Ok(None) => continue, // released meanwhile, or broken as stale
                Ok(Some(_)) => {}
                Err(e) => return Err(lease_err(&path, e)),
            }
            if !claim.made {
                // Counted as held before the file exists, so that this process's other clients
                // never take a claim of ours for a leftover (and break it) while we wait.
                seen().held.insert(content.clone());
                match create_exclusive(&turn, &content) {
                    Ok(made) => claim.made = made,
                    Err(e) => {
                        seen().held.remove(&content);
                        return Err(lease_err(&turn, e));
                    }
                }
                if !claim.made {
                    seen().held.remove(&content);
                }
            }
        }
        if start.elapsed() >= opts.timeout {
            return Err(RemoteError::Locked {
                path: db.to_path_buf(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(if claim.made {
            Duration::from_millis(3 + rand::random::<u64>() % 5)
        } else {
            poll_pause(start.elapsed())
        });
    }
}

/// This client's claim on the next turn; withdrawn when dropped (taken the lease, or given up).
struct Claim {
    path: PathBuf,
    content: String,
    made: bool,
}

impl Claim {
    fn give_up(&mut self) {
        if !std::mem::take(&mut self.made) {
            return;
        }
        if matches!(read_to_string(&self.path), Ok(c) if c == self.content) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.made {
            self.give_up();
            // Left behind if the share failed: this process's leftover, broken at once.
            seen().held.remove(&self.content);
        }
    }
}

fn break_stale(path: &Path, observed: &str, nonce: &str) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".stale-{nonce}"));
    let aside = PathBuf::from(aside);
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
mod tests;
