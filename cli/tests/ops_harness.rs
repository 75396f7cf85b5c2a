//! The operations tests' harness checked on its own, without a mafalda-host: the HTTP client's
//! reply parsing, a real Prometheus scraping itself (and failing to scrape a dead target),
//! promtool accepting good expositions (classic, and OpenMetrics from the prometheus-client
//! crate) and rejecting bad ones, and a network namespace giving a non-loopback peer address.

mod ops_support;

use ops_support::*;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::time::Duration;

#[test]
fn replies_are_parsed_by_length_by_chunks_and_to_the_end() {
    let sized = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", false)
        .expect("sized reply");
    assert_eq!((sized.status, sized.body.as_str(), sized.content_type()), (200, "hello", "text/plain"));
    assert_eq!(sized.header("CONTENT-LENGTH"), Some("5"));

    let chunked = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n\
                    4\r\n{\"re\r\nb;ext=1\r\nady\":false}\r\n0\r\nx-trailer: 1\r\n\r\n";
    let chunked = parse_reply(chunked, false).expect("chunked reply");
    assert_eq!(chunked.status, 503);
    assert_eq!(chunked.json(), serde_json::json!({"ready": false}));

    let to_end = parse_reply(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it", false).expect("reply to the end");
    assert_eq!(to_end.body, "all of it");
    let empty = parse_reply(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", false).expect("204");
    assert_eq!((empty.status, empty.body.as_str()), (204, ""));

    assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false).is_err(), "cut short");
    assert!(parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false).is_err(), "bad chunk");
    assert!(parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err(), "not HTTP");
    assert!(parse_reply(b"HTTP/1.1 200 OK\r\n", false).is_err(), "no end of headers");

    assert_eq!(percent_encode("rate(x_total{a=\"b c\"}[1m])/2"), "rate%28x_total%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%2F2");
    assert_eq!(percent_encode("up-1.0_~"), "up-1.0_~");
}

#[test]
fn requests_carry_method_headers_and_body() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address").to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
            let n = conn.read(&mut buf).expect("read request");
            assert!(n > 0, "request cut short: {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok").expect("write reply");
        String::from_utf8_lossy(&seen).into_owned()
    });
    let reply = post(&addr, "/drain", Some("s3cret"));
    assert_eq!((reply.status, reply.body.as_str()), (202, "ok"));
    let request = server.join().expect("server thread");
    assert!(request.starts_with("POST /drain HTTP/1.1\r\n"), "{request}");
    for line in ["Connection: close", "Content-Length: 0", "Authorization: Bearer s3cret", &format!("Host: {addr}")] {
        assert!(request.contains(&format!("{line}\r\n")), "{line:?} missing from {request:?}");
    }
}

#[test]
fn prometheus_scrapes_itself() {
    let addr = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let prometheus = Prometheus::start_on(&addr, &[&addr]);
    assert_eq!(prometheus.addr(), addr);
    let up = prometheus.wait_for("up", Duration::from_secs(30), |v| v.len() == 1 && v[0].1 == 1.0);
    assert_eq!(up[0].0["instance"], addr.as_str());
    assert_eq!(up[0].0["job"], "mafalda");
    assert!(prometheus.targets_up(), "targets: {:?}", prometheus.targets());

    let build = prometheus.values("prometheus_build_info");
    assert_eq!(build.len(), 1, "{build:?}");
    assert!(build[0].0["version"].as_str().is_some_and(|v| v.starts_with("2.")), "{build:?}");
    assert_eq!(prometheus.values("1 + 1"), vec![(Labels::new(), 2.0)], "a scalar");
    assert!(prometheus.values("absent_metric_of_nobody").is_empty());

    // Go's server sends a large body chunked: the client's decoding on a real reply.
    let metrics = get(&addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("transfer-encoding"), Some("chunked"), "{:?}", metrics.headers);
    assert!(metrics.body.contains("\nprometheus_build_info{") && metrics.body.ends_with('\n'));
}

#[test]
fn prometheus_reports_a_target_nobody_serves() {
    let dead = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let prometheus = Prometheus::start(&dead);
    let up = prometheus.wait_for("up", Duration::from_secs(30), |v| v.len() == 1 && v[0].1 == 0.0);
    assert_eq!(up[0].0["instance"], dead.as_str());
    assert!(!prometheus.targets_up());
    let targets = prometheus.targets();
    assert!(targets[0]["lastError"].as_str().is_some_and(|e| !e.is_empty()), "{targets:?}");
}

