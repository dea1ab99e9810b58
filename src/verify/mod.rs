//! Verify: everything between "bytes arrived for stream X" and "this is a genuine SET for X".

pub mod error;
pub mod subject;

pub use error::{ErrCode, SetError, VerifyFailure};
