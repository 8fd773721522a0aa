//! The sockets: a UDP socket and a TCP listener at 127.0.0.11:53 inside
//! each container, served by tasks of the daemon's runtime, and the
//! forwarding of what the resolver does not know.
//!
//! Local names are answered inline, in microseconds. Forwarded queries run
//! as tasks of their own, at most [`MAX_FORWARDS`] per container, so that a
//! slow upstream or a flood never stalls local answers; beyond that bound
//! the answer is SERVFAIL at once.
//!
//! Nothing here blocks a runtime thread: a socket in a container's
//! namespace is made on a short-lived thread started off the runtime, and
//! every wait on the network (a TCP handshake with an upstream that never
//! answers, an answer) is a wait on the reactor, bounded by
//! [`UPSTREAM_TIMEOUT`]. One container's unreachable `--dns` server thus
//! costs only its own forwards, never the API or another container's
//! resolver.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_core::Netns;
use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::answer::{self, Action};
use super::{ADDRESS, Resolver, Upstreams};
use crate::{Error, Result};

/// Forwarded queries in flight per container.
const MAX_FORWARDS: usize = 128;
/// TCP connections per container.
const MAX_TCP: usize = 32;
/// How long one upstream server gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a TCP client may idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The tasks serving one container; dropping it stops them and closes the
/// sockets.
pub(crate) struct Listener {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The resolver's sockets of one container, bound but not served yet.
pub struct Sockets {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

/// Binds 127.0.0.11:53 (UDP and TCP) in the calling thread's namespace:
/// call it on a thread inside the container's namespace.
pub fn bind() -> io::Result<Sockets> {
    let addr = SocketAddr::from((ADDRESS, 53));
    let udp = std::net::UdpSocket::bind(addr)?;
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    Ok(Sockets { udp, tcp })
}

/// Opens the sockets inside `ns` and starts serving them.
pub(super) fn listen(resolver: Arc<Resolver>, id: String, ns: &Netns) -> Result<Listener> {
    serve(resolver, id, ns.run(bind)?)
}

/// Starts serving sockets made by [`bind`].
pub(super) fn serve(resolver: Arc<Resolver>, id: String, s: Sockets) -> Result<Listener> {
    let ctx = |e: io::Error| Error::io("registering the resolver's sockets", e);
    let udp = Arc::new(UdpSocket::from_std(s.udp).map_err(ctx)?);
    let tcp = TcpListener::from_std(s.tcp).map_err(ctx)?;
    let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
    let tasks = vec![
        tokio::spawn(serve_udp(resolver.clone(), id.clone(), udp, forwards.clone())),
        tokio::spawn(serve_tcp(resolver, id, tcp, forwards)),
    ];
    Ok(Listener { tasks })
}

async fn serve_udp(resolver: Arc<Resolver>, id: String, sock: Arc<UdpSocket>, forwards: Arc<Semaphore>) {
    let mut buf = vec![0u8; 4096];
    let mut reply = Vec::with_capacity(answer::CLASSIC_UDP);
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            // Transient errors (ICMP unreachable replays, ENOMEM): go on.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some(action) = resolver.answer_into(&id, &buf[..n], true, &mut reply) else {
            let _ = sock.send_to(&reply, peer).await;
            continue;
        };
        match action {
            Action::Reply(out) => {
                let _ = sock.send_to(&out, peer).await;
            }
            Action::Drop => {}
            Action::Forward(q) => {
                let raw = buf[..n].to_vec();
                match forwards.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (resolver, id, sock) = (resolver.clone(), id.clone(), sock.clone());
                        tokio::spawn(async move {
                            let limit = answer::udp_limit(&q);
                            let out = forward(&resolver, &id, &q, &raw, false).await;
                            let out = fit(out, &q, limit);
                            let _ = sock.send_to(&out, peer).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let _ = sock
                            .send_to(&answer::encode(&answer::failure(&q), Some(512)), peer)
                            .await;
                    }
                }
            }
        }
    }
}

/// An upstream answer that is too big for the client's UDP limit goes out
/// truncated, so the client asks again over TCP.
fn fit(out: Vec<u8>, q: &Message, limit: usize) -> Vec<u8> {
    if out.len() <= limit {
        return out;
    }
    match Message::from_vec(&out) {
        Ok(m) => m.truncate().to_vec().unwrap_or_default(),
        Err(_) => answer::encode(&answer::failure(q), Some(limit)),
    }
}

