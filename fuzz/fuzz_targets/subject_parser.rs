//! Fuzzes subject identifier parsing (JSON objects and the operator shorthand): no panics, and
//! every accepted subject has keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssfd::verify::subject::{parse_subject, parse_subject_shorthand};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(s) = parse_subject(&value) {
            assert!(!s.keys.is_empty());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(s) = parse_subject_shorthand(text) {
            assert!(!s.keys.is_empty());
        }
    }
});
