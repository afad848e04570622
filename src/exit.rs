//! Exit codes (SPEC §2). Scripts rely on these; they never change meaning.

/// Every job succeeded.
pub const SUCCESS: i32 = 0;
/// The run finished, but some job did not succeed (see the report).
pub const JOBS_FAILED: i32 = 1;
/// Bad manifest, bad flags, failed validation, or a state file that is not ours: nothing was sent.
pub const BAD_INPUT: i32 = 2;
/// A fatal API condition, such as a rejected key (401/403).
pub const API_FATAL: i32 = 3;
/// A local I/O failure during the run (disk full, state or report unwritable).
pub const LOCAL_IO: i32 = 74;
/// The service stayed unreachable past `limits.outage_timeout`: nothing is lost, run again.
pub const UNAVAILABLE: i32 = 75;
/// Interrupted (Ctrl-C or SIGTERM); run again to resume.
pub const INTERRUPTED: i32 = 130;
