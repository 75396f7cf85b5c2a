use super::*;
use crate::cluster::grant::{Scope, TokenGrant};
use crate::cluster::proto::Role;
use proptest::prelude::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// An outbox in tests: the connection's number.
type Book = SessionBook<u32>;

fn claim(identity: &str, address: [u8; 4]) -> Claim {
    Claim { role: Role::Client, identity: identity.into(), grant: token("t1"), address: IpAddr::from(address) }
}

fn token(token: &str) -> TokenGrant {
    TokenGrant { token: Some(token.into()), scope: Scope::default() }
}

fn secret(n: u8) -> Secret {
    Secret([n; 16])
}

fn frame(seq: u64) -> Result<Vec<u8>, ()> {
    Ok(seq.to_be_bytes().to_vec())
}

fn seqs(frames: &[Vec<u8>]) -> Vec<u64> {
    frames.iter().map(|f| u64::from_be_bytes(f[..8].try_into().expect("8 bytes"))).collect()
}

fn open(book: &mut Book, who: &str, id: u64, conn: u32, now: Instant) -> Admitted<u32> {
    book.admit(claim(who, [10, 0, 0, 1]), None, (u64::from(conn), conn), (id, secret(id as u8)), now).expect("admitted")
}

fn resume(book: &mut Book, who: &str, id: u64, key: Secret, last: u64, conn: u32, now: Instant) -> Admitted<u32> {
    let ask = ResumeAsk { session: id, secret: key.0, last_event: last };
    book.admit(claim(who, [10, 0, 0, 2]), Some(ask), (u64::from(conn), conn), (1000 + u64::from(conn), secret(99)), now)
        .expect("admitted")
}

#[test]
fn resume_needs_the_secret_and_the_same_identity() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    book.emit(7, frame).expect("frame");
    // Someone who knows the number but not the secret gets a new, empty session.
    let guess = resume(&mut book, "alice", 7, secret(8), 0, 2, now);
    assert!(!guess.resumed && guess.session != 7 && guess.replay.is_empty());
    // The secret with another identity does not do either.
    let other = resume(&mut book, "mallory", 7, secret(7), 0, 3, now);
    assert!(!other.resumed && other.session != 7);
    // A peer cannot resume a client's session.
    let ask = ResumeAsk { session: 7, secret: secret(7).0, last_event: 0 };
    let peer = Claim { role: Role::Peer, ..claim("alice", [10, 0, 0, 2]) };
    assert!(!book.admit(peer, Some(ask), (4, 4), (2000, secret(1)), now).expect("admitted").resumed);
    // The owner does, and gets the event it missed.
    let owner = resume(&mut book, "alice", 7, secret(7), 0, 5, now);
    assert!(owner.resumed && owner.session == 7);
    assert_eq!(seqs(&owner.replay), vec![1]);
}

#[test]
fn a_caller_cannot_claim_events_not_yet_raised() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    book.emit(7, frame).expect("frame");
    for last in [2, u64::MAX - 1, u64::MAX] {
        let admitted = resume(&mut book, "alice", 7, secret(7), last, 2, now);
        assert!(!admitted.resumed, "last_event {last} resumed");
        assert_eq!(admitted.ended, vec![7], "the session cannot be resumed without loss: it ends");
        assert_eq!(admitted.close, vec![(1, 1)], "and the connection still serving it is closed");
        book.end(admitted.session);
        open(&mut book, "alice", 7, 1, now);
        book.emit(7, frame).expect("frame");
    }
}

