//! The seam between placement and a fleet's node selection: before a transport is placed, the
//! host asks which hosts (nodes) its router may use; placement then only sees their cells (and
//! this host's own). Without a fleet every node is in scope.

use mediasoup::router::RouterId;
use std::future::Future;
use std::pin::Pin;

/// The nodes a placement may use, or `None` for any.
pub type Scope = Option<Vec<String>>;

/// Answers which nodes a router's next transport may go to (the fleet implements it).
pub trait NodeScope: Send + Sync {
    /// The nodes a transport of `router` may be placed on, given the nodes the router's cells
    /// are on now (`used`) and the region asked for; `None`: any node. It may wait (bounded)
    /// for a link to a chosen host.
    fn nodes_for(
        &self,
        router: RouterId,
        region: Option<String>,
        used: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Scope> + Send + '_>>;
}
