//! Push-token rotation: installs a fresh bearer token on a PUSH stream. Shared by the admin
//! rotate call and by registration at a transmitter, which hands the fresh token over as the
//! `authorization_header`.

use std::time::Duration;

use crate::clock::now_unix;
use crate::registry::Registry;
use crate::secrets::{random_token, token_hash};
use crate::store::StoreError;
use crate::stream::Stream;

#[derive(Debug, thiserror::Error)]
pub enum PushTokenError {
    #[error("POLL streams have no push token")]
    NotPush,
    #[error("stream not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Installs a fresh push token on a live PUSH stream and returns it; the previous token stays
/// valid for `overlap` (`[server] push_token_overlap`). Only the token's hash is stored.
pub async fn rotate(
    registry: &Registry,
    id: &str,
    overlap: Duration,
) -> Result<String, PushTokenError> {
    let token = random_token();
    let hash = token_hash(&token);
    let now = now_unix();
    registry
        .modify(id, |s: &mut Stream| -> Result<(), PushTokenError> {
            if !s.is_push() {
                return Err(PushTokenError::NotPush);
            }
            s.prev_push_token_hash = s.push_token_hash;
            s.prev_push_token_expires_at = Some(now + overlap.as_secs() as i64);
            s.push_token_hash = Some(hash);
            s.updated_at = now;
            Ok(())
        })
        .await?
        .ok_or(PushTokenError::NotFound)?;
    tracing::info!(stream = %id, overlap_secs = overlap.as_secs(), "push token rotated");
    Ok(token)
}
