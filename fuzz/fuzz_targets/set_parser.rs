//! Fuzzes the SET envelope parser and the claim checks: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssfd::stream::Stream;
use ssfd::verify::{claims, jws};

fuzz_target!(|data: &[u8]| {
    let stream = Stream {
        issuer_url: "https://tr.example.com".into(),
        expected_audience: "https://receiver.example.com".into(),
        transmitter_stream_id: "s1".into(),
        ..Stream::default()
    };
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = jws::parse(text) {
            let _ = claims::check(&stream, parsed.payload);
        }
    }
    // The same bytes as a decoded payload, to reach the claim checks directly.
    if let Ok(serde_json::Value::Object(payload)) = serde_json::from_slice(data) {
        let _ = claims::check(&stream, payload);
    }
});
