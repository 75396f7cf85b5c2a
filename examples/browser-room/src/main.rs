//! browser-room: a video room for browsers. A mediasoup signalling server (JSON over one
//! WebSocket per page) written against the `mediasoup` crate's API and built against
//! mafalda-host with the Cargo rename, so the room spreads over every core. It serves the page
//! (mediasoup-client, bundled with esbuild by `build.rs`) and a stats endpoint showing which
//! worker serves each consumer.
//!
//! `cargo run --release -p browser-room`, then open the printed URL in a few browser tabs.

mod page;
mod peer;
mod room;
mod session;
mod signal;
mod stats;

use anyhow::Context;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use mediasoup::prelude::*;
use room::{MediaListen, Rooms};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Largest signalling message accepted from a page.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Parser)]
#[command(version, about = "A browser video room on mafalda-host (mediasoup's API over every core)")]
struct Args {
    /// Address of the page, the WebSocket and the stats endpoint (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// IP the WebRTC transports listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    rtc_ip: IpAddr,
    /// Address given to browsers in ICE candidates instead of --rtc-ip (a public IP or name).
    #[arg(long)]
    announced_address: Option<String>,
    /// Share one UDP and one TCP port per worker (a WebRtcServer, as production deployments do),
    /// starting at this port, instead of a port per transport.
    #[arg(long)]
    webrtc_server_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct Join {
    room: String,
    peer: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,mediasoup=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let listen = MediaListen { ip: args.rtc_ip, announced_address: args.announced_address.clone() };

    let worker_manager = WorkerManager::new();
    let worker =
        worker_manager.create_worker(WorkerSettings::default()).await.context("starting the mediasoup worker")?;
    let webrtc_server = match args.webrtc_server_port {
        Some(port) => {
            let infos = WebRtcServerListenInfos::new(listen.info(Protocol::Udp, Some(port)))
                .insert(listen.info(Protocol::Tcp, Some(port)));
            let server = worker
                .create_webrtc_server(WebRtcServerOptions::new(infos))
                .await
                .with_context(|| format!("creating the WebRtcServer on port {port}"))?;
            Some(server)
        }
        None => None,
    };
    let rooms = Arc::new(Rooms::new(worker, webrtc_server, listen));

    let app = Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/ws", get(websocket))
        .route("/api/stats", get(stats_endpoint))
        .route("/api/rooms/{room}/dump", get(dump_endpoint))
        .with_state(Arc::clone(&rooms));
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr()?;
    // Tests and users read this line.
    println!("browser-room: open http://{address}/?room=lobby");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

async fn websocket(ws: WebSocketUpgrade, State(rooms): State<Arc<Rooms>>, Query(join): Query<Join>) -> Response {
    if join.room.is_empty() || join.peer.is_empty() || join.room.len() > 64 || join.peer.len() > 64 {
        return (StatusCode::BAD_REQUEST, "room and peer must be 1 to 64 characters").into_response();
    }
    ws.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| session::serve(socket, rooms, join.room, join.peer))
}

async fn stats_endpoint(State(rooms): State<Arc<Rooms>>) -> Json<serde_json::Value> {
    Json(stats::snapshot(&rooms))
}

async fn dump_endpoint(State(rooms): State<Arc<Rooms>>, Path(room): Path<String>) -> Response {
    let Some(room) = rooms.get(&room) else {
        return (StatusCode::NOT_FOUND, "no such room").into_response();
    };
    match room.router.dump().await {
        Ok(dump) => Json(dump).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}
