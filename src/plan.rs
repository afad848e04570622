//! Plans and costs: how many jobs, seconds of video and how much money a campaign (or the part of it still to submit) asks for.
//!
//! Pure: computed from the manifest's jobs and `[pricing]`, nothing is read or sent.
//! A model without a price has an unknown cost, shown as `unknown` and never
//! counted as zero; a total over known and unknown costs is a lower bound
//! ([`Cost::Partial`]).

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::{Campaign, Job, Pricing};
use crate::models::Model;

/// What some jobs cost, as far as `[pricing]` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cost {
    /// Every job has a price.
    Known(f64),
    /// No job has a price.
    Unknown,
    /// Some jobs have a price and some do not: at least `known`.
    Partial { known: f64 },
}

impl Cost {
    /// The part of the cost that is known (0 when none is).
    pub fn known(self) -> f64 {
        match self {
            Cost::Known(amount) | Cost::Partial { known: amount } => amount,
            Cost::Unknown => 0.0,
        }
    }

    /// Whether every job has a price.
    pub fn is_known(self) -> bool {
        matches!(self, Cost::Known(_))
    }

    /// The cost of two sets of jobs together.
    pub fn plus(self, other: Cost) -> Cost {
        match (self, other) {
            (Cost::Known(a), Cost::Known(b)) => Cost::Known(a + b),
            (Cost::Unknown, Cost::Unknown) => Cost::Unknown,
            (a, b) => Cost::Partial {
                known: a.known() + b.known(),
            },
        }
    }

    /// `$12.80`, `12.80 EUR`, `unknown`, or `≥ $12.80`.
    pub fn display(self, currency: &str) -> String {
        match self {
            Cost::Known(amount) => money(amount, currency),
            Cost::Unknown => "unknown".into(),
            Cost::Partial { known } => format!("≥ {}", money(known, currency)),
        }
    }
}

/// An amount with two decimals: `$12.80` in US dollars, `12.80 EUR` in any other currency.
pub fn money(amount: f64, currency: &str) -> String {
    if currency == "USD" {
        format!("${amount:.2}")
    } else {
        format!("{amount:.2} {currency}")
    }
}

/// What one job costs, or `None` when `[pricing]` has no price for its model.
pub fn job_cost(pricing: &Pricing, job: &Job) -> Option<f64> {
    pricing
        .price(job.model)
        .map(|price| price.cost(job.duration))
}

/// The jobs of one model, aspect ratio and duration.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub model: Model,
    pub aspect_ratio: String,
    /// Seconds per video.
    pub duration: u32,
    pub jobs: usize,
    /// Seconds of video, all jobs of the row together.
    pub seconds: u64,
    pub cost: Cost,
}

/// Jobs, seconds and cost, by (model, aspect ratio, duration) and in total.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Sorted by model name, aspect ratio, duration.
    pub rows: Vec<PlanRow>,
    pub total_jobs: usize,
    pub total_seconds: u64,
    pub total_cost: Cost,
    /// `pricing.currency`.
    pub currency: String,
    /// The models in the plan that have no price.
    pub unpriced: Vec<Model>,
}

/// The plan of every job of the campaign.
pub fn plan(campaign: &Campaign) -> Plan {
    plan_for(campaign, &campaign.jobs)
}

/// The plan of some of the campaign's jobs (those still to submit, say).
pub fn plan_for<'a>(campaign: &Campaign, jobs: impl IntoIterator<Item = &'a Job>) -> Plan {
    plan_jobs(&campaign.pricing, jobs)
}

/// The plan of `jobs` priced by `pricing`.
pub fn plan_jobs<'a>(pricing: &Pricing, jobs: impl IntoIterator<Item = &'a Job>) -> Plan {
    let mut groups: BTreeMap<(Model, &str, u32), (usize, u64)> = BTreeMap::new();
    for job in jobs {
        let group = groups
            .entry((job.model, job.aspect_ratio.as_str(), job.duration))
            .or_default();
        group.0 += 1;
        group.1 += u64::from(job.duration);
    }
    let mut rows = Vec::new();
    let mut total_cost: Option<Cost> = None;
    let mut unpriced: Vec<Model> = Vec::new();
    for ((model, aspect_ratio, duration), (jobs, seconds)) in groups {
        let cost = match pricing.price(model) {
            Some(price) => Cost::Known(price.cost(duration) * jobs as f64),
            None => {
                if !unpriced.contains(&model) {
                    unpriced.push(model);
                }
                Cost::Unknown
            }
        };
        total_cost = Some(total_cost.map_or(cost, |total| total.plus(cost)));
        rows.push(PlanRow {
            model,
            aspect_ratio: aspect_ratio.to_owned(),
            duration,
            jobs,
            seconds,
            cost,
        });
    }
    Plan {
        total_jobs: rows.iter().map(|r| r.jobs).sum(),
        total_seconds: rows.iter().map(|r| r.seconds).sum(),
        total_cost: total_cost.unwrap_or(Cost::Known(0.0)),
        rows,
        currency: pricing.currency.clone(),
        unpriced,
    }
}