#[test]
fn promtool_accepts_good_expositions_and_rejects_bad_ones() {
    let good = "# HELP mafalda_rooms Rooms open.\n# TYPE mafalda_rooms gauge\nmafalda_rooms 3\n\
                # HELP mafalda_requests_total Requests.\n# TYPE mafalda_requests_total counter\n\
                mafalda_requests_total{route=\"/metrics\"} 5\n";
    promtool_check_metrics(good).expect("a valid exposition");

    let garbage = promtool_check_metrics("this is { not metrics\n").expect_err("garbage");
    assert!(garbage.contains("parsing error"), "{garbage}");
    let lint = promtool_check_metrics("# HELP hits Hits.\n# TYPE hits counter\nhits 1\n").expect_err("lint problem");
    assert!(lint.contains("_total"), "{lint}");
}

#[test]
fn promtool_checks_openmetrics_from_prometheus_client() {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram};
    use prometheus_client::registry::{Registry, Unit};

    let mut registry = Registry::with_prefix("mafalda");
    let requests = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("http_requests", "HTTP requests served", requests.clone());
    requests.get_or_create(&vec![("route".into(), "/metrics".into())]).inc();
    let rooms = Gauge::<i64>::default();
    registry.register("rooms", "Rooms open", rooms.clone());
    rooms.set(2);
    let latency = Histogram::new([0.01, 0.1, 1.0]);
    registry.register_with_unit("request_duration", "Request latency", Unit::Seconds, latency.clone());
    latency.observe(0.05);
    registry.register("build", "Build information", Info::new(vec![("version".to_string(), "1.2.3".to_string())]));
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode registry");
    assert!(text.ends_with("# EOF\n"), "{text}");

    // promtool 2.42 reads the classic format only: the raw OpenMetrics text does not pass.
    assert!(promtool_check_metrics(&text).is_err(), "promtool took raw OpenMetrics:\n{text}");
    promtool_check_openmetrics(&text).expect("prometheus-client's exposition, linted");
    let classic = openmetrics_to_classic(&text);
    assert!(classic.contains("# TYPE mafalda_http_requests_total counter\n"), "{classic}");
    assert!(classic.contains("# TYPE mafalda_build_info gauge\n"), "{classic}");
    assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"), "{classic}");

    let no_eof = text.replace("# EOF\n", "");
    assert!(promtool_check_openmetrics(&no_eof).is_err(), "an exposition without # EOF");
}

#[test]
fn netns_gives_a_non_loopback_peer_and_goes_away() {
    let netns = Netns::new("harness");
    let name = netns.name().to_string();
    assert!(name.starts_with("mafalda-harness-"), "{name}");
    let ip = netns.ip();
    assert!(ip.starts_with("10.254.") && ip.ends_with(".1"), "{ip}");
    assert!(netns.path().exists(), "{} missing", netns.path().display());

    // A process run inside sees the namespace's interfaces.
    let out = output_within(netns.command("ip").args(["-br", "addr"]), b"", Duration::from_secs(10));
    let addrs = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ip netns exec: {}", String::from_utf8_lossy(&out.stderr));
    assert!(addrs.contains(&format!("{ip}/24")), "{addrs}");
    assert!(addrs.lines().any(|l| l.starts_with("lo ") && l.contains("127.0.0.1/8")), "lo up: {addrs}");

    // A server in the namespace sees a client of the namespace at `ip` (not loopback), and an
    // HTTP exchange works there.
    let (peer, reply) = netns.run(|| {
        let listener = TcpListener::bind((ip.as_str(), 0)).expect("bind in the namespace");
        let addr = listener.local_addr().expect("bound address").to_string();
        let server = std::thread::spawn(move || {
            let (mut conn, peer) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).expect("read request");
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").expect("write reply");
            peer
        });
        let reply = get(&addr, "/");
        (server.join().expect("server thread"), reply)
    });
    assert_eq!(peer.ip().to_string(), ip);
    assert!(!peer.ip().is_loopback() && matches!(peer.ip(), IpAddr::V4(_)), "{peer}");
    assert_eq!((reply.status, reply.body.as_str()), (200, "hi"));

    // The root namespace got nothing.
    let root = output_within(std::process::Command::new("ip").args(["-br", "addr"]), b"", Duration::from_secs(10));
    assert!(!String::from_utf8_lossy(&root.stdout).contains(&ip), "the root namespace has {ip}");

    drop(netns);
    assert!(!netns_path(&name).exists(), "{name} still there after drop");
    let list = output_within(std::process::Command::new("ip").args(["netns", "list"]), b"", Duration::from_secs(10));
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name), "{name} still listed");
}
