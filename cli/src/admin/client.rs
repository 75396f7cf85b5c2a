//! The admin server's client side: `mafalda-host drain --admin ADDR` posts an action.

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// How long an action may take end to end.
pub const ACTION_WITHIN: Duration = Duration::from_secs(30);

/// POSTs `path` to the admin server at `addr` (with `token` as a bearer token); returns the
/// response body, or fails with the server's answer.
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<String> {
    tokio::time::timeout(ACTION_WITHIN, post_now(addr, path, token))
        .await
        .with_context(|| format!("the admin server at {addr} did not answer within {ACTION_WITHIN:?}"))?
}

async fn post_now(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the admin server at {addr}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::post(path).header(hyper::header::HOST, addr.to_string());
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = sender.send_request(request.body(Empty::<Bytes>::new())?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        bail!("{addr}{path}: {status}: {body}");
    }
    Ok(body)
}
