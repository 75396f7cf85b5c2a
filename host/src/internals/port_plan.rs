//! Port plans of WebRTC servers spread over workers.
//!
//! A real WebRtcServer binds its ports in one worker, so a virtual server spread over the
//! workers of a pool needs one set of ports per worker *slot* (a small number stable for a
//! worker's life, `0..max_workers`). A listen info with an explicit `port` P listens on
//! `P + slot × stride` (`[pool] webrtc_server_port_stride`, default
//! [`DEFAULT_PORT_STRIDE`]): slot 0 uses exactly the configured ports, and servers whose
//! configured ports differ by less than the stride — mediasoup-demo's one server per worker on
//! `base + i` — never meet in any slot. Listen infos without a port (or with a port range) are
//! used as given in every slot.
//!
//! Every virtual server's plan is claimed host-wide when it is created: a plan that shares a
//! port with another live server's plan in any slot is refused then (with both plans named),
//! not when a worker is added later. The ports of slots whose worker is not running yet are
//! *held* by placeholder sockets, so a port taken by another program also fails at creation;
//! a slot's placeholders are released right before its worker binds the real server.

use mediasoup::prelude::{ListenInfo, Protocol};
use mediasoup::webrtc_server::WebRtcServerId;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;
use thiserror::Error;

use crate::internals::object::lock;

/// Port distance between two worker slots of a WebRTC server (see the module docs).
pub const DEFAULT_PORT_STRIDE: u16 = 100;

/// A server's ports cannot be planned or claimed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PortPlanError {
    /// A slot's port would exceed 65535.
    #[error(
        "port {port} leaves no room for {slots} workers: slot {slot} would listen on {wanted} \
         (port + slot × stride {stride}); lower the port, the stride or max_workers"
    )]
    NoRoom {
        /// The configured port.
        port: u16,
        /// Slots the pool may have.
        slots: usize,
        /// The slot that does not fit.
        slot: usize,
        /// The port it would need.
        wanted: u32,
        /// The stride.
        stride: u16,
    },
    /// Another server's plan uses the same port.
    #[error(
        "{protocol:?} port {port} is in the plan of WebRtcServer {other} too (this server's slot \
         {slot}); use configured ports further apart than the stride ({stride}) or another stride"
    )]
    Overlap {
        /// The protocol.
        protocol: Protocol,
        /// The port both plans use.
        port: u16,
        /// The server holding it.
        other: WebRtcServerId,
        /// This server's slot that needs it.
        slot: usize,
        /// The stride.
        stride: u16,
    },
    /// Two listen infos of one server need the same port in two slots.
    #[error("{protocol:?} port {port} is needed by two listen infos of this server (slots {} and {}); use ports further apart than the stride", slots.0, slots.1)]
    SelfOverlap {
        /// The protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
        /// The slots needing it.
        slots: (usize, usize),
    },
    /// A port could not be held (taken by another program).
    #[error("cannot bind {protocol:?} {address} for worker slot {slot}: {reason}")]
    Bind {
        /// The protocol.
        protocol: Protocol,
        /// The address.
        address: SocketAddr,
        /// The slot.
        slot: usize,
        /// The system's error.
        reason: String,
    },
}

/// Where a server listens in each slot.
#[derive(Debug, Clone)]
pub(crate) struct PortPlan {
    base: Vec<ListenInfo>,
    stride: u16,
    slots: usize,
}

/// One planned (protocol, ip, port) of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planned {
    protocol: Protocol,
    ip: IpAddr,
    port: u16,
    slot: usize,
}

impl Planned {
    /// Whether two sockets would compete for the same port.
    fn meets(&self, other: &Planned) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && (self.ip == other.ip || self.ip.is_unspecified() || other.ip.is_unspecified())
    }
}

