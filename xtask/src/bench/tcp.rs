//! A TCP sink that accepts and closes, and a client loop that connects and closes: new
//! connections per second through the hub, without a database's per-connection work (a
//! PostgreSQL backend process), so the NAT's own per-connection cost shows. Each connection
//! is opened by the client and reset by the sink: no `TIME_WAIT`, no port exhaustion.

use std::{
    io::{ErrorKind, Read as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    time::{Duration, Instant},
};

/// Accepts connections on `listen` and closes each at once, until killed.
pub fn sink(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)?;
    eprintln!("tcp sink: listening on {listen}");
    for stream in listener.incoming().flatten() {
        reset_on_close(&stream);
    }
    Ok(())
}

/// `SO_LINGER` 0: closing sends a RST and leaves no `TIME_WAIT`, so a connection loop can reuse
/// ports at once on both sides.
fn reset_on_close(stream: &TcpStream) {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, a pointer to a live `linger` and its exact size.
    unsafe {
        nix::libc::setsockopt(
            stream.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<nix::libc::linger>() as nix::libc::socklen_t,
        );
    }
}

/// Connects to `target` and closes, again and again for `seconds`; prints connections/s.
pub fn connect_loop(target: SocketAddr, seconds: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let limit = Duration::from_secs(seconds);
    let mut done = 0u64;
    while started.elapsed() < limit {
        match connect_once(target) {
            Ok(()) => done += 1,
            // Accepted, and reset by the sink before this side looked: a whole connection.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => done += 1,
            Err(e) => return Err(e.into()),
        }
    }
    println!("{:.1}", done as f64 / started.elapsed().as_secs_f64());
    Ok(())
}

/// One connection: connect, then wait for the sink's RST, so one connection runs at a time.
fn connect_once(target: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(target)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.read(&mut [0u8; 1]).map(drop)
}
