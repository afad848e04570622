//! The `runner` binary: parse arguments, set up logging and the runtime, map the outcome to an exit code.

use std::io::IsTerminal;

use clap::Parser;
use runner::cli::{Cli, LogFormat};

/// See Cargo.toml: flat memory at 100k jobs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    init_logging(&cli);
    let code = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => match runtime.block_on(runner::app::main_impl(cli)) {
            Ok(code) => code,
            Err(e) => {
                report_error(&e);
                e.exit_code()
            }
        },
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            runner::exit::JOBS_FAILED
        }
    };
    std::process::exit(code);
}

/// The message, then every cause on its own line.
fn report_error(e: &runner::app::AppError) {
    eprintln!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "runner=debug,info",
        (false, _) => "runner=trace,debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(runner::run::progress::LogWriter)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(ansi).without_time().init(),
    }
}
