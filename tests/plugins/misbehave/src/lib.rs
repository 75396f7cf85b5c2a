//! A placement plugin that misbehaves as configured (`mode`): `trap` panics, `spin` never
//! returns, `hog` allocates without bound, `liar` answers a cell that does not exist, `ok`
//! answers the first cell, `chatty` logs 1,000 long lines per call then answers the first cell.
//! For the host's bad-plugin tests.

use mafalda_plugin_sdk::prelude::*;
use std::sync::Mutex;

static MODE: Mutex<String> = Mutex::new(String::new());

/// The misbehaving policy.
pub struct Misbehave;

impl Placement for Misbehave {
    fn place(_request: &Request, cells: &[Candidate]) -> Decision {
        let mode = MODE.lock().map(|m| m.clone()).unwrap_or_default();
        match mode.as_str() {
            "trap" => panic!("misbehave: trapping as configured"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                // Reserve (grow memory) without touching it: hits the memory cap, not the deadline.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(Vec::with_capacity(4 << 20));
                    std::hint::black_box(&hoard);
                }
            }
            "liar" => Decision::Cell(9_999),
            "chatty" => {
                let line = "x".repeat(8 << 10);
                for _ in 0..1_000 {
                    log(LogLevel::Info, &line);
                }
                cells.first().map_or(Decision::NewCell, |c| Decision::Cell(c.id))
            }
            _ => cells.first().map_or(Decision::NewCell, |c| Decision::Cell(c.id)),
        }
    }

    fn configure(config: &Config) -> Result<(), String> {
        let mode = config.get("mode").unwrap_or("ok").to_string();
        *MODE.lock().map_err(|_| "poisoned".to_string())? = mode;
        Ok(())
    }
}

mafalda_plugin_sdk::export_placement!(Misbehave);