impl PortPlan {
    /// The plan of `base` over `slots` slots; refused when a slot's port would not fit.
    pub(crate) fn new(base: Vec<ListenInfo>, stride: u16, slots: usize) -> Result<Self, PortPlanError> {
        for info in &base {
            if let Some(port) = info.port {
                let last = slots.saturating_sub(1);
                let wanted = u64::from(port) + last as u64 * u64::from(stride);
                if wanted > u64::from(u16::MAX) {
                    let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
                    return Err(PortPlanError::NoRoom { port, slots, slot: last, wanted, stride });
                }
            }
        }
        let plan = Self { base, stride, slots };
        // Two listen infos of this server must not meet in any pair of slots either.
        let planned: Vec<Planned> = plan.planned().collect();
        for (at, a) in planned.iter().enumerate() {
            if let Some(b) = planned[at + 1..].iter().find(|b| a.meets(b)) {
                return Err(PortPlanError::SelfOverlap { protocol: a.protocol, port: a.port, slots: (a.slot, b.slot) });
            }
        }
        Ok(plan)
    }

    /// The slots the plan covers.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The port of a configured `port` in `slot` (saturating; [`PortPlan::new`] checked it fits
    /// for every slot of the plan).
    fn port_in(&self, port: u16, slot: usize) -> u16 {
        let offset = u16::try_from(slot).unwrap_or(u16::MAX).saturating_mul(self.stride);
        port.saturating_add(offset)
    }

    /// The listen infos of the worker in `slot`.
    pub(crate) fn listen_infos(&self, slot: usize) -> Vec<ListenInfo> {
        self.base
            .iter()
            .map(|info| {
                let mut info = info.clone();
                if info.port_range.is_none() {
                    info.port = info.port.map(|port| self.port_in(port, slot));
                }
                info
            })
            .collect()
    }

    /// Every explicit port of every slot.
    fn planned(&self) -> impl Iterator<Item = Planned> + '_ {
        (0..self.slots).flat_map(move |slot| {
            self.base.iter().filter(|i| i.port_range.is_none()).filter_map(move |info| {
                info.port.map(|port| Planned {
                    protocol: info.protocol,
                    ip: info.ip,
                    port: self.port_in(port, slot),
                    slot,
                })
            })
        })
    }

    /// The first port this plan shares with `other`, with this plan's slot needing it.
    fn meets(&self, other: &PortPlan) -> Option<Planned> {
        let theirs: Vec<Planned> = other.planned().collect();
        self.planned().find(|mine| theirs.iter().any(|t| mine.meets(t)))
    }
}

/// The plans of the host's live servers.
#[derive(Debug, Default)]
pub(crate) struct PortClaims {
    plans: Mutex<HashMap<WebRtcServerId, PortPlan>>,
}

impl PortClaims {
    /// Claims `plan` for `server`, unless it shares a port with another live server's plan.
    pub(crate) fn claim(&self, server: WebRtcServerId, plan: &PortPlan) -> Result<(), PortPlanError> {
        let mut plans = lock(&self.plans);
        for (other, theirs) in plans.iter() {
            if let Some(clash) = plan.meets(theirs) {
                return Err(PortPlanError::Overlap {
                    protocol: clash.protocol,
                    port: clash.port,
                    other: *other,
                    slot: clash.slot,
                    stride: plan.stride,
                });
            }
        }
        plans.insert(server, plan.clone());
        Ok(())
    }

    /// Releases a server's claim (it closed).
    pub(crate) fn release(&self, server: &WebRtcServerId) {
        lock(&self.plans).remove(server);
    }

    /// Claims held ([`crate::host::Host::footprint`]).
    pub(crate) fn len(&self) -> usize {
        lock(&self.plans).len()
    }
}

