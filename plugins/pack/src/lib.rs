//! `pack`, the default placement plugin: fill the busiest worker that is still under the CPU
//! watermark, keep a room's transports together (room affinity), prefer workers already
//! hosting the router, start a worker only when every worker is above the watermark.
//!
//! Configuration: `cpu_watermark` (default 0.6).

use mafalda_plugin_sdk::policies::{bin_pack, DEFAULT_CPU_WATERMARK};
use mafalda_plugin_sdk::prelude::*;
use std::sync::Mutex;

static WATERMARK: Mutex<f64> = Mutex::new(DEFAULT_CPU_WATERMARK);

fn watermark() -> f64 {
    WATERMARK.lock().map_or(DEFAULT_CPU_WATERMARK, |mark| *mark)
}

/// The packing policy.
pub struct Pack;

impl Placement for Pack {
    fn place(request: &Request, cells: &[Candidate]) -> Decision {
        bin_pack(request, cells, watermark(), true)
    }

    fn configure(config: &Config) -> Result<(), String> {
        let mark: f64 = config.parse_or("cpu_watermark", DEFAULT_CPU_WATERMARK)?;
        if !(mark >= 0.0 && mark.is_finite()) {
            return Err(format!("cpu_watermark must be a non-negative CPU share, got {mark}"));
        }
        *WATERMARK.lock().map_err(|_| "state poisoned".to_string())? = mark;
        log(LogLevel::Info, &format!("pack: cpu_watermark {mark}"));
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
        Pack::configure(&Config::new([("cpu_watermark", "0.8")])).expect("valid");
        assert_eq!(watermark(), 0.8);
        let cells = cells![cell(0).with_cpu(0.7)];
        assert_eq!(place::<Pack>(&Request::new("r").with_max_cells(2), &cells), Decision::Cell(0));
    }
}
