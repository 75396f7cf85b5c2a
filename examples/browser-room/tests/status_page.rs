//! The operations status page of `mafalda-host --admin`: the demo (one room spread over two
//! worker processes, piped) serves `/status` and `/`; headless Chromium shows one card per cell
//! with a measured and a predicted load bar, and the room; the screenshot is kept in
//! `docs/status-page.png`.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the demo gets to start its workers, its room and its pipes.
const DEMO_UP_WITHIN: Duration = Duration::from_secs(60);
/// How long the page gets to render what `/status` says.
const PAGE_WITHIN: Duration = Duration::from_secs(30);

/// `mafalda-host demo --admin`, its process group (the worker processes) killed when dropped.
struct Demo {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
}

impl Demo {
    fn start(workers: usize, consumers_per_worker: usize) -> Self {
        let admin = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(mafalda_host_binary())
            .args(["demo", "--workers", &workers.to_string()])
            .args(["--consumers-per-worker", &consumers_per_worker.to_string()])
            .args(["--admin", &admin, "--duration", "120"])
            .env("RUST_LOG", "info")
            .env_remove("MAFALDA_CLUSTER")
            .env_remove("MAFALDA_MAX_WORKERS")
            .env_remove("MAFALDA_CONFIG")
            .env_remove("MAFALDA_POLICY")
            .env_remove("MAFALDA_ISOLATION")
            // Its own process group: dropping it kills its worker processes too.
            .process_group(0)
            // The demo's live table (stdout) is not read.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mafalda-host demo");
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Warnings, errors, the admin server's lines, and what is no log line (clap's
                // usage errors, panics).
                if !line.contains(" INFO ") || line.contains("admin") {
                    println!("[demo] {line}");
                }
            }
        });
        Self { child, base: format!("http://{admin}") }
    }

    /// Panics when the demo has exited (a wait for it would only time out).
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("mafalda-host demo exited early: {status}");
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the demo's own process group; no memory is shared.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url` and parses its JSON body; every failure (no answer within 5 s included) is an `Err`.
async fn get_json(url: &str) -> Result<Value, String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|_| format!("GET {url}: no answer within 5 s"))?
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .map_err(|_| format!("GET {url}: body not complete within 5 s"))?
        .map_err(|e| format!("GET {url}: body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("GET {url}: {status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// An id as the page writes it into `data-cell`: a string as is, a number in decimal.
fn id_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_owned)
}

/// The cell ids of a `/status` answer, sorted.
fn cell_ids(status: &Value) -> Vec<String> {
    let mut ids: Vec<String> = status["stats"]["cells"]
        .as_array()
        .map(|cells| cells.iter().map(|c| id_text(&c["id"])).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// A bar fill's `style.width` as a percentage in 0..=100.
fn percentage(width: &Value) -> Result<f64, String> {
    let text = width.as_str().ok_or_else(|| format!("no width: {width}"))?;
    let value: f64 = text
        .trim()
        .strip_suffix('%')
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("width {text:?} is not a percentage"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("width {text:?} is outside 0..100%"))
    }
}

/// What the page shows: each `.cell`'s id and its bars' widths, and the number of `.room` rows.
const READ_PAGE: &str = r#"
    const width = (cell, kind) => {
        const fill = cell.querySelector(`.bar.${kind} .fill`);
        return fill ? fill.style.width : null;
    };
    return {
        cells: Array.from(document.querySelectorAll('.cell')).map((cell) => ({
            id: cell.getAttribute('data-cell'),
            measured: width(cell, 'measured'),
            predicted: width(cell, 'predicted'),
        })),
        rooms: document.querySelectorAll('.room').length,
    };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_cells_load_bars_and_rooms() {
    let mut demo = Demo::start(2, 2);
    let status_url = format!("{}/status", demo.base);

    let status = wait_for("/status reporting 2 cells and a room", DEMO_UP_WITHIN, || {
        demo.assert_running();
        let url = status_url.clone();
        async move {
            let status = get_json(&url).await?;
            let cells = status["stats"]["cells"].as_array().map_or(0, Vec::len);
            let routers = status["stats"]["routers"].as_array().map_or(0, Vec::len);
            if cells == 2 && routers >= 1 {
                Ok(status)
            } else {
                Err(format!("{cells} cells, {routers} routers"))
            }
        }
    })
    .await;
    println!("/status: {status}");

    let driver = ChromeDriver::start();
    let client = driver.open(&format!("{}/", demo.base)).await;
    wait_for("the page shows every cell with both load bars, and a room", PAGE_WITHIN, || {
        demo.assert_running();
        let (client, url) = (&client, status_url.clone());
        async move {
            let page = client.execute(READ_PAGE, vec![]).await.map_err(|e| format!("read the page: {e}"))?;
            // The cells /status reports now (the page follows it within a second).
            let expected = cell_ids(&get_json(&url).await?);
            let cells = page["cells"].as_array().cloned().unwrap_or_default();
            let mut shown: Vec<String> = cells.iter().map(|c| id_text(&c["id"])).collect();
            shown.sort();
            if shown != expected {
                return Err(format!("cells shown {shown:?}, /status has {expected:?}"));
            }
            for cell in &cells {
                for kind in ["measured", "predicted"] {
                    percentage(&cell[kind]).map_err(|e| format!("cell {}: {kind} bar: {e}", cell["id"]))?;
                }
            }
            match page["rooms"].as_u64() {
                Some(rooms) if rooms >= 1 => Ok(()),
                rooms => Err(format!("{rooms:?} .room rows")),
            }
        }
    })
    .await;

    let png = tokio::time::timeout(Duration::from_secs(30), client.screenshot())
        .await
        .expect("Chromium took the screenshot within 30 s")
        .expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is a PNG");
    assert!(png.len() > 10 * 1024, "the screenshot is not blank: {} bytes", png.len());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/status-page.png");
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("status page screenshot: {} ({} bytes)", path.display(), png.len());
    client.close().await.expect("close browser");
}
