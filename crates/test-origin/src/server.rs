//! `origin::server`: the running test origin — loopback listeners, connections, and the logs.
//!
//! Owns `Origin` and `HostSpec`: binding each host, accepting, reading requests, writing replies
//! at the pace the script asks, and recording each request. It runs on its own tokio runtime in a
//! background thread, so plain `#[test]`s, `#[tokio::test]`s and the demo use it the same way
//! and none of them can starve it. Dropping an `Origin` (or `stop()`) drops that runtime, which
//! closes every socket, stalled ones included.
//!
//! Connections are kept alive (HTTP/1.1 default) until the client closes them, asks for
//! `Connection: close`, or stays idle for [`KEEP_ALIVE_IDLE`]. Pipelined requests are answered
//! in order.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

use super::behaviour::{Behaviour, RobotsFile};
use super::http::{self, ReadError};
use super::log::{RequestLog, RequestRecord};
use super::respond::{Pacing, Reply, Script};

/// Idle time after which a kept-alive connection is closed. Longer than reqwest's 90 s pool
/// idle timeout, so the client always closes first and never reuses a connection we just shut.
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(120);
/// Worker threads of the origin's runtime: serving is I/O-bound and encoding runs on the
/// blocking pool, and the test machines have two cores.
const WORKER_THREADS: usize = 2;
/// How long `stop()` waits for image encodes still running on the blocking pool.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Largest single body write: keeps per-connection memory small for `Huge` bodies.
const WRITE_CHUNK: usize = 64 * 1024;
/// Writes per second when trickling; ten gives smooth pacing without busy timers.
const TRICKLE_TICKS_PER_SEC: u64 = 10;

/// One host to start: where it listens and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    /// A loopback address (`127.x.y.z`); port 0 picks a free port.
    pub addr: SocketAddr,
    pub behaviour: Behaviour,
    /// What `/robots.txt` answers; `None`: 404. Either way apart from the behaviour, which
    /// neither counts nor delays it.
    pub robots: Option<RobotsFile>,
}

impl HostSpec {
    pub fn new(addr: SocketAddr, behaviour: Behaviour) -> HostSpec {
        HostSpec { addr, behaviour, robots: None }
    }

    /// The same host, answering `/robots.txt` as `robots` says (whatever its behaviour).
    pub fn with_robots(self, robots: RobotsFile) -> HostSpec {
        HostSpec { robots: Some(robots), ..self }
    }

    /// `127.0.0.<last_octet>` on a free port. Linux routes all of 127/8 to loopback, so distinct
    /// octets give distinct hosts with no setup; elsewhere use `1` and tell hosts apart by port.
    pub fn loopback(last_octet: u8, behaviour: Behaviour) -> HostSpec {
        HostSpec::new(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, last_octet), 0).into(), behaviour)
    }
}

/// What the origin keeps per host, shared with that host's tasks.
struct Host {
    addr: SocketAddr,
    base_url: String,
    /// Records in arrival order; a std mutex because it is held for a push or a field update,
    /// never across an await.
    log: Arc<Mutex<Vec<RequestRecord>>>,
    /// Its script (`None` for a `Dead` host, which never answers).
    script: Option<Arc<Script>>,
}

/// A running test origin. See the module docs for its lifetime.
pub struct Origin {
    hosts: Vec<Host>,
    started: Instant,
    stop_tx: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Sockets bound but never listening, holding the addresses of `Dead` hosts until `stop`.
    dead: Vec<TcpSocket>,
}

