//! Shared helpers for the slowfs integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use slowfs::{Control, Mount, Options, SlowFs};
use tempfile::TempDir;

/// A mounted slowfs over a fresh backing directory. Field order matters:
/// the mount is dropped (unmounted) before the directories are removed.
pub struct Fixture {
    pub mount: Mount,
    pub backing: TempDir,
    pub mnt: TempDir,
}

impl Fixture {
    pub fn new(latency: Duration) -> Fixture {
        let backing = tempfile::tempdir().unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let opts = Options {
            latency,
            ..Options::default()
        };
        let mount = SlowFs::mount(backing.path(), mnt.path(), opts).expect("mount slowfs");
        Fixture {
            mount,
            backing,
            mnt,
        }
    }

    /// Default fixture with a small latency.
    pub fn fast() -> Fixture {
        Fixture::new(Duration::from_millis(1))
    }

    /// Path through the mount.
    pub fn m(&self, rel: &str) -> PathBuf {
        self.mount.path().join(rel)
    }

    /// Path in the backing directory.
    pub fn b(&self, rel: &str) -> PathBuf {
        self.backing.path().join(rel)
    }

    pub fn ctl(&self) -> Control {
        self.mount.control()
    }
}

/// The raw OS error of an `io::Result`, or `None` if it succeeded.
pub fn errno<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