#[test]
fn failed_resumes_are_rate_limited_per_address() {
    let mut now = Instant::now();
    let limits = SessionLimits::default();
    let mut book = Book::new(limits.clone());
    open(&mut book, "alice", 7, 1, now);
    for n in 0..limits.max_failed_resumes {
        let conn = 10 + n;
        let admitted = resume(&mut book, "alice", 7, secret(8), 0, conn, now);
        assert!(!admitted.resumed);
        book.end(admitted.session);
    }
    let guess = ResumeAsk { session: 7, secret: secret(9).0, last_event: 0 };
    let refused = book.admit(claim("alice", [10, 0, 0, 2]), Some(guess), (50, 50), (51, secret(1)), now);
    assert_eq!(refused.map(|a| a.session).expect_err("limited"), Refusal::ResumeRateLimited);
    // The owner's proof is never refused, even from that address.
    let ask = ResumeAsk { session: 7, secret: secret(7).0, last_event: 0 };
    let owner = book.admit(claim("alice", [10, 0, 0, 2]), Some(ask.clone()), (60, 60), (61, secret(1)), now);
    assert!(owner.expect("admitted").resumed);
    let guess = ResumeAsk { session: 7, secret: secret(9).0, last_event: 0 };
    assert!(book.admit(claim("alice", [10, 0, 0, 2]), Some(guess), (62, 62), (63, secret(1)), now).is_err());
    // Another address is not affected, and the window passes.
    let elsewhere = book.admit(claim("alice", [10, 0, 0, 3]), Some(ask.clone()), (52, 52), (53, secret(1)), now);
    assert!(elsewhere.expect("admitted").resumed);
    now += limits.resume_window;
    let later = book.admit(claim("alice", [10, 0, 0, 2]), Some(ask), (54, 54), (55, secret(1)), now);
    assert!(later.expect("admitted").resumed);
}

/// C2, driven deterministically: the caller comes back on a new connection before the host
/// notices the old one die; the old connection's end must not detach the new one.
#[test]
fn an_old_connection_ending_late_does_not_deafen_the_new_one() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    let back = resume(&mut book, "alice", 7, secret(7), 0, 2, now);
    assert_eq!(back.close, vec![(1, 1)], "the old connection is handed back to be closed");
    assert!(!book.detach(7, 1, now), "the old connection no longer holds the session");
    let (conn, outbox, _) = book.emit(7, frame).expect("frame").expect("delivered");
    assert_eq!((conn, outbox), (2, 2));
    assert_eq!(book.outbox(7), Some((2, 2)));
    // Nor does its end start the grace period.
    assert!(book.expire(now + Duration::from_secs(3600)).is_empty());
}

#[test]
fn a_goodbye_ends_a_session_only_from_the_connection_it_is_attached_to() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    resume(&mut book, "alice", 7, secret(7), 0, 2, now);
    assert!(!book.end_from(7, 1), "the displaced connection's goodbye ends nothing");
    assert!(book.is_attached(7, 2) && !book.is_attached(7, 1));
    assert!(book.end_from(7, 2));
    assert_eq!(book.len(), 0);
}

#[test]
fn an_event_that_cannot_be_framed_leaves_no_gap() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    book.emit(7, frame).expect("frame");
    assert!(book.emit(7, |_| Err::<Vec<u8>, ()>(())).is_err());
    book.emit(7, frame).expect("frame");
    assert!(book.detach(7, 1, now));
    let back = resume(&mut book, "alice", 7, secret(7), 0, 2, now);
    assert_eq!(seqs(&back.replay), vec![1, 2], "numbers stay consecutive");
}

#[test]
fn events_missed_while_detached_are_replayed_once_in_order() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    for _ in 0..3 {
        book.emit(7, frame).expect("frame");
    }
    assert!(book.detach(7, 1, now));
    for _ in 0..2 {
        assert!(book.emit(7, frame).expect("frame").is_none(), "nothing to send on");
    }
    let back = resume(&mut book, "alice", 7, secret(7), 2, 2, now + Duration::from_secs(5));
    assert_eq!(seqs(&back.replay), vec![3, 4, 5]);
}

#[test]
fn replay_memory_is_small_while_attached_and_bounded_while_detached() {
    let now = Instant::now();
    let limits = SessionLimits { attached_replay_bytes: 80, replay_bytes: 160, ..SessionLimits::default() };
    let mut book = Book::new(limits);
    open(&mut book, "alice", 7, 1, now);
    for _ in 0..100 {
        book.emit(7, frame).expect("frame");
    }
    assert_eq!(book.replay_bytes(7), 80, "10 frames of 8 bytes while attached");
    assert!(book.detach(7, 1, now));
    for _ in 0..100 {
        book.emit(7, frame).expect("frame");
    }
    assert_eq!(book.replay_bytes(7), 160);
    // The caller saw event 100; 101..200 are not all kept: the session ends, a new one opens.
    let back = resume(&mut book, "alice", 7, secret(7), 100, 2, now);
    assert!(!back.resumed);
    assert_eq!(back.ended, vec![7]);
}

