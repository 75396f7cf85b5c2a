//! One page's WebSocket: admits the peer to its room, carries requests to the room and the
//! room's messages to the page, and makes the peer leave when the socket closes.

use crate::peer::Peer;
use crate::room::{Room, Rooms};
use crate::signal::{ClientRequest, Envelope};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

/// WebSocket close code for a refused peer (policy violation).
const REFUSED: u16 = 1008;

/// Serves one page until its socket closes.
pub async fn serve(mut socket: WebSocket, rooms: Arc<Rooms>, room_id: String, peer_id: String) {
    let room = match rooms.room(&room_id).await {
        Ok(room) => room,
        Err(reason) => return refuse(socket, reason).await,
    };
    let (out, mut outgoing) = mpsc::unbounded_channel();
    let peer = Arc::new(Peer::new(peer_id, out));
    if let Err(reason) = room.enter(Arc::clone(&peer)) {
        return refuse(socket, reason).await;
    }
    tracing::info!(room = %room.id, peer = %peer.id, "peer connected");
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => on_text(&room, &peer, text.as_str()).await,
                Some(Ok(Message::Binary(_))) => peer.send(error_notification("binary messages are not part of the protocol")),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            Some(envelope) = outgoing.recv() => {
                let text = match serde_json::to_string(&envelope) {
                    Ok(text) => text,
                    Err(error) => { tracing::error!(%error, "unserializable message"); continue; }
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    room.leave(&peer);
}

async fn refuse(mut socket: WebSocket, reason: String) {
    tracing::warn!(%reason, "peer refused");
    let _ = socket.send(Message::Text(error_text(&reason).into())).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: REFUSED, reason: reason.into() }))).await;
}

fn error_notification(reason: &str) -> Envelope {
    Envelope::Notification { method: "error".into(), data: json!({ "reason": reason }) }
}

fn error_text(reason: &str) -> String {
    serde_json::to_string(&error_notification(reason)).unwrap_or_default()
}

/// One message from the page.
async fn on_text(room: &Arc<Room>, peer: &Arc<Peer>, text: &str) {
    let envelope = match serde_json::from_str::<Envelope>(text) {
        Ok(envelope) => envelope,
        Err(error) => return peer.send(error_notification(&format!("malformed message: {error}"))),
    };
    match envelope {
        Envelope::Request { id, method, data } => {
            tracing::debug!(room = %room.id, peer = %peer.id, id, %method, %data, "request");
            let data = if data.is_null() { json!({}) } else { data };
            let parsed = serde_json::from_value::<ClientRequest>(json!({ "method": method, "data": data }));
            let outcome = match parsed {
                Ok(request) => room.handle(peer, request).await,
                Err(error) => Err(format!("bad request {method}: {error}")),
            };
            match outcome {
                Ok((data, follow_up)) => {
                    peer.send(Envelope::Response { id, ok: true, data, error: None });
                    if let Some(follow_up) = follow_up {
                        let (room, peer) = (Arc::clone(room), Arc::clone(peer));
                        tokio::spawn(async move { room.follow_up(&peer, follow_up).await });
                    }
                }
                Err(error) => {
                    tracing::warn!(room = %room.id, peer = %peer.id, %method, %error, "request failed");
                    peer.send(Envelope::Response { id, ok: false, data: Value::Null, error: Some(error) });
                }
            }
        }
        Envelope::Response { id, ok, data, error } => {
            peer.answered(id, if ok { Ok(data) } else { Err(error.unwrap_or_else(|| "refused".into())) });
        }
        Envelope::Notification { method, .. } => {
            tracing::debug!(room = %room.id, peer = %peer.id, %method, "notification from the page ignored");
        }
    }
}
