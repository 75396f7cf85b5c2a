//! The admin HTTP server (`serve --admin ADDR`, default 127.0.0.1:9464): `/metrics`
//! (OpenMetrics), `/healthz`, `/readyz`, `/status` (JSON), `/` (the live status page), and the
//! actions `POST /drain`, `/undrain`, `/plugins/reload` (see [`auth`]).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (more are closed on accept), each
//! living at most [`CONNECTION_LIFETIME`], with [`HEADER_WITHIN`] to send its request headers.

pub mod auth;
pub mod client;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mafalda_host::ops::metrics::Format;
use mafalda_host::ops::Operations;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// Default address of the admin server.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest life of one connection.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Time a connection has to send its request headers.
pub const HEADER_WITHIN: Duration = Duration::from_secs(10);

/// The live status page (one static file; it reads `/status` every second).
const STATUS_PAGE: &str = include_str!("status.html");

/// How the admin server is configured.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token admin actions need (then from any address); without one, actions are
    /// accepted from loopback only.
    pub token: Option<String>,
}

/// `--admin`: an address, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAddr(pub Option<SocketAddr>);

/// Parses `--admin`: an address, or `off`.
pub fn parse_addr(text: &str) -> Result<AdminAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(AdminAddr(None));
    }
    text.parse().map(|addr| AdminAddr(Some(addr))).map_err(|_| format!("'{text}' is not ADDR:PORT or off"))
}

#[derive(Clone)]
struct Admin {
    ops: Arc<Operations>,
    token: Option<Arc<str>>,
}

/// The caller's address (set per connection).
#[derive(Clone, Copy)]
struct Peer(IpAddr);

/// The admin server's socket, bound before the host starts (a taken port fails the start
/// before any worker runs).
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    token: Option<String>,
}

/// Binds the admin server's address.
pub async fn bind(options: AdminOptions) -> anyhow::Result<Bound> {
    let listener = tokio::net::TcpListener::bind(options.addr).await.map_err(|e| {
        anyhow::anyhow!("cannot open the admin server on {} ({e}); --admin off disables it", options.addr)
    })?;
    if !options.addr.ip().is_loopback() && options.token.is_none() {
        warn!(
            admin = %options.addr,
            "the admin server listens beyond loopback without --admin-token: its actions are accepted from \
             loopback peers only, which in a service mesh includes the sidecar; set MAFALDA_ADMIN_TOKEN"
        );
    }
    Ok(Bound { listener, token: options.token })
}

/// Serves the bound admin server on the current runtime until the runtime ends.
pub fn start(ops: Arc<Operations>, bound: Bound) -> anyhow::Result<SocketAddr> {
    let Bound { listener, token } = bound;
    let local = listener.local_addr()?;
    let admin = Admin { ops, token: token.map(Into::into) };
    let router = Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/drain", post(drain))
        .route("/undrain", post(undrain))
        .route("/plugins/reload", post(reload))
        .with_state(admin);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    info!(admin = %local, "admin server up: /metrics /healthz /readyz /status /");
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "admin server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                warn!(%peer, "admin server: {MAX_CONNECTIONS} connections open; connection closed");
                continue;
            };
            let service = TowerToHyperService::new(router.clone().layer(Extension(Peer(peer.ip()))));
            tokio::spawn(async move {
                // One request per connection: an idle keep-alive never holds a slot.
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_WITHIN)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                drop(permit);
            });
        }
    });
    Ok(local)
}

async fn page() -> Html<&'static str> {
    Html(STATUS_PAGE)
}

async fn status(State(admin): State<Admin>) -> Response {
    Json(admin.ops.status()).into_response()
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the Prometheus text format.
async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match admin.ops.metrics(format) {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded").into_response(),
    }
}

/// How long the host has to answer a liveness check.
pub const HEALTH_WITHIN: Duration = Duration::from_secs(2);

/// Alive: the host answers (its cells' lock and the stats path complete within
/// [`HEALTH_WITHIN`] on a blocking thread) and can still recover (not every worker slot is
/// down after a crash loop with no worker serving: then only a restart helps).
async fn healthz(State(admin): State<Admin>) -> Response {
    let ops = Arc::clone(&admin.ops);
    let check = tokio::task::spawn_blocking(move || ops.liveness());
    match tokio::time::timeout(HEALTH_WITHIN, check).await {
        Ok(Ok(Ok(()))) => Json(json!({ "status": "ok" })).into_response(),
        Ok(Ok(Err(why))) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "failing", "reason": why }))).into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "failing", "reason": format!("the host did not answer within {HEALTH_WITHIN:?}") })),
        )
            .into_response(),
    }
}

async fn readyz(State(admin): State<Admin>) -> Response {
    let readiness = admin.ops.readiness();
    let code = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(readiness)).into_response()
}

/// Refuses an action the caller may not ask for: one a browser sends for a web page (an
/// `Origin`, or `Sec-Fetch-Site` other than `same-origin`: a page may not drain the host from
/// a user's browser on the machine), one addressed by a host name other than `localhost` (DNS
/// rebinding), then the address or token rule of [`auth::check`].
fn refused(admin: &Admin, peer: Peer, headers: &HeaderMap) -> Option<Response> {
    let forbidden = |why: &str| Some((StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response());
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if headers.contains_key(header::ORIGIN) || fetch_site.is_some_and(|site| site != "same-origin") {
        warn!(peer = %peer.0, "admin action from a web page refused");
        return forbidden("admin actions are not accepted from web pages");
    }
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        if !auth::host_is_address(host) {
            warn!(peer = %peer.0, %host, "admin action for a host name refused");
            return forbidden("admin actions are addressed to an IP address or localhost");
        }
    }
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let refusal = auth::check(peer.0, authorization, admin.token.as_deref()).err()?;
    warn!(peer = %peer.0, ?refusal, "admin action refused");
    let code = match refusal {
        auth::Refusal::NotLoopback => StatusCode::FORBIDDEN,
        auth::Refusal::BadToken => StatusCode::UNAUTHORIZED,
    };
    Some((code, Json(json!({ "error": refusal.message() }))).into_response())
}

async fn drain(State(admin): State<Admin>, Extension(peer): Extension<Peer>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&admin, peer, &headers) {
        return refusal;
    }
    let started = admin.ops.drain(&format!("POST /drain from {}", peer.0));
    (StatusCode::ACCEPTED, Json(json!({ "draining": true, "started": started }))).into_response()
}

async fn undrain(State(admin): State<Admin>, Extension(peer): Extension<Peer>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&admin, peer, &headers) {
        return refusal;
    }
    match admin.ops.undrain(&format!("POST /undrain from {}", peer.0)) {
        Ok(ended) => Json(json!({ "draining": false, "ended": ended })).into_response(),
        Err(why) => (StatusCode::CONFLICT, Json(json!({ "error": why }))).into_response(),
    }
}

async fn reload(State(admin): State<Admin>, Extension(peer): Extension<Peer>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&admin, peer, &headers) {
        return refusal;
    }
    info!(peer = %peer.0, "plugins reload asked");
    let ops = Arc::clone(&admin.ops);
    match tokio::task::spawn_blocking(move || ops.reload_plugins()).await {
        Ok(results) => {
            let failed = results.iter().any(|(_, error)| error.is_some());
            let results: Vec<_> =
                results.into_iter().map(|(plugin, error)| json!({ "plugin": plugin, "error": error })).collect();
            let code = if failed { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
            (code, Json(json!({ "reloaded": results }))).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the reload failed").into_response(),
    }
}
