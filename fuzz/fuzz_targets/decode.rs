//! Command decoding: any text frame must give a command or an error, never
//! a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realtime_server::protocol::{decode, DecodeLimits};

const LIMITS: DecodeLimits = DecodeLimits {
    max_message_chars: 8192,
    max_metadata_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode(text, &LIMITS);
    }
});
