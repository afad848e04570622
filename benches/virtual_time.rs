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
        .unwrap_or(10);
    let started = std::time::Instant::now();
    println!(
        "| regime | oracle makespan | loop: makespan / oracle (worst) | (mean) | polls/job (worst) | engine: makespan / oracle (worst) | (mean) | polls/job (worst) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, cfg) in vt::regimes() {
        let m = vt::measure(name, &cfg, seeds);
        println!(
            "| {name} | {:.2} s | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:.2} |",
            m.oracle_makespan,
            m.worst_ratio,
            m.mean_ratio,
            m.worst_polls,
            m.engine_worst_ratio,
            m.engine_mean_ratio,
            m.engine_worst_polls
        );
    }
    eprintln!(
        "{seeds} seeds per regime, {:.2} s of wall time in all",
        started.elapsed().as_secs_f64()
    );
}
