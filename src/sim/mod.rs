//! TEMPORARY STUB (replaced by the real simulator before commit).
#[derive(Debug, Clone, clap::Args, Default)]
pub struct SimConfig {
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}
#[derive(Debug)]
pub struct SimHandle;
impl SimHandle {
    pub async fn start(_c: SimConfig) -> std::io::Result<SimHandle> {
        Err(std::io::Error::other("stub"))
    }
    pub fn base_url(&self) -> String {
        String::new()
    }
    pub async fn shutdown(self) {}
}
pub async fn serve(
    _l: tokio::net::TcpListener,
    _c: SimConfig,
    _s: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    Ok(())
}
