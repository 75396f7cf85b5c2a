//! Sessions cannot be taken over: a caller that knows another's session number (and name)
//! gets nothing of it; only the holder of the secret from the Welcome resumes it, which closes
//! the connection it was attached to; failed resumes are rate-limited per address; a caller
//! that says goodbye releases its session at once. Real `serve` processes on 127.0.0.x, raw
//! protocol clients.

mod cluster_support;

use cluster_support::{certs, scratch, Node, Raw};
use mafalda_host::cluster::proto::{Op, Payload, Reply, ResumeTicket, WireError};
use mafalda_media_tools::media::router_codecs;
use std::time::Duration;

async fn router(raw: &mut Raw, id: u32) -> u64 {
    let worker = raw.worker().await;
    let op = Op::CreateRouter { worker, media_codecs: Payload::new(&router_codecs()), room: None, token: None };
    match raw.call(id, op).await {
        Ok(Reply::Created { handle, .. }) => handle,
        other => panic!("router: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_resumed_only_by_the_holder_of_its_secret() {
    let dir = scratch("takeover");
    certs(&dir, &[("media10", "127.0.0.10")]);
    let node = Node::start(&dir, "media10", "127.0.0.10", 4443, &[]);
    let address = node.address();

    let mut victim = Raw::connect(&dir, &address, "127.0.0.1:0").await;
    victim.hello("victim", None, 0);
    let welcome = victim.welcome().await.expect("welcome");
    let handle = router(&mut victim, 1).await;

    // An attacker with the victim's name, its session number and its neighbours, a secret
    // guessed, and a claim to have seen every event: never the victim's session.
    for (n, session) in [welcome.session, welcome.session.wrapping_add(1), welcome.session.wrapping_sub(1), 1, 2]
        .into_iter()
        .enumerate()
    {
        let mut attacker = Raw::connect(&dir, &address, "127.0.0.2:0").await;
        attacker.hello("victim", Some(ResumeTicket { session, secret: [n as u8; 16] }), u64::MAX - 1);
        let got = attacker.welcome().await.expect("an empty session of its own");
        assert!(!got.resumed && got.session != welcome.session, "attempt {n} resumed {got:?}");
        let acted = attacker.call(1, Op::Dump { handle }).await;
        assert!(matches!(acted, Err(WireError::NotFound(_))), "the victim's handle in another session: {acted:?}");
    }
    // Failed resumes from that address are now refused outright.
    let mut attacker = Raw::connect(&dir, &address, "127.0.0.2:0").await;
    let ticket = ResumeTicket { session: welcome.session, secret: [0xaa; 16] };
    let mut refused = None;
    for _ in 0..8 {
        attacker.hello("victim", Some(ticket.clone()), 0);
        match attacker.welcome().await {
            Ok(got) => assert!(!got.resumed),
            Err(reason) => {
                refused = Some(reason);
                break;
            }
        }
        attacker = Raw::connect(&dir, &address, "127.0.0.2:0").await;
    }
    let reason = refused.expect("refused within the limit");
    assert!(reason.contains("failed resumes"), "{reason}");

    // The victim was not disturbed.
    assert!(victim.call(2, Op::Dump { handle }).await.is_ok(), "the victim is still served");

    // The owner comes back on a new connection before the old one is noticed dead: it resumes,
    // and the old connection is closed (it cannot deafen the new one later).
    let mut back = Raw::connect(&dir, &address, "127.0.0.1:0").await;
    back.hello("victim", Some(ResumeTicket { session: welcome.session, secret: welcome.secret }), 0);
    let resumed = back.welcome().await.expect("welcome");
    assert!(resumed.resumed && resumed.session == welcome.session);
    let closed = tokio::time::timeout(Duration::from_secs(5), victim.connection.closed()).await.expect("old closed");
    assert!(closed.to_string().contains("resumed on another connection"), "{closed}");
    assert!(back.call(3, Op::Dump { handle }).await.is_ok(), "the resumed session has its router");

    // The owner claiming events never raised ends its session (they cannot be replayed): the
    // connection still serving it is closed too, so no connection keeps a session the host no
    // longer counts.
    let mut greedy = Raw::connect(&dir, &address, "127.0.0.1:0").await;
    greedy.hello("victim", Some(ResumeTicket { session: welcome.session, secret: welcome.secret }), u64::MAX);
    let fresh = greedy.welcome().await.expect("a new session");
    assert!(!fresh.resumed && fresh.session != welcome.session);
    let closed = tokio::time::timeout(Duration::from_secs(5), back.connection.closed()).await.expect("closed");
    assert!(closed.to_string().contains("or ended"), "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_says_goodbye_releases_its_session_at_once() {
    let dir = scratch("goodbye");
    certs(&dir, &[("media11", "127.0.0.11")]);
    let mut node = Node::start(&dir, "media11", "127.0.0.11", 4443, &[]);
    let mut raw = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    raw.hello("leaving", None, 0);
    let welcome = raw.welcome().await.expect("welcome");
    router(&mut raw, 1).await;
    raw.outbox.send(&mafalda_host::cluster::proto::Message::Bye { reason: "done".into() }).expect("queued");
    // Released within a second, not after the 30 s grace.
    let line = node.wait_for_log("its objects are closed", Duration::from_secs(3));
    assert!(line.contains(&welcome.session.to_string()), "{line}");
}
