//! Node selection in a fleet: the time placement spends choosing the hosts a room may use from
//! the registry's records, at 500 and 5,000 records (goal: p50 ≤ 50 µs at 500). It runs what a
//! placement runs before the placement policy: the book's views (rebuilt only when records
//! change), the built-in `LeastLoaded` selection and the names of the chosen hosts — for a new
//! room and for a room already on two hosts. A rebuild of the views after a full read is timed
//! too (once per second per watcher, not per placement).
//!
//! Run: `cargo bench -p mafalda-host --bench fleet`.

use mafalda_host::fleet::book::{BookSettings, FleetBook};
use mafalda_host::fleet::record::{CellRecord, HostRecord};
use mafalda_host::placement::nodes::{LeastLoaded, NodeRequest, NodeSelector};
use std::time::Instant;

/// A fleet of `n` hosts in three regions with spread loads and rooms.
fn fleet(n: usize) -> Vec<HostRecord> {
    (0..n)
        .map(|i| HostRecord {
            node: format!("media-{i:05}"),
            region: ["eu", "us", "ap"][i % 3].into(),
            address: format!("10.{}.{}.{}:4443", i / 65_536 % 256, i / 256 % 256, i % 256 + 1),
            announced_ip: "10.0.0.1".into(),
            version: "0.1.0".into(),
            protocol: mafalda_host::cluster::proto::PROTOCOL_VERSION,
            boot_id: format!("boot-{i}"),
            max_workers: 8,
            draining: i % 50 == 7,
            cells: (0..8)
                .map(|w| CellRecord {
                    worker: format!("w{w}"),
                    predicted: ((i * 37 + w * 11) % 97) as f64 / 100.0,
                    transports: ((i + w) % 40) as u32,
                    routers: ((i * 7 + w) % 9) as u32,
                    draining: false,
                })
                .collect(),
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `rounds` timings of `f` (µs): median, p10, p90.
fn time(rounds: usize, mut f: impl FnMut() -> usize) -> (f64, f64, f64) {
    let mut samples = Vec::with_capacity(rounds);
    let mut sink = 0usize;
    for _ in 0..rounds {
        let start = Instant::now();
        sink = sink.wrapping_add(f());
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    std::hint::black_box(sink);
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.1), percentile(&samples, 0.9))
}

fn main() {
    println!("node selection (built-in least-loaded), µs: median [p10, p90]");
    for n in [500usize, 5_000] {
        let mut book = FleetBook::new(BookSettings::default(), None);
        book.snapshot(fleet(n));
        let now = Instant::now();
        let selector = LeastLoaded::default();
        let (views, index) = book.views(now);
        let used: Vec<u32> = ["media-00010", "media-00020"].iter().filter_map(|n| index.get(*n).copied()).collect();
        let rounds = if n > 1_000 { 2_000 } else { 10_000 };
        let select = |request: &NodeRequest, book: &mut FleetBook| {
            let (views, _) = book.views(now);
            let chosen = selector.select(request, &views).unwrap_or_default();
            chosen.iter().map(|i| views[*i as usize].name().to_string()).collect::<Vec<_>>().len()
        };
        let new_room =
            NodeRequest { router: "room".into(), region: Some("eu".into()), limit: 4, ..NodeRequest::default() };
        let (m, lo, hi) = time(rounds, || select(&new_room, &mut book));
        println!("  {n:>5} records, a new room:            {m:>8.2} [{lo:.2}, {hi:.2}]");
        let room = NodeRequest { used: used.clone(), limit: 3, ..new_room.clone() };
        let (m, lo, hi) = time(rounds, || select(&room, &mut book));
        println!("  {n:>5} records, a room on two hosts:   {m:>8.2} [{lo:.2}, {hi:.2}]");
        let records = fleet(n);
        let (m, lo, hi) = time(20, || {
            book.snapshot(records.clone());
            book.views(now).0.len()
        });
        println!("  {n:>5} records, a full read (book + views): {m:>8.2} [{lo:.2}, {hi:.2}] (records cloned in; once per read, not per placement)");
        drop(views);
    }
}
