//! Signing keys: generation, import from a private JWK, public JWK export and raw signatures.

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::{Ed25519, Jwk, P_256, P_384};
use josekit::jws::{
    EdDSA, JwsSigner, ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512,
};
use serde_json::{Map, Value};

use crate::rsa_small;

/// The kinds of key a test can ask for. Each signs with the algorithm it is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA-2048, RS256: what the SSF interoperability profile mandates.
    Rs256,
    /// RSA of the given size, RS256. Sizes under 2048 make real but unacceptable keys.
    Rs256Bits(u32),
    /// P-256, ES256.
    Es256,
    /// P-384, ES384.
    Es384,
    /// Ed25519, EdDSA.
    EdDsa,
    /// RSA-2048, PS256.
    Ps256,
}

impl KeyKind {
    /// The JWS `alg` this kind of key signs with.
    pub fn alg(self) -> &'static str {
        match self {
            KeyKind::Rs256 | KeyKind::Rs256Bits(_) => "RS256",
            KeyKind::Es256 => "ES256",
            KeyKind::Es384 => "ES384",
            KeyKind::EdDsa => "EdDSA",
            KeyKind::Ps256 => "PS256",
        }
    }
}

/// The public members of each key type: all a JWKS entry may carry besides kty/kid/use/alg.
const PUBLIC_MEMBERS: [(&str, &[&str]); 3] = [
    ("RSA", &["n", "e"]),
    ("EC", &["crv", "x", "y"]),
    ("OKP", &["crv", "x"]),
];

/// A private key with its `kid` and the algorithm it signs with by default.
#[derive(Debug, Clone)]
pub struct SigningKey {
    kid: String,
    alg: String,
    /// Key material only: no `kid`, `alg`, `use` or `key_ops`, so the JOSE library accepts
    /// it for any algorithm the key type allows (it refuses a JWK whose `alg` differs).
    material: Jwk,
}

impl SigningKey {
    /// A fresh key. Panics only if the cryptographic library fails, which a test cannot
    /// recover from anyway.
    pub fn generate(kind: KeyKind, kid: &str) -> SigningKey {
        let material = match kind {
            KeyKind::Rs256 | KeyKind::Ps256 => Jwk::generate_rsa_key(2048),
            KeyKind::Rs256Bits(bits) => Jwk::generate_rsa_key(bits),
            KeyKind::Es256 => Jwk::generate_ec_key(P_256),
            KeyKind::Es384 => Jwk::generate_ec_key(P_384),
            KeyKind::EdDsa => Jwk::generate_ed_key(Ed25519),
        }
        .unwrap_or_else(|e| panic!("generating a {kind:?} key failed: {e}"));
        SigningKey {
            kid: kid.to_owned(),
            alg: kind.alg().to_owned(),
            material,
        }
    }

