//! `token-auth`: grants operations to holders of a token signed with HMAC-SHA256.
//!
//! A token is `base64url(claims) "." base64url(hmac_sha256(secret, claims))` where the claims
//! are `sub=<base64url(identity)>&room=<base64url(room or *)>&exp=<unix seconds>`: identity and
//! room are encoded, so no identity can smuggle in a claim (`x&room=*` stays an identity), and a
//! token must carry each claim exactly once. The MAC is compared in constant time
//! (`hmac::Mac::verify_slice`). An operation on a room is granted when the signature is valid,
//! the token has not expired and its room claim is that room (or `*`). Configuration: `secret`
//! (required; give it as `token-auth.secret=@file:PATH` so no other plugin and no `ps` sees it),
//! `leeway_secs` (clock skew allowed, default 0), `admins` (comma-separated identities allowed
//! operator actions such as worker log settings; default none). A room-scoped token acts only on
//! routers labelled with its room.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use mafalda_plugin_sdk::prelude::*;
use sha2::Sha256;
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

struct Settings {
    secret: Vec<u8>,
    leeway: u64,
    /// Identities allowed operator actions (worker log settings).
    admins: Vec<String>,
}

static SETTINGS: Mutex<Option<Settings>> = Mutex::new(None);

fn mac(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// Mints a token (for operators and tests): `identity` may use `room` until `expires_unix`.
pub fn mint(secret: &[u8], identity: &str, room: &str, expires_unix: u64) -> String {
    let claims =
        format!("sub={}&room={}&exp={expires_unix}", URL_SAFE_NO_PAD.encode(identity), URL_SAFE_NO_PAD.encode(room));
    let mut signature = mac(secret);
    signature.update(claims.as_bytes());
    let tag = signature.finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(claims), URL_SAFE_NO_PAD.encode(tag))
}

/// The claims of a verified token.
struct Claims {
    identity: String,
    room: String,
    expires: u64,
}

fn decoded(value: &str) -> Result<String, Denial> {
    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| Denial::new("malformed claim"))?;
    String::from_utf8(bytes).map_err(|_| Denial::new("malformed claim"))
}

/// The claims of a token whose signature verifies under `secret` (MAC compared in constant
/// time): exactly `sub`, `room` and `exp`, once each.
fn verify(secret: &[u8], token: &str) -> Result<Claims, Denial> {
    let (body, tag) = token.split_once('.').ok_or_else(|| Denial::new("malformed token"))?;
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| Denial::new("malformed token"))?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Denial::new("malformed token"))?;
    let mut check = mac(secret);
    check.update(&body);
    check.verify_slice(&tag).map_err(|_| Denial::new("bad token signature"))?;
    let text = String::from_utf8(body).map_err(|_| Denial::new("malformed token"))?;
    let (mut identity, mut room, mut expires) = (None, None, None);
    for pair in text.split('&') {
        let (key, value) = pair.split_once('=').ok_or_else(|| Denial::new("malformed claim"))?;
        let slot = match key {
            "sub" => &mut identity,
            "room" => &mut room,
            "exp" => &mut expires,
            other => return Err(Denial::new(format!("unknown claim {other}"))),
        };
        if slot.replace(value).is_some() {
            return Err(Denial::new(format!("claim {key} given twice")));
        }
    }
    Ok(Claims {
        identity: decoded(identity.ok_or_else(|| Denial::new("token has no subject"))?)?,
        room: decoded(room.ok_or_else(|| Denial::new("token has no room"))?)?,
        expires: expires.and_then(|e| e.parse().ok()).ok_or_else(|| Denial::new("token has no expiry"))?,
    })
}

/// The token policy.
pub struct TokenAuth;

impl Auth for TokenAuth {
    fn authorize(request: &AuthRequest) -> Result<Grant, Denial> {
        let settings = SETTINGS.lock().map_err(|_| Denial::new("auth state poisoned"))?;
        let settings = settings.as_ref().ok_or_else(|| Denial::new("token-auth is not configured"))?;
        let token = request.token.as_deref().ok_or_else(|| Denial::new("no token"))?;
        let Claims { identity, room, expires } = verify(&settings.secret, token)?;
        if expires.saturating_add(settings.leeway) <= request.now_unix {
            return Err(Denial::new(format!("token expired at {expires}")));
        }
        if request.operation == Operation::Admin && !settings.admins.contains(&identity) {
            return Err(Denial::new(format!("{identity} is not an operator (token-auth.admins)")));
        }
        match &request.room {
            Some(wanted) if room != "*" && room != *wanted => {
                return Err(Denial::new(format!("token is for room {room}, not {wanted}")));
            }
            // A room-scoped token acts only in its room: a router without one is not its room
            // (a connection, which names no room, is granted with the room in the grant).
            None if room != "*" && request.operation != Operation::Connect => {
                return Err(Denial::new(format!("token is for room {room}, not a router without a room")));
            }
            _ => {}
        }
        let rooms = if room == "*" { Vec::new() } else { vec![room] };
        // The host checks expiry on every use: it gets the same leeway.
        Ok(Grant { identity, rooms, expires_unix: Some(expires.saturating_add(settings.leeway)) })
    }

