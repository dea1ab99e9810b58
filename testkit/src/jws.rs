//! Compact JWS assembly with any header, signed the way the header's `alg` asks.
//!
//! The JOSE library's own JWT writers normalise headers; tests need headers that lie
//! (a wrong `typ`, a foreign `kid`, `alg: none`), so only the raw signature comes from the
//! library and the three segments are put together here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jws::{JwsSigner, HS256, HS384, HS512};
use serde_json::Value;

use crate::keys::SigningKey;

/// The secret used when a header asks for `HS256`/`HS384`/`HS512` and no secret was given:
/// 64 bytes, long enough for every HMAC variant.
pub const HMAC_SECRET: &[u8; 64] =
    b"ssfd-testkit-hmac-secret-which-no-receiver-should-ever-accept!!!";

/// Base64url without padding, as JWS segments are written.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs per `header["alg"]`: `none` (any case) gives an empty signature, `HS*` uses
/// [`HMAC_SECRET`], anything else uses `key` (see [`SigningKey::sign_raw`] for algorithms the
/// key cannot serve). A header without `alg` is signed with the key's own algorithm.
pub fn sign_compact(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or(key.alg());
    if alg.eq_ignore_ascii_case("none") {
        return unsigned(header, claims);
    }
    if alg.starts_with("HS") {
        return sign_hmac(header, claims, HMAC_SECRET);
    }
    let input = signing_input(header, claims);
    let signature = key.sign_raw(alg, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// `header.payload.` with an empty signature, whatever the header says.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// An HMAC signature with `secret`: HS384/HS512 when the header names them, HS256 otherwise.
/// Panics when the secret is shorter than the hash, which the JOSE library refuses.
pub fn sign_hmac(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("HS256");
    let algorithm = match alg {
        "HS384" => HS384,
        "HS512" => HS512,
        _ => HS256,
    };
    let signer = algorithm
        .signer_from_bytes(secret)
        .unwrap_or_else(|e| panic!("HMAC secret unusable for {alg}: {e}"));
    let signature = signer
        .sign(input.as_bytes())
        .unwrap_or_else(|e| panic!("HMAC signing failed: {e}"));
    format!("{input}.{}", b64(&signature))
}