impl Origin {
    /// Binds every host and starts serving; returns once all are accepting connections.
    /// Errors if an address is not loopback or cannot be bound.
    pub fn start(hosts: Vec<HostSpec>) -> std::io::Result<Origin> {
        let started = Instant::now();
        let (mut listeners, mut dead, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for spec in hosts {
            if !spec.addr.ip().is_loopback() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("test origin host {} is not a loopback address; use 127.x.y.z", spec.addr),
                ));
            }
            let bind_err = |e: std::io::Error| {
                std::io::Error::new(e.kind(), format!("cannot bind test origin host {}: {e}", spec.addr))
            };
            let addr = if spec.behaviour == Behaviour::Dead {
                let socket = if spec.addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
                socket.bind(spec.addr).map_err(bind_err)?;
                let addr = socket.local_addr()?;
                dead.push(socket);
                addr
            } else {
                let listener = std::net::TcpListener::bind(spec.addr).map_err(bind_err)?;
                listener.set_nonblocking(true)?;
                let addr = listener.local_addr()?;
                let script = Arc::new(Script::new(spec.behaviour, out.len()).with_robots(spec.robots));
                listeners.push((listener, script, out.len()));
                addr
            };
            let script = listeners.last().filter(|l| l.2 == out.len()).map(|l| l.1.clone());
            out.push(Host { addr, base_url: format!("http://{addr}"), log: Arc::default(), script });
        }
        let contexts: Vec<_> = listeners
            .into_iter()
            .map(|(listener, script, i)| {
                let ctx = HostCtx { script, base_url: out[i].base_url.clone(), log: out[i].log.clone(), started };
                (listener, Arc::new(ctx))
            })
            .collect();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread =
            std::thread::Builder::new().name("test-origin".into()).spawn(move || run(contexts, stop_rx, ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("test origin thread died while starting")),
        }
        Ok(Origin { hosts: out, started, stop_tx: Some(stop_tx), thread: Some(thread), dead })
    }

    /// The address host `i` (in `start` order) listens on.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.hosts[i].addr
    }

    /// `http://127.x.y.z:port` of host `i`, without a trailing slash.
    pub fn base_url(&self, i: usize) -> &str {
        &self.hosts[i].base_url
    }

    /// `base_url(i)` followed by `path` (which starts with `/`).
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.hosts[i].base_url)
    }

    /// Changes the image host `i` serves at `path` (its query ignored): from now on it is
    /// another image of the same format and size (`images::changed_bytes`), with another `ETag`
    /// and `Last-Modified: IMAGE_CHANGED_LAST_MODIFIED`, as when a publisher replaces a file.
    /// Conditional requests are answered against the new image. A `Dead` host has nothing to
    /// change.
    pub fn change_image(&self, i: usize, path: &str) {
        if let Some(script) = &self.hosts[i].script {
            script.change_image(path);
        }
    }

    /// How many hosts were started (dead ones included).
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The instant every `RequestRecord` time is measured from.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// A snapshot of what host `i` has seen so far. Still readable after `stop()`.
    pub fn log(&self, i: usize) -> RequestLog {
        RequestLog::new(self.hosts[i].log.lock().expect("origin log lock").clone())
    }

    /// Stops serving: closes listeners and every connection (stalled ones included), releases
    /// the addresses of `Dead` hosts (a test may then serve there: a host coming back), and
    /// waits for the runtime thread. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        self.dead.clear();
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one host's tasks share.
struct HostCtx {
    script: Arc<Script>,
    base_url: String,
    log: Arc<Mutex<Vec<RequestRecord>>>,
    started: Instant,
}

impl HostCtx {
    fn push(&self, record: RequestRecord) -> usize {
        let mut log = self.log.lock().expect("origin log lock");
        log.push(record);
        log.len() - 1
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut RequestRecord)) {
        f(&mut self.log.lock().expect("origin log lock")[i]);
    }
}

/// The origin thread: builds the runtime, serves until told to stop, then drops everything.
fn run(
    hosts: Vec<(std::net::TcpListener, Arc<HostCtx>)>,
    stop: oneshot::Receiver<()>,
    ready: mpsc::Sender<std::io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("test-origin-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        for (listener, ctx) in hosts {
            match TcpListener::from_std(listener) {
                Ok(listener) => drop(tokio::spawn(accept_loop(listener, ctx))),
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        // Also returns if the `Origin` was leaked without `stop()` dropping the sender.
        let _ = stop.await;
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
}

async fn accept_loop(listener: TcpListener, host: Arc<HostCtx>) {
    let mut connection = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                connection += 1;
                tokio::spawn(serve_connection(stream, host.clone(), connection));
            }
            Err(_) => tokio::time::sleep(ACCEPT_ERROR_PAUSE).await,
        }
    }
}