#[test]
fn a_detached_session_ends_when_its_grace_runs_out_and_not_before() {
    let now = Instant::now();
    let limits = SessionLimits::default();
    let mut book = Book::new(limits.clone());
    open(&mut book, "alice", 7, 1, now);
    open(&mut book, "bob", 8, 2, now);
    assert!(book.detach(7, 1, now));
    assert!(book.expire(now + limits.grace - Duration::from_millis(1)).is_empty());
    assert_eq!(book.expire(now + limits.grace), vec![7]);
    assert_eq!(book.len(), 1, "bob is attached");
}

#[test]
fn a_resumed_session_acts_with_the_new_token() {
    let now = Instant::now();
    let mut book = Book::new(SessionLimits::default());
    open(&mut book, "alice", 7, 1, now);
    let ask = ResumeAsk { session: 7, secret: secret(7).0, last_event: 0 };
    let fresh = Claim { grant: token("t2"), ..claim("alice", [10, 0, 0, 1]) };
    assert!(book.admit(fresh, Some(ask), (2, 2), (9, secret(9)), now).expect("admitted").resumed);
    assert_eq!(book.grant(7).and_then(|g| g.token).as_deref(), Some("t2"));
}

#[test]
fn session_limits_trip_and_free() {
    let now = Instant::now();
    let limits = SessionLimits {
        max_sessions: 4,
        max_sessions_per_identity: 2,
        max_sessions_per_address: 3,
        ..SessionLimits::default()
    };
    let mut book = Book::new(limits);
    let admit = |book: &mut Book, who: &str, address: u8, id: u64| {
        book.admit(claim(who, [10, 0, 0, address]), None, (id, id as u32), (id, secret(1)), now).map(|a| a.session)
    };
    assert_eq!(admit(&mut book, "a", 1, 1), Ok(1));
    assert_eq!(admit(&mut book, "a", 1, 2), Ok(2));
    assert_eq!(admit(&mut book, "a", 1, 3), Err(Refusal::Identity(2)));
    assert_eq!(admit(&mut book, "b", 1, 3), Ok(3));
    assert_eq!(admit(&mut book, "c", 1, 4), Err(Refusal::Address(3)));
    assert_eq!(admit(&mut book, "c", 2, 4), Ok(4));
    assert_eq!(admit(&mut book, "d", 3, 5), Err(Refusal::Sessions(4)));
    assert_eq!(admit(&mut book, "d", 3, 4), Err(Refusal::Collision));
    book.end(1);
    assert_eq!(admit(&mut book, "a", 1, 5), Ok(5));
}

