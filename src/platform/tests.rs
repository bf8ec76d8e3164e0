//! The platform calls, on whichever OS the tests run (Linux natively, Windows under Wine in CI).

use super::*;

#[test]
fn a_file_keeps_its_identity_while_it_grows_and_loses_it_when_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    std::fs::write(&p, b"one").unwrap();
    let first = file_identity(&p).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 70_000]))
        .unwrap();
    assert_eq!(file_identity(&p).unwrap(), first, "grown, same file");
    let other = dir.path().join("b.db");
    std::fs::write(&other, b"one").unwrap();
    let other_id = file_identity(&other).unwrap();
    assert_ne!(other_id, first);
    std::fs::rename(&other, &p).unwrap();
    assert_eq!(file_identity(&p).unwrap(), other_id, "replaced by b");
    assert!(file_identity(&dir.path().join("missing")).is_err());
}

#[test]
fn this_process_runs_and_a_finished_child_is_gone() {
    assert_eq!(process_state(std::process::id()), ProcessState::Running);
    // The test binary itself, listing its tests and exiting: a child on every OS.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(process_state(pid), ProcessState::Gone);
}

#[test]
fn the_host_has_a_name_and_an_identity() {
    assert!(!host_name().is_empty());
    assert_ne!(host_name(), "unknown");
    let id = host_identity().unwrap();
    assert!(id.len() >= 16, "{id}");
    assert_eq!(host_identity().unwrap(), id, "stable");
}

#[test]
fn free_space_is_known_for_a_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    assert!(free_bytes(dir.path()).unwrap() > 0);
    assert!(free_bytes(&dir.path().join("missing/deeper")).is_err());
}

#[test]
fn private_dirs_and_files_are_created_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("a").join("cache");
    create_private_dir(&d).unwrap();
    assert!(d.is_dir());
    let f = d.join("x.db");
    let file = create_private_file(&f).unwrap();
    write_at(&file, b"world", 6).unwrap();
    write_at(&file, b"hello ", 0).unwrap();
    drop(file);
    assert_eq!(std::fs::read(&f).unwrap(), b"hello world");
    assert!(create_private_file(&f).is_err(), "create_new");
    make_private(&f).unwrap();
    let lock = open_private_file(&d.join("x.lock")).unwrap();
    drop(lock);
    assert!(open_private_file(&d.join("x.lock")).is_ok(), "reopens");
    sync_dir(&d).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&d.join("x.lock")), 0o600);
    }
}

#[test]
fn a_writable_file_may_be_read_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.db");
    std::fs::write(&f, b"x").unwrap();
    assert!(matches!(may_read_write(&f), Access::Allowed));
    assert!(matches!(
        may_read_write(&dir.path().join("nope")),
        Access::Denied(_)
    ));
}

/// Unix: root passes access(2) whatever the mode bits, so the read-only case is shown on Windows,
/// where the read-only attribute binds everyone.
#[cfg(windows)]
#[test]
fn a_read_only_file_is_denied_on_windows() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.db");
    std::fs::write(&f, b"x").unwrap();
    let mut perm = std::fs::metadata(&f).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&f, perm).unwrap();
    let Access::Denied(e) = may_read_write(&f) else {
        panic!("a read-only file was allowed");
    };
    assert_eq!(classify(&e), IoClass::PermissionDenied, "{e}");
    assert!(matches!(may_create_in(dir.path()), Access::Unknown(_)));
    assert!(!limitations().is_empty(), "the unknown check is listed");
}

#[test]
fn portable_error_kinds_are_classified() {
    use std::io::{Error, ErrorKind};
    assert_eq!(
        classify(&Error::from(ErrorKind::StorageFull)),
        IoClass::DiskFull
    );
    assert_eq!(
        classify(&Error::from(ErrorKind::ReadOnlyFilesystem)),
        IoClass::ReadOnly
    );
    assert_eq!(
        classify(&Error::from(ErrorKind::PermissionDenied)),
        IoClass::PermissionDenied
    );
    assert_eq!(classify(&Error::other("x")), IoClass::Other);
}

#[cfg(unix)]
#[test]
fn unix_error_codes_are_classified() {
    let c = |code| classify(&std::io::Error::from_raw_os_error(code));
    assert_eq!(c(libc::ENOSPC), IoClass::DiskFull);
    assert_eq!(c(libc::EDQUOT), IoClass::DiskFull);
    assert_eq!(c(libc::EROFS), IoClass::ReadOnly);
    assert_eq!(c(libc::EACCES), IoClass::PermissionDenied);
    assert_eq!(c(libc::ENOTCONN), IoClass::NetworkGone);
    assert_eq!(c(libc::ESTALE), IoClass::NetworkGone);
    assert_eq!(c(libc::ENOENT), IoClass::Other);
}

#[cfg(windows)]
#[test]
fn win32_error_codes_are_classified() {
    use windows_sys::Win32::Foundation as F;
    let c = |code: u32| classify(&std::io::Error::from_raw_os_error(code as i32));
    assert_eq!(c(F::ERROR_DISK_FULL), IoClass::DiskFull);
    assert_eq!(c(F::ERROR_HANDLE_DISK_FULL), IoClass::DiskFull);
    assert_eq!(c(F::ERROR_WRITE_PROTECT), IoClass::ReadOnly);
    assert_eq!(c(F::ERROR_ACCESS_DENIED), IoClass::PermissionDenied);
    assert_eq!(c(F::ERROR_SHARING_VIOLATION), IoClass::SharingViolation);
    assert_eq!(c(F::ERROR_LOCK_VIOLATION), IoClass::SharingViolation);
    assert_eq!(c(F::ERROR_NETNAME_DELETED), IoClass::NetworkGone);
    assert_eq!(c(F::ERROR_BAD_NETPATH), IoClass::NetworkGone);
    assert_eq!(c(F::ERROR_UNEXP_NET_ERR), IoClass::NetworkGone);
    assert_eq!(c(F::ERROR_FILE_NOT_FOUND), IoClass::Other);
}

#[test]
fn a_local_temp_dir_is_not_a_network_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(network_filesystem(dir.path()), None);
}

#[cfg(windows)]
#[test]
fn unc_prefixes_are_network_paths_on_windows() {
    assert!(network_filesystem(Path::new(r"\\server\share\app.db")).is_some());
    assert!(network_filesystem(Path::new(r"\\?\UNC\server\share\app.db")).is_some());
}