/// Answers requests on one connection until it closes or a reply asks to close it.
async fn serve_connection(mut stream: TcpStream, host: Arc<HostCtx>, connection: u64) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let head = match tokio::time::timeout(KEEP_ALIVE_IDLE, http::read_head(&mut stream, &mut buf)).await {
            Ok(Ok(head)) => head,
            Ok(Err(ReadError::TooLarge)) => return refuse(&mut stream, &host, connection, 431, None).await,
            Ok(Err(ReadError::Malformed(_))) => return refuse(&mut stream, &host, connection, 400, None).await,
            Ok(Err(ReadError::Closed | ReadError::Io(_))) | Err(_) => return,
        };
        let arrived = host.started.elapsed();
        let i = host.push(RequestRecord {
            method: head.method.clone(),
            path: head.target.clone(),
            arrived,
            completed: None,
            status: 0,
            user_agent: head.header("user-agent").map(str::to_owned),
            if_none_match: head.header("if-none-match").map(str::to_owned),
            if_modified_since: head.header("if-modified-since").map(str::to_owned),
            bytes_sent: 0,
            content_length: 0,
            connection,
        });
        if let Some(status) = http::discard_body(&mut stream, &mut buf, &head).await {
            return refuse(&mut stream, &host, connection, status, Some(i)).await;
        }
        let keep_alive = head.keep_alive();
        let head_only = head.method == "HEAD";
        let (script, base_url) = (host.script.clone(), host.base_url.clone());
        let now = Instant::now();
        let Ok(reply) = tokio::task::spawn_blocking(move || script.reply(&head, now, &base_url)).await else {
            return;
        };
        host.update(i, |r| {
            r.status = reply.status;
            r.content_length = reply.body.len();
        });
        if write_reply(&mut stream, &reply, head_only, keep_alive, &host, i).await.is_err() {
            // The client hung up mid-response: the server is done with it now.
            host.update(i, |r| {
                r.completed.get_or_insert(host.started.elapsed());
            });
            return;
        }
        if !keep_alive {
            return;
        }
    }
}

/// Sends an error status for a request that could not be read or whose body was refused,
/// logs it (updating record `logged` if the head was parsed), and closes.
async fn refuse(stream: &mut TcpStream, host: &HostCtx, connection: u64, status: u16, logged: Option<usize>) {
    let body = format!("{}\n", http::reason(status));
    let mut bytes = http::response_head(status, &[("Content-Type", "text/plain".to_owned())], body.len() as u64, false);
    bytes.extend_from_slice(body.as_bytes());
    let now = host.started.elapsed();
    let i = logged.unwrap_or_else(|| {
        host.push(RequestRecord {
            method: String::new(),
            path: String::new(),
            arrived: now,
            completed: None,
            status,
            user_agent: None,
            if_none_match: None,
            if_modified_since: None,
            bytes_sent: 0,
            content_length: 0,
            connection,
        })
    });
    host.update(i, |r| {
        r.status = status;
        r.completed = Some(now);
        r.bytes_sent = body.len() as u64;
        r.content_length = body.len() as u64;
    });
    // Logged before writing, like `write_reply`, so the client never sees an incomplete record.
    if stream.write_all(&bytes).await.is_err() {
        host.update(i, |r| r.bytes_sent = 0);
    }
}

/// Writes the head after the scripted delay, then the body at the scripted pace.
///
/// The record is marked complete just before the last write, so a client that holds the whole
/// response always finds it complete in the log; if that write fails, `bytes_sent` is corrected.
async fn write_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    head_only: bool,
    keep_alive: bool,
    host: &HostCtx,
    i: usize,
) -> std::io::Result<()> {
    if !reply.head_delay.is_zero() {
        tokio::time::sleep(reply.head_delay).await;
    }
    let len = reply.body.len();
    let (limit, chunk, tick) = match reply.pacing {
        Pacing::Full => (len, WRITE_CHUNK as u64, None),
        Pacing::StallAfter { bytes } => (bytes, WRITE_CHUNK as u64, None),
        Pacing::Trickle { bytes_per_sec } => {
            let chunk = (bytes_per_sec / TRICKLE_TICKS_PER_SEC).max(1);
            (len, chunk, Some(Duration::from_secs_f64(chunk as f64 / bytes_per_sec as f64)))
        }
    };
    let limit = if head_only { 0 } else { limit };
    let stalls = matches!(reply.pacing, Pacing::StallAfter { .. }) && !head_only;
    let done = |sent: u64| {
        host.update(i, |r| {
            r.bytes_sent = sent;
            r.completed = Some(host.started.elapsed());
        })
    };
    if limit == 0 && !stalls {
        done(0);
    }
    stream.write_all(&http::response_head(reply.status, &reply.headers, len, keep_alive)).await?;
    let mut offset = 0u64;
    while offset < limit {
        let piece = reply.body.slice(offset, chunk.min(limit - offset) as usize);
        if let Some(tick) = tick {
            // Before the write, so the last byte leaves at `len / bytes_per_sec`, not earlier.
            tokio::time::sleep(tick.mul_f64(piece.len() as f64 / chunk as f64)).await;
        }
        let end = offset + piece.len() as u64;
        if end == limit && !stalls {
            done(end);
        }
        if let Err(e) = stream.write_all(piece).await {
            host.update(i, |r| r.bytes_sent = offset);
            return Err(e);
        }
        offset = end;
        host.update(i, |r| r.bytes_sent = offset);
    }
    stream.flush().await?;
    if stalls {
        // Hold the socket open and silent; the runtime's shutdown drops this future.
        std::future::pending::<()>().await;
    }
    Ok(())
}
