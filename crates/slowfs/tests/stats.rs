//! Operation counters.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Fixture;

const SIZE: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;

#[test]
fn stats_count_a_file_copy() {
    let fx = Fixture::fast();
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(fx.b("src"), &data).unwrap();
    let ctl = fx.ctl();
    ctl.reset_stats();
    assert_eq!(ctl.stats(), slowfs::Stats::default());

    let mut src = fs::File::open(fx.m("src")).unwrap();
    let mut dst = fs::File::create(fx.m("dst")).unwrap();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).unwrap();
    }
    drop(src);
    drop(dst);
    assert_eq!(fs::read(fx.b("dst")).unwrap(), data);

    // RELEASE is sent asynchronously after close(): wait for both.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ctl.stats().release < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = ctl.stats();
    eprintln!("copy of {SIZE} bytes in {CHUNK}-byte chunks: {s:?}");
    assert_eq!(s.bytes_read, SIZE as u64);
    assert_eq!(s.bytes_written, SIZE as u64);
    assert_eq!(
        s.write,
        (SIZE / CHUNK) as u64,
        "direct I/O: one WRITE per write(2)"
    );
    // One READ per read(2), plus the final read that returns 0 bytes.
    assert!((4..=5).contains(&s.read), "reads: {}", s.read);
    assert_eq!(s.open, 1);
    assert_eq!(s.create, 1);
    assert_eq!(s.flush, 2);
    assert_eq!(s.release, 2);
    assert_eq!(s.failed, 0);
    assert_eq!(
        s.total,
        s.lookup
            + s.getattr
            + s.setattr
            + s.open
            + s.create
            + s.read
            + s.write
            + s.fsync
            + s.flush
            + s.release
            + s.unlink
            + s.rename
            + s.readdir
            + s.other
    );

    ctl.reset_stats();
    assert_eq!(ctl.stats().total, 0);
}
