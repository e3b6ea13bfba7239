//! The test origin itself: each behaviour does what a test relying on it expects, and the logs
//! record what the server saw. A raw `TcpStream` client keeps the origin honest independently of
//! reqwest; one test uses reqwest to check that its pooled connections are kept alive.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use test_origin::http::http_date;
use test_origin::images::{self, served_bytes};
use test_origin::{Behaviour, HostSpec, Origin, RetryAfterForm, BOMB_SIDE};

/// Every client read gives up after this: a broken origin fails a test instead of hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One kept-alive client connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connect to origin");
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        Conn { reader: BufReader::new(stream) }
    }

    fn send(&mut self, method: &str, path: &str, user_agent: Option<&str>) {
        let ua = user_agent.map(|ua| format!("User-Agent: {ua}\r\n")).unwrap_or_default();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: origin\r\n{ua}\r\n");
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
    }

    fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status =
            line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            match line.trim_end().split_once(':') {
                Some((k, v)) => headers.push((k.trim().to_owned(), v.trim().to_owned())),
                None => break,
            }
        }
        (status, headers)
    }

    fn get_with(&mut self, method: &str, path: &str, user_agent: Option<&str>) -> Response {
        self.send(method, path, user_agent);
        let (status, headers) = self.read_head();
        let mut resp = Response { status, headers, body: Vec::new() };
        if method != "HEAD" {
            let len: usize = resp.header("content-length").expect("content-length").parse().unwrap();
            resp.body = vec![0; len];
            self.reader.read_exact(&mut resp.body).unwrap();
        }
        resp
    }

    fn get(&mut self, path: &str) -> Response {
        self.get_with("GET", path, Some("origin-test/1"))
    }
}

fn start(behaviours: Vec<(u8, Behaviour)>) -> Origin {
    Origin::start(behaviours.into_iter().map(|(octet, b)| HostSpec::loopback(octet, b)).collect())
        .expect("origin starts")
}

#[test]
fn ok_host_serves_the_requested_images_byte_for_byte_on_one_connection() {
    let origin = start(vec![(2, Behaviour::Ok)]);
    assert!(origin.base_url(0).starts_with("http://127.0.0.2:"), "{}", origin.base_url(0));
    let mut conn = Conn::open(origin.addr(0));
    let jpeg = conn.get("/img/w320-h240-7.jpg");
    assert_eq!((jpeg.status, jpeg.header("content-type")), (200, Some("image/jpeg")));
    assert_eq!(jpeg.body, *served_bytes("/img/w320-h240-7.jpg").unwrap());
    let decoded = image::load_from_memory(&jpeg.body).expect("a real JPEG");
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    // A different path is a different picture; no size tokens means the default size.
    let other = conn.get("/img/other.jpg");
    assert_ne!(other.body, jpeg.body);
    let decoded = image::load_from_memory(&other.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (images::DEFAULT_WIDTH, images::DEFAULT_HEIGHT));
    // Lossless formats decode to exactly the pixels the path promises.
    for ext in ["png", "webp", "gif", "tif", "bmp"] {
        let path = format!("/img/w48-h32-1.{ext}");
        let resp = conn.get(&path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.body, *served_bytes(&path).unwrap(), "{path}");
        let img = image::load_from_memory(&resp.body).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((img.width(), img.height()), (48, 32), "{path}");
        if ext != "gif" {
            assert_eq!(img.to_rgb8(), images::pixels_for_path(&path).unwrap(), "{path}");
        }
    }
    let head = conn.get_with("HEAD", "/img/w320-h240-7.jpg", None);
    assert_eq!(head.header("content-length"), Some(jpeg.body.len().to_string().as_str()));
    assert_eq!(conn.get("/robots.txt").status, 404, "a non-image path is not found");
    let log = origin.log(0);
    assert_eq!(log.len(), 9);
    assert!(log.iter().all(|r| r.connection == 1), "all requests reused one kept-alive connection");
    assert_eq!(log[0].bytes_sent, jpeg.body.len() as u64);
    assert_eq!((log[7].method.as_str(), log[7].bytes_sent), ("HEAD", 0), "HEAD sends no body");
}