    /// Imports a private JWK (RSA, EC P-256/384/521 or Ed25519). The `kid` argument wins over
    /// the JWK's own, which wins over `"k1"`; the JWK's `alg` is kept when the key can sign
    /// with it, otherwise the key type's usual algorithm is used.
    pub fn from_private_jwk(jwk: &Jwk, kid: Option<&str>) -> anyhow::Result<SigningKey> {
        let kty = jwk.key_type();
        let members = PUBLIC_MEMBERS
            .iter()
            .find(|(t, _)| *t == kty)
            .map(|(_, m)| *m)
            .ok_or_else(|| anyhow!("unsupported key type {kty:?}: use RSA, EC or OKP"))?;
        let mut material = Jwk::new(kty);
        for name in members.iter().chain(private_members(kty)).copied() {
            let value = jwk
                .parameter(name)
                .ok_or_else(|| anyhow!("the {kty} key lacks its {name:?} member"))?;
            material
                .set_parameter(name, Some(value.clone()))
                .with_context(|| format!("bad {name:?} member"))?;
        }
        let mut key = SigningKey {
            kid: kid.or(jwk.key_id()).unwrap_or("k1").to_owned(),
            alg: String::new(),
            material,
        };
        key.alg = match jwk.algorithm() {
            Some(alg) if key.can_sign(alg) => alg.to_owned(),
            Some(alg) => bail!("a {kty} key cannot sign with {alg}"),
            None => key.native_alg()?.to_owned(),
        };
        // Fail here, not at the first token, if the material is unusable.
        key.try_sign_raw(&key.alg, b"probe")
            .context("the key cannot sign")?;
        Ok(key)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm tokens signed with this key announce by default.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// The JWK `kty`: `RSA`, `EC` or `OKP`.
    pub fn key_type(&self) -> &str {
        self.material.key_type()
    }

    /// The modulus size of an RSA key.
    pub fn rsa_bits(&self) -> Option<usize> {
        (self.key_type() == "RSA").then(|| self.rsa_modulus().len() * 8)
    }

    /// The private JWK with `kid`, `alg` and `use`, as written to a key file.
    pub fn private_jwk(&self) -> Jwk {
        let mut jwk = self.material.clone();
        jwk.set_key_id(self.kid.clone());
        jwk.set_algorithm(self.alg.clone());
        jwk.set_key_use("sig");
        jwk
    }

    /// The public JWK as a JWKS publishes it: `kty`, `kid`, `use`, `alg`, then the public
    /// key members and nothing private.
    pub fn public_jwk(&self) -> Value {
        let kty = self.key_type();
        let mut out = Map::new();
        out.insert("kty".into(), kty.into());
        out.insert("kid".into(), self.kid.clone().into());
        out.insert("use".into(), "sig".into());
        out.insert("alg".into(), self.alg.clone().into());
        let members = PUBLIC_MEMBERS
            .iter()
            .find(|(t, _)| *t == kty)
            .map_or(&[][..], |(_, m)| *m);
        for name in members {
            if let Some(value) = self.material.parameter(name) {
                out.insert((*name).into(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// Whether this key's type can produce a signature for `alg`.
    pub fn can_sign(&self, alg: &str) -> bool {
        let curve = self.material.curve();
        match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => self.key_type() == "RSA",
            "ES256" => curve == Some("P-256"),
            "ES384" => curve == Some("P-384"),
            "ES512" => curve == Some("P-521"),
            "EdDSA" => self.key_type() == "OKP" && curve == Some("Ed25519"),
            _ => false,
        }
    }

    /// Signs `input` for the JWS algorithm `alg`. When this key cannot serve `alg` it signs
    /// with its own algorithm instead, so a header can deliberately disagree with the key.
    /// RSA keys under 2048 bits always produce RS256, the only algorithm worth testing them with.
    pub fn sign_raw(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let alg = if self.can_sign(alg) { alg } else { &self.alg };
        self.try_sign_raw(alg, input)
            .unwrap_or_else(|e| panic!("signing with key {:?} ({alg}) failed: {e}", self.kid))
    }

    fn try_sign_raw(&self, alg: &str, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        if self.rsa_bits().is_some_and(|bits| bits < 2048) {
            let d = self.decoded("d")?;
            return rsa_small::sign_rs256(&self.rsa_modulus(), &d, input)
                .ok_or_else(|| anyhow!("RSA modulus too short for RS256"));
        }
        let m = &self.material;
        let signer: Box<dyn JwsSigner> = match alg {
            "RS256" => Box::new(RS256.signer_from_jwk(m)?),
            "RS384" => Box::new(RS384.signer_from_jwk(m)?),
            "RS512" => Box::new(RS512.signer_from_jwk(m)?),
            "PS256" => Box::new(PS256.signer_from_jwk(m)?),
            "PS384" => Box::new(PS384.signer_from_jwk(m)?),
            "PS512" => Box::new(PS512.signer_from_jwk(m)?),
            "ES256" => Box::new(ES256.signer_from_jwk(m)?),
            "ES384" => Box::new(ES384.signer_from_jwk(m)?),
            "ES512" => Box::new(ES512.signer_from_jwk(m)?),
            "EdDSA" => Box::new(EdDSA.signer_from_jwk(m)?),
            other => bail!("unsupported algorithm {other}"),
        };
        Ok(signer.sign(input)?)
    }

    fn native_alg(&self) -> anyhow::Result<&'static str> {
        match (self.key_type(), self.material.curve()) {
            ("RSA", _) => Ok("RS256"),
            ("EC", Some("P-256")) => Ok("ES256"),
            ("EC", Some("P-384")) => Ok("ES384"),
            ("EC", Some("P-521")) => Ok("ES512"),
            ("OKP", Some("Ed25519")) => Ok("EdDSA"),
            (kty, crv) => bail!("unsupported key: kty {kty}, crv {crv:?}"),
        }
    }

    fn decoded(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let text = self
            .material
            .parameter(name)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("missing {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .with_context(|| format!("{name:?} is not base64url"))
    }

    fn rsa_modulus(&self) -> Vec<u8> {
        let n = self.decoded("n").unwrap_or_default();
        let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
        n[first..].to_vec()
    }
}

/// The private members each key type needs to sign. RSA's CRT members are optional in a JWK
/// but the JOSE library requires them, and every generator writes them.
fn private_members(kty: &str) -> &'static [&'static str] {
    match kty {
        "RSA" => &["d", "p", "q", "dp", "dq", "qi"],
        _ => &["d"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_jwk_carries_no_private_members() {
        for kind in [KeyKind::Rs256, KeyKind::Es256, KeyKind::EdDsa] {
            let key = SigningKey::generate(kind, "k");
            let public = key.public_jwk();
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(public.get(private).is_none(), "{kind:?} leaks {private}");
            }
            assert_eq!(public["alg"], kind.alg());
            assert_eq!(public["use"], "sig");
        }
    }

    #[test]
    fn private_jwk_round_trips() {
        let key = SigningKey::generate(KeyKind::Es384, "saved");
        let back = SigningKey::from_private_jwk(&key.private_jwk(), None).unwrap();
        assert_eq!(back.kid(), "saved");
        assert_eq!(back.alg(), "ES384");
        assert_eq!(back.public_jwk(), key.public_jwk());
    }

    #[test]
    fn import_rejects_public_only_keys() {
        let key = SigningKey::generate(KeyKind::Es256, "k");
        let public = Jwk::from_bytes(key.public_jwk().to_string()).unwrap();
        assert!(SigningKey::from_private_jwk(&public, None).is_err());
    }
}
