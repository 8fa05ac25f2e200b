//! What the anytime-valid test of `hilt_reports::stats::sequential` costs
//! and buys on the hang rates seen on the emulated board: how often a
//! campaign is decided (and in which direction), how often it runs out of
//! blocks, and how many blocks it takes to stop.
//!
//! `cargo run --release -p hilt-reports --example sequential`
//!
//! One block is one iteration of each variant, so a campaign of n blocks
//! runs 2n iterations.

use hilt_reports::stats::sequential::simulate;

const CAMPAIGNS: u32 = 10_000;

/// (A = baseline, B = patched) rates, the last one the null.
const RATES: [(f64, f64); 5] = [
    (0.5, 0.0),
    (0.75, 0.0),
    (1.0, 0.25),
    (0.5, 0.25),
    (0.5, 0.5),
];

fn main() {
    println!(
        "{CAMPAIGNS} simulated campaigns per row, checked after every block; \
         one block = one iteration of A and one of B."
    );
    println!("power: decided A > B; false: decided B > A (any decision under the null).");
    println!();
    println!(
        "{:>6} {:>10} {:>5} {:>5} {:>7} {:>7} {:>7} {:>11} {:>13} {:>15}",
        "alpha",
        "max blocks",
        "pA",
        "pB",
        "power",
        "false",
        "futile",
        "mean blocks",
        "median blocks",
        "mean if decided"
    );
    let mut seed = 1;
    for alpha in [0.01, 0.05] {
        for max_blocks in [40, 100] {
            for (pa, pb) in RATES {
                let sim = simulate(pa, pb, alpha, max_blocks, CAMPAIGNS, seed);
                seed += 1;
                let decided = sim
                    .mean_blocks_decided
                    .map_or_else(|| "-".to_string(), |m| format!("{m:.1}"));
                println!(
                    "{:>6} {:>10} {:>5.2} {:>5.2} {:>7.4} {:>7.4} {:>7.4} {:>11.1} {:>13} {:>15}",
                    alpha,
                    max_blocks,
                    pa,
                    pb,
                    sim.power(),
                    sim.false_decision_rate(),
                    sim.futility_rate(),
                    sim.mean_blocks,
                    sim.median_blocks,
                    decided
                );
            }
        }
        println!();
    }
}