#[test]
fn rate_limited_host_refuses_bursts_with_retry_after_in_both_forms() {
    let origin = start(vec![
        (3, Behaviour::RateLimited { per_second: 2.0, retry_after: Some(RetryAfterForm::Seconds(3)) }),
        (3, Behaviour::RateLimited { per_second: 2.0, retry_after: Some(RetryAfterForm::HttpDate { seconds: 5 }) }),
        (3, Behaviour::RateLimited { per_second: 20.0, retry_after: None }),
    ]);
    for host in 0..2 {
        let mut conn = Conn::open(origin.addr(host));
        let before = SystemTime::now();
        let statuses: Vec<Response> = (0..10).map(|_| conn.get("/img/w64-h48-1.jpg")).collect();
        let after = SystemTime::now();
        assert_eq!(statuses.iter().map(|r| r.status).collect::<Vec<_>>()[..3], [200, 200, 429]);
        let refused = &statuses[9];
        assert_eq!(refused.status, 429);
        let value = refused.header("retry-after").expect("Retry-After on 429");
        if host == 0 {
            assert_eq!(value, "3");
        } else {
            // Rounded up to a whole second after now + 5 s.
            let candidates: Vec<String> =
                (5..=7).flat_map(|s| [before, after].map(|t| http_date(t + Duration::from_secs(s)))).collect();
            assert!(candidates.iter().any(|c| c == value), "{value} not among {candidates:?}");
        }
        let log = origin.log(host);
        assert_eq!((log.count_status(200), log.count_status(429)), (2, 8));
        assert_eq!(log.max_requests_in_window(Duration::from_secs(1)), 10, "the server saw the burst");
    }
    // A client that keeps under the rate is never refused.
    let mut conn = Conn::open(origin.addr(2));
    for _ in 0..8 {
        assert_eq!(conn.get("/img/w64-h48-1.jpg").status, 200);
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(origin.log(2).count_status(429), 0);
}

#[test]
fn log_records_arrivals_user_agents_and_concurrency_of_slow_requests() {
    let delay = Duration::from_millis(300);
    let origin = start(vec![(4, Behaviour::Slow { delay })]);
    let addr = origin.addr(0);
    let clients: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let ua = format!("agent-{i}");
                Conn::open(addr).get_with("GET", &format!("/img/w32-h32-{i}.jpg"), Some(&ua)).status
            })
        })
        .collect();
    assert!(clients.into_iter().all(|c| c.join().unwrap() == 200));
    assert_eq!(Conn::open(addr).get_with("GET", "/img/w32-h32-9.jpg", None).status, 200);
    let log = origin.log(0);
    assert_eq!(log.len(), 4);
    assert_eq!(log.max_in_flight(), 3, "three concurrent requests, then one alone");
    let mut agents: Vec<_> = log.iter().map(|r| r.user_agent.clone()).collect();
    agents.sort();
    assert_eq!(agents, [None, Some("agent-0".into()), Some("agent-1".into()), Some("agent-2".into())]);
    assert!(log.iter().all(|r| r.status == 200 && r.duration().unwrap() >= delay));
    assert!(log[3].arrived >= log[0].arrived + delay, "the fourth came after the others");
    assert_eq!(log.count_path("/img/w32-h32-9.jpg"), 1);
}

#[test]
fn stalled_body_holds_the_client_until_stop_releases_it() {
    let mut origin = start(vec![(5, Behaviour::StallMidBody { after_bytes: 1000 })]);
    let mut conn = Conn::open(origin.addr(0));
    conn.send("GET", "/img/w200-h200-1.jpg", None);
    let (status, headers) = conn.read_head();
    let full = served_bytes("/img/w200-h200-1.jpg").unwrap().len();
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "Content-Length" && *v == full.to_string()));
    let mut first = vec![0; 1000];
    conn.reader.read_exact(&mut first).unwrap();
    conn.reader.get_ref().set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut more = [0u8; 1];
    let err = conn.reader.read(&mut more).expect_err("no byte after the stall");
    assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");
    let log = origin.log(0);
    assert_eq!((log[0].bytes_sent, log[0].completed, log.max_in_flight()), (1000, None, 1));
    let t = Instant::now();
    origin.stop();
    match conn.reader.read(&mut more) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the stalled socket closed by stop(), got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1), "stop() released the socket at once");
    assert!(TcpStream::connect_timeout(&origin.addr(0), CLIENT_TIMEOUT).is_err(), "stopped origin refuses");
}

