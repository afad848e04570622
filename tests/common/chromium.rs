//! The flags every headless Chromium here starts with (tests/html.rs and
//! benches/html_page.rs): headless, and kept off the network, which this
//! machine does not have (Chromium would retry its own lookups forever).

pub const HEADLESS_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--no-proxy-server",
];
