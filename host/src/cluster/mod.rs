//! The cluster: hosts serve their workers over QUIC to applications and to each other, so one
//! virtual router spans the workers of many hosts with the same mediasoup API.
//!
//! - [`proto`]: the wire protocol, sans-IO (frames, messages, hello check);
//! - [`tls`] and [`certs`]: the cluster CA, node certificates, rustls configurations;
//! - [`link`]: framed messages over a QUIC stream, with a bounded outbox;
//! - [`session`]: sessions, sans-IO (admission, resume by secret, replay, expiry);
//! - [`grant`]: what a token grants, and the one check every operation passes;
//! - [`limits`]: every bound of a cluster endpoint and its default;
//! - [`server`] (with `dispatch`): a host serving sessions on its workers;
//! - [`client`]: a link to one host (reconnecting, resuming its session);
//! - [`consumable`]: mediasoup's `can_consume` rule, for producers on other hosts;
//! - `events`: each object kind's events, declared once for both sides;
//! - `remote`: the cell backend seam's traits over a link (workers of another host);
//! - `membership`: other hosts' workers as cells of this host.
//!
//! Only control crosses QUIC: media flows endpoint↔host and host↔host over UDP (pipe transports
//! listen on each host's announced address).

/// The SCTP settings of any mediasoup transport options or settings (they share field names)
/// as a [`proto::SctpWire`].
macro_rules! sctp_wire_of {
    ($o:expr) => {
        $crate::cluster::proto::SctpWire {
            enable_sctp: $o.enable_sctp,
            max_send_message_size: $o.max_send_message_size,
            max_receive_message_size: $o.max_receive_message_size,
            sctp_send_buffer_size: $o.sctp_send_buffer_size,
            sctp_per_stream_send_queue_limit: $o.sctp_per_stream_send_queue_limit,
            sctp_max_receiver_window_buffer_size: $o.sctp_max_receiver_window_buffer_size,
            sctp_default_stream_buffered_amount_low_threshold: $o.sctp_default_stream_buffered_amount_low_threshold,
            sctp_zero_checksum: $o.sctp_zero_checksum,
        }
    };
}

/// Writes a [`proto::SctpWire`] into mediasoup transport options.
macro_rules! apply_sctp_wire {
    ($o:expr, $w:expr) => {{
        let w = $w;
        $o.enable_sctp = w.enable_sctp;
        $o.max_send_message_size = w.max_send_message_size;
        $o.max_receive_message_size = w.max_receive_message_size;
        $o.sctp_send_buffer_size = w.sctp_send_buffer_size;
        $o.sctp_per_stream_send_queue_limit = w.sctp_per_stream_send_queue_limit;
        $o.sctp_max_receiver_window_buffer_size = w.sctp_max_receiver_window_buffer_size;
        $o.sctp_default_stream_buffered_amount_low_threshold = w.sctp_default_stream_buffered_amount_low_threshold;
        $o.sctp_zero_checksum = w.sctp_zero_checksum;
    }};
}

/// The bitrate settings of any mediasoup transport options or settings (they share field
/// names) as a [`proto::BitrateWire`].
macro_rules! bitrate_wire_of {
    ($o:expr) => {
        $crate::cluster::proto::BitrateWire {
            enable_bwe: $o.enable_bwe,
            initial_available_outgoing_bitrate: $o.initial_available_outgoing_bitrate,
            max_incoming_bitrate: $o.max_incoming_bitrate,
            max_outgoing_bitrate: $o.max_outgoing_bitrate,
            min_outgoing_bitrate: $o.min_outgoing_bitrate,
        }
    };
}

/// Writes a [`proto::BitrateWire`] into mediasoup transport options.
macro_rules! apply_bitrate_wire {
    ($o:expr, $w:expr) => {{
        let w = $w;
        $o.enable_bwe = w.enable_bwe;
        $o.initial_available_outgoing_bitrate = w.initial_available_outgoing_bitrate;
        $o.max_incoming_bitrate = w.max_incoming_bitrate;
        $o.max_outgoing_bitrate = w.max_outgoing_bitrate;
        $o.min_outgoing_bitrate = w.min_outgoing_bitrate;
    }};
}

/// The SCTP state of a backend transport.
macro_rules! sctp_info_of {
    ($t:expr) => {
        $crate::cluster::proto::SctpInfo {
            parameters: $t.sctp_parameters(),
            state: $t.sctp_state(),
            negotiated: $t.sctp_negotiated_capabilities(),
        }
    };
}

#[macro_use]
mod events;

pub mod certs;
pub mod client;
pub mod consumable;
mod dispatch;
pub mod grant;
pub mod limits;
pub mod link;
mod membership;
pub mod proto;
pub mod refusals;
pub(crate) mod remote;
pub mod server;
pub mod session;
pub mod tls;

use crate::config::ClusterOptions;
use crate::host::Host;
use crate::internals::object::lock;
use client::{HostLink, LinkObserver, LinkState, LinkTarget, LinkTransport};
use membership::Membership;
use proto::Role;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use thiserror::Error;

