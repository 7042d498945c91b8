//! The config file parser on arbitrary text: every input is a config or one error naming
//! the key to fix, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salespulse_config::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::parse(std::path::Path::new("/nonexistent/fuzz/salespulse.toml"), text) {
        // The message is what the user reads: it must render.
        let _ = e.to_string();
    }
});
