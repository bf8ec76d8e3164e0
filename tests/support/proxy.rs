//! A TCP proxy between a client and a server (the PostgreSQL cluster), the network counterpart of
//! `slowfs`: a latency per direction, a rate (a slow link), and switches to cut every connection
//! and refuse new ones (offline) or to hold every byte in flight (a hung link: the peer neither
//! answers nor closes).
//!
//! Threads only: an acceptor, and per connection one reader and one delayed writer per direction.
//! Latency is a delivery deadline per chunk, so it delays without capping throughput.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running proxy; stops (and cuts its connections) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

struct Shared {
    /// Where new connections go (a failover test moves it to a promoted standby).
    upstream: Mutex<SocketAddr>,
    /// Microseconds added client → server and server → client.
    up_us: AtomicU64,
    down_us: AtomicU64,
    offline: AtomicBool,
    hung: AtomicBool,
    stopping: AtomicBool,
    /// Round trips: the times a client sent something after hearing from the server (or first).
    round_trips: AtomicU64,
    /// Bytes delivered to clients (server → client).
    bytes_down: AtomicU64,
    /// Bytes per second each direction of a connection carries at most (0: no limit).
    rate: AtomicU64,
    /// Both sockets of every live connection, to cut them.
    conns: Mutex<Vec<(TcpStream, TcpStream)>>,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            up_us: AtomicU64::new(0),
            down_us: AtomicU64::new(0),
            offline: AtomicBool::new(false),
            hung: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            round_trips: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, s))
            .unwrap();
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new connections to `upstream` (as a failover moves a service address to another
    /// server); live connections are cut.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = upstream;
        self.drop_all();
    }

    /// Latency added to each direction (a round trip pays both).
    pub fn set_latency(&self, up: Duration, down: Duration) {
        self.shared
            .up_us
            .store(up.as_micros() as u64, Ordering::SeqCst);
        self.shared
            .down_us
            .store(down.as_micros() as u64, Ordering::SeqCst);
    }

    /// A slow link: each direction of a connection carries at most `bytes_per_sec` (`None`: as
    /// fast as loopback).
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .rate
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    /// Offline: cut every connection now and close each new one as soon as it is accepted.
    pub fn set_offline(&self, offline: bool) {
        self.shared.offline.store(offline, Ordering::SeqCst);
        if offline {
            self.drop_all();
        }
    }

    /// Cut every live connection (both ends see the socket shut down); new ones still work.
    pub fn drop_all(&self) {
        for (a, b) in self.shared.conns.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Hung: connections (live and new) stay open but no byte is forwarded until `false`.
    pub fn set_hung(&self, hung: bool) {
        self.shared.hung.store(hung, Ordering::SeqCst);
    }

    /// Round trips so far, over all connections: each time a client sent bytes after the server
    /// last spoke on that connection (however many chunks the request took).
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::SeqCst)
    }

    /// Bytes delivered to clients so far, over all connections.
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    /// Live connections through the proxy.
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.drop_all();
        let _ = TcpStream::connect(self.addr); // wakes the acceptor
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.offline.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(*shared.upstream.lock().unwrap()) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        shared.conns.lock().unwrap().push((c2, s2));
        // Whether the server spoke last on this connection (a client's next bytes start a
        // round trip).
        let turn = Arc::new(AtomicBool::new(true));
        pipe(&client, &server, shared.clone(), true, turn.clone());
        pipe(&server, &client, shared.clone(), false, turn);
    }
}

enum Chunk {
    Data(Instant, Vec<u8>),
    Eof,
}