/// The cluster could not be joined.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The QUIC endpoint.
    #[error("cluster endpoint: {0}")]
    Endpoint(String),
    /// No host could be used.
    #[error("no cluster host is usable: {0}")]
    Unusable(String),
}

/// The runtime cluster links run on (whatever executor the application uses): one worker
/// thread drives every link's reader, writer and QUIC connection, so a request and its reply
/// cross no thread of this side but the caller's (two threads measured ≈ 60 µs slower per
/// `create_plain_transport + consume()` on two cores). Event callbacks run on it: they must be
/// quick, as mediasoup's on its channel thread.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, ClusterError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    one_thread_runtime(&RUNTIME, "mafalda-cluster")
}

/// A process-wide runtime of one worker thread named `name`, built once in `cell`.
pub(crate) fn one_thread_runtime(
    cell: &'static OnceLock<Result<tokio::runtime::Runtime, String>>,
    name: &str,
) -> Result<&'static tokio::runtime::Runtime, ClusterError> {
    // Built inside `get_or_init`: only one caller builds it (a runtime built by a losing racer
    // would be dropped inside an async context, which tokio forbids).
    cell.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| ClusterError::Endpoint(e.clone()))
}

/// The QUIC endpoint this process's links leave from (on the cluster runtime).
fn client_endpoint() -> Result<quinn::Endpoint, ClusterError> {
    let _enter = runtime()?.enter();
    quinn::Endpoint::client(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
        .map_err(|e| ClusterError::Endpoint(e.to_string()))
}

/// How this process's links are made (every link of a [`Cluster`] alike, but its address).
#[derive(Clone)]
struct LinkTemplate {
    role: Role,
    node: String,
    transport: LinkTransport,
}

/// This process's links to the hosts whose workers it uses: a fixed list (`MAFALDA_CLUSTER`,
/// `--peer`) or, in a fleet, the hosts the registry's records lead to (links come and go).
pub struct Cluster {
    links: Mutex<Vec<Arc<HostLink>>>,
    membership: Arc<Membership>,
    observer: Arc<dyn LinkObserver>,
    template: LinkTemplate,
    /// The token of new links (the configured one, until refreshed).
    token: Mutex<Option<String>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("links", &*lock(&self.links)).finish()
    }
}

impl Cluster {
    fn join(
        host: &Arc<Host>,
        template: LinkTemplate,
        token: Option<String>,
        addresses: &[String],
    ) -> Result<Arc<Self>, ClusterError> {
        let rt = runtime()?;
        let membership = Membership::new(host);
        let observer: Arc<dyn LinkObserver> = membership.clone();
        let cluster = Arc::new(Self {
            links: Mutex::default(),
            membership,
            observer,
            template,
            token: Mutex::new(token),
            runtime: rt.handle().clone(),
        });
        for address in addresses {
            cluster.link(address, None);
        }
        Ok(cluster)
    }

    /// An application's links (server TLS against the CA, its token) to `options.hosts`.
    pub fn for_application(host: &Arc<Host>, options: &ClusterOptions) -> Result<Arc<Self>, ClusterError> {
        let ca = options.ca.as_deref().ok_or_else(|| ClusterError::Unusable("no CA given (MAFALDA_CA)".into()))?;
        let config = tls::app_client_config(ca)?;
        let quic = limits::QuicLimits::for_application(options).map_err(|e| ClusterError::Unusable(e.to_string()))?;
        let node = std::env::args().next().unwrap_or_else(|| "application".into());
        let endpoint = client_endpoint()?;
        let template =
            LinkTemplate { role: Role::Client, node, transport: LinkTransport::Quic { config, quic, endpoint } };
        Self::join(host, template, options.token.clone(), &options.hosts)
    }

    /// A host's links to its peers (mutual TLS with its node certificate, `quic`'s timers).
    pub fn for_peers(
        host: &Arc<Host>,
        peers: &[String],
        node_tls: &tls::NodeTls,
        quic: &limits::QuicLimits,
    ) -> Result<Arc<Self>, ClusterError> {
        let config = node_tls.peer_client_config()?;
        let node = host.options().node.clone();
        let endpoint = client_endpoint()?;
        let template = LinkTemplate {
            role: Role::Peer,
            node,
            transport: LinkTransport::Quic { config, quic: quic.clone(), endpoint },
        };
        Self::join(host, template, None, peers)
    }

    /// Opens a link to `address` (it connects in the background). With `expect_node`, the host
    /// there must prove that node name with its certificate, or the link is refused.
    pub fn link(&self, address: &str, expect_node: Option<&str>) -> Arc<HostLink> {
        let _enter = self.runtime.enter();
        let target = LinkTarget {
            address: address.to_string(),
            role: self.template.role,
            node: self.template.node.clone(),
            token: lock(&self.token).clone(),
            transport: self.template.transport.clone(),
            expect_node: expect_node.map(String::from),
        };
        let link = HostLink::start(target, self.runtime.clone(), Arc::downgrade(&self.observer));
        lock(&self.links).push(Arc::clone(&link));
        link
    }

