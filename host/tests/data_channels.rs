//! Data channels across workers, as mediasoup delivers them in one worker:
//! - a direct data producer's messages reach data consumers on other workers with their
//!   subchannels honoured (each consumer gets exactly what its subscriptions let through), in
//!   order, including messages sent the moment `consume_data` returns;
//! - an SCTP data producer (here the pipe data producer `pipe_data_producer_to_router` makes) is
//!   piped over SCTP to consumers on other workers; `consume_data` returns once that pipe can
//!   carry messages, so 1,000 messages sent right after it all arrive, in order.

mod common;

use common::{router, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::data_producer::DataProducerType;
use mafalda_host::prelude::*;
use mafalda_host::router::PipeSource;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;

const MESSAGES: usize = 1_000;

fn text(message: &WebRtcMessage<'_>) -> Option<String> {
    match message {
        WebRtcMessage::String(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

fn send(producer: &DirectDataProducer, body: String, subchannels: Option<Vec<u16>>, required: Option<u16>) {
    producer.send(WebRtcMessage::String(Cow::Owned(body.into_bytes())), subchannels, required, None).expect("send");
}

/// A direct transport in slot `k` consuming `data_producer` with `subchannels`; its messages.
async fn direct_consumer(
    router: &Router,
    k: usize,
    data_producer: DataProducerId,
    subchannels: Option<Vec<u16>>,
) -> (DirectTransport, DataConsumer, mpsc::UnboundedReceiver<String>) {
    let mut options = DirectTransportOptions::default();
    options.app_data = slot(k);
    let transport = router.create_direct_transport(options).await.expect("direct transport");
    let consumer = transport
        .consume_data(DataConsumerOptions::new_direct(data_producer, subchannels))
        .await
        .expect("data consumer");
    let (tx, rx) = mpsc::unbounded_channel();
    consumer
        .on_message(move |message| {
            if let Some(text) = text(message) {
                let _ = tx.send(text);
            }
        })
        .detach();
    (transport, consumer, rx)
}

/// Receives exactly `expected` (in order) from `inbox`, then nothing more within a short while.
async fn expect_exactly(inbox: &mut mpsc::UnboundedReceiver<String>, expected: &[String], who: &str) {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match tokio::time::timeout(EVENT_LIMIT, inbox.recv()).await {
            Ok(Some(message)) if message == "probe" => {}
            Ok(Some(message)) => got.push(message),
            _ => break,
        }
    }
    assert_eq!(got.len(), expected.len(), "{who}: {} of {} messages", got.len(), expected.len());
    assert!(got == expected, "{who}: messages out of order or wrong");
    // The "end" marker reaches every consumer after everything else (channels are ordered).
    let last = tokio::time::timeout(EVENT_LIMIT, inbox.recv()).await.expect("end marker").expect("open");
    assert_eq!(last, "end", "{who}: nothing it should not have got");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_data_reaches_other_workers_with_subchannels_right_after_consume_data() {
    let manager = slotted_manager(3);
    let (_worker, router) = router(&manager).await;
    let mut options = DirectTransportOptions::default();
    options.app_data = slot(0);
    let sending = router.create_direct_transport(options).await.expect("direct transport");
    let data_producer = sending.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
    let DataProducer::Direct(direct) = &data_producer else { panic!("a direct transport makes direct data producers") };

    // Subscribers to subchannel 1 (on the producer's worker and on another), to 2, and none.
    let (_t0, _c0, mut local_one) = direct_consumer(&router, 0, data_producer.id(), Some(vec![1])).await;
    let (t1, c1, mut remote_one) = direct_consumer(&router, 1, data_producer.id(), Some(vec![1])).await;
    let (t2, _c2, mut remote_two) = direct_consumer(&router, 2, data_producer.id(), Some(vec![2])).await;
    let (_t3, _c3, mut remote_none) = direct_consumer(&router, 1, data_producer.id(), None).await;
    // Sent the moment the last consume_data returned: nothing to wait for.
    let mut to_one = Vec::new();
    let mut to_two = Vec::new();
    let mut to_none = Vec::new();
    for i in 0..MESSAGES {
        let body = format!("message-{i}");
        match i % 4 {
            0 => {
                send(direct, body.clone(), Some(vec![1]), None);
                to_one.push(body);
            }
            1 => {
                send(direct, body.clone(), Some(vec![2]), None);
                to_two.push(body);
            }
            2 => {
                send(direct, body.clone(), Some(vec![1, 2]), Some(2));
                to_two.push(body);
            }
            _ => {
                send(direct, body.clone(), None, None);
                to_none.push(body.clone());
                to_one.push(body.clone());
                to_two.push(body);
            }
        }
    }
    send(direct, "end".into(), None, None);
    let cells: BTreeSet<_> = [sending.cell(), t1.cell(), t2.cell()].into_iter().collect();
    assert_eq!(cells.len(), 3, "consumers on the producer's worker and on two others");
    expect_exactly(&mut local_one, &to_one, "subchannel 1, same worker").await;
    expect_exactly(&mut remote_one, &to_one, "subchannel 1, other worker").await;
    expect_exactly(&mut remote_two, &to_two, "subchannel 2, third worker").await;
    expect_exactly(&mut remote_none, &to_none, "no subchannel, other worker").await;
    let dump = c1.dump().await.expect("data consumer dump");
    assert_eq!(dump.data_producer_id, data_producer.id(), "the dump names the app's data producer");
    assert!(router.pipes().iter().all(|(source, _)| *source == PipeSource::DataProducer(data_producer.id())));
    let dump = router.dump().await.expect("router dump");
    assert_eq!(dump.transport_ids.len(), 5, "the internal copies' transports are not the application's");
    assert_eq!(
        dump.map_data_producer_id_data_consumer_ids[&data_producer.id()].len(),
        4,
        "every data consumer is listed under the application's data producer"
    );
    // Pause reaches the copies before pause() returns; closing the producer closes everything.
    data_producer.pause().await.expect("pause");
    assert!(c1.producer_paused(), "a consumer on another worker knows when pause() returns");
    data_producer.resume().await.expect("resume");
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    c1.on_data_producer_close(move || {
        let _ = closed_tx.send(());
    })
    .detach();
    drop(data_producer);
    assert!(router.pipes().is_empty(), "the copies go with their producer");
    tokio::time::timeout(EVENT_LIMIT, closed.recv()).await.expect("in time").expect("on_data_producer_close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sctp_data_piped_to_another_worker_arrives_right_after_consume_data() {
    let manager = slotted_manager(3);
    let (_worker, source) = router(&manager).await;
    let (_other_worker, target) = router(&manager).await;
    let mut options = DirectTransportOptions::default();
    options.app_data = slot(0);
    let sending = source.create_direct_transport(options).await.expect("direct transport");
    let data_producer = sending.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
    let DataProducer::Direct(direct) = &data_producer else { panic!("direct") };
    // An SCTP data producer in the target router: the pipe data producer.
    let pair = source
        .pipe_data_producer_to_router(data_producer.id(), PipeToRouterOptions::new(target.clone()))
        .await
        .expect("pipe data producer");
    let piped = pair.pipe_data_producer.into_inner();
    assert_eq!(piped.r#type(), DataProducerType::Sctp);
    // The application's own pipe comes up as mediasoup's does: probe it from the pipe data
    // producer's worker first.
    let home = piped.cell();
    let home_slot = manager.host().cells().iter().position(|c| c.id() == home).expect("home cell");
    let (_near, _near_consumer, mut near) = direct_consumer(&target, home_slot, piped.id(), None).await;
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the application's pipe never carried a probe");
        send(direct, "probe".into(), None, None);
        if tokio::time::timeout(Duration::from_millis(50), near.recv()).await.is_ok() {
            break;
        }
    }
    // A consumer on another worker: an internal SCTP pipe, ready when consume_data returns.
    let far_slot = (0..3).find(|k| *k != home_slot).expect("another slot");
    let (far_transport, _far_consumer, mut far) = direct_consumer(&target, far_slot, piped.id(), None).await;
    assert_ne!(far_transport.cell(), home);
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("message-{i}")).collect();
    for body in &expected {
        send(direct, body.clone(), None, None);
    }
    send(direct, "end".into(), None, None);
    expect_exactly(&mut far, &expected, "SCTP-piped consumer").await;
}
