//! Plain passthrough behaviour: what is done through the mount happens in
//! the backing directory.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};

use common::{Fixture, errno, names};

#[test]
fn create_write_read_rename_unlink_reflect_in_backing() {
    let fx = Fixture::fast();
    fs::write(fx.m("a.txt"), b"hello world").unwrap();
    assert_eq!(fs::read(fx.b("a.txt")).unwrap(), b"hello world");
    assert_eq!(fs::read(fx.m("a.txt")).unwrap(), b"hello world");

    // Overwrite in place at an offset.
    let f = OpenOptions::new().write(true).open(fx.m("a.txt")).unwrap();
    f.write_all_at(b"WORLD", 6).unwrap();
    drop(f);
    assert_eq!(fs::read(fx.b("a.txt")).unwrap(), b"hello WORLD");

    fs::rename(fx.m("a.txt"), fx.m("b.txt")).unwrap();
    assert!(!fx.b("a.txt").exists());
    assert_eq!(fs::read(fx.b("b.txt")).unwrap(), b"hello WORLD");
    assert_eq!(fs::read(fx.m("b.txt")).unwrap(), b"hello WORLD");
    assert_eq!(errno(fs::metadata(fx.m("a.txt"))), Some(libc::ENOENT));

    fs::remove_file(fx.m("b.txt")).unwrap();
    assert!(!fx.b("b.txt").exists());
    assert_eq!(names(fx.mount.path()), Vec::<String>::new());
}

#[test]
fn files_created_in_backing_are_visible_immediately() {
    let fx = Fixture::fast();
    assert!(!fx.m("later").exists());
    fs::write(fx.b("later"), b"x").unwrap();
    assert_eq!(fs::read(fx.m("later")).unwrap(), b"x");
    fs::write(fx.b("later"), b"changed behind our back").unwrap();
    assert_eq!(fs::read(fx.m("later")).unwrap(), b"changed behind our back");
    fs::remove_file(fx.b("later")).unwrap();
    assert!(!fx.m("later").exists());
}

#[test]
fn rename_over_existing_target_and_noreplace() {
    let fx = Fixture::fast();
    fs::write(fx.m("src"), b"new").unwrap();
    fs::write(fx.m("dst"), b"old").unwrap();
    // Keep the target open: its handle still reads the old content.
    let mut old = fs::File::open(fx.m("dst")).unwrap();
    fs::rename(fx.m("src"), fx.m("dst")).unwrap();
    assert_eq!(fs::read(fx.m("dst")).unwrap(), b"new");
    assert_eq!(fs::read(fx.b("dst")).unwrap(), b"new");
    let mut s = String::new();
    old.read_to_string(&mut s).unwrap();
    assert_eq!(s, "old");

    fs::write(fx.m("other"), b"o").unwrap();
    let from = std::ffi::CString::new(fx.m("other").into_os_string().into_encoded_bytes()).unwrap();
    let to = std::ffi::CString::new(fx.m("dst").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EEXIST)
    );
    assert_eq!(fs::read(fx.b("dst")).unwrap(), b"new");
}

#[test]
fn exclusive_create_and_mode() {
    let fx = Fixture::fast();
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(fx.m("lock"))
        .unwrap();
    drop(f);
    let mode = fs::metadata(fx.b("lock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640 & !current_umask());
    let again = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(fx.m("lock"));
    assert_eq!(errno(again), Some(libc::EEXIST));

    fs::set_permissions(fx.m("lock"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        fs::metadata(fx.b("lock")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

fn current_umask() -> u32 {
    // Read it without changing it (umask(2) is process-wide).
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn truncate_append_and_independent_offsets() {
    let fx = Fixture::fast();
    fs::write(fx.m("f"), b"0123456789").unwrap();

    // O_TRUNC on open.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(fx.m("f"))
        .unwrap();
    f.write_all(b"ab").unwrap();
    drop(f);
    assert_eq!(fs::read(fx.b("f")).unwrap(), b"ab");

    // O_APPEND.
    let mut f = OpenOptions::new().append(true).open(fx.m("f")).unwrap();
    f.write_all(b"cd").unwrap();
    drop(f);
    assert_eq!(fs::read(fx.b("f")).unwrap(), b"abcd");

    // set_len (setattr size) both ways.
    let f = OpenOptions::new().write(true).open(fx.m("f")).unwrap();
    f.set_len(2).unwrap();
    assert_eq!(fs::read(fx.b("f")).unwrap(), b"ab");
    f.set_len(4).unwrap();
    assert_eq!(fs::read(fx.b("f")).unwrap(), b"ab\0\0");

    // Two handles on one file do not share an offset.
    fs::write(fx.m("g"), b"abcdef").unwrap();
    let mut h1 = fs::File::open(fx.m("g")).unwrap();
    let mut h2 = fs::File::open(fx.m("g")).unwrap();
    let mut b = [0u8; 2];
    h1.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ab");
    h2.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ab");
    h1.seek(SeekFrom::Start(4)).unwrap();
    h1.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ef");
    h2.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"cd");
}

#[test]
fn directories_and_listing() {
    let fx = Fixture::fast();
    fs::create_dir(fx.m("d")).unwrap();
    fs::write(fx.m("d/x"), b"1").unwrap();
    fs::write(fx.m("d/y"), b"2").unwrap();
    assert!(fx.b("d").is_dir());
    assert_eq!(names(&fx.m("d")), vec!["x", "y"]);
    fs::rename(fx.m("d"), fx.m("e")).unwrap();
    assert_eq!(fs::read(fx.m("e/y")).unwrap(), b"2");
    assert_eq!(fs::read(fx.b("e/x")).unwrap(), b"1");
    assert_eq!(errno(fs::remove_dir(fx.m("e"))), Some(libc::ENOTEMPTY));
    fs::remove_file(fx.m("e/x")).unwrap();
    fs::remove_file(fx.m("e/y")).unwrap();
    fs::remove_dir(fx.m("e")).unwrap();
    assert!(!fx.b("e").exists());

    // Many entries exercise multi-call readdir.
    for i in 0..300 {
        fs::write(fx.b(&format!("file-with-a-longish-name-{i:04}")), b"").unwrap();
    }
    assert_eq!(names(fx.mount.path()).len(), 300);

    // fsync of a directory (SQLite does this after creating a journal).
    fs::File::open(fx.mount.path()).unwrap().sync_all().unwrap();
}

#[test]
fn page_cache_mode_passthrough() {
    let backing = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let opts = slowfs::Options {
        latency: std::time::Duration::ZERO,
        direct_io: false,
        ..slowfs::Options::default()
    };
    let m = slowfs::SlowFs::mount(backing.path(), mnt.path(), opts).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    fs::write(m.path().join("f"), &data).unwrap();
    assert_eq!(fs::read(backing.path().join("f")).unwrap(), data);
    fs::write(backing.path().join("f"), b"changed").unwrap();
    // Each open drops the page cache: the change is visible.
    assert_eq!(fs::read(m.path().join("f")).unwrap(), b"changed");
    assert!(m.control().stats().read >= 1);
}
