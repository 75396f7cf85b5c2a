//! The binary's commands.

pub mod demo;
pub mod plugins;
pub mod scale_hook;
pub mod serve;
pub mod shutdown;
pub mod simulate;
pub mod worker;