/// What a test caller does.
#[derive(Debug, Clone)]
enum Step {
    /// The host raises an event for the caller.
    Emit,
    /// The caller's connection dies; the host notices now (true) or only later.
    Drop(bool),
    /// The host notices the death of the connection before the current one.
    NoticeOld,
    /// The caller reconnects, resuming.
    Reconnect,
    /// Time passes.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Emit),
        1 => any::<bool>().prop_map(Step::Drop),
        1 => Just(Step::NoticeOld),
        1 => Just(Step::Reconnect),
        1 => (0u64..40_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the order of drops, late notices, reconnects and time: a caller receives its
    /// events in order, each once, without a gap, for as long as its session lives; when it
    /// does not, the caller is told (a resume that is not resumed), and the book's counts hold.
    #[test]
    fn a_caller_sees_every_event_once_in_order_or_is_told_its_session_ended(
        steps in proptest::collection::vec(step(), 1..80),
        tail in 8usize..64,
    ) {
        let start = Instant::now();
        let limits = SessionLimits { attached_replay_bytes: tail, replay_bytes: 4 * tail, ..SessionLimits::default() };
        let mut book = Book::new(limits);
        let mut now = start;
        let mut conn = 1u32;
        let mut live = true; // whether the caller's current connection works
        let mut old: Vec<u32> = Vec::new(); // dead connections the host has not noticed yet
        let mut admitted = open(&mut book, "alice", 7, conn, now);
        let mut last = 0u64;
        let mut next_fresh = 100u64;
        for step in steps {
            match step {
                Step::Emit => {
                    let sent = book.emit(admitted.session, frame).expect("frame");
                    // A caller whose connection works is never left deaf.
                    prop_assert!(!live || sent.as_ref().is_some_and(|(_, outbox, _)| *outbox == conn));
                    if let Some((_, outbox, frame)) = sent {
                        if outbox == conn && live {
                            let seq = seqs(&[frame])[0];
                            prop_assert_eq!(seq, last + 1);
                            last = seq;
                        }
                    }
                }
                Step::Drop(noticed) => {
                    if live {
                        live = false;
                        if noticed {
                            book.detach(admitted.session, u64::from(conn), now);
                        } else {
                            old.push(conn);
                        }
                    }
                }
                Step::NoticeOld => {
                    if let Some(dead) = old.pop() {
                        book.detach(admitted.session, u64::from(dead), now);
                    }
                }
                Step::Reconnect => {
                    if !live {
                        conn += 1;
                        next_fresh += 1;
                        let ask = ResumeAsk { session: admitted.session, secret: admitted.secret.0, last_event: last };
                        let back = book
                            .admit(claim("alice", [10, 0, 0, 1]), Some(ask), (u64::from(conn), conn), (next_fresh, secret(3)), now)
                            .expect("admitted");
                        if back.resumed {
                            for seq in seqs(&back.replay) {
                                prop_assert_eq!(seq, last + 1);
                                last = seq;
                            }
                        } else {
                            last = 0;
                        }
                        admitted = back;
                        live = true;
                    }
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    for ended in book.expire(now) {
                        prop_assert_eq!(ended, admitted.session, "only a detached session expires");
                        prop_assert!(!live);
                    }
                }
            }
            prop_assert!(book.len() <= 1, "only the caller's session: none leaked");
            prop_assert!(book.replay_bytes(admitted.session) <= 4 * tail);
        }
    }
}

fn welcome(session: u64, resumed: bool) -> crate::cluster::proto::Welcome {
    welcome_from(1, session, resumed)
}

fn welcome_from(boot: u64, session: u64, resumed: bool) -> crate::cluster::proto::Welcome {
    crate::cluster::proto::Welcome {
        node: "h".into(),
        region: "r".into(),
        boot,
        session,
        secret: [session as u8; 16],
        resumed,
        grace_ms: 30_000,
        cells: Vec::new(),
    }
}

const TIMEOUT: Duration = Duration::from_secs(15);
const STALE: Duration = Duration::from_secs(3);

/// A request tracked with a frame that names it.
fn send<W>(link: &mut LinkSession<W>, waiter: W, now: Instant) -> u32 {
    let id = link.next_id();
    link.track(id, waiter, id.to_le_bytes().to_vec(), now);
    id
}

fn fresh<W: std::fmt::Debug>(welcomed: Welcomed<W>) -> (bool, bool, Vec<W>) {
    match welcomed {
        Welcomed::Fresh { lost, restarted, failed } => (lost, restarted, failed),
        other => panic!("expected a fresh session, got {other:?}"),
    }
}

fn resent<W: std::fmt::Debug>(welcomed: Welcomed<W>) -> Vec<Vec<u8>> {
    match welcomed {
        Welcomed::Resumed { resend } => resend,
        other => panic!("expected a resumed session, got {other:?}"),
    }
}

#[test]
fn the_calling_side_resumes_with_its_ticket_and_times_requests_out() {
    let start = Instant::now();
    let mut link = LinkSession::<&str>::new(TIMEOUT, Duration::from_secs(30), STALE);
    assert_eq!(link.resume(), (None, 0), "a first hello resumes nothing");
    assert!(!link.may_wait(), "no session yet: a request fails at once");
    assert_eq!(fresh(link.welcomed(&welcome(7, false), start)), (false, false, vec![]));
    assert!(link.event(1) && link.event(2) && !link.event(2), "a replayed event is skipped");
    let (ticket, last) = link.resume();
    assert_eq!((ticket.map(|t| (t.session, t.secret)), last), (Some((7, [7; 16])), 2));
    let a = send(&mut link, "a", start);
    let b = send(&mut link, "b", start + Duration::from_secs(10));
    assert_ne!(a, 0);
    assert_eq!(link.expired(start + TIMEOUT), vec!["a"]);
    assert_eq!(link.response(a), None, "a late answer finds nobody");
    assert_eq!(link.response(b), Some("b"));
}

#[test]
fn requests_survive_a_dropped_link_and_are_sent_again_in_order_after_a_resume() {
    let start = Instant::now();
    let mut link = LinkSession::<&str>::new(TIMEOUT, Duration::from_secs(30), STALE);
    link.welcomed(&welcome(7, false), start);
    let a = send(&mut link, "a", start);
    let b = send(&mut link, "b", start);
    link.down(start + Duration::from_secs(1));
    assert!(link.may_wait(), "the session may come back: new requests wait for it");
    let c = send(&mut link, "c", start + Duration::from_secs(2));
    assert_eq!(link.response(b), Some("b"), "answered before the drop");
    // A 5 s stall is well inside the grace: nothing is lost.
    assert_eq!(link.lost(start + Duration::from_secs(6)), None);
    let frames = resent(link.welcomed(&welcome(7, true), start + Duration::from_secs(6)));
    assert_eq!(frames, vec![a.to_le_bytes().to_vec(), c.to_le_bytes().to_vec()], "oldest first");
    assert_eq!(link.pending(), 2, "still waiting for their (first) answers");
}

#[test]
fn a_host_is_lost_after_its_grace_or_at_once_on_proof() {
    let start = Instant::now();
    let mut link = LinkSession::<u8>::new(TIMEOUT, Duration::from_secs(30), STALE);
    let mut short = welcome(7, false);
    short.grace_ms = 5_000;
    link.welcomed(&short, start);
    assert_eq!(link.lost_after(), Duration::from_secs(5), "the host's grace is the caller's patience");
    send(&mut link, 1, start);
    link.down(start);
    assert!(link.recovering());
    assert_eq!(link.lost(start + Duration::from_millis(4_999)), None);
    assert_eq!(link.lost(start + Duration::from_secs(5)), Some(vec![1]), "waiting requests fail with it");
    assert_eq!(link.lost(start + Duration::from_secs(9)), None, "reported once");
    assert_eq!(link.resume(), (None, 0), "a lost session is not asked for again");
    assert!(!link.may_wait());
    assert_eq!(fresh(link.welcomed(&welcome(8, false), start)), (false, false, vec![]), "already reported");

    // Back within the grace with a fresh session: the host no longer has it, proof enough.
    send(&mut link, 2, start);
    link.down(start + Duration::from_secs(10));
    assert_eq!(fresh(link.welcomed(&welcome(9, false), start + Duration::from_secs(11))), (true, false, vec![2]));
    // Back with another boot id: the host restarted.
    link.down(start + Duration::from_secs(12));
    let (lost, restarted, _) = fresh(link.welcomed(&welcome_from(2, 10, false), start + Duration::from_secs(12)));
    assert!(lost && restarted);
    // The same incarnation resumes.
    link.down(start + Duration::from_secs(13));
    assert!(resent(link.welcomed(&welcome_from(2, 10, true), start + Duration::from_secs(13))).is_empty());
}

#[test]
fn a_silent_host_leaves_placement_once_and_returns_when_heard() {
    let start = Instant::now();
    let mut link = LinkSession::<()>::new(TIMEOUT, Duration::from_secs(30), STALE);
    assert!(!link.silent(start + Duration::from_secs(60)), "nothing heard yet: not silent");
    link.welcomed(&welcome(7, false), start);
    assert!(!link.silent(start + STALE - Duration::from_millis(1)));
    assert!(link.silent(start + STALE));
    assert!(!link.silent(start + STALE * 2), "once");
    assert!(link.heard(start + STALE * 2), "heard again: back in placement");
    assert!(!link.heard(start + STALE * 2 + Duration::from_secs(1)));
}

#[test]
fn request_ids_skip_zero_when_they_wrap() {
    let mut link = LinkSession::<()>::new(TIMEOUT, Duration::from_secs(1), STALE);
    link.next_id_for_test(u32::MAX);
    assert_eq!(link.next_id(), u32::MAX);
    assert_eq!(link.next_id(), 1);
}
