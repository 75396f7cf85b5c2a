//! Observers see producers wherever they live: an AudioLevelObserver on worker A reports the
//! volume of a producer living on worker B (piped to A), naming the virtual producer.

mod common;

use common::{plain_producer, router, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{opus_send_parameters_with_audio_level, AUDIO_LEVEL_EXTENSION_ID};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
use std::num::NonZeroU16;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_level_observer_hears_a_producer_on_another_worker() {
    let manager = slotted_manager(2);
    let (_worker, router) = router(&manager).await;
    let mut options = AudioLevelObserverOptions::default();
    options.interval = 200;
    options.max_entries = NonZeroU16::MIN;
    options.app_data = slot(0);
    let observer = router.create_audio_level_observer(options).await.expect("observer");

    let ssrc = 0x50a1;
    let (transport, producer) =
        plain_producer(&router, 1, MediaKind::Audio, opus_send_parameters_with_audio_level(ssrc)).await;
    assert_ne!(observer.cell(), transport.cell(), "observer and producer on different workers");
    observer.add_producer(RtpObserverAddProducerOptions::new(producer.id())).await.expect("add producer");
    assert_eq!(router.pipes().len(), 1, "the producer was piped to the observer's worker");

    let (tx, mut rx) = mpsc::unbounded_channel();
    observer
        .on_volumes(move |volumes| {
            for v in volumes {
                let _ = tx.send((v.producer.id(), v.volume));
            }
        })
        .detach();
    let _generator = RtpGenerator::start(
        &transport,
        GeneratorConfig::opus(ssrc).with_rate(50).with_audio_level(AUDIO_LEVEL_EXTENSION_ID, 30),
    )
    .await
    .expect("generator");
    let (id, volume) = tokio::time::timeout(EVENT_LIMIT, rx.recv()).await.expect("volumes reported").expect("open");
    assert_eq!(id, producer.id(), "the event names the virtual producer");
    assert_eq!(volume, -30, "the level the generator sent");

    // Removing the producer releases the observer's pipe.
    observer.remove_producer(producer.id()).await.expect("remove");
    assert!(router.pipes().is_empty());
}
