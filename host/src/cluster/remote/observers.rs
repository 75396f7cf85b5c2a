//! RTP observers on another host.

use super::*;

/// An RTP observer's state.
pub(crate) struct ObserverState {
    pub(super) id: RtpObserverId,
    pub(super) paused: bool,
}

impl State for ObserverState {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            _ => {}
        }
    }
}

#[async_trait]
impl RtpObserverBackend for Remote<ObserverState> {
    fn id(&self) -> RtpObserverId {
        self.read(|s| s.id)
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn add_producer(&self, options: RtpObserverAddProducerOptions) -> Result<(), RequestError> {
        let op = Op::AddProducer { observer: self.handle, producer_id: Payload::new(&options.producer_id) };
        done(self.call(op).await?)
    }
    async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError> {
        let op = Op::RemoveProducer { observer: self.handle, producer_id: Payload::new(&producer_id) };
        done(self.call(op).await?)
    }
    events_of!(rtp_observer => client_events!());
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

impl AudioLevelObserverBackend for Remote<ObserverState> {
    events_of!(audio_level_observer => client_events!());
}

impl ActiveSpeakerObserverBackend for Remote<ObserverState> {
    events_of!(active_speaker_observer => client_events!());
}
