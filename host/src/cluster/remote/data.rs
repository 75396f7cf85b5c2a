//! Data producers and consumers on another host.

use super::*;

impl State for DataProducerInfo {
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
impl DataProducerBackend for Remote<DataProducerInfo> {
    fn id(&self) -> DataProducerId {
        self.read(|s| s.id)
    }
    fn r#type(&self) -> DataProducerType {
        self.read(|s| s.r#type)
    }
    fn is_direct(&self) -> bool {
        self.read(|s| s.r#type == DataProducerType::Direct)
    }
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.read(|s| s.sctp_stream_parameters.map(|p| p.parameters()))
    }
    fn label(&self) -> String {
        self.read(|s| s.label.clone())
    }
    fn protocol(&self) -> String {
        self.read(|s| s.protocol.clone())
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    async fn dump(&self) -> Result<DataProducerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<DataProducerStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    fn send(
        &self,
        message: WebRtcMessage<'_>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        let (ppid, payload) = message.into_ppid_and_payload();
        self.link.notify(Op::SendData {
            data_producer: self.handle,
            ppid,
            payload: payload.into_owned(),
            subchannels,
            required_subchannel,
            ignored_subchannel,
        });
        Ok(())
    }
    events_of!(data_producer => client_events!());
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

impl State for DataConsumerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        // `paused` is the data consumer's own (see the consumer's).
        match event {
            Event::ProducerPaused => self.producer_paused = true,
            Event::ProducerResumed => self.producer_paused = false,
            _ => {}
        }
    }
}

impl Remote<DataConsumerInfo> {
    /// Carries out a subchannel change; keeps the subchannels the worker answers with.
    async fn subchannels_after(&self, op: Op) -> Result<(), RequestError> {
        let subchannels: Vec<u16> = value(self.call(op).await?)?;
        lock(&self.state).subchannels = subchannels;
        Ok(())
    }
}

#[async_trait]
impl DataConsumerBackend for Remote<DataConsumerInfo> {
    fn id(&self) -> DataConsumerId {
        self.read(|s| s.id)
    }
    fn r#type(&self) -> DataConsumerType {
        self.read(|s| s.r#type)
    }
    fn is_direct(&self) -> bool {
        self.read(|s| s.r#type == DataConsumerType::Direct)
    }
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.read(|s| s.sctp_stream_parameters.map(|p| p.parameters()))
    }
    fn label(&self) -> String {
        self.read(|s| s.label.clone())
    }
    fn protocol(&self) -> String {
        self.read(|s| s.protocol.clone())
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    fn producer_paused(&self) -> bool {
        self.read(|s| s.producer_paused)
    }
    fn subchannels(&self) -> Vec<u16> {
        self.read(|s| s.subchannels.clone())
    }
    async fn dump(&self) -> Result<DataConsumerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<DataConsumerStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn get_buffered_amount(&self) -> Result<u32, RequestError> {
        match self.call(Op::GetBufferedAmount { data_consumer: self.handle }).await? {
            Reply::Number(n) => Ok(n),
            other => Err(bad_reply(&other)),
        }
    }
    async fn set_buffered_amount_low_threshold(&self, threshold: u32) -> Result<(), RequestError> {
        done(self.call(Op::SetBufferedAmountLowThreshold { data_consumer: self.handle, threshold }).await?)
    }
    async fn set_subchannels(&self, subchannels: Vec<u16>) -> Result<(), RequestError> {
        self.subchannels_after(Op::SetSubchannels { data_consumer: self.handle, subchannels }).await
    }
    async fn add_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        self.subchannels_after(Op::AddSubchannel { data_consumer: self.handle, subchannel }).await
    }
    async fn remove_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        self.subchannels_after(Op::RemoveSubchannel { data_consumer: self.handle, subchannel }).await
    }
    async fn send(&self, message: WebRtcMessage<'_>) -> Result<u32, RequestError> {
        let (ppid, payload) = message.into_ppid_and_payload();
        let op = Op::SendToDataConsumer { data_consumer: self.handle, ppid, payload: payload.into_owned() };
        match self.call(op).await? {
            Reply::Number(n) => Ok(n),
            other => Err(bad_reply(&other)),
        }
    }
    events_of!(data_consumer => client_events!());
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}