impl fmt::Display for Plan {
    /// An aligned table, one line per row and a `total` line (no trailing newline):
    ///
    /// ```text
    /// model              aspect  duration  jobs  seconds      cost
    /// veo3.1-fast        16:9    8 s          4       32    $12.80
    /// gemini_omni_flash  9:16    10 s         3       30   unknown
    /// total                                   7       62  ≥ $12.80 (1 price unknown)
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["model", "aspect", "duration", "jobs", "seconds", "cost"];
        let mut lines: Vec<[String; 6]> = vec![header.map(str::to_owned)];
        for row in &self.rows {
            lines.push([
                row.model.to_string(),
                row.aspect_ratio.clone(),
                format!("{} s", row.duration),
                row.jobs.to_string(),
                row.seconds.to_string(),
                row.cost.display(&self.currency),
            ]);
        }
        lines.push([
            "total".into(),
            String::new(),
            String::new(),
            self.total_jobs.to_string(),
            self.total_seconds.to_string(),
            self.total_cost.display(&self.currency),
        ]);
        let mut widths = [0usize; 6];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let [w_model, w_aspect, w_duration, w_jobs, w_seconds, w_cost] = widths;
        let last = lines.len() - 1;
        for (i, [model, aspect, duration, jobs, seconds, cost]) in lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "{model:<w_model$}  {aspect:<w_aspect$}  {duration:<w_duration$}  {jobs:>w_jobs$}  {seconds:>w_seconds$}  {cost:>w_cost$}"
            )?;
            if i == last
                && let Cost::Partial { .. } = self.total_cost
            {
                let n = self.unpriced.len();
                let prices = if n == 1 { "price" } else { "prices" };
                write!(f, " ({n} {prices} unknown)")?;
            }
        }
        Ok(())
    }
}

/// `limits.budget`: a job of estimated `cost` may be sent when `spent`
/// already is (the tolerance keeps a budget met exactly, in cents, sendable).
/// The run, `--dry-run`, `status` and `report` all decide by this.
pub fn fits_budget(spent: f64, cost: f64, budget: f64) -> bool {
    spent + cost <= budget + 1e-9
}

