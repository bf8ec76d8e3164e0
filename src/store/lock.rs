//! The cross-process lock of one cache: only one sync (or cache creation, or clear) runs at a
//! time, whether from the app's thread, `sharecache sync` or `sharecache daemon`. An advisory
//! lock on a file beside the cache (`flock` on Unix, `LockFileEx` on Windows: see
//! `platform::try_lock_exclusive`); the OS releases it when the holder dies, so a crashed process
//! never leaves it stuck.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

/// Takes the lock at `path`, waiting up to `wait`. `Ok(None)`: someone else holds it.
pub fn acquire(path: &Path, wait: Duration) -> std::io::Result<Option<LockGuard>> {
    let mut file = crate::platform::open_private_file(path)?;
    let start = Instant::now();
    loop {
        if crate::platform::try_lock_exclusive(&file)? {
            // Who holds it, for messages; best effort (a full disk must not stop a sync that
            // would otherwise notice the full disk and fall back).
            let _ = file
                .set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| write!(file, "pid={}", std::process::id()));
            return Ok(Some(LockGuard { file }));
        }
        if start.elapsed() >= wait {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20).min(wait.saturating_sub(start.elapsed())));
    }
}

/// Who holds the lock, as written by the holder (best effort).
pub fn holder(path: &Path) -> String {
    let mut s = String::new();
    match File::open(path).and_then(|mut f| f.read_to_string(&mut s)) {
        Ok(_) if !s.is_empty() => s,
        _ => "another process".into(),
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = crate::platform::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let a = acquire(&p, Duration::ZERO).unwrap().expect("free");
        assert!(acquire(&p, Duration::from_millis(50)).unwrap().is_none());
        assert!(holder(&p).contains(&std::process::id().to_string()));
        drop(a);
        assert!(acquire(&p, Duration::ZERO).unwrap().is_some());
    }
}
