//! The poll schedule against the oracle, per regime, in virtual time (issue 15).
//!
//!     cargo bench --bench virtual_time
//!
//! Prints a Markdown table: makespan / oracle (worst and mean over seeds) and
//! the worst polls per job, for the poll schedule in the stand-in loop and for
//! the real engine (`runner::run::engine`: its own limiter, queues and
//! schedule) in the same world. Deterministic: the same numbers on any machine.

#[path = "../tests/vt/mod.rs"]
mod vt;

fn main() {
    let seeds = std::env::var("VT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let started = std::time::Instant::now();
    vt::print_table(seeds);
    eprintln!(
        "{seeds} seeds per regime, {:.2} s of wall time in all",
        started.elapsed().as_secs_f64()
    );
}