/// What the tasks the journal records (created, or possibly created) cost by
/// the price table: each attempt of a job at its model's price. The same sum
/// `limits.budget` is held against.
pub fn spent(campaign: &Campaign, state: &crate::state::CampaignState) -> Cost {
    let mut total = Cost::Known(0.0);
    for job in &campaign.jobs {
        let attempts = state.job(&job.id).map_or(0, |js| js.attempts);
        if attempts == 0 {
            continue;
        }
        let cost = match job_cost(&campaign.pricing, job) {
            Some(price) => Cost::Known(price * f64::from(attempts)),
            None => Cost::Unknown,
        };
        total = total.plus(cost);
    }
    total
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::manifest::{Origin, Price};

    fn job(id: &str, model: Model, aspect_ratio: &str, duration: u32) -> Job {
        Job {
            id: id.into(),
            model,
            prompt: "p".into(),
            duration,
            aspect_ratio: aspect_ratio.into(),
            resolution: None,
            images: Vec::new(),
            image_field: "image_urls".into(),
            metadata: Map::new(),
            extra: Map::new(),
            filename: format!("{id}.mp4"),
            origin: Origin {
                file: std::sync::Arc::from(std::path::Path::new("c.toml")),
                line: 1,
            },
            fingerprint_cache: Default::default(),
        }
    }

    fn jobs() -> Vec<Job> {
        let mut out = Vec::new();
        for i in 0..3 {
            out.push(job(
                &format!("g{i}"),
                Model::from_static("gemini-omni-flash"),
                "9:16",
                10,
            ));
        }
        for i in 0..4 {
            out.push(job(
                &format!("v{i}"),
                Model::from_static("veo3.1-fast"),
                "16:9",
                8,
            ));
        }
        out
    }

    fn pricing(prices: &[(Model, Price)]) -> Pricing {
        Pricing {
            per_model: prices.iter().copied().collect(),
            ..Pricing::default()
        }
    }

    #[test]
    fn rows_are_grouped_and_sorted() {
        let mut all = jobs();
        all.push(job("v9", Model::from_static("veo3.1-fast"), "9:16", 8));
        let p = plan_jobs(&pricing(&[]), &all);
        let keys: Vec<(Model, &str, u32, usize, u64)> = p
            .rows
            .iter()
            .map(|r| {
                (
                    r.model,
                    r.aspect_ratio.as_str(),
                    r.duration,
                    r.jobs,
                    r.seconds,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (Model::from_static("gemini-omni-flash"), "9:16", 10, 3, 30),
                (Model::from_static("veo3.1-fast"), "16:9", 8, 4, 32),
                (Model::from_static("veo3.1-fast"), "9:16", 8, 1, 8),
            ]
        );
        assert_eq!((p.total_jobs, p.total_seconds), (8, 70));
    }

    #[test]
    fn unknown_prices_are_never_zero() {
        let p = plan_jobs(&pricing(&[]), &jobs());
        assert_eq!(p.total_cost, Cost::Unknown);
        assert!(p.rows.iter().all(|r| r.cost == Cost::Unknown));
        assert_eq!(
            p.unpriced,
            [
                Model::from_static("gemini-omni-flash"),
                Model::from_static("veo3.1-fast")
            ]
        );

        let p = plan_jobs(
            &pricing(&[(Model::from_static("veo3.1-fast"), Price::PerSecond(0.4))]),
            &jobs(),
        );
        assert_eq!(
            p.total_cost,
            Cost::Partial {
                known: 4.0 * 8.0 * 0.4
            }
        );
        assert!(!p.total_cost.is_known());
        assert_eq!(p.unpriced, [Model::from_static("gemini-omni-flash")]);

        let p = plan_jobs(
            &pricing(&[
                (Model::from_static("veo3.1-fast"), Price::PerSecond(0.4)),
                (
                    Model::from_static("gemini-omni-flash"),
                    Price::PerVideo(0.25),
                ),
            ]),
            &jobs(),
        );
        let Cost::Known(total) = p.total_cost else {
            panic!("{:?}", p.total_cost);
        };
        assert!((total - (12.8 + 0.75)).abs() < 1e-9, "{total}");
        assert!(p.unpriced.is_empty());

        // A free model is known to be free.
        let p = plan_jobs(
            &pricing(&[(
                Model::from_static("gemini-omni-flash"),
                Price::PerVideo(0.0),
            )]),
            &jobs()[..3],
        );
        assert_eq!(p.total_cost, Cost::Known(0.0));
        // No jobs cost nothing.
        assert_eq!(plan_jobs(&pricing(&[]), &[]).total_cost, Cost::Known(0.0));
    }

    #[test]
    fn job_costs() {
        let p = pricing(&[
            (Model::from_static("veo3.1-fast"), Price::PerSecond(0.05)),
            (Model::from_static("veo3.1-quality"), Price::PerVideo(0.4)),
        ]);
        let cost = job_cost(&p, &job("a", Model::from_static("veo3.1-fast"), "16:9", 8)).unwrap();
        assert!((cost - 0.4).abs() < 1e-12);
        assert_eq!(
            job_cost(
                &p,
                &job("b", Model::from_static("veo3.1-quality"), "16:9", 8)
            ),
            Some(0.4)
        );
        assert_eq!(
            job_cost(
                &p,
                &job("c", Model::from_static("gemini-omni-flash"), "16:9", 6)
            ),
            None
        );
    }

    #[test]
    fn cost_arithmetic_and_display() {
        assert_eq!(Cost::Known(1.0).plus(Cost::Known(2.0)), Cost::Known(3.0));
        assert_eq!(Cost::Unknown.plus(Cost::Unknown), Cost::Unknown);
        assert_eq!(
            Cost::Known(1.0).plus(Cost::Unknown),
            Cost::Partial { known: 1.0 }
        );
        assert_eq!(
            Cost::Unknown.plus(Cost::Partial { known: 2.0 }),
            Cost::Partial { known: 2.0 }
        );
        assert_eq!(Cost::Known(12.8).display("USD"), "$12.80");
        assert_eq!(Cost::Known(12.8).display("EUR"), "12.80 EUR");
        assert_eq!(Cost::Partial { known: 0.005 }.display("USD"), "≥ $0.01");
        assert_eq!(Cost::Unknown.display("USD"), "unknown");
    }

    #[test]
    fn table() {
        let p = plan_jobs(
            &pricing(&[(Model::from_static("veo3.1-fast"), Price::PerSecond(0.4))]),
            &jobs(),
        );
        assert_eq!(
            p.to_string(),
            "\
model              aspect  duration  jobs  seconds      cost
gemini-omni-flash  9:16    10 s         3       30   unknown
veo3.1-fast        16:9    8 s          4       32    $12.80
total                                   7       62  ≥ $12.80 (1 price unknown)"
        );

        let mut euros = pricing(&[
            (Model::from_static("veo3.1-fast"), Price::PerVideo(1.5)),
            (
                Model::from_static("gemini-omni-flash"),
                Price::PerSecond(0.1),
            ),
        ]);
        euros.currency = "EUR".into();
        assert_eq!(
            plan_jobs(&euros, &jobs()).to_string(),
            "\
model              aspect  duration  jobs  seconds      cost
gemini-omni-flash  9:16    10 s         3       30  3.00 EUR
veo3.1-fast        16:9    8 s          4       32  6.00 EUR
total                                   7       62  9.00 EUR"
        );

        let none = plan_jobs(&pricing(&[]), &jobs()[..3]);
        assert_eq!(
            none.to_string(),
            "\
model              aspect  duration  jobs  seconds     cost
gemini-omni-flash  9:16    10 s         3       30  unknown
total                                   3       30  unknown"
        );
    }
}
