//! `origin::nginx`: real nginx `limit_req` hosts, for the tests and benchmarks that must not
//! trust our own model of a rate limiter (DESIGN §5).
//!
//! Owns [`Nginx`] and [`NginxHost`]: writing an `nginx.conf` into a fresh temp folder, starting
//! nginx as a child process (`daemon off; master_process off`: the child is the server), and
//! reading its access logs back as the crate's [`RequestLog`], so the helpers the scripted
//! origin's tests use (`count_status`, `max_requests_in_window`, `max_in_flight`) work unchanged.
//! It does not install nginx: `scripts/nginx.sh install` does, and prints the path to pass to
//! [`Nginx::start_with`]; [`Nginx::start`] looks for it itself.
//!
//! # What each host is
//! One `server` block on its loopback address and a free port, with its own zone
//! (`limit_req_zone $server_name … rate=R`), `limit_req … burst=B [nodelay]` at server level —
//! so robots.txt counts against the limit, as on a real server — `limit_req_status 429`, and with
//! `retry_after` an `error_page 429` that adds `Retry-After: N`. Every host serves one root: an
//! allow-all `robots.txt`, and the image behind each URL made with [`Nginx::url`] (the file is
//! written from [`images::served_bytes`] the first time its URL is asked for, so its bytes are
//! exactly the scripted origin's). Any other path is a 404. Everything else is nginx's default
//! (keep-alive 75 s and 1000 requests per connection), as on a server nobody tuned. A host may
//! also be served over TLS ([`NginxHost::tls`]) and answer its images with a redirect
//! ([`NginxHost::redirect_to`]).
//!
//! # What the logs can say
//! nginx writes a request's line when it ends, with `$msec` (the end, to the millisecond) and
//! `$request_time` (since its first byte was read, to the millisecond): `arrived` is their
//! difference and `completed` is `$msec`, both from [`Nginx::started_at`]. So times are good to
//! about 1 ms, and a request still being answered (delayed by `limit_req` in delay mode, say) is
//! not in the log yet: read logs after the client is done. `connection` is renumbered per host
//! from 1, in order of each connection's first request.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::images;
use super::log::RequestLog;
use access_log::parse_log;

#[path = "nginx_log.rs"]
mod access_log;

/// Longest nginx may take to accept connections on every host. It starts in milliseconds; the
/// margin is for a loaded 2-core test machine.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long nginx gets to exit after SIGTERM before it is killed. It exits at once (fast
/// shutdown drops open connections), so this only bounds a wedged process.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Poll interval while waiting for nginx to start or stop.
const POLL: Duration = Duration::from_millis(20);
/// Where Debian puts nginx, outside a normal user's PATH.
const DEBIAN_NGINX: &str = "/usr/sbin/nginx";
/// Environment variable naming the nginx binary, ahead of PATH.
pub const NGINX_ENV: &str = "DD_NGINX";
/// The access log format: tab-separated, so a tab in a user agent (nginx escapes it as `\x09`)
/// cannot shift a field.
const LOG_FORMAT: &str = "$msec\\t$request_time\\t$status\\t$connection\\t$body_bytes_sent\\t\
                          $sent_http_content_length\\t$request_method\\t$request_uri\\t$http_user_agent";

/// One rate-limited host.
#[derive(Debug, Clone, PartialEq)]
pub struct NginxHost {
    /// A loopback address (`127.x.y.z`); the port is picked free at start.
    pub addr: Ipv4Addr,
    /// `limit_req_zone … rate`, in requests per second. nginx takes a whole number per second or
    /// per minute, so `rate × 60` must be whole (0.5 is written `30r/m`).
    pub rate: f64,
    /// `limit_req … burst`: requests beyond the rate the bucket holds before refusing. 0 is
    /// written by leaving `burst` out (nginx refuses `burst=0`): every two accepted requests are
    /// then at least 1/rate apart.
    pub burst: u32,
    /// `nodelay`: a burst is served at once. Without it (delay mode) requests beyond the rate
    /// are held by the server and released at the rate, and only those beyond the burst refused.
    pub nodelay: bool,
    /// Seconds of `Retry-After` on each 429; `None`: a bare 429, as `limit_req` sends.
    pub retry_after: Option<u32>,
    /// Served over TLS with this certificate chain and key (PEM files) instead of plain http.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Every path under `/img/` answered `302` to this base URL followed by the request's URI.
    pub redirect_to: Option<String>,
}

