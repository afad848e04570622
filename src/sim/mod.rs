//! The built-in API simulator: the video generation service of SPEC §1 on localhost, with its faults.
//!
//! Used by `runner simulate` (serve until Ctrl-C), by `runner run --simulate`
//! (in-process on a free port) and by tests, which start it on `127.0.0.1:0`
//! with fault knobs and then assert on its [`SimStats`].
//!
//! Tasks advance lazily: a poll computes the status from the time elapsed
//! since the submit, so there is no background work. Durations are scaled by
//! [`SimConfig::time_scale`]; the clock is tokio's, so `tokio::time::pause`
//! moves the simulator too. Every random decision (faults, failures, IDs,
//! jitter) comes from one RNG seeded by [`SimConfig::seed`].
//!
//! Layout:
//! - `config`: [`SimConfig`], the knobs, as clap flags
//! - `state`: tasks, uploads, the RNG, the submit and query token buckets, [`SimStats`]
//! - `validate`: what a submit body may contain, per model
//! - `handlers`: the axum routes
//! - `faults`: the injectable faults and the broken answers that carry them
//! - `video`: deterministic video bytes, streamed in chunks, and `Range`

mod config;
mod faults;
mod handlers;
mod state;
mod validate;
mod video;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{ProgressMode, ResultShape, SimConfig, Window};
pub use state::SimStats;
pub use video::{video_bytes, video_sha256_hex};

use state::SimState;

/// How long a shutdown waits for requests in flight (a long download, say)
/// before the server stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A simulator running on a spawned task; dropping the handle also stops it.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<SimState>,
    /// Sending (or dropping) this starts the graceful shutdown.
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl SimHandle {
    /// Starts a simulator on `127.0.0.1` on a free port.
    pub async fn start(config: SimConfig) -> io::Result<SimHandle> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start_on(listener, config).await
    }

    /// Starts a simulator on `listener`.
    pub async fn start_on(listener: TcpListener, config: SimConfig) -> io::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(config, base_url_of(addr)));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, Arc::clone(&state), async move {
            // An error means the handle was dropped: stop as well.
            let _ = stopped.await;
        }));
        Ok(SimHandle {
            addr,
            state,
            stop,
            task,
        })
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to give a client.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Switches an outage on or off: while on, every API call answers a 503 HTML page.
    pub fn set_outage(&self, on: bool) {
        self.state.lock().outage = on;
    }

    /// Adds `usd` to the balance (`--balance`).
    pub fn top_up(&self, usd: f64) {
        let mut inner = self.state.lock();
        inner.balance = inner.balance.map(|b| b + usd);
    }

    /// A snapshot of the counters, the same data as `GET /_sim/stats`.
    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    /// Stops accepting, lets requests in flight finish for a moment, and waits for the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("simulator stopped with an error: {e}"),
            Err(e) => tracing::warn!("simulator task failed: {e}"),
        }
    }
}

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let state = Arc::new(SimState::new(config, base_url_of(addr)));
    run(listener, state, shutdown).await
}

async fn run(
    listener: TcpListener,
    state: Arc<SimState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (fired, on_fire) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = fired.send(());
    };
    let server = axum::serve(listener, handlers::router(state)).with_graceful_shutdown(signal);
    let deadline = async move {
        match on_fire.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            // The server ended on its own before any shutdown.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server.into_future() => result,
        () = deadline => Ok(()),
    }
}

/// The URL clients reach `addr` at; a wildcard bind is reached over loopback.
fn base_url_of(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
