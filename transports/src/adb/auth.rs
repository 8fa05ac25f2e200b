//! adb's RSA authentication (protocol.txt, AUTH): the host signs a 20-byte
//! token with its private key, and offers its public key in Android's own
//! format when the device does not know it yet.
//!
//! adbd verifies with `RSA_verify(NID_sha1, token, 20, ...)`: the token is
//! treated as an already computed SHA-1 digest, so the signature is
//! PKCS#1 v1.5 over SHA-1's DigestInfo and the raw token, with no hashing.
//! The public key is mincrypt's RSAPublicKey struct, base64, then
//! " user@host" and a NUL.

use std::io;
use std::path::Path;

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};

pub const TOKEN_SIZE: usize = 20;
const KEY_BITS: usize = 2048;
const KEY_WORDS: usize = KEY_BITS / 32;
/// The exponent adb keys use and mincrypt assumes.
const EXPONENT: u32 = 65537;

/// A host key as adb keeps it: `~/.android/adbkey` (PEM) and `adbkey.pub`.
#[derive(Clone)]
pub struct AdbKey {
    key: RsaPrivateKey,
}

impl std::fmt::Debug for AdbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdbKey(<private>)")
    }
}

fn sha1_prefix() -> Pkcs1v15Sign {
    Pkcs1v15Sign::new::<sha1::Sha1>()
}

impl AdbKey {
    /// A new 2048-bit key, the size adbd's mincrypt format holds.
    pub fn generate() -> io::Result<Self> {
        let key = RsaPrivateKey::new_with_exp(
            &mut rand::thread_rng(),
            KEY_BITS,
            &BigUint::from(EXPONENT),
        )
        .map_err(|e| io::Error::other(format!("generating an adb key: {e}")))?;
        Ok(Self { key })
    }

    /// Reads a PEM key (PKCS#8, as adb writes it, or PKCS#1).
    pub fn load(path: &Path) -> io::Result<Self> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            io::Error::new(e.kind(), format!("reading adb key {}: {e}", path.display()))
        })?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not an RSA private key in PEM: {e}", path.display()),
                )
            })?;
        Self::from_private(key)
    }

    pub fn from_private(key: RsaPrivateKey) -> io::Result<Self> {
        if key.size() * 8 != KEY_BITS || key.e() != &BigUint::from(EXPONENT) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "adb keys are RSA 2048 with exponent 65537",
            ));
        }
        Ok(Self { key })
    }

    /// Loads the key at `path`, or creates it (and `path.pub`) like adb
    /// does on first use.
    pub fn load_or_create(path: &Path, comment: &str) -> io::Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate()?;
        key.save(path, comment)?;
        Ok(key)
    }

    pub fn save(&self, path: &Path, comment: &str) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(pem.as_bytes())?;
        let mut public = self.public_key_text(comment);
        public.push('\n');
        std::fs::write(path.with_extension("pub"), public)
    }

    /// The AUTH SIGNATURE payload for a TOKEN.
    pub fn sign_token(&self, token: &[u8]) -> io::Result<Vec<u8>> {
        if token.len() != TOKEN_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("adb auth token of {} bytes, not 20", token.len()),
            ));
        }
        self.key
            .sign(sha1_prefix(), token)
            .map_err(|e| io::Error::other(format!("signing the adb token: {e}")))
    }

    pub fn public(&self) -> RsaPublicKey {
        self.key.to_public_key()
    }

    /// `adbkey.pub` text: base64 of the mincrypt struct, space, comment.
    pub fn public_key_text(&self, comment: &str) -> String {
        format!(
            "{} {comment}",
            base64::engine::general_purpose::STANDARD.encode(encode_public_key(&self.public()))
        )
    }

    /// The AUTH RSAPUBLICKEY payload: the text and a NUL.
    pub fn public_key_payload(&self, comment: &str) -> Vec<u8> {
        let mut v = self.public_key_text(comment).into_bytes();
        v.push(0);
        v
    }
}

fn words_le(n: &BigUint) -> Vec<u32> {
    let bytes = n.to_bytes_le();
    let mut w = vec![0u32; KEY_WORDS];
    for (i, b) in bytes.iter().enumerate().take(KEY_WORDS * 4) {
        w[i / 4] |= u32::from(*b) << (8 * (i % 4));
    }
    w
}

