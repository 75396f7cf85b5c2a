//! Data channels across workers: a DataProducer on a DirectTransport in worker A, DataConsumers
//! on DirectTransports in workers B and C (the data producer is piped to each over SCTP); both
//! receive every message, in order.

mod common;

use common::{router, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::prelude::*;
use mafalda_host::router::PipeSource;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;

const MESSAGES: usize = 100;

fn text(message: &WebRtcMessage<'_>) -> Option<String> {
    match message {
        WebRtcMessage::String(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

fn send(producer: &DirectDataProducer, body: String) {
    producer.send(WebRtcMessage::String(Cow::Owned(body.into_bytes())), None, None, None).expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_consumers_on_two_workers_receive_everything_in_order() {
    let manager = slotted_manager(3);
    let (_worker, router) = router(&manager).await;
    let mut options = DirectTransportOptions::default();
    options.app_data = slot(0);
    let sending = router.create_direct_transport(options).await.expect("direct transport");
    let data_producer = sending.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
    let DataProducer::Direct(direct) = &data_producer else { panic!("a direct transport makes direct data producers") };

    let mut inboxes = Vec::new();
    let mut keep = Vec::new();
    for k in [1, 2] {
        let mut options = DirectTransportOptions::default();
        options.app_data = slot(k);
        let transport = router.create_direct_transport(options).await.expect("direct transport");
        assert_ne!(transport.cell(), sending.cell());
        let consumer = transport
            .consume_data(DataConsumerOptions::new_direct(data_producer.id(), None))
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
        inboxes.push(rx);
        keep.push((transport, consumer));
    }
    let cells: BTreeSet<_> = keep.iter().map(|(t, _)| t.cell()).collect();
    assert_eq!(cells.len(), 2, "consumers on two different workers");
    for (_, consumer) in &keep {
        let dump = consumer.dump().await.expect("data consumer dump");
        assert_eq!(dump.data_producer_id, data_producer.id(), "the dump names the app's data producer");
    }
    let pipes = router.pipes();
    assert_eq!(pipes.len(), 2);
    assert!(pipes.iter().all(|(source, _)| *source == PipeSource::DataProducer(data_producer.id())));

    // The pipes' SCTP associations come up asynchronously (as in mediasoup): probe until both
    // consumers heard one, then send the real messages.
    let mut heard = [false, false];
    let mut probe = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    while heard != [true, true] {
        assert!(tokio::time::Instant::now() < deadline, "pipes never carried a probe: {heard:?}");
        probe.tick().await;
        send(direct, "probe".into());
        for (i, inbox) in inboxes.iter_mut().enumerate() {
            while let Ok(message) = inbox.try_recv() {
                heard[i] |= message == "probe";
            }
        }
    }
    for i in 0..MESSAGES {
        send(direct, format!("message-{i}"));
    }
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < MESSAGES {
            let message =
                tokio::time::timeout(EVENT_LIMIT, inbox.recv()).await.expect("message in time").expect("open");
            if message != "probe" {
                got.push(message);
            }
        }
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("message-{i}")).collect();
        assert_eq!(got, expected, "consumer {i} got every message in order");
    }
}
