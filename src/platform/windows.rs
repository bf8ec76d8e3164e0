//! Windows: Win32 calls through `windows-sys`. Written for Windows' documented behaviour; the
//! test suite runs it under Wine, which differs in places (see the README's Windows section).

use std::ffi::OsStr;
use std::fs::File;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::os::windows::io::AsRawHandle;
use std::path::{Component, Path, Prefix};
use std::ptr::null_mut;

use windows_sys::Win32::Foundation as F;
use windows_sys::Win32::NetworkManagement::WNet::WNetGetConnectionW;
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GetTokenInformation, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, SetFileSecurityW, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, GetDiskFreeSpaceExW, GetDriveTypeW, GetFileInformationByHandle,
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, UnlockFileEx,
};
use windows_sys::Win32::System::IO::OVERLAPPED;
use windows_sys::Win32::System::Registry::{
    HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ, RRF_SUBKEY_WOW6464KEY, RegGetValueW,
};
use windows_sys::Win32::System::SystemInformation::{ComputerNameDnsHostname, GetComputerNameExW};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetExitCodeProcess, OpenProcess, OpenProcessToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};
use windows_sys::Win32::System::WindowsProgramming::DRIVE_REMOTE;

use super::{Access, FileIdentity, IoClass, ProcessState};

pub const LIMITATIONS: &[&str] = &[
    "whether this user may create files beside the remote database (SQLite's journal) is not checked ahead on Windows (no side-effect-free check of a directory's ACL); a denial shows when SQLite creates its journal",
];

/// A NUL-terminated UTF-16 string.
fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(Some(0)).collect()
}

fn from_wide(buf: &[u16]) -> String {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    std::ffi::OsString::from_wide(&buf[..end])
        .to_string_lossy()
        .into_owned()
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

pub fn host_name() -> Option<String> {
    let mut buf = [0u16; 256];
    let mut n = buf.len() as u32;
    // SAFETY: buf holds n wide characters.
    let ok = unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut n) };
    (ok != 0).then(|| from_wide(&buf[..n as usize]))
}

pub fn host_identity() -> std::io::Result<String> {
    let key = wide(OsStr::new(r"SOFTWARE\Microsoft\Cryptography"));
    let value = wide(OsStr::new("MachineGuid"));
    let mut buf = [0u16; 128];
    let mut bytes = (buf.len() * 2) as u32;
    // SAFETY: NUL-terminated names; buf holds `bytes` bytes. The 64-bit view: a 32-bit process
    // would otherwise read a redirected (different) key.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ | RRF_SUBKEY_WOW6464KEY,
            null_mut(),
            buf.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    if rc != F::ERROR_SUCCESS {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    let id = from_wide(&buf);
    if id.is_empty() {
        return Err(std::io::Error::other(
            r"HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid is empty",
        ));
    }
    Ok(id)
}

pub fn process_state(pid: u32) -> ProcessState {
    // SAFETY: plain calls; the handle is closed below.
    unsafe {
        let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if h.is_null() {
            return match F::GetLastError() {
                F::ERROR_INVALID_PARAMETER => ProcessState::Gone,
                _ => ProcessState::Unknown,
            };
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(h, &mut code);
        F::CloseHandle(h);
        if ok == 0 {
            ProcessState::Unknown
        } else if code == F::STILL_ACTIVE as u32 {
            ProcessState::Running
        } else {
            ProcessState::Gone
        }
    }
}

pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let d = wide(dir.as_os_str());
    let mut avail = 0u64;
    // SAFETY: NUL-terminated path, valid out-pointer; the other outputs are optional.
    if unsafe { GetDiskFreeSpaceExW(d.as_ptr(), &mut avail, null_mut(), null_mut()) } == 0 {
        return Err(last_error());
    }
    Ok(avail)
}

pub fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
    // std opens with FILE_SHARE_READ | WRITE | DELETE: no conflict with SQLite's own handles.
    let f = File::open(path)?;
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a valid handle and out-pointer.
    if unsafe { GetFileInformationByHandle(f.as_raw_handle(), &mut info) } == 0 {
        return Err(last_error());
    }
    Ok(FileIdentity {
        volume: u64::from(info.dwVolumeSerialNumber),
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    })
}

/// The current user's SID in string form (`S-1-5-21-…`).
fn user_sid() -> std::io::Result<String> {
    // SAFETY: standard token query; every handle and buffer is released below.
    unsafe {
        let mut token = null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
            return Err(last_error());
        }
        let mut buf = vec![0u64; 64]; // 512 bytes, aligned for TOKEN_USER
        let mut len = 0u32;
        let ok = GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        );
        let err = last_error();
        F::CloseHandle(token);
        if ok == 0 {
            return Err(err);
        }
        let user = &*(buf.as_ptr() as *const TOKEN_USER);
        let mut s = null_mut();
        if ConvertSidToStringSidW(user.User.Sid, &mut s) == 0 {
            return Err(last_error());
        }
        let n = (0..).take_while(|&i| *s.add(i) != 0).count();
        let sid = String::from_utf16_lossy(std::slice::from_raw_parts(s, n));
        F::LocalFree(s.cast());
        Ok(sid)
    }
}

