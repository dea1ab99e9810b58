//! RS256 signatures for RSA keys shorter than 2048 bits, which the JOSE library refuses to use.
//!
//! Receivers must reject such keys (SSF interop profile: RSA of at least 2048 bits), and a
//! test of that rule is only convincing when the token is otherwise perfect, so the signature
//! has to be real. This is textbook RSASSA-PKCS1-v1_5 with SHA-256: slow, not constant-time,
//! and fit only for test tokens.

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// DER prefix of the DigestInfo for SHA-256 (RFC 8017, 9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Little-endian 32-bit limbs, zero-padded to `limbs`.
fn limbs_from_be(bytes: &[u8], limbs: usize) -> Vec<u32> {
    let mut out = vec![0u32; limbs];
    for (i, byte) in bytes.iter().rev().enumerate() {
        out[i / 4] |= u32::from(*byte) << (8 * (i % 4));
    }
    out
}

fn limbs_to_be(x: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, byte) in out.iter_mut().rev().enumerate() {
        *byte = (x[i / 4] >> (8 * (i % 4))) as u8;
    }
    out
}

fn greater_or_equal(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let v = u64::from(*x)
            .wrapping_sub(u64::from(*y))
            .wrapping_sub(borrow);
        *x = v as u32;
        borrow = (v >> 63) & 1;
    }
}

/// Arithmetic modulo an odd `n` in Montgomery form with R = 2^(32 * limbs).
struct Modulus {
    /// `n` with one extra zero limb, to compare against the unreduced Montgomery result.
    n: Vec<u32>,
    limbs: usize,
    /// -n^-1 mod 2^32.
    n0inv: u32,
    /// R^2 mod n, to move numbers into Montgomery form.
    r2: Vec<u32>,
}

impl Modulus {
    fn new(n_be: &[u8]) -> Modulus {
        let limbs = n_be.len().div_ceil(4);
        let mut n = limbs_from_be(n_be, limbs);
        // Newton's iteration doubles the correct low bits each round: 1 -> 32 bits in five.
        let mut inv = 1u32;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        n.push(0);
        let mut r2 = vec![0u32; limbs + 1];
        r2[0] = 1;
        for _ in 0..(64 * limbs) {
            let mut carry = 0u32;
            for limb in r2.iter_mut() {
                let next = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            if greater_or_equal(&r2, &n) {
                sub_in_place(&mut r2, &n);
            }
        }
        r2.truncate(limbs);
        Modulus {
            n,
            limbs,
            n0inv: inv.wrapping_neg(),
            r2,
        }
    }

    /// a * b * R^-1 mod n (coarsely integrated operand scanning).
    fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let s = self.limbs;
        let mut t = vec![0u32; s + 2];
        for &bi in &b[..s] {
            let mut carry = 0u64;
            for j in 0..s {
                let v = u64::from(t[j]) + u64::from(a[j]) * u64::from(bi) + carry;
                t[j] = v as u32;
                carry = v >> 32;
            }
            let v = u64::from(t[s]) + carry;
            t[s] = v as u32;
            t[s + 1] = (v >> 32) as u32;

            let m = t[0].wrapping_mul(self.n0inv);
            let v = u64::from(t[0]) + u64::from(m) * u64::from(self.n[0]);
            let mut carry = v >> 32;
            for j in 1..s {
                let v = u64::from(t[j]) + u64::from(m) * u64::from(self.n[j]) + carry;
                t[j - 1] = v as u32;
                carry = v >> 32;
            }
            let v = u64::from(t[s]) + carry;
            t[s - 1] = v as u32;
            t[s] = t[s + 1] + (v >> 32) as u32;
            t[s + 1] = 0;
        }
        t.truncate(s + 1);
        if greater_or_equal(&t, &self.n) {
            sub_in_place(&mut t, &self.n);
        }
        t.truncate(s);
        t
    }

    fn pow(&self, base: &[u32], exp_be: &[u8]) -> Vec<u32> {
        let mut one = vec![0u32; self.limbs];
        one[0] = 1;
        let base_m = self.mul(base, &self.r2);
        let mut acc = self.mul(&one, &self.r2);
        for byte in exp_be {
            for bit in (0..8).rev() {
                acc = self.mul(&acc, &acc);
                if (byte >> bit) & 1 == 1 {
                    acc = self.mul(&acc, &base_m);
                }
            }
        }
        self.mul(&acc, &one)
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `message`, from the big-endian modulus and private
/// exponent (the JWK `n` and `d`). Returns `None` when the modulus is too short to hold the
/// encoded digest or is even.
pub(crate) fn sign_rs256(n: &[u8], d: &[u8], message: &[u8]) -> Option<Vec<u8>> {
    let n = strip_leading_zeros(n);
    let k = n.len();
    let t_len = SHA256_DIGEST_INFO.len() + 32;
    if k < t_len + 11 || n.last().copied().unwrap_or(0) & 1 == 0 {
        return None;
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k - t_len - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(&sha256(message));
    let modulus = Modulus::new(n);
    let m = limbs_from_be(&em, modulus.limbs);
    Some(limbs_to_be(&modulus.pow(&m, d), k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use josekit::jwk::Jwk;
    use josekit::jws::{JwsSigner, RS256};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn member(jwk: &Jwk, name: &str) -> Vec<u8> {
        let text = jwk.parameter(name).and_then(|v| v.as_str()).unwrap();
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    #[test]
    fn sha256_matches_known_vectors() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hex(&sha256(long)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn matches_the_library_signature_on_a_full_size_key() {
        // PKCS#1 v1.5 is deterministic, so our signature must equal the library's bit for bit.
        let jwk = Jwk::generate_rsa_key(2048).unwrap();
        let message = b"header.payload";
        let expected = RS256.signer_from_jwk(&jwk).unwrap().sign(message).unwrap();
        let ours = sign_rs256(&member(&jwk, "n"), &member(&jwk, "d"), message).unwrap();
        assert_eq!(ours, expected);
    }

    #[test]
    fn short_key_signature_opens_with_the_public_exponent() {
        let jwk = Jwk::generate_rsa_key(1024).unwrap();
        let (n, e) = (member(&jwk, "n"), member(&jwk, "e"));
        let sig = sign_rs256(&n, &member(&jwk, "d"), b"msg").unwrap();
        let modulus = Modulus::new(strip_leading_zeros(&n));
        let opened = limbs_to_be(
            &modulus.pow(&limbs_from_be(&sig, modulus.limbs), &e),
            sig.len(),
        );
        assert_eq!(&opened[..2], &[0x00, 0x01]);
        assert!(opened.ends_with(&sha256(b"msg")));
    }
}
