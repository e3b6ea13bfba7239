//! Unit tests of `nginx`: the config it writes and the access log it reads (no nginx needed;
//! tests/nginx.rs runs the real one).

use super::*;

#[test]
fn rates_are_spelled_per_second_when_whole_and_per_minute_otherwise() {
    let spec = |r: f64| NginxHost::loopback(2, r).rate_spec();
    assert_eq!(spec(2.0).unwrap(), "2r/s");
    assert_eq!(spec(20.0).unwrap(), "20r/s");
    assert_eq!(spec(0.5).unwrap(), "30r/m");
    assert_eq!(spec(1.5).unwrap(), "90r/m");
    assert!(spec(0.01).is_err() && spec(0.0).is_err() && spec(f64::NAN).is_err());
    assert_eq!(NginxHost::loopback(2, 0.5).burst(1).delay().retry_after(2).label(), "0.5r/s b1 delay RA2");
}

#[test]
fn the_config_gives_each_host_its_zone_burst_mode_and_retry_after() {
    let hosts = [
        NginxHost::loopback(2, 2.0).burst(4),
        NginxHost::loopback(3, 0.5).burst(1).delay().retry_after(3),
        NginxHost::loopback(4, 8.0),
    ];
    let addrs: Vec<SocketAddr> =
        ["127.0.0.2:4000", "127.0.0.3:4001", "127.0.0.4:4002"].map(|a| a.parse().unwrap()).into();
    let conf = render_config(Path::new("/t"), &hosts, &addrs).unwrap();
    assert!(conf.contains("zone=h0:1m rate=2r/s;") && conf.contains("zone=h1:1m rate=30r/m;"), "{conf}");
    assert!(conf.contains("limit_req zone=h0 burst=4 nodelay;") && conf.contains("limit_req zone=h1 burst=1;"));
    assert!(conf.contains("limit_req zone=h2 nodelay;"), "nginx refuses burst=0: {conf}");
    assert!(conf.contains("listen 127.0.0.3:4001;") && conf.contains("access_log /t/access-1.log dd;"));
    assert_eq!(conf.matches("add_header Retry-After 3 always").count(), 1, "only the second host: {conf}");
    assert!(conf.contains("log_format dd \"$msec\\t$request_time\\t$status"), "{conf}");
}

#[test]
fn a_log_line_becomes_a_record_timed_from_the_start_with_connections_renumbered() {
    let start = Duration::from_millis(1_000_000_000);
    let text = "1000000.250\t0.050\t200\t17\t1500\t1500\tGET\t/img/a.jpg\tdd \\x22x\\x22\n\
                1000000.210\t0.000\t429\t9\t169\t169\tGET\t/robots.txt\t-\n\
                garbage line\n";
    let log = parse_log(text, start);
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].path.as_str(), log[0].status, log[0].user_agent.as_deref()),
        ("/img/a.jpg", 200, Some("dd \"x\""))
    );
    assert_eq!((log[0].arrived, log[0].completed), (Duration::from_millis(200), Some(Duration::from_millis(250))));
    assert_eq!((log[0].connection, log[1].connection), (1, 2), "by first arrival, not nginx's serial");
    assert_eq!(
        (log[1].arrived, log[1].user_agent.clone(), log[1].content_length),
        (Duration::from_millis(210), None, 169)
    );
}