    /// Closes the link to `address` opened for `expect_node`: its host's workers leave this side
    /// (they are counted lost: close only links no room uses). Another link to the same address
    /// (a registry record naming another node there, refused or not) is left alone, and so are
    /// the workers it brought.
    pub fn unlink(&self, address: &str, expect_node: Option<&str>) {
        let (removed, shared) = {
            let mut links = lock(&self.links);
            let (gone, kept): (Vec<_>, Vec<_>) =
                links.drain(..).partition(|l| l.address() == address && l.expected_node() == expect_node);
            *links = kept;
            (gone, links.iter().any(|l| l.address() == address))
        };
        for link in removed {
            link.shutdown();
            // Membership knows workers by address: a link that never proved its host (refused:
            // the certificate there names another node) brought none, and must not take those
            // of the link that did.
            if link.node().is_some() || !shared {
                self.membership.forget(&link);
            }
        }
    }

    /// Watches the linked hosts' adverts (bumped on each).
    pub(crate) fn adverts(&self) -> tokio::sync::watch::Receiver<u64> {
        self.membership.adverts()
    }

    /// The links now.
    pub fn links(&self) -> Vec<Arc<HostLink>> {
        lock(&self.links).clone()
    }

    /// Presents a new token to every host (an expiring token is replaced without reconnecting;
    /// the sessions keep their objects). Fails with the hosts that refused it.
    pub async fn refresh_token(&self, token: &str) -> Result<(), ClusterError> {
        let rt = runtime()?;
        let links = self.links();
        *lock(&self.token) = Some(token.to_string());
        let token = token.to_string();
        let refreshed = rt.spawn(async move {
            let mut refused = Vec::new();
            for link in &links {
                if let Err(error) = link.refresh_token(token.clone()).await {
                    refused.push(format!("{}: {error}", link.address()));
                }
            }
            refused
        });
        let refused = refreshed.await.map_err(|e| ClusterError::Endpoint(e.to_string()))?;
        if refused.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Unusable(refused.join("; ")))
        }
    }

    /// Each link's numbers (state, RTT, queue, resumes).
    pub fn link_stats(&self) -> Vec<client::LinkStats> {
        self.links().iter().map(|l| l.stats()).collect()
    }

    /// Each link's state.
    pub fn states(&self) -> Vec<(String, LinkState)> {
        self.links().iter().map(|l| (l.address().to_string(), l.state().borrow().clone())).collect()
    }

    /// Waits (at most `deadline`) until every link is up with its workers known, or refused,
    /// or unreachable; fails when no link is up.
    pub async fn ready(&self, deadline: Duration) -> Result<(), ClusterError> {
        let rt = runtime()?;
        let links = self.links();
        let membership = Arc::clone(&self.membership);
        let waited = rt.spawn(async move {
            let end = tokio::time::Instant::now() + deadline;
            for link in &links {
                let mut state = link.state();
                let _ = tokio::time::timeout_at(end, state.wait_for(|s| !matches!(s, LinkState::Connecting))).await;
                if matches!(*link.state().borrow(), LinkState::Up(_)) {
                    let mut adverts = membership.adverts();
                    let _ = tokio::time::timeout_at(end, adverts.wait_for(|_| membership.advertised(link))).await;
                }
            }
        });
        let _ = waited.await;
        self.verdict()
    }

    /// Waits (at most `deadline`) until one link is up with its workers known, or no link is
    /// still connecting; fails when no link is up. A fleet's links: a record may name a host
    /// that never answers (its handshake fails after seconds), which no one should wait for
    /// while another host serves.
    pub async fn ready_any(&self, deadline: Duration) -> Result<(), ClusterError> {
        let rt = runtime()?;
        let links = self.links();
        let membership = Arc::clone(&self.membership);
        let waited = rt.spawn(async move {
            let mut adverts = membership.adverts();
            let mut states: Vec<_> = links.iter().map(|l| l.state()).collect();
            let settled = async {
                loop {
                    let up = links
                        .iter()
                        .any(|l| matches!(*l.state().borrow(), LinkState::Up(_)) && membership.advertised(l));
                    let connecting = links.iter().any(|l| matches!(*l.state().borrow(), LinkState::Connecting));
                    if up || !connecting {
                        return;
                    }
                    // An advert, or any link's state changing.
                    let changes = states.iter_mut().map(|s| Box::pin(s.changed()));
                    tokio::select! {
                        _ = adverts.changed() => {}
                        _ = futures_util::future::select_all(changes) => {}
                    }
                }
            };
            let _ = tokio::time::timeout(deadline, settled).await;
        });
        let _ = waited.await;
        self.verdict()
    }

    /// Ok when a link is up, else why none is.
    fn verdict(&self) -> Result<(), ClusterError> {
        let states = self.states();
        if states.iter().any(|(_, s)| matches!(s, LinkState::Up(_))) {
            return Ok(());
        }
        let reasons: Vec<String> = states
            .iter()
            .map(|(address, state)| match state {
                LinkState::Refused(reason) | LinkState::Down(reason) => reason.clone(),
                other => format!("{address}: {other:?}"),
            })
            .collect();
        Err(ClusterError::Unusable(reasons.join("; ")))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for link in lock(&self.links).iter() {
            link.shutdown();
        }
    }
}
