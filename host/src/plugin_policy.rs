//! Loading a placement policy from a plugin file (`PolicyChoice::Plugin`).

use crate::config::{ConfigError, PolicyChoice};
use crate::placement::PlacementPolicy;
use std::sync::Arc;

/// The policy a plugin choice names.
pub(crate) fn load(choice: &PolicyChoice) -> Result<Arc<dyn PlacementPolicy>, ConfigError> {
    Err(ConfigError::Invalid {
        key: "policy".into(),
        reason: format!("{choice:?}: this build has no WebAssembly plugin runtime yet"),
    })
}