async fn serve_tcp(resolver: Arc<Resolver>, id: String, listener: TcpListener, forwards: Arc<Semaphore>) {
    let conns = Arc::new(Semaphore::new(MAX_TCP));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // Over the bound, the connection is closed at once.
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            continue;
        };
        let (resolver, id, forwards) = (resolver.clone(), id.clone(), forwards.clone());
        tokio::spawn(async move {
            let _ = serve_conn(&resolver, &id, stream, &forwards).await;
            drop(permit);
        });
    }
}

async fn serve_conn(resolver: &Resolver, id: &str, mut s: TcpStream, forwards: &Semaphore) -> io::Result<()> {
    loop {
        let Ok(len) = timeout(TCP_IDLE, s.read_u16()).await else {
            return Ok(());
        };
        let len = usize::from(len?);
        let mut q = vec![0u8; len];
        if timeout(TCP_IDLE, s.read_exact(&mut q)).await.is_err() {
            return Ok(());
        }
        let out = match resolver.answer(id, &q, false) {
            Action::Reply(out) => out,
            Action::Drop => return Ok(()),
            Action::Forward(m) => match forwards.try_acquire() {
                Ok(_permit) => forward(resolver, id, &m, &q, true).await,
                Err(_) => answer::encode(&answer::failure(&m), None),
            },
        };
        let Ok(n) = u16::try_from(out.len()) else {
            return Ok(());
        };
        s.write_all(&[&n.to_be_bytes()[..], &out].concat()).await?;
    }
}

/// Asks the container's upstream servers in turn (at most three, each
/// bounded by [`UPSTREAM_TIMEOUT`]) and returns the first answer, or
/// SERVFAIL.
async fn forward(resolver: &Resolver, id: &str, q: &Message, raw: &[u8], tcp: bool) -> Vec<u8> {
    let up = resolver.upstreams(id);
    for server in up.servers.iter().take(3) {
        let asked = if tcp {
            ask_tcp(&up, *server, raw).await
        } else {
            match ask_udp(&up, *server, raw, q.metadata.id).await {
                // Truncated upstream: ask the same server over TCP.
                Ok(resp) if resp.len() > 2 && resp[2] & 0x02 != 0 => ask_tcp(&up, *server, raw).await,
                other => other,
            }
        };
        match asked {
            Ok(resp) => return resp,
            Err(e) => tracing::debug!(server = %server, "upstream did not answer: {e}"),
        }
    }
    answer::encode(&answer::failure(q), None)
}

/// Makes a socket in the upstream's namespace: the host's (ours) or the
/// container's. Entering the container's takes a short-lived thread of its
/// own, which is started and joined off the runtime (`spawn_blocking`), so
/// a worker thread never waits for it. `f` only makes the socket: whatever
/// may wait for the network (a TCP handshake, an answer) happens afterwards,
/// on the runtime's reactor.
async fn in_ns<T: Send + 'static>(
    up: &Upstreams,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match &up.ns {
        None => f(),
        Some(ns) => {
            let ns = ns.clone();
            tokio::task::spawn_blocking(move || ns.run(f).map_err(|e| io::Error::other(e.chain())))
                .await
                .map_err(io::Error::other)?
        }
    }
}

async fn ask_udp(up: &Upstreams, server: SocketAddr, raw: &[u8], id: u16) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()
    } else {
        "[::]:0".parse()
    }
    .map_err(|_| io::Error::other("bind address"))?;
    let std_sock = in_ns(up, move || {
        let s = std::net::UdpSocket::bind(bind)?;
        s.set_nonblocking(true)?;
        s.connect(server)?;
        Ok(s)
    })
    .await?;
    let sock = UdpSocket::from_std(std_sock)?;
    sock.send(raw).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream timed out"))??;
        // A connected socket only hears from `server`; also insist on the
        // query's id and the response bit.
        if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn ask_tcp(up: &Upstreams, server: SocketAddr, raw: &[u8]) -> io::Result<Vec<u8>> {
    let exchange = async {
        // The socket is made in the namespace, unconnected; the handshake
        // runs on the reactor. (A blocking connect here stalled a worker
        // thread for as long as a black-holed server took to time out.)
        let sock = in_ns(up, move || {
            if server.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
        })
        .await?;
        let mut s = sock.connect(server).await?;
        let n = u16::try_from(raw.len()).map_err(|_| io::Error::other("query too long"))?;
        s.write_all(&[&n.to_be_bytes()[..], raw].concat()).await?;
        let len = usize::from(s.read_u16().await?);
        let mut resp = vec![0u8; len];
        s.read_exact(&mut resp).await?;
        Ok(resp)
    };
    timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream timed out"))?
}