#[test]
fn error_hosts_answer_their_statuses_and_dead_hosts_refuse() {
    let origin = start(vec![
        (6, Behaviour::NotFound),
        (6, Behaviour::Forbidden),
        (6, Behaviour::Flaky503 { every: 3 }),
        (6, Behaviour::Dead),
        (6, Behaviour::Html),
    ]);
    assert_eq!(Conn::open(origin.addr(0)).get("/img/a.jpg").status, 404);
    assert_eq!(Conn::open(origin.addr(1)).get("/img/a.jpg").status, 403);
    let mut conn = Conn::open(origin.addr(2));
    let statuses: Vec<u16> = (0..6).map(|_| conn.get("/img/w16-h16-1.jpg").status).collect();
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
    assert_eq!(origin.log(2).statuses(), statuses);
    let refused = TcpStream::connect_timeout(&origin.addr(3), CLIENT_TIMEOUT).expect_err("dead host");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(origin.log(3).is_empty());
    let html = Conn::open(origin.addr(4)).get("/img/a.jpg");
    assert_eq!((html.status, html.header("content-type")), (200, Some("text/html; charset=utf-8")));
    assert!(String::from_utf8_lossy(&html.body).contains("<html>"));
}

#[test]
fn random_503_host_fails_about_its_percent_without_retry_after_and_zero_never_fails() {
    const REQUESTS: usize = 400;
    let origin = start(vec![
        (10, Behaviour::Random503 { percent: 15 }),
        (10, Behaviour::Random503 { percent: 0 }),
        (10, Behaviour::Random503 { percent: 15 }),
    ]);
    let mut conn = Conn::open(origin.addr(0));
    let responses: Vec<Response> = (0..REQUESTS).map(|i| conn.get(&format!("/img/w16-h16-{i}.jpg"))).collect();
    let failed = responses.iter().filter(|r| r.status == 503).count();
    assert!((REQUESTS / 10..=REQUESTS / 5).contains(&failed), "{failed} of {REQUESTS} got 503, expected 10-20%");
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 503));
    assert!(responses.iter().all(|r| r.header("retry-after").is_none()), "a random 503 never sends Retry-After");
    assert_eq!(origin.log(0).count_status(503), failed, "the log agrees with what the client saw");
    let mut conn = Conn::open(origin.addr(1));
    assert!((0..REQUESTS).all(|_| conn.get("/img/w16-h16-1.jpg").status == 200), "random503:0 never fails");
    // Seeded from a constant and the host's position: the same host of another origin answers
    // alike, another host of the same origin fails independently.
    let statuses = |origin: &Origin, host: usize| -> Vec<u16> {
        let mut conn = Conn::open(origin.addr(host));
        (0..100).map(|i| conn.get(&format!("/img/w16-h16-{i}.jpg")).status).collect()
    };
    let again = start(vec![(10, Behaviour::Random503 { percent: 15 })]);
    assert_eq!(statuses(&again, 0), origin.log(0).statuses()[..100], "the same answers in every run");
    assert_ne!(statuses(&origin, 2), origin.log(0).statuses()[..100], "two hosts fail independently");
}

#[test]
fn redirect_chain_stays_on_the_host_and_ends_in_the_image() {
    let origin = start(vec![(7, Behaviour::Redirect { hops: 3 })]);
    let mut conn = Conn::open(origin.addr(0));
    let mut path = "/img/w64-h64-3.png".to_owned();
    for hop in 1..=3 {
        let resp = conn.get(&path);
        assert_eq!(resp.status, 302, "hop {hop}");
        let location = resp.header("location").expect("Location");
        path =
            location.strip_prefix(origin.base_url(0)).unwrap_or_else(|| panic!("{location} left the host")).to_owned();
    }
    let last = conn.get(&path);
    assert_eq!((last.status, last.body), (200, served_bytes("/img/w64-h64-3.png").unwrap().to_vec()));
    assert_eq!(origin.log(0).statuses(), [302, 302, 302, 200]);
}

