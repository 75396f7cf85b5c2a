//! Test harness: the browser-room server as a child process, ChromeDriver, and headless
//! Chromium peers (Debian's `chromium` and `chromium-driver`, installed by scripts/bootstrap)
//! driven over WebDriver. Every wait is bounded.

#![allow(dead_code)]

mod hosts;

pub use hosts::*;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a browser gets to start and a page to load and publish.
pub const JOIN_WITHIN: Duration = Duration::from_secs(60);
/// How long media gets to flow as asserted.
pub const FLOW_WITHIN: Duration = Duration::from_secs(90);

/// Chromium flags: headless, fake camera and microphone (no prompt), loopback ICE allowed, no
/// background traffic (the machine reaches no other network).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=1280,800",
];

/// A free TCP port on 127.0.0.1 (bound, then released for a child process to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The browser-room server, killed when dropped.
/// The running server's process id, for [`server_threads`].
static SERVER_PID: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);

/// Every thread's stack of the running server (gdb, bounded to 60 s), so that a check that
/// times out shows where the server was; empty when gdb is not installed.
pub fn server_threads() -> String {
    let Some(pid) = *SERVER_PID.lock().unwrap_or_else(std::sync::PoisonError::into_inner) else {
        return String::new();
    };
    let output = Command::new("timeout")
        .args(["60", "gdb", "-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt 25"])
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(error) => format!("(no thread dump: {error})"),
    }
}

/// One browser room at a time: four Chromium peers already fill two cores, and the tests'
/// deadlines are set for one room.
static ONE_ROOM_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<bytes::Bytes>,
    >,
    /// Held while this server's test runs (released after the server is stopped).
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Server {
    /// Starts the server with extra arguments and environment; waits for its URL line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let turn = ONE_ROOM_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut command = Command::new(env!("CARGO_BIN_EXE_browser-room"));
        command.process_group(0);
        command.args(["--listen", "127.0.0.1:0"]).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
        command.env(
            "RUST_LOG",
            std::env::var("BROWSER_ROOM_LOG")
                .unwrap_or_else(|_| "browser_room=info,mafalda_host=warn,mediasoup=error".into()),
        );
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start browser-room");
        *SERVER_PID.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child.id());
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("browser-room: open ") {
                    let _ = tx.send(url.to_owned());
                }
                println!("[server] {line}");
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).expect("browser-room printed its URL within 60 s");
        let base = url.split("/?").next().expect("base URL").to_owned();
        // A fresh connection per request: a pooled keep-alive connection the server is closing
        // must not be what a check waits on.
        let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        Self { child, base, http, _turn: turn }
    }

    /// The page URL for `peer` in `room`.
    pub fn page(&self, room: &str, peer: &str) -> String {
        // 15 fps: four encoders of 3 simulcast layers and twelve decoders share two cores.
        format!("{}/?room={room}&peer={peer}&name={peer}&fps=15", self.base)
    }

    /// GETs a JSON endpoint.
    pub async fn get_json(&self, path: &str) -> Value {
        use http_body_util::BodyExt;
        let uri: hyper::Uri = format!("{}{path}", self.base).parse().expect("uri");
        // Two cores shared by four browsers can starve one request; a server that stopped
        // answering fails all three (30 s).
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            match tokio::time::timeout(Duration::from_secs(10), self.http.get(uri.clone())).await {
                Ok(response) => break response.expect("HTTP request"),
                Err(_) if attempts < 3 => println!("GET {path}: no answer within 10 s, asking again"),
                Err(_) => {
                    println!("server threads when GET {path} got no answer:\n{}", server_threads());
                    panic!("GET {path}: no answer in {attempts} attempts of 10 s")
                }
            }
        };
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        let body = response.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&body).expect("JSON body")
    }

    /// The stats endpoint.
    pub async fn stats(&self) -> Value {
        self.get_json("/api/stats").await
    }

    /// The room's router dump.
    pub async fn dump(&self, room: &str) -> Value {
        self.get_json(&format!("/api/rooms/{room}/dump")).await
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// ChromeDriver, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts `chromedriver` and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Its own process group: dropping it kills the browsers it started too, also when
            // a test panics before closing them.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (Debian package chromium-driver; run scripts/bootstrap)");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {address} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// A new headless Chromium (its own profile) showing `url`.
    pub async fn open(&self, url: &str) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities
            .insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": CHROMIUM_ARGS }));
        let client = tokio::time::timeout(
            JOIN_WITHIN,
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{}", self.port)),
        )
        .await
        .expect("Chromium started within the join limit")
        .expect("WebDriver session");
        client.goto(url).await.expect("page loaded");
        client
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills a child started with `process_group(0)` and everything in its group.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The page's state: `{status, snapshot, chat}` of `window.mafaldaRoom`.
pub async fn page_state(client: &Client) -> Value {
    client
        .execute(
            "const r = window.mafaldaRoom; return r ? {status: r.status, snapshot: r.snapshot, chat: r.chat} : null;",
            vec![],
        )
        .await
        .unwrap_or(Value::Null)
}

/// Calls an async method of `window.mafaldaRoom` in the page and returns its result.
pub async fn page_call(client: &Client, method: &str, args: Vec<Value>) -> Result<Value, String> {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         Promise.resolve(window.mafaldaRoom.{method}(...Array.from(arguments).slice(0, -1)))
           .then((v) => done({{ok: v === undefined ? null : v}}), (e) => done({{error: String(e && e.message || e)}}));"
    );
    let answer = client.execute_async(&script, args).await.map_err(|e| e.to_string())?;
    match answer.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(answer.get("ok").cloned().unwrap_or(Value::Null)),
    }
}

