//! The fleet: hosts and applications find each other through a registry on Redis instead of a
//! static list. Each host writes its [`record`] (node, region, QUIC address, workers and their
//! predicted load, draining) under a key that expires unless refreshed, and announces joins,
//! leaves and drains on a channel; watchers keep a [`book`] of the records (sans-IO), link to
//! the best hosts (at most `max_linked_hosts`, plus the hosts their rooms use) and give node
//! selection the hosts a room may use.
//!
//! The registry is for discovery; the link is the truth for liveness: a host whose record
//! expired while its link is up stays in placement, and a Redis outage leaves every link and
//! room as it is (discovery pauses). Records are not trusted: a host named by a record is only
//! used once its certificate, checked against the cluster CA, names that node.

pub mod book;
pub mod discovery;
pub mod publisher;
pub mod record;
pub mod registry;

pub use discovery::{Fleet, FleetOptions};
pub use publisher::{Identity, Publisher};
pub use registry::{Registry, RegistryError};
