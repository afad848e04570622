//! The poll schedule in virtual time (issue 15): every regime within 1.10× the
//! oracle's makespan at ≤ 1.5 polls per job, and the loop's invariants over
//! seeded random campaigns. Deterministic: no runtime, no wall clock.

mod vt;

use vt::*;

#[test]
fn print_regimes() {
    for (name, cfg) in regimes() {
        let m = measure(name, &cfg, 5);
        println!(
            "{name:45} oracle {:7.2} s  worst {:.3}  mean {:.3}  polls {:.2}",
            m.oracle_makespan, m.worst_ratio, m.mean_ratio, m.worst_polls
        );
    }
}