impl NginxHost {
    /// `127.0.0.<last_octet>`, no burst, nodelay, no `Retry-After`.
    pub fn loopback(last_octet: u8, rate: f64) -> NginxHost {
        NginxHost {
            addr: Ipv4Addr::new(127, 0, 0, last_octet),
            rate,
            burst: 0,
            nodelay: true,
            retry_after: None,
            tls: None,
            redirect_to: None,
        }
    }

    /// Served over TLS with the PEM certificate chain `cert` and its `key`.
    pub fn tls(self, cert: &Path, key: &Path) -> NginxHost {
        NginxHost { tls: Some((cert.to_path_buf(), key.to_path_buf())), ..self }
    }

    /// Answers every `/img/` path with a `302` to `base` followed by the request's URI.
    pub fn redirect_to(self, base: &str) -> NginxHost {
        NginxHost { redirect_to: Some(base.to_string()), ..self }
    }

    pub fn burst(self, burst: u32) -> NginxHost {
        NginxHost { burst, ..self }
    }

    /// Delay mode: no `nodelay`.
    pub fn delay(self) -> NginxHost {
        NginxHost { nodelay: false, ..self }
    }

    pub fn retry_after(self, secs: u32) -> NginxHost {
        NginxHost { retry_after: Some(secs), ..self }
    }

    /// The rate as nginx spells it: `2r/s`, or `30r/m` for a rate under 1 or not whole.
    pub fn rate_spec(&self) -> io::Result<String> {
        let per_minute = self.rate * 60.0;
        if !(self.rate > 0.0 && (per_minute - per_minute.round()).abs() < 1e-9 && per_minute >= 1.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("nginx rate {} req/s cannot be written as whole requests per minute", self.rate),
            ));
        }
        Ok(if self.rate >= 1.0 && self.rate.fract() == 0.0 {
            format!("{}r/s", self.rate as u64)
        } else {
            format!("{}r/m", per_minute.round() as u64)
        })
    }

    /// A short name for tables: `2r/s b4 nodelay`, `0.5r/s b1 delay RA2`.
    pub fn label(&self) -> String {
        let mode = if self.nodelay { "nodelay" } else { "delay" };
        let ra = self.retry_after.map(|s| format!(" RA{s}")).unwrap_or_default();
        format!("{}r/s b{} {mode}{ra}", self.rate, self.burst)
    }
}

/// A running nginx serving [`NginxHost`]s. Dropping it stops nginx and removes its folder.
pub struct Nginx {
    child: Option<Child>,
    /// The temp folder holding the config, the logs, the pid file and the served root.
    dir: PathBuf,
    hosts: Vec<NginxHost>,
    addrs: Vec<SocketAddr>,
    base_urls: Vec<String>,
    started: Instant,
    /// `started` on the wall clock, which is what `$msec` is on.
    started_epoch: Duration,
}

impl Nginx {
    /// [`Nginx::start_with`] the nginx named by `$DD_NGINX`, else the one on PATH, else Debian's
    /// `/usr/sbin/nginx`.
    pub fn start(hosts: Vec<NginxHost>) -> io::Result<Nginx> {
        Nginx::start_with(&find_binary()?, hosts)
    }

