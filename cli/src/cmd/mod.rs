//! The binary's commands.

pub mod demo;
pub mod plugins;
pub mod serve;
pub mod shutdown;
pub mod simulate;
