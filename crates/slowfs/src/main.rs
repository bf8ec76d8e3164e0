//! `slowfs BACKING MOUNTPOINT [--latency-ms N] [--threads N] [--no-direct-io]`
//!
//! Mounts a slow passthrough view of BACKING at MOUNTPOINT until Ctrl-C or
//! SIGTERM, then unmounts. Set `SLOWFS_TRACE=1` to log every request.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: slowfs BACKING MOUNTPOINT [--latency-ms N] [--threads N] [--no-direct-io]";

fn parse() -> Result<(PathBuf, PathBuf, slowfs::Options), String> {
    let mut opts = slowfs::Options::default();
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        };
        match a.as_str() {
            "--latency-ms" => opts.latency = Duration::from_millis(value("--latency-ms")?),
            "--threads" => opts.threads = value("--threads")? as usize,
            "--no-direct-io" => opts.direct_io = false,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([backing, mnt]) => Ok((backing, mnt, opts)),
        Err(_) => Err("expected BACKING and MOUNTPOINT".into()),
    }
}

/// Blocks SIGINT/SIGTERM in this thread (and the threads it spawns later),
/// returning the set to wait on with `sigwait`.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask manipulation on a zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn main() -> ExitCode {
    let (backing, mnt, opts) = match parse() {
        Ok(x) => x,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("slowfs: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let set = block_signals();
    let latency = opts.latency;
    let mount = match slowfs::SlowFs::mount(&backing, &mnt, opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "slowfs: mount {} at {}: {e}",
                backing.display(),
                mnt.display()
            );
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "slowfs: {} mounted at {} (latency {latency:?}); Ctrl-C to unmount",
        backing.display(),
        mount.path().display()
    );
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid signal set; `sig` a valid out-pointer.
    unsafe { libc::sigwait(&set, &mut sig) };
    let stats = mount.control().stats();
    match mount.unmount() {
        Ok(()) => {
            eprintln!("slowfs: unmounted; {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("slowfs: unmount: {e}");
            ExitCode::FAILURE
        }
    }
}
