//! `runner`: run large batches of AI video generations — resumable, rate-limited, crash-safe.
//!
//! Layout:
//! - [`cli`]: the command line (clap); [`app`]: what each command does; [`exit`]: exit codes.
//! - [`manifest`]: TOML/CSV manifests → validated [`manifest::Job`]s; [`models`]: what each model accepts
//!   (a generic rule engine over the data file `src/models/catalogue.toml`).
//! - [`plan`]: jobs, seconds and cost by model, aspect ratio and duration (`[pricing]`).
//! - [`api`]: the HTTP client and wire types of the video API.
//! - [`run`]: the engine — a pure decision core and its driver, rate limiter, polling, downloads, shutdown.
//! - [`journal`]: the append-only state file; [`state`]: what it says about each job.
//! - [`report`]: the CSV report; [`html`]: the HTML report page; [`view`]: a campaign from
//!   every (shard's) state file; [`status`]: `runner status`.
//!   [`summary`]: what a run says at its end.
//! - [`sim`]: the built-in API simulator (axum).

pub mod api;
pub mod app;
pub mod cli;
pub mod exit;
pub mod html;
pub mod journal;
pub mod manifest;
pub mod models;
pub mod plan;
pub mod report;
pub mod run;
pub mod sim;
pub mod state;
pub mod status;
pub mod summary;
pub mod util;
pub mod view;
