//! `pack`, the default placement plugin: fill the busiest worker that is not yet full, keep a
//! room's transports together (room affinity), prefer workers already hosting the router, start
//! a worker only when every worker is full.
//!
//! Configuration: `cpu_watermark` (CPU share of one core at which a worker is full, default 0.6)
//! and `max_transports` (transports at which a worker is full; absent or 0: no cap).

use mafalda_plugin_sdk::policies::{bin_pack, PackRules, DEFAULT_CPU_WATERMARK};
use mafalda_plugin_sdk::prelude::*;
use std::sync::Mutex;

/// The rules until `configure` says otherwise: default watermark, no cap, rooms kept together.
const DEFAULT_RULES: PackRules = PackRules { room_affinity: true, ..PackRules::DEFAULT };

static RULES: Mutex<PackRules> = Mutex::new(DEFAULT_RULES);

fn rules() -> PackRules {
    RULES.lock().map_or(DEFAULT_RULES, |rules| *rules)
}

/// The packing policy.
pub struct Pack;

impl Placement for Pack {
    fn place(request: &Request, cells: &[Candidate]) -> Decision {
        bin_pack(request, cells, &rules())
    }

    fn configure(config: &Config) -> Result<(), String> {
        let mark: f64 = config.parse_or("cpu_watermark", DEFAULT_CPU_WATERMARK)?;
        if !(mark > 0.0 && mark <= 1.0) {
            return Err(format!(
                "cpu_watermark must be a CPU share in (0, 1] (of one core), as the host's, got {mark}"
            ));
        }
        let cap: u32 = config.parse_or("max_transports", 0)?;
        let rules = PackRules { cpu_watermark: mark, max_transports: (cap > 0).then_some(cap), ..DEFAULT_RULES };
        *RULES.lock().map_err(|_| "state poisoned".to_string())? = rules;
        let cap = rules.max_transports.map_or_else(|| "none".to_string(), |cap| cap.to_string());
        log(LogLevel::Info, &format!("pack: cpu_watermark {mark}, max_transports {cap}"));
        Ok(())
    }
}

mafalda_plugin_sdk::export_placement!(Pack);

#[cfg(test)]
mod tests {
    use super::*;
    use mafalda_plugin_sdk::cells;
    use mafalda_plugin_sdk::testing::{cell, place};

    #[test]
    fn keeps_a_room_together_and_spawns_when_full() {
        let request = Request::new("r").with_label("room", "blue").with_max_cells(3);
        let cells = cells![
            cell(0).with_cpu(0.4).with_router("r"),
            cell(1).with_cpu(0.1).with_router("r").with_label("room=blue", 2)
        ];
        assert_eq!(place::<Pack>(&request, &cells), Decision::Cell(1));
        let full = cells![cell(0).with_cpu(0.95), cell(1).with_cpu(0.9)];
        assert_eq!(place::<Pack>(&request, &full), Decision::NewCell);
    }

    #[test]
    fn configuration_is_validated() {
        assert!(Pack::configure(&Config::new([("cpu_watermark", "lots")])).is_err());
        assert!(Pack::configure(&Config::new([("cpu_watermark", "-1")])).is_err());
        assert!(Pack::configure(&Config::new([("max_transports", "-3")])).is_err());
        Pack::configure(&Config::new([("cpu_watermark", "0.8"), ("max_transports", "2")])).expect("valid");
        assert_eq!(rules().cpu_watermark, 0.8);
        assert_eq!(rules().max_transports, Some(2));
        let cells = cells![cell(0).with_cpu(0.7)];
        assert_eq!(place::<Pack>(&Request::new("r").with_max_cells(2), &cells), Decision::Cell(0));
        let cells = cells![cell(0).with_cpu(0.1).with_transports(2)];
        assert_eq!(place::<Pack>(&Request::new("r").with_max_cells(2), &cells), Decision::NewCell, "capped");
    }
}