/// Polls `probe` every 250 ms until it returns `Some`, for at most `limit` (the browser has no
/// event to push to the test, so this is the bounded way to wait for a page condition).
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let why = match probe().await {
            Ok(value) => return value,
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            println!("server threads when '{what}' timed out:\n{}", server_threads());
            panic!("{what}: not reached within {limit:?}; last: {why}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Opens a peer's page and waits until it publishes camera, microphone and chat.
pub async fn join(driver: &ChromeDriver, server: &Server, room: &str, peer: &str) -> Client {
    let client = driver.open(&server.page(room, peer)).await;
    wait_for(&format!("{peer} publishing"), JOIN_WITHIN, || async {
        let state = page_state(&client).await;
        let status = state["status"].as_str().unwrap_or("").to_owned();
        if status.starts_with("error") {
            panic!("{peer}: {status}");
        }
        if status == "publishing" {
            Ok(())
        } else {
            Err(format!("status {status:?}"))
        }
    })
    .await;
    client
}

/// The consumers of `state`'s snapshot whose producer belongs to `peer` and have `kind`.
pub fn consumers_of<'a>(state: &'a Value, peer: &str, kind: &str) -> Vec<&'a Value> {
    state["snapshot"]["consumers"]
        .as_array()
        .map(|all| all.iter().filter(|c| c["peerId"] == peer && c["kind"] == kind).collect())
        .unwrap_or_default()
}

/// Waits until `client` decodes more than `frames` video frames and receives more than
/// `packets` audio packets from each of `others`; returns the state then.
pub async fn wait_receiving(client: &Client, me: &str, others: &[&str], frames: u64, packets: u64) -> Value {
    wait_for(&format!("{me} receiving from {others:?}"), FLOW_WITHIN, || async {
        let state = page_state(client).await;
        for other in others {
            let video = consumers_of(&state, other, "video");
            let audio = consumers_of(&state, other, "audio");
            let decoded = video.first().and_then(|c| c["framesDecoded"].as_u64()).unwrap_or(0);
            let heard = audio.first().and_then(|c| c["packetsReceived"].as_u64()).unwrap_or(0);
            if decoded <= frames || heard <= packets {
                return Err(format!("from {other}: {decoded} frames decoded, {heard} audio packets"));
            }
        }
        Ok(state)
    })
    .await
}

/// Every peer of `room` in the server's stats, by id.
pub fn room_peers<'a>(stats: &'a Value, room: &str) -> Vec<&'a Value> {
    stats["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["id"] == room))
        .and_then(|r| r["peers"].as_array())
        .map(|peers| peers.iter().collect())
        .unwrap_or_default()
}