/// A socket holding a planned port until its slot's worker binds it.
#[derive(Debug)]
pub(crate) enum Held {
    /// A UDP port.
    Udp(#[allow(dead_code)] UdpSocket),
    /// A TCP port.
    Tcp(#[allow(dead_code)] TcpListener),
}

/// Binds every explicit port of `infos` (the listen infos of `slot`).
pub(crate) fn hold(infos: &[ListenInfo], slot: usize) -> Result<Vec<Held>, PortPlanError> {
    infos
        .iter()
        .filter(|info| info.port_range.is_none())
        .filter_map(|info| info.port.map(|port| (info.protocol, SocketAddr::new(info.ip, port))))
        .map(|(protocol, address)| {
            let held = match protocol {
                Protocol::Udp => UdpSocket::bind(address).map(Held::Udp),
                Protocol::Tcp => TcpListener::bind(address).map(Held::Tcp),
            };
            held.map_err(|e| PortPlanError::Bind { protocol, address, slot, reason: e.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn info(protocol: Protocol, port: Option<u16>) -> ListenInfo {
        ListenInfo { protocol, port, ..crate::config::PipeOptions::default().listen_info() }
    }

    fn id() -> WebRtcServerId {
        crate::internals::object::fresh_id()
    }

    #[test]
    fn explicit_ports_move_by_the_stride_and_others_stay() {
        let plan =
            PortPlan::new(vec![info(Protocol::Udp, Some(44_000)), info(Protocol::Udp, None)], 100, 4).expect("fits");
        let slot2 = plan.listen_infos(2);
        assert_eq!(slot2[0].port, Some(44_200));
        assert_eq!(slot2[1].port, None);
        assert_eq!(plan.listen_infos(0)[0].port, Some(44_000));
    }

    #[test]
    fn every_slot_must_fit_below_65536() {
        assert!(PortPlan::new(vec![info(Protocol::Udp, Some(65_335))], 100, 3).is_ok());
        let error = PortPlan::new(vec![info(Protocol::Udp, Some(65_336))], 100, 3).expect_err("slot 2 overflows");
        assert!(matches!(error, PortPlanError::NoRoom { slot: 2, wanted: 65_536, .. }), "{error}");
        assert!(PortPlan::new(vec![info(Protocol::Udp, None)], 100, 64).is_ok());
    }

    #[test]
    fn one_server_per_worker_on_base_plus_i_never_overlaps() {
        let claims = PortClaims::default();
        for i in 0..8u16 {
            let plan = PortPlan::new(
                vec![info(Protocol::Udp, Some(44_444 + i)), info(Protocol::Tcp, Some(44_444 + i))],
                100,
                16,
            )
            .expect("fits");
            claims.claim(id(), &plan).expect("no overlap");
        }
    }

    #[test]
    fn overlapping_plans_are_refused_and_released_claims_free_ports() {
        let claims = PortClaims::default();
        let first = id();
        let a = PortPlan::new(vec![info(Protocol::Udp, Some(40_000))], 100, 4).expect("fits");
        claims.claim(first, &a).expect("first claim");
        // 40 100 is slot 1 of the first server and slot 0 of this one.
        let b = PortPlan::new(vec![info(Protocol::Udp, Some(40_100))], 100, 4).expect("fits");
        let error = claims.claim(id(), &b).expect_err("overlap");
        assert!(
            matches!(error, PortPlanError::Overlap { port: 40_100, slot: 0, other, .. } if other == first),
            "{error}"
        );
        // Another protocol, or another IP, does not meet.
        let tcp = PortPlan::new(vec![info(Protocol::Tcp, Some(40_100))], 100, 4).expect("fits");
        claims.claim(id(), &tcp).expect("tcp is another port space");
        let mut elsewhere = info(Protocol::Udp, Some(40_100));
        elsewhere.ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        claims.claim(id(), &PortPlan::new(vec![elsewhere.clone()], 100, 4).expect("fits")).expect("another ip");
        // The unspecified address meets every address.
        let mut any = elsewhere;
        any.ip = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        any.port = Some(40_300);
        assert!(claims.claim(id(), &PortPlan::new(vec![any], 100, 4).expect("fits")).is_err());
        claims.release(&first);
        claims.claim(id(), &b).expect("free once the first server closed");
    }

    #[test]
    fn a_plan_whose_own_listen_infos_meet_is_refused() {
        let error = PortPlan::new(vec![info(Protocol::Udp, Some(40_000)), info(Protocol::Udp, Some(40_200))], 100, 4)
            .expect_err("slot 2 of the first is slot 0 of the second");
        assert!(matches!(error, PortPlanError::SelfOverlap { port: 40_200, .. }), "{error}");
        assert!(
            PortPlan::new(vec![info(Protocol::Udp, Some(40_000)), info(Protocol::Tcp, Some(40_000))], 100, 4).is_ok()
        );
    }

    #[test]
    fn held_ports_are_really_bound() {
        let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let error = hold(&[info(Protocol::Udp, Some(port))], 3).expect_err("taken");
        assert!(matches!(error, PortPlanError::Bind { slot: 3, .. }), "{error}");
        drop(taken);
        let held = hold(&[info(Protocol::Udp, Some(port))], 3).expect("free now");
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_err(), "held by the placeholder");
        drop(held);
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_ok(), "released");
    }
}
