//! `threshold-autoscale`: adds a worker when the mean CPU of the workers is above `add_above`
//! (advises a new node when the pool is full), retires the emptiest worker when the mean CPU is
//! below `retire_below` and more than `min_workers` run. At most one action per `cooldown_ms`.
//!
//! Configuration: `add_above` (0.7), `retire_below` (0.2), `min_workers` (1),
//! `cooldown_ms` (10000), `region` for node advice (the node's own by default).

use mafalda_plugin_sdk::prelude::*;
use std::sync::Mutex;

#[derive(Clone, Copy)]
struct Settings {
    add_above: f64,
    retire_below: f64,
    min_workers: u32,
    cooldown_ms: u64,
}

struct State {
    settings: Settings,
    region: Option<String>,
    last_action_ms: Option<u64>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// The threshold policy.
pub struct Threshold;

fn decide(settings: &Settings, region: Option<&str>, snapshot: &Snapshot) -> Vec<Action> {
    let open: Vec<&Cell> = snapshot.cells.iter().filter(|c| !c.draining).collect();
    if open.is_empty() {
        return vec![Action::AddWorker];
    }
    let mean = open.iter().map(|c| c.cpu).sum::<f64>() / open.len() as f64;
    let node = snapshot.nodes.first();
    if mean > settings.add_above {
        return match node {
            Some(n) if n.workers >= n.max_workers => vec![Action::AddNode(NodeAdvice {
                region: region.map_or_else(|| n.region.clone(), str::to_string),
                reason: format!("{} workers at {:.0}% mean CPU and the pool is full", n.workers, mean * 100.0),
            })],
            _ => vec![Action::AddWorker],
        };
    }
    if mean < settings.retire_below && open.len() as u32 > settings.min_workers {
        let emptiest = open.iter().min_by_key(|c| (c.objects(), c.id));
        return emptiest.map(|c| vec![Action::RetireWorker { cell: c.id }]).unwrap_or_default();
    }
    Vec::new()
}

impl Autoscale for Threshold {
    fn evaluate(snapshot: &Snapshot) -> Vec<Action> {
        let Ok(mut state) = STATE.lock() else { return Vec::new() };
        let Some(state) = state.as_mut() else { return Vec::new() };
        let cooling =
            state.last_action_ms.is_some_and(|at| snapshot.now_ms.saturating_sub(at) < state.settings.cooldown_ms);
        if cooling {
            return Vec::new();
        }
        let actions = decide(&state.settings, state.region.as_deref(), snapshot);
        if !actions.is_empty() {
            state.last_action_ms = Some(snapshot.now_ms);
            log(LogLevel::Info, &format!("threshold-autoscale: {actions:?}"));
        }
        actions
    }

    fn configure(config: &Config) -> Result<(), String> {
        let settings = Settings {
            add_above: config.parse_or("add_above", 0.7)?,
            retire_below: config.parse_or("retire_below", 0.2)?,
            min_workers: config.parse_or("min_workers", 1)?,
            cooldown_ms: config.parse_or("cooldown_ms", 10_000)?,
        };
        if settings.retire_below >= settings.add_above {
            return Err("retire_below must be below add_above".into());
        }
        let region = config.get("region").map(str::to_string);
        *STATE.lock().map_err(|_| "state poisoned".to_string())? =
            Some(State { settings, region, last_action_ms: None });
        Ok(())
    }
}

mafalda_plugin_sdk::export_autoscale!(Threshold);

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(cpus: &[f64], max_workers: u32) -> Snapshot {
        Snapshot {
            nodes: vec![Node {
                name: "a".into(),
                region: "eu".into(),
                workers: cpus.len() as u32,
                max_workers,
                cpu: 0.0,
                draining: false,
            }],
            cells: cpus.iter().enumerate().map(|(i, cpu)| Cell::new(i as u32).with_cpu(*cpu)).collect(),
            now_ms: 0,
        }
    }

    #[test]
    fn thresholds() {
        let settings = Settings { add_above: 0.7, retire_below: 0.2, min_workers: 1, cooldown_ms: 0 };
        assert_eq!(decide(&settings, None, &snapshot(&[0.9, 0.8], 4)), vec![Action::AddWorker]);
        assert!(matches!(decide(&settings, None, &snapshot(&[0.9, 0.8], 2))[..], [Action::AddNode(_)]));
        assert_eq!(decide(&settings, None, &snapshot(&[0.1, 0.05], 4)), vec![Action::RetireWorker { cell: 0 }]);
        assert!(decide(&settings, None, &snapshot(&[0.1], 4)).is_empty(), "keeps min_workers");
        assert!(decide(&settings, None, &snapshot(&[0.5, 0.4], 4)).is_empty());
    }
}
