//! The side-by-side report of several policies over one trace.

use super::model::Outcome;
use std::fmt::Write;

/// Cell counts at `buckets` evenly spaced times (the last sample at or before each).
pub fn timeline(outcome: &Outcome, end: f64, buckets: usize) -> Vec<usize> {
    (1..=buckets)
        .map(|b| {
            let t = end * b as f64 / buckets as f64;
            outcome.samples.iter().take_while(|s| s.t <= t).last().map_or(0, |s| s.cells)
        })
        .collect()
}

/// The report as text: one column per policy.
pub fn render(names: &[String], outcomes: &[Outcome], end: f64) -> String {
    let width = names.iter().map(String::len).max().unwrap_or(0).max(22);
    let mut out = String::new();
    let row = |out: &mut String, label: &str, values: Vec<String>| {
        let _ = write!(out, "{label:<24}");
        for value in values {
            let _ = write!(out, " {value:>width$}");
        }
        out.push('\n');
    };
    row(&mut out, "", names.to_vec());
    let over = |f: &dyn Fn(&Outcome) -> String| outcomes.iter().map(f).collect::<Vec<_>>();
    row(
        &mut out,
        "cells over time",
        over(&|o| timeline(o, end, 8).iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")),
    );
    row(&mut out, "peak cells", over(&|o| o.samples.iter().map(|s| s.cells).max().unwrap_or(0).to_string()));
    row(
        &mut out,
        "peak cpu (busiest cell)",
        over(&|o| format!("{:.2}", o.samples.iter().map(|s| s.max_cpu).fold(0.0, f64::max))),
    );
    let mean = |o: &Outcome| {
        let busy: Vec<f64> = o.samples.iter().filter(|s| s.cells > 0).map(|s| s.mean_cpu).collect();
        if busy.is_empty() {
            0.0
        } else {
            busy.iter().sum::<f64>() / busy.len() as f64
        }
    };
    row(&mut out, "mean cpu (per cell)", over(&|o| format!("{:.3}", mean(o))));
    row(&mut out, "pipes created", over(&|o| o.pipes_created.to_string()));
    row(&mut out, "rejections", over(&|o| o.rejections.to_string()));
    row(&mut out, "fallback decisions", over(&|o| o.fallbacks.to_string()));
    out
}
