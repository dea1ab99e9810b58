//! The error every store operation returns, whatever the backend.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation (the driver's message).
    #[error("database error: {0}")]
    Database(String),
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    Closed,
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}