#[test]
fn broken_images_fail_the_way_their_names_say() {
    let origin = start(vec![
        (8, Behaviour::Bomb),
        (8, Behaviour::Corrupt),
        (8, Behaviour::Truncated),
        (8, Behaviour::Huge { bytes: 5_000_000 }),
        (8, Behaviour::Trickle { bytes_per_sec: 4000 }),
    ]);
    let bomb = Conn::open(origin.addr(0)).get("/img/a.png");
    assert!(bomb.body.len() < 100, "the bomb is small on the wire: {}", bomb.body.len());
    let reader = image::ImageReader::new(std::io::Cursor::new(&bomb.body)).with_guessed_format().unwrap();
    assert_eq!(reader.into_dimensions().unwrap(), (BOMB_SIDE, BOMB_SIDE));
    let corrupt = Conn::open(origin.addr(1)).get("/img/a.jpg");
    assert_eq!((corrupt.status, corrupt.header("content-type")), (200, Some("image/jpeg")));
    assert!(image::load_from_memory(&corrupt.body).is_err(), "garbage does not decode");
    let full = served_bytes("/img/w100-h80-1.jpg").unwrap();
    let cut = Conn::open(origin.addr(2)).get("/img/w100-h80-1.jpg");
    assert_eq!(cut.body, full[..full.len() / 2]);
    let huge = Conn::open(origin.addr(3)).get("/img/a.jpg");
    assert_eq!((huge.body.len(), &huge.body[..2]), (5_000_000, &[0xFF, 0xD8][..]));
    assert_eq!(origin.log(3)[0].bytes_sent, 5_000_000);
    let t = Instant::now();
    let slow = Conn::open(origin.addr(4)).get("/img/w32-h32-1.jpg");
    assert_eq!(slow.body, *served_bytes("/img/w32-h32-1.jpg").unwrap());
    let expected = Duration::from_secs_f64(slow.body.len() as f64 / 4000.0);
    assert!(t.elapsed() >= expected.mul_f64(0.8), "{} bytes took {:?}", slow.body.len(), t.elapsed());
}

#[test]
fn a_large_bmp_is_a_valid_image_of_the_announced_side_sent_at_its_pace() {
    let origin = start(vec![
        (9, Behaviour::LargeBmp { side: 66, bytes_per_sec: 0 }),
        (9, Behaviour::LargeBmp { side: 32, bytes_per_sec: 2000 }),
    ]);
    let bmp = Conn::open(origin.addr(0)).get("/big/sheet.bmp");
    assert_eq!((bmp.status, bmp.header("content-type")), (200, Some("image/bmp")));
    assert_eq!(bmp.body.len(), 54 + 64 * 64 * 3, "the side is rounded down to a multiple of 4");
    let decoded = image::load_from_memory(&bmp.body).expect("a valid BMP");
    assert_eq!((decoded.width(), decoded.height()), (64, 64));
    let t = Instant::now();
    let paced = Conn::open(origin.addr(1)).get("/big/sheet.bmp");
    assert_eq!(paced.body.len(), 54 + 32 * 32 * 3);
    assert!(t.elapsed() >= Duration::from_secs_f64(paced.body.len() as f64 / 2000.0 * 0.8), "{:?}", t.elapsed());
}

#[tokio::test]
async fn reqwest_reuses_one_kept_alive_connection_and_sends_its_user_agent() {
    // reqwest is built with `rustls-no-provider`; plain http needs no TLS, but building a client does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let origin = start(vec![(9, Behaviour::Ok)]);
    let client = reqwest::Client::builder().user_agent("dd-test/0.1 (ops@example.org)").build().unwrap();
    for i in 0..3 {
        let resp = client.get(origin.url(0, &format!("/img/w40-h30-{i}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        assert_eq!(body, served_bytes(&format!("/img/w40-h30-{i}")).unwrap().as_slice());
    }
    let log = origin.log(0);
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.connection == 1 && r.user_agent.as_deref() == Some("dd-test/0.1 (ops@example.org)")));
}
