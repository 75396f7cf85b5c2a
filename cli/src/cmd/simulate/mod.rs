//! `mafalda-host simulate` and `mafalda-host trace`: the same placement engine as the host,
//! driven by a join/leave trace over simulated cells, so placement plugins can be compared
//! before they are deployed.

pub mod model;
pub mod report;
pub mod trace;

pub use model::{SimulatedCosts, Simulation};
pub use trace::{generate, read, Op, Shape};

use super::plugins::{placement_policy, PluginFlags};
use anyhow::{bail, Context, Result};
use mafalda_host::placement::{BinPack, PlacementEngine};
use std::io::BufReader;
use std::path::Path;

/// Runs every `--plugin` against the trace and prints the side-by-side report.
pub fn simulate(flags: &PluginFlags, trace: &Path, max_workers: u32) -> Result<()> {
    if flags.plugins.is_empty() {
        bail!("give at least one --plugin (a .wasm file, or pack, spread, pack-plugin) to simulate");
    }
    let file = std::fs::File::open(trace).with_context(|| format!("opening {}", trace.display()))?;
    let events = read(BufReader::new(file))?;
    let end = events.last().map_or(0.0, |e| e.t);
    let runtime = flags.runtime()?;
    let mut names = Vec::new();
    let mut outcomes = Vec::new();
    for spec in &flags.plugins {
        let policy = placement_policy(flags, &runtime, spec)?;
        let engine = PlacementEngine::new(policy, BinPack::default());
        outcomes.push(Simulation::new(&engine, SimulatedCosts::default(), max_workers).run(&events));
        names.push(spec.file_name().map_or_else(|| spec.display().to_string(), |n| n.to_string_lossy().into_owned()));
    }
    let joins = events.iter().filter(|e| matches!(e.op, Op::Join { .. })).count();
    println!(
        "trace: {} ({} events, {joins} joins, {end:.0} s), at most {max_workers} workers",
        trace.display(),
        events.len()
    );
    print!("{}", report::render(&names, &outcomes, end));
    Ok(())
}

/// Prints a generated trace.
pub fn trace(shape: Shape, rooms: u32, peers: u32, seconds: u32, seed: u64) -> Result<()> {
    for event in generate(shape, rooms, peers, seconds, seed) {
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}