/// mincrypt's RSAPublicKey: len (words), n0inv = -1/n mod 2^32, n, rr =
/// 2^4096 mod n (for Montgomery multiplication), exponent; all little-endian.
pub fn encode_public_key(key: &RsaPublicKey) -> Vec<u8> {
    let n = key.n();
    let n_words = words_le(n);
    // Newton's iteration for the inverse of n[0] mod 2^32 (n is odd).
    let n0 = n_words[0];
    let mut inv = n0;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
    }
    let rr = (BigUint::from(1u8) << (2 * KEY_BITS)) % n;
    let mut out = Vec::with_capacity(4 * (3 + 2 * KEY_WORDS));
    out.extend((KEY_WORDS as u32).to_le_bytes());
    out.extend(inv.wrapping_neg().to_le_bytes());
    n_words.iter().for_each(|w| out.extend(w.to_le_bytes()));
    words_le(&rr)
        .iter()
        .for_each(|w| out.extend(w.to_le_bytes()));
    out.extend(words_le(key.e())[0].to_le_bytes());
    out
}

/// Parses an RSAPUBLICKEY payload or adbkey.pub text back into a key,
/// checking the derived fields as adbd would have to trust them.
pub fn parse_public_key(text: &[u8]) -> io::Result<RsaPublicKey> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad adb public key: {why}"),
        )
    };
    let text = text.strip_suffix(&[0]).unwrap_or(text);
    let b64 = text.split(|&b| b == b' ').next().unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("not base64"))?;
    if raw.len() != 4 * (3 + 2 * KEY_WORDS) {
        return Err(bad("wrong length"));
    }
    let word = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    if word(0) as usize != KEY_WORDS {
        return Err(bad("not 2048 bits"));
    }
    let le = |from: usize| raw[from * 4..(from + KEY_WORDS) * 4].to_vec();
    let n = BigUint::from_bytes_le(&le(2));
    let rr = BigUint::from_bytes_le(&le(2 + KEY_WORDS));
    let e = word(2 + 2 * KEY_WORDS);
    if word(1).wrapping_mul(word(2)) != u32::MAX {
        return Err(bad("n0inv is not -1/n[0]"));
    }
    if rr != (BigUint::from(1u8) << (2 * KEY_BITS)) % &n {
        return Err(bad("rr is not 2^4096 mod n"));
    }
    RsaPublicKey::new(n, BigUint::from(e)).map_err(|e| bad(&e.to_string()))
}

/// What adbd does with an AUTH SIGNATURE.
pub fn verify_token(key: &RsaPublicKey, token: &[u8], signature: &[u8]) -> bool {
    key.verify(sha1_prefix(), token, signature).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 2048-bit key from ssh-keygen: generating one with the rsa crate
    /// takes half a minute in a debug build.
    pub(crate) fn fixture(dir: &Path, format: &str) -> AdbKey {
        let path = dir.join(format!("fixture-{format}"));
        let out = std::process::Command::new("ssh-keygen")
            .args([
                "-q", "-t", "rsa", "-b", "2048", "-m", format, "-N", "", "-f",
            ])
            .arg(&path)
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(out.status.success());
        AdbKey::load(&path).unwrap()
    }

    #[test]
    fn sign_verify_and_public_key_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = fixture(dir.path(), "PEM");
        let token: Vec<u8> = (0..20).collect();
        let sig = key.sign_token(&token).unwrap();
        assert_eq!(sig.len(), 256);
        let payload = key.public_key_payload("hilt@host");
        assert_eq!(payload.last(), Some(&0));
        assert!(String::from_utf8_lossy(&payload).contains(" hilt@host"));
        let public = parse_public_key(&payload).unwrap();
        assert_eq!(public, key.public());
        assert!(verify_token(&public, &token, &sig));
        let mut other = token.clone();
        other[0] ^= 1;
        assert!(!verify_token(&public, &other, &sig));
        // The signature is over the raw token as a SHA-1 digest, not over
        // SHA-1(token): the DigestInfo inside must carry the token itself.
        let em = BigUint::from_bytes_be(&sig)
            .modpow(public.e(), public.n())
            .to_bytes_be();
        assert!(em.ends_with(&token), "{em:x?}");
        assert!(key.sign_token(&[0; 19]).is_err());
    }

    #[test]
    fn key_files_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adbkey");
        let a = fixture(dir.path(), "PKCS8");
        a.save(&path, "me@here").unwrap();
        let b = AdbKey::load_or_create(&path, "me@here").unwrap();
        assert_eq!(a.public(), b.public());
        let pubtext = std::fs::read_to_string(dir.path().join("adbkey.pub")).unwrap();
        assert_eq!(
            parse_public_key(pubtext.trim_end().as_bytes()).unwrap(),
            a.public()
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