    /// Writes the config for `hosts`, starts `binary` on it, and returns once every host accepts
    /// connections. Errors on a host that is not loopback or a rate nginx cannot spell, and, with
    /// nginx's error log, if nginx exits or does not listen within [`START_TIMEOUT`].
    pub fn start_with(binary: &Path, hosts: Vec<NginxHost>) -> io::Result<Nginx> {
        let dir = temp_dir()?;
        // From here on, dropping `nginx` removes the folder (and stops the child, once there is one).
        let mut nginx = Nginx {
            child: None,
            dir,
            hosts,
            addrs: Vec::new(),
            base_urls: Vec::new(),
            started: Instant::now(),
            started_epoch: Duration::ZERO,
        };
        for h in &nginx.hosts {
            if !h.addr.is_loopback() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("nginx host {} is not a loopback address; use 127.x.y.z", h.addr),
                ));
            }
            let addr = free_port(h.addr)?;
            nginx.addrs.push(addr);
            let scheme = if h.tls.is_some() { "https" } else { "http" };
            nginx.base_urls.push(format!("{scheme}://{addr}"));
        }
        for sub in ["www", "tmp"] {
            std::fs::create_dir_all(nginx.dir.join(sub))?;
        }
        std::fs::write(nginx.dir.join("www/robots.txt"), "User-agent: *\nAllow: /\n")?;
        let conf = nginx.dir.join("nginx.conf");
        std::fs::write(&conf, render_config(&nginx.dir, &nginx.hosts, &nginx.addrs)?)?;
        let output = std::fs::File::create(nginx.dir.join("nginx.out"))?;
        nginx.started = Instant::now();
        nginx.started_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let child = Command::new(binary)
            .arg("-p")
            .arg(&nginx.dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(nginx.dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", binary.display())))?;
        nginx.child = Some(child);
        nginx.wait_listening(binary)?;
        Ok(nginx)
    }

    /// Waits until every host accepts a connection, failing with nginx's messages if it exits
    /// or [`START_TIMEOUT`] passes.
    fn wait_listening(&mut self, binary: &Path) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pending = self.addrs.clone();
        while !pending.is_empty() {
            pending.retain(|a| TcpStream::connect_timeout(a, POLL).is_err());
            if pending.is_empty() {
                break;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let why = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => format!("was not listening on {pending:?} after {} s", START_TIMEOUT.as_secs()),
                };
                return Err(io::Error::other(format!(
                    "nginx ({}) {why}; config {}; its messages:\n{}",
                    binary.display(),
                    self.dir.join("nginx.conf").display(),
                    self.messages()
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// nginx's error log and anything it wrote to stdout or stderr, for error messages.
    pub fn messages(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("nginx.out"), read("error.log"))
    }

    /// The address host `i` (in `start` order) listens on.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// `http://127.x.y.z:port` of host `i`, without a trailing slash.
    pub fn base_url(&self, i: usize) -> &str {
        &self.base_urls[i]
    }

    /// `base_url(i)` followed by `path` (which starts with `/`). An image path (as the scripted
    /// origin reads them: `/img/w64-h48-7.jpg`) is written into the served root if it is not
    /// there yet, so the URL answers 200 with [`images::served_bytes`]; any other path is a 404.
    /// Panics if the file cannot be written: the harness's folder is broken.
    pub fn url(&self, i: usize, path: &str) -> String {
        let clean = path.split(['?', '#']).next().unwrap_or(path);
        if let Some(bytes) = images::served_bytes(clean) {
            let file = self.dir.join("www").join(clean.trim_start_matches('/'));
            if !file.exists() {
                let write =
                    file.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::write(&file, &*bytes));
                if let Err(e) = write {
                    panic!("cannot write {}: {e}", file.display());
                }
            }
        }
        format!("{}{path}", self.base_urls[i])
    }

    /// The host `i` was started as.
    pub fn host(&self, i: usize) -> &NginxHost {
        &self.hosts[i]
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The instant every `RequestRecord` time is measured from (just before nginx started).
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// The nginx process's id while it runs (`master_process off`: it is the server itself), for
    /// a test that pauses the server as a busy machine would.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What host `i` has logged so far, in arrival order: every request that has ended (see the
    /// module docs). Still readable after `stop()`. A line that does not parse is skipped (none
    /// should: the format is ours).
    pub fn log(&self, i: usize) -> RequestLog {
        let text = std::fs::read_to_string(self.dir.join(format!("access-{i}.log"))).unwrap_or_default();
        parse_log(&text, self.started_epoch)
    }

    /// Stops nginx: SIGTERM, then SIGKILL after [`STOP_GRACE`]. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        crate::process::terminate(&mut child, STOP_GRACE);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        // Scratch only: a folder that cannot be removed costs disk, not correctness.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `$DD_NGINX`, else `nginx` on PATH, else Debian's path.
fn find_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(NGINX_ENV) {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nginx"))
        .chain(std::iter::once(PathBuf::from(DEBIAN_NGINX)));
    for candidate in on_path {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no nginx found (${NGINX_ENV}, PATH, {DEBIAN_NGINX}); `scripts/nginx.sh install` installs it"),
    ))
}

/// A new, empty folder under the system temp folder.
fn temp_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("dd-nginx-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// A port free on `ip` right now: nginx cannot be told to bind port 0 and report it, so bind
/// one here, read it, and let it go. Another process could take it before nginx does; then
/// nginx fails to start and says so.
fn free_port(ip: Ipv4Addr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind((ip, 0))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind a port on {ip} for nginx: {e}")))?;
    listener.local_addr()
}

/// `nginx.conf` up to the hosts: one process that is the server, every path in `@DIR@`.
const CONFIG_HEAD: &str = r#"daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log error;
events { worker_connections 1024; }
http {
    types {
        image/jpeg jpg jpeg; image/png png; image/webp webp; image/gif gif;
        image/tiff tif tiff; image/bmp bmp; text/plain txt;
    }
    default_type application/octet-stream;
    client_body_temp_path @DIR@/tmp/body;
    proxy_temp_path @DIR@/tmp/proxy;
    fastcgi_temp_path @DIR@/tmp/fastcgi;
    uwsgi_temp_path @DIR@/tmp/uwsgi;
    scgi_temp_path @DIR@/tmp/scgi;
    log_format dd "@LOG_FORMAT@";
    limit_req_status 429;
"#;

/// One host `@I@`; `@LIMIT@` is `limit_req`'s arguments after the zone.
const CONFIG_HOST: &str = r#"    limit_req_zone $server_name zone=h@I@:1m rate=@RATE@;
    server {
        listen @ADDR@;
        server_name h@I@;
        access_log @DIR@/access-@I@.log dd;
        root @DIR@/www;
        limit_req zone=h@I@@LIMIT@;
        location / { }
"#;

/// What a host with `retry_after` adds: its 429 goes through a location that sets the header
/// (`limit_req` does not apply twice to one request, so this answers 429, not another refusal).
const CONFIG_RETRY_AFTER: &str = r#"        error_page 429 = @limited;
        location @limited { add_header Retry-After @SECS@ always; return 429; }
"#;

/// The whole `nginx.conf` for `hosts` listening on `addrs`, every path inside `dir`.
fn render_config(dir: &Path, hosts: &[NginxHost], addrs: &[SocketAddr]) -> io::Result<String> {
    let dir = dir.display().to_string();
    let mut conf = CONFIG_HEAD.replace("@LOG_FORMAT@", LOG_FORMAT);
    for (i, (h, addr)) in hosts.iter().zip(addrs).enumerate() {
        // nginx refuses `burst=0`; leaving it out is the same (its default).
        let burst = if h.burst > 0 { format!(" burst={}", h.burst) } else { String::new() };
        let nodelay = if h.nodelay { " nodelay" } else { "" };
        let listen = match &h.tls {
            Some((cert, key)) => {
                format!(
                    "{addr} ssl;\n        ssl_certificate {};\n        ssl_certificate_key {}",
                    cert.display(),
                    key.display()
                )
            }
            None => addr.to_string(),
        };
        conf += &CONFIG_HOST
            .replace("@I@", &i.to_string())
            .replace("@RATE@", &h.rate_spec()?)
            .replace("@ADDR@", &listen)
            .replace("@LIMIT@", &format!("{burst}{nodelay}"));
        if let Some(base) = &h.redirect_to {
            conf += &format!("        location /img/ {{ return 302 {base}$request_uri; }}\n");
        }
        if let Some(secs) = h.retry_after {
            conf += &CONFIG_RETRY_AFTER.replace("@SECS@", &secs.to_string());
        }
        conf += "    }\n";
    }
    conf += "}\n";
    Ok(conf.replace("@DIR@", &dir))
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
