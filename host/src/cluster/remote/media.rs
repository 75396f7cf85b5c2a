//! Producers and consumers on another host.

use super::*;

impl State for ProducerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn released(&self, link: &HostLink) {
        link.forget_producer(&self.id);
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            Event::ProducerScore(score) => self.score = score.get().unwrap_or_default(),
            _ => {}
        }
    }
}

#[async_trait]
impl ProducerBackend for Remote<ProducerInfo> {
    fn id(&self) -> ProducerId {
        self.read(|s| s.id)
    }
    fn kind(&self) -> MediaKind {
        self.read(|s| s.kind)
    }
    fn rtp_parameters(&self) -> RtpParameters {
        self.read(|s| s.rtp_parameters.clone())
    }
    fn consumable_rtp_parameters(&self) -> RtpParameters {
        self.read(|s| s.consumable_rtp_parameters.clone())
    }
    fn r#type(&self) -> ProducerType {
        self.read(|s| s.r#type)
    }
    fn is_direct(&self) -> bool {
        self.read(|s| s.is_direct)
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    fn score(&self) -> Vec<ProducerScore> {
        self.read(|s| s.score.clone())
    }
    async fn dump(&self) -> Result<ProducerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<ProducerStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn enable_trace_event(&self, types: Vec<ProducerTraceEventType>) -> Result<(), RequestError> {
        self.enable_trace(TraceTypes::Producer(types)).await
    }
    fn send(&self, packet: Vec<u8>) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        self.link.notify(Op::SendRtp { producer: self.handle, packet });
        Ok(())
    }
    events_of!(producer => client_events!());
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

impl State for ConsumerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        // `paused` is the consumer's own (set by this side's pause and resume): mediasoup fires
        // `on_pause` when the producer pauses too, without pausing the consumer.
        match event {
            Event::ProducerPaused => self.producer_paused = true,
            Event::ProducerResumed => self.producer_paused = false,
            Event::ConsumerScore(score) => self.score = score.get().unwrap_or_else(|_| self.score.clone()),
            Event::Layers(layers) => self.current_layers = layers.get().unwrap_or(self.current_layers),
            _ => {}
        }
    }
}

impl Remote<ConsumerInfo> {
    /// Sets (or with `None` unsets) the priority; keeps what the worker answers.
    async fn set_priority_to(&self, priority: Option<u8>) -> Result<(), RequestError> {
        let priority: u8 = value(self.call(Op::SetPriority { consumer: self.handle, priority }).await?)?;
        lock(&self.state).priority = priority;
        Ok(())
    }
}

#[async_trait]
impl ConsumerBackend for Remote<ConsumerInfo> {
    fn id(&self) -> ConsumerId {
        self.read(|s| s.id)
    }
    fn kind(&self) -> MediaKind {
        self.read(|s| s.kind)
    }
    fn rtp_parameters(&self) -> RtpParameters {
        self.read(|s| s.rtp_parameters.clone())
    }
    fn r#type(&self) -> ConsumerType {
        self.read(|s| s.r#type)
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    fn producer_paused(&self) -> bool {
        self.read(|s| s.producer_paused)
    }
    fn priority(&self) -> u8 {
        self.read(|s| s.priority)
    }
    fn score(&self) -> ConsumerScore {
        self.read(|s| s.score.clone())
    }
    fn preferred_layers(&self) -> Option<ConsumerLayers> {
        self.read(|s| s.preferred_layers)
    }
    fn current_layers(&self) -> Option<ConsumerLayers> {
        self.read(|s| s.current_layers)
    }
    async fn dump(&self) -> Result<ConsumerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<ConsumerRtpStreamStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn set_preferred_layers(&self, layers: ConsumerLayers) -> Result<(), RequestError> {
        let op = Op::SetPreferredLayers { consumer: self.handle, layers: Payload::new(&layers) };
        let layers: Option<ConsumerLayers> = value(self.call(op).await?)?;
        lock(&self.state).preferred_layers = layers;
        Ok(())
    }
    async fn set_priority(&self, priority: u8) -> Result<(), RequestError> {
        self.set_priority_to(Some(priority)).await
    }
    async fn unset_priority(&self) -> Result<(), RequestError> {
        self.set_priority_to(None).await
    }
    async fn request_key_frame(&self) -> Result<(), RequestError> {
        done(self.call(Op::RequestKeyFrame { consumer: self.handle }).await?)
    }
    async fn enable_trace_event(&self, types: Vec<ConsumerTraceEventType>) -> Result<(), RequestError> {
        self.enable_trace(TraceTypes::Consumer(types)).await
    }
    events_of!(consumer => client_events!());
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}