/// Forward `from` → `to`: a reader stamps each chunk with its delivery time, a writer delivers it
/// then (and holds it while the proxy is hung), at most at the link's rate.
fn pipe(from: &TcpStream, to: &TcpStream, shared: Arc<Shared>, up: bool, turn: Arc<AtomicBool>) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    let (tx, rx) = mpsc::channel::<Chunk>();
    let s = shared.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Chunk::Eof);
                    return;
                }
                Ok(n) => {
                    if !up {
                        turn.store(true, Ordering::SeqCst);
                    } else if turn.swap(false, Ordering::SeqCst) {
                        s.round_trips.fetch_add(1, Ordering::SeqCst);
                    }
                    let us = if up { &s.up_us } else { &s.down_us }.load(Ordering::SeqCst);
                    let due = Instant::now() + Duration::from_micros(us);
                    if tx.send(Chunk::Data(due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        while let Ok(chunk) = rx.recv() {
            match chunk {
                Chunk::Eof => break,
                Chunk::Data(due, bytes) => {
                    while shared.hung.load(Ordering::SeqCst)
                        && !shared.stopping.load(Ordering::SeqCst)
                    {
                        thread::sleep(Duration::from_millis(5));
                    }
                    let wait = due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        thread::sleep(wait);
                    }
                    if deliver(&mut to, &bytes, &shared, up).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Writes `bytes` to `to`, in pieces paced at the link's rate when it has one, counting what
/// goes to a client (each piece as it is written).
fn deliver(to: &mut TcpStream, bytes: &[u8], shared: &Shared, up: bool) -> std::io::Result<()> {
    const PIECE: usize = 4096;
    let rate = shared.rate.load(Ordering::SeqCst);
    let piece = if rate == 0 { bytes.len().max(1) } else { PIECE };
    for piece in bytes.chunks(piece) {
        if let Some(us) = (piece.len() as u64 * 1_000_000).checked_div(rate) {
            thread::sleep(Duration::from_micros(us));
        }
        if !up {
            shared
                .bytes_down
                .fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        to.write_all(piece)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback: every byte it reads it writes back.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn proxy_forwards_bytes_both_ways() {
        let p = Proxy::start(echo_server());
        let mut s = TcpStream::connect(p.addr()).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let mut w = s.try_clone().unwrap();
            let big = big.clone();
            thread::spawn(move || w.write_all(&big).unwrap())
        };
        let mut got = vec![0u8; big.len()];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == big, "echo through the proxy changed the bytes");
    }

    #[test]
    fn proxy_latency_delays_each_direction() {
        let p = Proxy::start(echo_server());
        let mut s = TcpStream::connect(p.addr()).unwrap();
        round_trip(&mut s, b"warm").unwrap();
        p.set_latency(Duration::from_millis(60), Duration::from_millis(40));
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping").unwrap(), b"ping");
        let rtt = t.elapsed();
        assert!(
            rtt >= Duration::from_millis(100),
            "round trip {rtt:?} < 60 + 40 ms"
        );
        assert!(
            rtt < Duration::from_millis(1000),
            "round trip {rtt:?}: latency is not per chunk"
        );
    }

    #[test]
    fn proxy_rate_paces_a_large_transfer_and_counts_what_reaches_the_client() {
        let p = Proxy::start(echo_server());
        let mut s = TcpStream::connect(p.addr()).unwrap();
        round_trip(&mut s, b"warm").unwrap();
        p.set_rate(Some(1_000_000));
        let big = vec![7u8; 200_000];
        let t = Instant::now();
        let writer = {
            let mut w = s.try_clone().unwrap();
            let big = big.clone();
            thread::spawn(move || w.write_all(&big).unwrap())
        };
        let mut got = vec![0u8; big.len()];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        let took = t.elapsed();
        // 200 kB at 1 MB/s each way: paced in both directions, so at least the 0.2 s of one.
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(p.bytes_down(), 4 + 200_000);
    }

    #[test]
    fn proxy_offline_cuts_live_connections_and_refuses_new_ones_until_online() {
        let p = Proxy::start(echo_server());
        let mut live = TcpStream::connect(p.addr()).unwrap();
        round_trip(&mut live, b"a").unwrap();
        p.set_offline(true);
        live.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(
            round_trip(&mut live, b"b").is_err(),
            "a live connection survived going offline"
        );
        let mut fresh = TcpStream::connect(p.addr()).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert!(
            round_trip(&mut fresh, b"c").is_err(),
            "a new connection worked while offline"
        );
        p.set_offline(false);
        let mut again = TcpStream::connect(p.addr()).unwrap();
        assert_eq!(round_trip(&mut again, b"d").unwrap(), b"d");
    }

    #[test]
    fn proxy_hung_holds_bytes_without_closing_then_delivers_them() {
        let p = Proxy::start(echo_server());
        let mut s = TcpStream::connect(p.addr()).unwrap();
        round_trip(&mut s, b"x").unwrap();
        p.set_hung(true);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let err = round_trip(&mut s, b"y").unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "a hung link must time out, not close: {err}"
        );
        assert_eq!(p.connections(), 1);
        p.set_hung(false);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = [0u8; 1];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"y");
    }
}