/// Replaces the DACL of `path` by a protected one (no inherited entries) granting full access
/// to this user and to SYSTEM only, inherited by files and directories created inside.
fn set_private_dacl(path: &Path) -> std::io::Result<()> {
    let sddl = format!("D:P(A;OICI;FA;;;{})(A;OICI;FA;;;SY)", user_sid()?);
    let sddl = wide(OsStr::new(&sddl));
    let p = wide(path.as_os_str());
    // SAFETY: NUL-terminated strings; the descriptor is freed with LocalFree as documented.
    unsafe {
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            null_mut(),
        ) == 0
        {
            return Err(last_error());
        }
        let ok = SetFileSecurityW(
            p.as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            sd,
        );
        let err = last_error();
        F::LocalFree(sd);
        if ok == 0 {
            return Err(err);
        }
    }
    Ok(())
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_private_dacl(dir)
}

pub fn make_private(path: &Path) -> std::io::Result<()> {
    set_private_dacl(path)
}

pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    set_private_dacl(path)?;
    Ok(f)
}

pub fn open_private_file(path: &Path) -> std::io::Result<File> {
    let existed = path.exists();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if !existed {
        set_private_dacl(path)?;
    }
    Ok(f)
}

/// The locked byte: far beyond any content (Windows allows locking past the end of a file).
const LOCK_OFFSET: u64 = 1 << 62;

fn lock_overlapped() -> OVERLAPPED {
    // SAFETY: OVERLAPPED is plain data; zero is its documented initial state.
    let mut o: OVERLAPPED = unsafe { std::mem::zeroed() };
    o.Anonymous.Anonymous.Offset = LOCK_OFFSET as u32;
    o.Anonymous.Anonymous.OffsetHigh = (LOCK_OFFSET >> 32) as u32;
    o
}

pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    let mut o = lock_overlapped();
    let flags = LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY;
    // SAFETY: a valid synchronous handle and OVERLAPPED naming the byte to lock.
    if unsafe { LockFileEx(file.as_raw_handle(), flags, 0, 1, 0, &mut o) } != 0 {
        return Ok(true);
    }
    let e = last_error();
    if e.raw_os_error() == Some(F::ERROR_LOCK_VIOLATION as i32) {
        Ok(false)
    } else {
        Err(e)
    }
}

pub fn unlock(file: &File) -> std::io::Result<()> {
    let mut o = lock_overlapped();
    // SAFETY: as in try_lock_exclusive.
    if unsafe { UnlockFileEx(file.as_raw_handle(), 0, 1, 0, &mut o) } != 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

pub fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Windows cannot flush a directory; NTFS journals the rename (see the module docs).
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

pub fn may_read_write(path: &Path) -> Access {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().readonly() => {
            return Access::Denied(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the file has the read-only attribute",
            ));
        }
        Ok(_) => {}
        Err(e) => return Access::Denied(e),
    }
    // Windows' byte-range locks belong to the handle that took them: opening and closing a
    // second handle leaves SQLite's locks alone (unlike POSIX locks), so the open is the check.
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Access::Allowed,
        Err(e) => Access::Denied(e),
    }
}

pub fn may_create_in(_dir: &Path) -> Access {
    Access::Unknown(LIMITATIONS[0])
}

pub fn classify_code(code: i32) -> IoClass {
    match code as u32 {
        F::ERROR_DISK_FULL | F::ERROR_HANDLE_DISK_FULL | F::ERROR_DISK_QUOTA_EXCEEDED => {
            IoClass::DiskFull
        }
        F::ERROR_WRITE_PROTECT => IoClass::ReadOnly,
        F::ERROR_ACCESS_DENIED | F::ERROR_NETWORK_ACCESS_DENIED => IoClass::PermissionDenied,
        F::ERROR_SHARING_VIOLATION | F::ERROR_LOCK_VIOLATION => IoClass::SharingViolation,
        F::ERROR_NETNAME_DELETED
        | F::ERROR_BAD_NETPATH
        | F::ERROR_BAD_NET_NAME
        | F::ERROR_UNEXP_NET_ERR
        | F::ERROR_NETWORK_BUSY
        | F::ERROR_DEV_NOT_EXIST
        | F::ERROR_REM_NOT_LIST
        | F::ERROR_NETWORK_UNREACHABLE
        | F::ERROR_HOST_UNREACHABLE
        | F::ERROR_CONNECTION_ABORTED
        | F::ERROR_NOT_CONNECTED
        | F::ERROR_NO_NET_OR_BAD_PATH
        | F::ERROR_SEM_TIMEOUT => IoClass::NetworkGone,
        _ => IoClass::Other,
    }
}

pub fn network_filesystem(path: &Path) -> Option<String> {
    let letter = match path.components().next()? {
        Component::Prefix(p) => match p.kind() {
            Prefix::Disk(l) | Prefix::VerbatimDisk(l) => l,
            Prefix::UNC(..) | Prefix::VerbatimUNC(..) => return Some("UNC path".into()),
            _ => return None,
        },
        _ => return None,
    };
    let drive = format!("{}:", letter as char);
    let root = wide(OsStr::new(&format!("{drive}\\")));
    // SAFETY: NUL-terminated root path.
    if unsafe { GetDriveTypeW(root.as_ptr()) } != DRIVE_REMOTE {
        return None;
    }
    let name = wide(OsStr::new(&drive));
    let mut buf = [0u16; 1024];
    let mut n = buf.len() as u32;
    // SAFETY: NUL-terminated drive name; buf holds n wide characters.
    let rc = unsafe { WNetGetConnectionW(name.as_ptr(), buf.as_mut_ptr(), &mut n) };
    Some(if rc == F::NO_ERROR {
        format!("mapped drive {drive} = {}", from_wide(&buf))
    } else {
        format!("network drive {drive}")
    })
}

/// Windows has no SIGPIPE (see the module docs of `platform`).
pub fn default_sigpipe() {}
