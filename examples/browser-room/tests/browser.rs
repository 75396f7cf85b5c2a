//! Real browsers in a real room: headless Chromium peers with fake camera and microphone join
//! the browser-room server (mediasoup's API on mafalda-host) over WebRTC — ICE, DTLS, SRTP,
//! simulcast, SCTP data channels — and what they decode is read from their pages.
//!
//! The tests run one at a time (each starts several browsers on a small machine).

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::UdpSocket;
use std::time::Duration;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FOUR: [&str; 4] = ["p1", "p2", "p3", "p4"];

fn others(me: &str, peers: &[&'static str]) -> Vec<&'static str> {
    peers.iter().copied().filter(|p| *p != me).collect()
}

/// Where the server says an object lives (`{cell, worker}`).
fn cell(object: &Value) -> u64 {
    object["where"]["cell"].as_u64().expect("object has a cell")
}

/// Every peer decodes every other peer's video (> 50 frames) and receives its audio; returns
/// the frames decoded per track, for the log.
async fn everyone_receives_everyone(clients: &[fantoccini::Client], peers: &[&'static str]) -> Vec<u64> {
    let mut frames = Vec::new();
    for (client, me) in clients.iter().zip(peers) {
        let state = wait_receiving(client, me, &others(me, peers), 50, 50).await;
        for other in others(me, peers) {
            let video = consumers_of(&state, other, "video");
            assert_eq!(video.len(), 1, "{me} has one consumer of {other}'s video");
            assert_eq!(consumers_of(&state, other, "audio").len(), 1, "{me} has one consumer of {other}'s audio");
            frames.push(video[0]["framesDecoded"].as_u64().unwrap_or(0));
        }
    }
    frames
}

/// Through the server's stats: each producer is consumed by every other peer, and at least one of
/// its consumers lives on another worker than the producer, fed by a pipe the router reports.
async fn media_crossed_workers(server: &Server, room: &str, peers: usize) {
    let stats = server.stats().await;
    let workers = stats["workers"].as_array().map_or(0, Vec::len);
    assert_eq!(workers, 2, "the room runs on 2 workers: {}", stats["workers"]);
    let room_stats = stats["rooms"].as_array().and_then(|r| r.iter().find(|r| r["id"] == room)).expect("room");
    let pipes: HashSet<(String, u64)> = room_stats["pipes"]
        .as_array()
        .expect("pipes")
        .iter()
        .map(|p| (p["producerId"].as_str().unwrap_or("").to_owned(), p["to"]["cell"].as_u64().unwrap_or(u64::MAX)))
        .collect();
    let all_peers = room_peers(&stats, room);
    assert_eq!(all_peers.len(), peers);
    let consumers: Vec<&Value> =
        all_peers.iter().flat_map(|p| p["consumers"].as_array().into_iter().flatten()).collect();
    for peer in &all_peers {
        for producer in peer["producers"].as_array().expect("producers") {
            let id = producer["id"].as_str().expect("producer id");
            let of_it: Vec<&&Value> = consumers.iter().filter(|c| c["producerId"] == id).collect();
            assert_eq!(of_it.len(), peers - 1, "every other peer consumes producer {id}");
            let crossing: Vec<u64> = of_it.iter().map(|c| cell(c)).filter(|c| *c != cell(producer)).collect();
            assert!(
                !crossing.is_empty(),
                "a consumer of {} producer {id} (cell {}) lives on another worker",
                peer["id"],
                cell(producer)
            );
            for target in crossing {
                assert!(pipes.contains(&(id.to_owned(), target)), "producer {id} is piped into cell {target}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_browsers_in_a_room_spread_over_two_workers() {
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[], &[("MAFALDA_POLICY", "spread"), ("MAFALDA_MAX_WORKERS", "2")]);
    let driver = ChromeDriver::start();
    let room = "four";
    let mut clients = Vec::new();
    for peer in FOUR {
        clients.push(join(&driver, &server, room, peer).await);
    }

    let frames = everyone_receives_everyone(&clients, &FOUR).await;
    println!("frames decoded per video track when all were past 50: {frames:?}");
    media_crossed_workers(&server, room, 4).await;

    // Simulcast: each camera goes out in 3 layers.
    let p2_state = page_state(&clients[1]).await;
    let p2_video = p2_state["snapshot"]["producers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["kind"] == "video"))
        .cloned()
        .expect("p2 publishes video");
    assert_eq!(p2_video["layers"], 3, "p2 sends 3 simulcast layers: {p2_video}");

    let shot = client_screenshot(&clients[0]).await;
    println!("screenshot of p1's page: {}", shot.display());

    // Chat over SCTP data channels (piped between workers where needed).
    page_call(&clients[0], "sendChat", vec![json!("hello from p1")]).await.expect("p1 sends");
    for (client, me) in clients.iter().zip(FOUR).skip(1) {
        wait_for(&format!("{me} reads p1's chat"), FLOW_WITHIN, || async {
            let state = page_state(client).await;
            let got = state["chat"].as_array().is_some_and(|c| c.iter().any(|m| m["text"] == "hello from p1"));
            if got {
                Ok(())
            } else {
                Err(format!("chat: {}", state["chat"]))
            }
        })
        .await;
    }

    // A producer pause reaches the consumers, and so does the resume.
    for (paused, action) in [(true, "pause"), (false, "resume")] {
        page_call(&clients[1], action, vec![json!("video")]).await.expect("p2 pauses/resumes its camera");
        for (client, me) in clients.iter().zip(FOUR).filter(|(_, me)| *me != "p2") {
            wait_for(&format!("{me} sees p2's camera {action}d"), FLOW_WITHIN, || async {
                let state = page_state(client).await;
                let flag = consumers_of(&state, "p2", "video").first().map(|c| c["producerPaused"].clone());
                if flag == Some(json!(paused)) {
                    Ok(())
                } else {
                    Err(format!("producerPaused = {flag:?}"))
                }
            })
            .await;
        }
    }

    // The server switches the spatial layer of p1's consumer of p2's camera: p1 decodes another
    // frame width.
    simulcast_layer_switch(&clients[0], "p1", "p2").await;

    // p4 closes its page: the others' consumers of its tracks close and the router forgets its
    // transports.
    let stats = server.stats().await;
    let p4 = room_peers(&stats, room).into_iter().find(|p| p["id"] == "p4").cloned().expect("p4 in stats");
    let p4_transports: Vec<String> = p4["transports"]
        .as_array()
        .expect("transports")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(p4_transports.len(), 2);
    let dump = server.dump(room).await;
    for transport in &p4_transports {
        assert!(dump_lists_transport(&dump, transport), "the router dump lists p4's transport {transport} first");
    }
    let p4_client = clients.pop().expect("p4");
    p4_client.close().await.expect("p4's browser closes");
    for (client, me) in clients.iter().zip(FOUR) {
        wait_for(&format!("{me}'s consumers of p4 closed"), FLOW_WITHIN, || async {
            let state = page_state(client).await;
            let left = consumers_of(&state, "p4", "video").len() + consumers_of(&state, "p4", "audio").len();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} consumers of p4 left"))
            }
        })
        .await;
    }
    wait_for("the router dump forgets p4's transports", FLOW_WITHIN, || async {
        let dump = server.dump(room).await;
        let listed: Vec<&String> = p4_transports.iter().filter(|t| dump_lists_transport(&dump, t)).collect();
        if listed.is_empty() {
            Ok(())
        } else {
            Err(format!("still listed: {listed:?}"))
        }
    })
    .await;
    let stats = server.stats().await;
    for peer in room_peers(&stats, room) {
        let left: Vec<&Value> = peer["consumers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| p4["producers"].as_array().into_iter().flatten().any(|p| p["id"] == c["producerId"]))
            .collect();
        assert!(left.is_empty(), "{} keeps no consumer of p4's producers on the server: {left:?}", peer["id"]);
    }
    for client in clients {
        client.close().await.expect("close browser");
    }
}

fn dump_lists_transport(dump: &Value, transport: &str) -> bool {
    dump["transportIds"].as_array().is_some_and(|ids| ids.iter().any(|id| id == transport))
}

/// Saves a PNG of the page (`$BROWSER_ROOM_SCREENSHOT`, or the test's target folder).
async fn client_screenshot(client: &fantoccini::Client) -> std::path::PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "Chromium returned a PNG");
    let path = std::env::var_os("BROWSER_ROOM_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-room-4-peers.png"));
    std::fs::write(&path, png).expect("write screenshot");
    path
}

/// The frame width `me` decodes from `other`'s camera.
async fn decoded_width(client: &fantoccini::Client, other: &str) -> (String, u64) {
    let state = page_state(client).await;
    let video = consumers_of(&state, other, "video");
    let consumer = video.first().expect("a consumer of the camera");
    (consumer["id"].as_str().unwrap_or("").to_owned(), consumer["frameWidth"].as_u64().unwrap_or(0))
}

async fn simulcast_layer_switch(client: &fantoccini::Client, me: &str, other: &str) {
    let set_layer = |consumer: String, spatial: u8| async move {
        page_call(
            client,
            "request",
            vec![json!("setConsumerPreferredLayers"), json!({ "consumerId": consumer, "spatialLayer": spatial })],
        )
        .await
        .expect("the server sets the preferred layers")
    };
    let (consumer, _) = decoded_width(client, other).await;
    set_layer(consumer.clone(), 2).await;
    let high = wait_for(&format!("{me} decodes {other}'s top layer"), FLOW_WITHIN, || async {
        let (_, width) = decoded_width(client, other).await;
        if width >= 480 {
            Ok(width)
        } else {
            Err(format!("width {width}"))
        }
    })
    .await;
    set_layer(consumer.clone(), 0).await;
    let low = wait_for(&format!("{me} decodes {other}'s lowest layer"), FLOW_WITHIN, || async {
        let (_, width) = decoded_width(client, other).await;
        if width > 0 && width * 2 <= high {
            Ok(width)
        } else {
            Err(format!("width {width} (top layer was {high})"))
        }
    })
    .await;
    set_layer(consumer, 2).await;
    wait_for(&format!("{me} decodes {other}'s top layer again"), FLOW_WITHIN, || async {
        let (_, width) = decoded_width(client, other).await;
        if width >= 2 * low {
            Ok(())
        } else {
            Err(format!("width {width} (lowest layer was {low})"))
        }
    })
    .await;
    println!("simulcast: {me} decoded {other}'s camera at {high} px wide, {low} px on layer 0, then back up");
}

/// Two consecutive ports free for UDP and TCP on 127.0.0.1 (one per worker).
fn two_free_ports() -> u16 {
    for _ in 0..50 {
        let base = free_port();
        let free = (0..2).all(|i| {
            let Some(port) = base.checked_add(i) else { return false };
            UdpSocket::bind(("127.0.0.1", port)).is_ok() && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no two consecutive free ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_through_webrtc_servers_one_port_per_worker() {
    let _serial = SERIAL.lock().await;
    let port = two_free_ports();
    let port_arg = port.to_string();
    let server = Server::start(
        &["--webrtc-server-port", &port_arg],
        &[("MAFALDA_POLICY", "spread"), ("MAFALDA_MAX_WORKERS", "2")],
    );
    let driver = ChromeDriver::start();
    let room = "servers";
    let mut clients = Vec::new();
    for peer in FOUR {
        clients.push(join(&driver, &server, room, peer).await);
    }
    let frames = everyone_receives_everyone(&clients, &FOUR).await;
    println!("WebRtcServer room: frames decoded per video track: {frames:?}");
    media_crossed_workers(&server, room, 4).await;
    // Every transport shares its worker's server ports.
    let stats = server.stats().await;
    let mut ports = HashSet::new();
    for peer in room_peers(&stats, room) {
        for transport in peer["transports"].as_array().expect("transports") {
            for candidate in transport["iceCandidates"].as_array().expect("candidates") {
                ports.insert(candidate["port"].as_u64().expect("port"));
            }
        }
    }
    // Worker slot k listens on port + k × 100 (the default `webrtc_server_port_stride`).
    let expected: HashSet<u64> = [u64::from(port), u64::from(port) + 100].into();
    assert_eq!(ports, expected, "8 transports over 2 workers use 2 server ports");
    for client in clients {
        client.close().await.expect("close browser");
    }
}

const THREE: [&str; 3] = ["p1", "p2", "p3"];

/// Every worker on two `mafalda-host serve` processes (127.0.0.50 and .51, no local worker):
/// browsers reach the hosts directly (ICE, DTLS, SRTP), producers are piped host to host. Then
/// the same room in its WebRtcServer mode: every transport uses its host's server port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_through_two_remote_hosts_with_and_without_webrtc_servers() {
    let _serial = SERIAL.lock().await;
    let nodes = [("room50", "127.0.0.50"), ("room51", "127.0.0.51")];
    let dir = cluster_dir("remote-hosts", &nodes);
    let host_port = "46300";
    let hosts: Vec<ServeHost> =
        nodes.iter().map(|(name, ip)| ServeHost::start(&dir, name, ip, &["--webrtc-server-port", host_port])).collect();
    let cluster = hosts.iter().map(|h| h.address.clone()).collect::<Vec<_>>().join(",");
    let ca = dir.join("ca.pem").display().to_string();
    let env = [
        ("MAFALDA_CLUSTER", cluster.as_str()),
        ("MAFALDA_CA", ca.as_str()),
        ("MAFALDA_MAX_WORKERS", "0"),
        ("MAFALDA_POLICY", "spread"),
    ];
    let driver = ChromeDriver::start();
    let host_ips: HashSet<&str> = nodes.iter().map(|(_, ip)| *ip).collect();
    for (room, args) in [("remote", vec![]), ("remote-servers", vec!["--webrtc-server-port", "45300"])] {
        let with_servers = !args.is_empty();
        let server = Server::start(&args, &env);
        let mut clients = Vec::new();
        for peer in THREE {
            clients.push(join(&driver, &server, room, peer).await);
        }
        let frames = everyone_receives_everyone(&clients, &THREE).await;
        println!("room {room} through remote hosts: frames decoded per video track: {frames:?}");
        media_crossed_workers(&server, room, THREE.len()).await;
        let stats = server.stats().await;
        for peer in room_peers(&stats, room) {
            for transport in peer["transports"].as_array().expect("transports") {
                // What mediasoup's transport knows once DTLS is up, read through the host.
                assert_eq!(transport["dtlsState"], "connected", "{transport}");
                assert!(matches!(transport["dtlsRole"].as_str(), Some("client" | "server")), "{transport}");
                for candidate in transport["iceCandidates"].as_array().expect("candidates") {
                    let address = candidate["address"].as_str().unwrap_or("");
                    assert!(host_ips.contains(address), "a candidate on a host's address: {candidate}");
                    if with_servers {
                        assert_eq!(candidate["port"].to_string(), host_port, "on its host's WebRTC server");
                    }
                }
            }
        }
        for client in clients {
            client.close().await.expect("close browser");
        }
    }
}

/// A small deterministic generator for garbage bytes.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A DTLS 1.2 ClientHello record (cookie-less, as a browser's first flight), with a random.
fn client_hello(noise: &mut Noise) -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd]; // client_version DTLS 1.2
    body.extend(noise.bytes(32)); // random
    body.push(0); // session id
    body.push(0); // cookie
    body.extend([0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // cipher suites
    body.extend([0x01, 0x00]); // compression: null
    body.extend([0x00, 0x00]); // no extensions
    let len = body.len() as u32;
    let mut handshake = vec![0x01]; // client_hello
    handshake.extend(&len.to_be_bytes()[1..]);
    handshake.extend([0x00, 0x00]); // message_seq
    handshake.extend([0x00, 0x00, 0x00]); // fragment_offset
    handshake.extend(&len.to_be_bytes()[1..]); // fragment_length
    handshake.extend(body);
    let mut record = vec![0x16, 0xfe, 0xff, 0x00, 0x00]; // handshake, DTLS 1.0 record, epoch 0
    record.extend(noise.bytes(6)); // sequence number
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// Throws garbage at a UDP port: random datagrams, truncated STUN and DTLS records, and a storm
/// of DTLS ClientHellos from many source ports.
fn storm_udp(target: std::net::SocketAddr, noise: &mut Noise) {
    let sockets: Vec<UdpSocket> = (0..16).map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind")).collect();
    for (i, socket) in sockets.iter().cycle().take(3000).enumerate() {
        let datagram = match i % 6 {
            0 => {
                let len = (noise.next() % 1500) as usize + 1;
                noise.bytes(len)
            }
            1 => {
                // STUN binding request header claiming 200 bytes of attributes, carrying 4.
                let mut stun = vec![0x00, 0x01, 0x00, 0xc8, 0x21, 0x12, 0xa4, 0x42];
                stun.extend(noise.bytes(12));
                stun.extend(noise.bytes(4));
                stun
            }
            2 => {
                // A STUN header alone, cut mid-transaction-id.
                vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02]
            }
            3 => {
                // A DTLS handshake record claiming 300 bytes, carrying 10.
                let mut dtls = vec![0x16, 0xfe, 0xfd, 0x00, 0x00, 0, 0, 0, 0, 0, 1, 0x01, 0x2c];
                dtls.extend(noise.bytes(10));
                dtls
            }
            4 => {
                // A ClientHello cut in half.
                let hello = client_hello(noise);
                hello[..hello.len() / 2].to_vec()
            }
            _ => client_hello(noise),
        };
        let _ = socket.send_to(&datagram, target);
    }
}

/// Garbage over the TCP port (RFC 4571 framing with absurd lengths, then raw bytes).
fn storm_tcp(target: std::net::SocketAddr, noise: &mut Noise) {
    use std::io::Write;
    for _ in 0..20 {
        if let Ok(mut stream) = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut frame = vec![0xff, 0xff];
            frame.extend(noise.bytes(512));
            let _ = stream.write_all(&frame);
            let _ = stream.write_all(&noise.bytes(2048));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_live_transport_ports_does_not_stop_the_room() {
    let _serial = SERIAL.lock().await;
    let mut server = Server::start(&[], &[("MAFALDA_POLICY", "spread"), ("MAFALDA_MAX_WORKERS", "2")]);
    let driver = ChromeDriver::start();
    let room = "garbage";
    let peers = ["g1", "g2"];
    let mut clients = Vec::new();
    for peer in peers {
        clients.push(join(&driver, &server, room, peer).await);
    }
    let state = wait_receiving(&clients[1], "g2", &["g1"], 50, 50).await;
    let before = consumers_of(&state, "g1", "video")[0]["framesDecoded"].as_u64().unwrap_or(0);

    let stats = server.stats().await;
    let mut targets = Vec::new();
    for peer in room_peers(&stats, room) {
        for transport in peer["transports"].as_array().expect("transports") {
            for candidate in transport["iceCandidates"].as_array().expect("candidates") {
                let address: std::net::SocketAddr =
                    format!("{}:{}", candidate["address"].as_str().expect("ip"), candidate["port"])
                        .parse()
                        .expect("candidate address");
                targets.push((candidate["protocol"].as_str().unwrap_or("udp").to_owned(), address));
            }
        }
    }
    assert!(targets.iter().any(|(p, _)| p == "udp") && targets.iter().any(|(p, _)| p == "tcp"));
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for (protocol, address) in &targets {
        if protocol == "udp" {
            storm_udp(*address, &mut noise);
        } else {
            storm_tcp(*address, &mut noise);
        }
    }
    assert!(server.alive(), "the host survived the garbage");

    // The room keeps flowing, both ways.
    wait_for("g2 keeps decoding g1 after the storm", FLOW_WITHIN, || async {
        let state = page_state(&clients[1]).await;
        let now = consumers_of(&state, "g1", "video").first().and_then(|c| c["framesDecoded"].as_u64()).unwrap_or(0);
        if now > before + 50 {
            Ok(())
        } else {
            Err(format!("{now} frames decoded (was {before})"))
        }
    })
    .await;
    wait_receiving(&clients[0], "g1", &["g2"], 50, 50).await;
    assert!(server.alive(), "the host is still up");
    for client in clients {
        client.close().await.expect("close browser");
    }
}

/// The worker process serving a cell, from the server's stats.
fn pid_of_cell(stats: &Value, cell: u64) -> i32 {
    let workers = stats["workers"].as_array().expect("workers");
    let worker = workers.iter().find(|w| w["id"].as_u64() == Some(cell)).expect("the cell's worker");
    let pid = worker["process"]["pid"].as_i64().unwrap_or_else(|| panic!("a worker process: {worker}"));
    i32::try_from(pid).expect("pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_browsers_over_two_worker_processes_rejoin_when_one_dies() {
    let _serial = SERIAL.lock().await;
    // Two workers, each its own process; the packer fills one with four transports (two peers)
    // before the next, so p1 and p2 share one worker process and p3 and p4 the other.
    let config = std::env::temp_dir().join(format!("browser-room-isolation-{}.toml", std::process::id()));
    std::fs::write(&config, "[placement]\nmax_transports = 4\n").expect("config");
    let bin = mafalda_host_binary();
    let server = Server::start(
        &[],
        &[
            ("MAFALDA_ISOLATION", "process"),
            ("MAFALDA_WORKER_BIN", bin.to_str().expect("utf-8")),
            ("MAFALDA_POLICY", "pack"),
            ("MAFALDA_MAX_WORKERS", "2"),
            ("MAFALDA_CONFIG", config.to_str().expect("utf-8")),
        ],
    );
    let driver = ChromeDriver::start();
    let room = "isolated";
    let mut clients = Vec::new();
    for peer in FOUR {
        clients.push(join(&driver, &server, room, peer).await);
    }
    everyone_receives_everyone(&clients, &FOUR).await;
    let stats = server.stats().await;
    let cells_of = |peer: &str| -> HashSet<u64> {
        let peers = room_peers(&stats, room);
        let entry = peers.iter().find(|p| p["id"] == peer).expect("peer in stats");
        entry["transports"].as_array().expect("transports").iter().map(cell).collect()
    };
    let (first, second) = (cells_of("p1"), cells_of("p3"));
    assert_eq!(first.len(), 1, "p1's transports share a worker");
    assert_eq!(cells_of("p2"), first, "p1 and p2 share a worker");
    assert_eq!(cells_of("p4"), second, "p3 and p4 share the other");
    assert_ne!(first, second);
    let victim = *second.iter().next().expect("cell");
    let pid = pid_of_cell(&stats, victim);

    // SAFETY: kill has no memory effects; the pid is the server's worker process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "the worker process of p3 and p4 is killed");
    let killed = std::time::Instant::now();
    // p1 and p2 keep decoding each other meanwhile.
    for (client, me, other) in [(&clients[0], "p1", "p2"), (&clients[1], "p2", "p1")] {
        let now = page_state(client).await;
        let frames = consumers_of(&now, other, "video").first().and_then(|c| c["framesDecoded"].as_u64()).unwrap_or(0);
        wait_receiving(client, me, &[other], frames + 10, 0).await;
    }
    // p3 and p4 are told to join again; within 10 s everyone decodes everyone again.
    for (client, me) in clients.iter().zip(FOUR) {
        let left = Duration::from_secs(10).saturating_sub(killed.elapsed());
        wait_for(&format!("{me} decodes everyone again"), left, || async {
            let state = page_state(client).await;
            for other in others(me, &FOUR) {
                let decoded = consumers_of(&state, other, "video")
                    .iter()
                    .filter_map(|c| c["framesDecoded"].as_u64())
                    .max()
                    .unwrap_or(0);
                if decoded < 5 {
                    return Err(format!("{decoded} frames of {other}"));
                }
            }
            Ok(())
        })
        .await;
    }
    println!("all four decode again {:?} after the worker process was killed", killed.elapsed());
    let stats = server.stats().await;
    let workers = stats["workers"].as_array().map_or(0, Vec::len);
    assert_eq!(workers, 2, "a replacement worker process serves: {}", stats["workers"]);
    let _ = std::fs::remove_file(&config);
    for client in clients {
        client.close().await.expect("close browser");
    }
}
