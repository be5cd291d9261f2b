//! A TCP echo server inside a namespace, for NAT tests that need many connections or a
//! long-lived one. It runs on its own thread and tokio runtime, and stops on drop.

use std::{
    net::{SocketAddr, TcpStream},
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use tokio::{io::AsyncReadExt as _, io::AsyncWriteExt as _, sync::Notify};

use crate::Netns;

/// The echo server; shut down (listener and connections) on drop.
pub struct EchoServer {
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr) -> anyhow::Result<Self> {
        // Bound here, inside the namespace: the socket stays there when the thread leaves.
        let listener = {
            let _inside = ns.enter()?;
            std::net::TcpListener::bind(addr)?
        };
        listener.set_nonblocking(true)?;
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                loop {
                    tokio::select! {
                        () = stopped.notified() => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(echo(stream));
                        }
                    }
                }
            });
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

async fn echo(mut stream: tokio::net::TcpStream) {
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects to `addr` from inside `ns`, with a timeout on connect, reads and writes.
pub fn connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> anyhow::Result<TcpStream> {
    let _inside = ns.enter()?;
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Sends `message` and reads the same number of bytes back; true if they match.
pub fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<bool> {
    use std::io::{Read as _, Write as _};
    stream.write_all(message)?;
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back)?;
    Ok(back == message)
}
