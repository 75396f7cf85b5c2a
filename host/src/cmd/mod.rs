//! The binary's commands.

pub mod plugins;
pub mod serve;
pub mod simulate;
