//! Inode table: FUSE node ids <-> (world, path relative to the world's root).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fuser::Errno;

use crate::control::World;

/// Node id of the root directory (always the root of the current world).
pub(crate) const ROOT: u64 = 1;

#[derive(Debug)]
struct Table {
    by_ino: HashMap<u64, (World, PathBuf)>,
    by_path: HashMap<(World, PathBuf), u64>,
    next: u64,
}

/// Thread-safe inode table. Node ids are never reused; entries of unlinked
/// files are dropped (open handles keep working through their fds).
#[derive(Debug)]
pub(crate) struct Inodes {
    table: Mutex<Table>,
}

impl Inodes {
    pub(crate) fn new() -> Self {
        Inodes {
            table: Mutex::new(Table {
                by_ino: HashMap::new(),
                by_path: HashMap::new(),
                next: ROOT + 1,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Relative path of `ino` in `world`.
    ///
    /// A node of the other world (the mountpoint was switched by
    /// `set_unmounted` since it was looked up) gives `EIO`; an unknown node
    /// (e.g. unlinked) gives `ENOENT`.
    pub(crate) fn path(&self, ino: u64, world: World) -> Result<PathBuf, Errno> {
        if ino == ROOT {
            return Ok(PathBuf::new());
        }
        match self.lock().by_ino.get(&ino) {
            Some((w, p)) if *w == world => Ok(p.clone()),
            Some(_) => Err(Errno::EIO),
            None => Err(Errno::ENOENT),
        }
    }

    /// Relative path of the child `name` of directory `parent`.
    pub(crate) fn child(&self, parent: u64, name: &OsStr, world: World) -> Result<PathBuf, Errno> {
        let name_path = Path::new(name);
        if name.is_empty() || name_path.components().count() != 1 || name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        Ok(self.path(parent, world)?.join(name))
    }

    /// Node id for `rel` in `world`, allocating one if needed.
    pub(crate) fn ino_for(&self, world: World, rel: &Path) -> u64 {
        if rel.as_os_str().is_empty() {
            return ROOT;
        }
        let mut t = self.lock();
        let key = (world, rel.to_path_buf());
        if let Some(&ino) = t.by_path.get(&key) {
            return ino;
        }
        let ino = t.next;
        t.next += 1;
        t.by_ino.insert(ino, key.clone());
        t.by_path.insert(key, ino);
        ino
    }

    /// Forgets `rel` and everything below it.
    pub(crate) fn remove(&self, world: World, rel: &Path) {
        let mut t = self.lock();
        let gone: Vec<(World, PathBuf)> = t
            .by_path
            .keys()
            .filter(|(w, p)| *w == world && p.starts_with(rel))
            .cloned()
            .collect();
        for key in gone {
            if let Some(ino) = t.by_path.remove(&key) {
                t.by_ino.remove(&ino);
            }
        }
    }

    /// Updates the table after a successful rename of `from` to `to`
    /// (`exchange`: `RENAME_EXCHANGE`, both names swapped).
    pub(crate) fn rename(&self, world: World, from: &Path, to: &Path, exchange: bool) {
        let mut t = self.lock();
        let under = |t: &Table, root: &Path| -> Vec<(PathBuf, u64)> {
            t.by_path
                .iter()
                .filter(|((w, p), _)| *w == world && p.starts_with(root))
                .map(|((_, p), ino)| (p.clone(), *ino))
                .collect()
        };
        let src = under(&t, from);
        let dst = under(&t, to);
        for (p, _) in src.iter().chain(dst.iter()) {
            t.by_path.remove(&(world, p.clone()));
        }
        let mut moved: Vec<(PathBuf, u64)> = Vec::new();
        for (p, ino) in src {
            let rest = p.strip_prefix(from).unwrap_or(Path::new(""));
            moved.push((to.join(rest), ino));
        }
        for (p, ino) in dst {
            if exchange {
                let rest = p.strip_prefix(to).unwrap_or(Path::new(""));
                moved.push((from.join(rest), ino));
            } else {
                t.by_ino.remove(&ino);
            }
        }
        for (p, ino) in moved {
            let p = if p.as_os_str().is_empty() {
                p
            } else {
                strip_trailing(p)
            };
            t.by_ino.insert(ino, (world, p.clone()));
            t.by_path.insert((world, p), ino);
        }
    }
}

/// `to.join("")` appends a trailing separator; normalise it away.
fn strip_trailing(p: PathBuf) -> PathBuf {
    p.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_moves_subtree_and_drops_target() {
        let t = Inodes::new();
        let w = World::Backing;
        let d = t.ino_for(w, Path::new("d"));
        let f = t.ino_for(w, Path::new("d/f"));
        let old = t.ino_for(w, Path::new("e"));
        t.rename(w, Path::new("d"), Path::new("e"), false);
        assert_eq!(t.path(d, w).unwrap(), Path::new("e"));
        assert_eq!(t.path(f, w).unwrap(), Path::new("e/f"));
        assert_eq!(t.path(old, w), Err(Errno::ENOENT));
        assert_eq!(t.ino_for(w, Path::new("e/f")), f);
        assert_eq!(t.path(d, World::Scratch), Err(Errno::EIO));
    }

    #[test]
    fn exchange_swaps() {
        let t = Inodes::new();
        let w = World::Backing;
        let a = t.ino_for(w, Path::new("a"));
        let b = t.ino_for(w, Path::new("b"));
        t.rename(w, Path::new("a"), Path::new("b"), true);
        assert_eq!(t.path(a, w).unwrap(), Path::new("b"));
        assert_eq!(t.path(b, w).unwrap(), Path::new("a"));
    }
}