    fn configure(config: &Config) -> Result<(), String> {
        let secret = config.get("secret").filter(|s| !s.is_empty()).ok_or("token-auth needs a `secret`")?;
        let leeway = config.parse_or("leeway_secs", 0u64)?;
        let admins = config
            .get("admins")
            .map(|list| list.split(',').map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        let mut settings = SETTINGS.lock().map_err(|_| "auth state poisoned".to_string())?;
        *settings = Some(Settings { secret: secret.as_bytes().to_vec(), leeway, admins });
        Ok(())
    }
}

mafalda_plugin_sdk::export_auth!(TokenAuth);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: Option<String>, room: &str, now: u64) -> AuthRequest {
        AuthRequest {
            token,
            peer: None,
            operation: Operation::Connect,
            router: None,
            room: Some(room.into()),
            now_unix: now,
            destination: None,
        }
    }

    #[test]
    fn grants_valid_tokens_and_denies_the_rest() {
        TokenAuth::configure(&Config::new([("secret", "s3cret")])).expect("configured");
        let good = mint(b"s3cret", "alice", "blue", 2_000);
        let grant = TokenAuth::authorize(&request(Some(good.clone()), "blue", 1_000)).expect("granted");
        assert_eq!(grant.identity, "alice");
        assert_eq!(grant.rooms, vec!["blue".to_string()]);
        assert!(TokenAuth::authorize(&request(Some(good.clone()), "red", 1_000)).is_err());
        assert!(TokenAuth::authorize(&request(Some(good), "blue", 2_000)).is_err());
        assert!(TokenAuth::authorize(&request(Some(mint(b"other", "alice", "blue", 2_000)), "blue", 1)).is_err());
        assert!(TokenAuth::authorize(&request(Some("garbage".into()), "blue", 1)).is_err());
        assert!(TokenAuth::authorize(&request(None, "blue", 1)).is_err());
        assert!(TokenAuth::configure(&Config::default()).is_err(), "a secret is required");
    }

    #[test]
    fn a_room_token_is_denied_on_a_router_without_a_room() {
        TokenAuth::configure(&Config::new([("secret", "s3cret")])).expect("configured");
        let blue = mint(b"s3cret", "alice", "blue", 2_000);
        let mut unlabelled = request(Some(blue), "blue", 1_000);
        unlabelled.room = None;
        unlabelled.operation = Operation::CreateTransport;
        let denial = TokenAuth::authorize(&unlabelled).expect_err("fails closed");
        assert!(format!("{denial:?}").contains("without a room"), "{denial:?}");
        unlabelled.operation = Operation::Connect;
        assert!(TokenAuth::authorize(&unlabelled).is_ok(), "a connection names no room");
        let mut any = request(Some(mint(b"s3cret", "alice", "*", 2_000)), "blue", 1_000);
        any.room = None;
        any.operation = Operation::CreateTransport;
        assert!(TokenAuth::authorize(&any).is_ok(), "a token for every room");
    }

    #[test]
    fn an_identity_cannot_smuggle_in_a_claim() {
        TokenAuth::configure(&Config::new([("secret", "s3cret")])).expect("configured");
        let sneaky = mint(b"s3cret", "x&room=*", "blue", 2_000);
        assert!(TokenAuth::authorize(&request(Some(sneaky.clone()), "red", 1_000)).is_err(), "not a wildcard");
        let grant = TokenAuth::authorize(&request(Some(sneaky), "blue", 1_000)).expect("its own room");
        assert_eq!(grant.identity, "x&room=*");
        assert_eq!(grant.rooms, vec!["blue".to_string()]);
        // Even a correctly signed body with a repeated claim is refused.
        let body = format!(
            "sub={}&room={}&room={}&exp=2000",
            URL_SAFE_NO_PAD.encode("x"),
            URL_SAFE_NO_PAD.encode("blue"),
            URL_SAFE_NO_PAD.encode("*")
        );
        let mut signature = mac(b"s3cret");
        signature.update(body.as_bytes());
        let token =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(&body), URL_SAFE_NO_PAD.encode(signature.finalize().into_bytes()));
        let denial = TokenAuth::authorize(&request(Some(token), "red", 1_000)).expect_err("repeated claim");
        assert!(format!("{denial:?}").contains("twice"), "{denial:?}");
    }
}
