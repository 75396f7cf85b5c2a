//! A room of four peers spread over two workers (every producer piped to the other worker)
//! loses peers while the application keeps asking for the router's dump and stats: every
//! answer must come within a bound, round after round (a browser test once saw a dump hang
//! right after a peer left).

mod common;

use common::{options_with, plain_producer, slot, ForceBySlot};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const PEERS: usize = 4;
const ROUNDS: usize = 24;

struct Peer {
    k: usize,
    _send: PlainTransport,
    producer: Producer,
    _generator: RtpGenerator,
    receive: PlainTransport,
    consumers: Vec<Consumer>,
}

async fn join(router: &Router, k: usize) -> Peer {
    let ssrc = 0x1000 + u32::try_from(k).expect("small");
    let (send, producer) = plain_producer(router, k % 2, MediaKind::Audio, opus_send_parameters(ssrc)).await;
    let generator = RtpGenerator::start(&send, GeneratorConfig::opus(ssrc).with_rate(100).with_count(100_000))
        .await
        .expect("generator");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.app_data = slot(k % 2);
    let receive = router.create_plain_transport(options).await.expect("receive transport");
    Peer { k, _send: send, producer, _generator: generator, receive, consumers: Vec::new() }
}

async fn consume_all(peers: &mut [Peer]) {
    let producers: Vec<ProducerId> = peers.iter().map(|p| p.producer.id()).collect();
    for peer in peers.iter_mut() {
        for producer in &producers {
            if *producer != peer.producer.id() && !peer.consumers.iter().any(|c| c.producer_id() == *producer) {
                let consumer = peer
                    .receive
                    .consume(ConsumerOptions::new(*producer, receiver_capabilities()))
                    .await
                    .expect("consume");
                peer.consumers.push(consumer);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_stats_answer_while_peers_leave_a_piped_room() {
    let manager = WorkerManager::with_options(options_with(2, Arc::new(ForceBySlot)));
    let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (router, stop) = (router.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut answers = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::timeout(ANSWER_WITHIN, router.dump())
                    .await
                    .unwrap_or_else(|_| panic!("router dump answered within {ANSWER_WITHIN:?} (after {answers})"))
                    .expect("dump");
                answers += 1;
                tokio::task::yield_now().await;
            }
            answers
        })
    };
    let mut peers = Vec::new();
    for k in 0..PEERS {
        peers.push(join(&router, k).await);
    }
    for round in 0..ROUNDS {
        consume_all(&mut peers).await;
        assert_eq!(router.pipes().len(), PEERS, "round {round}: every producer piped to the other worker");
        // The leaving peer goes as a signalling server drops it: all of its objects at once.
        let left = peers.remove(round % peers.len());
        let gone = left.producer.id();
        let slot_left = left.k % 2;
        drop(left);
        for peer in &mut peers {
            peer.consumers.retain(|c| c.producer_id() != gone);
        }
        let stats = tokio::time::timeout(ANSWER_WITHIN, peers[0].receive.get_stats())
            .await
            .expect("transport stats within the bound");
        assert!(stats.is_ok(), "round {round}: stats {stats:?}");
        // A newcomer takes the leaver's worker, so both workers keep peers.
        peers.push(join(&router, PEERS + 2 * round + slot_left).await);
    }
    stop.store(true, Ordering::Relaxed);
    let answers = tokio::time::timeout(ANSWER_WITHIN * 2, prober).await.expect("prober ends").expect("prober");
    assert!(answers > 0, "the dump was asked at least once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_closing_under_its_piped_consumers_leaves_both_workers_answering() {
    // The pipe is the only one over its link: its source going (a mediasoup event, handled on
    // the source worker's channel thread) tears the whole link down. Doing that inline in the
    // event handler deadlocked the worker (its handler lock is held during events).
    for round in 0..20 {
        let manager = WorkerManager::with_options(options_with(2, Arc::new(ForceBySlot)));
        let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let (send, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0x2000)).await;
        let (receive, consumer, _sink) =
            common::sink_consumer(&router, producer.id(), mafalda_media_tools::rtp::PayloadKind::Opus, 1).await;
        assert_ne!(receive.cell(), send.cell());
        let (tx, closed) = tokio::sync::oneshot::channel();
        consumer
            .on_producer_close(move || {
                let _ = tx.send(());
            })
            .detach();
        drop(producer);
        tokio::time::timeout(ANSWER_WITHIN, closed)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the consumer hears its producer closed"))
            .expect("event");
        tokio::time::timeout(ANSWER_WITHIN, router.dump())
            .await
            .unwrap_or_else(|_| panic!("round {round}: both workers still answer"))
            .expect("dump");
        tokio::time::timeout(ANSWER_WITHIN, send.get_stats())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the source worker still answers"))
            .expect("stats");
    }
}
