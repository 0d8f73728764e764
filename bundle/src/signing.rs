//! The bundle's signature: ed25519 over the exact bytes of SHA256SUMS.
//!
//! File formats follow the test bundle (and `openssl pkeyutl -sign -rawin`):
//! `SHA256SUMS.sig` is one line of base64 of the raw 64-byte signature,
//! `public.key` one line of base64 of the raw 32-byte public key. The private
//! key is a PKCS#8 PEM (`openssl genpkey -algorithm ed25519`) and never lives
//! inside the bundle.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use opspilot_domain::{DomainError, ErrorCode};

use crate::{write_atomically, Bundle};

/// Reads a public key: one line of base64 of the raw 32 bytes (the
/// `public.key` format), or an SPKI PEM (`openssl pkey -pubout`).
pub fn parse_public_key(text: &str) -> Result<[u8; 32], DomainError> {
    let text = text.trim();
    let invalid = |why: String| DomainError::validation("public key", why);
    let key = if text.starts_with("-----BEGIN") {
        VerifyingKey::from_public_key_pem(text).map_err(|e| invalid(format!("not an ed25519 SPKI PEM: {e}")))?
    } else {
        let raw = BASE64.decode(text).map_err(|e| invalid(format!("neither a PEM nor base64: {e}")))?;
        let raw: [u8; 32] =
            raw.try_into().map_err(|raw: Vec<u8>| invalid(format!("base64 of {} bytes, an ed25519 public key has 32", raw.len())))?;
        VerifyingKey::from_bytes(&raw).map_err(|e| invalid(format!("not a valid ed25519 point: {e}")))?
    };
    Ok(key.to_bytes())
}

/// A public key in `public.key` form (base64, no newline).
pub fn encode_public_key(key: &[u8; 32]) -> String {
    BASE64.encode(key)
}

/// Signs the bundle's SHA256SUMS with `private_key_pem` (PKCS#8) and writes
/// the signature and the public key where the index says; answers the
/// public key in base64. Run `fill_index` first: this signs SHA256SUMS as it is.
pub fn sign(root: &Path, private_key_pem: &str) -> Result<String, DomainError> {
    let key = SigningKey::from_pkcs8_pem(private_key_pem.trim())
        .map_err(|e| DomainError::validation("signing key", format!("not a PKCS#8 ed25519 private key (PEM): {e}")))?;
    let bundle = Bundle::load(root)?;
    let sums_rel = &bundle.index.checksums.path;
    let sums = bundle.read_checksum_file(sums_rel)?;
    crate::sums::parse(&String::from_utf8_lossy(&sums)).map_err(|why| {
        DomainError::new(ErrorCode::ArtifactChecksumMismatch, format!("{sums_rel}: {why}; run `opspilot bundle index` first"))
    })?;
    let signature = key.sign(&sums);
    let public = key.verifying_key().to_bytes();
    let public_b64 = encode_public_key(&public);
    let write = |rel: &str, line: &str| {
        let abs = bundle.resolve(rel)?;
        write_atomically(&abs, format!("{line}\n").as_bytes())
            .map_err(|e| DomainError::new(ErrorCode::ArtifactChecksumMismatch, format!("{rel}: cannot write: {e}")))
    };
    write(&bundle.index.signature.path, &BASE64.encode(signature.to_bytes()))?;
    write(&bundle.index.signature.pubkey_ref, &public_b64)?;
    Ok(public_b64)
}

/// Checks the signature file against `sums` with the bundle's public key
/// (and, when given, that this key is the trusted one); answers the key.
pub(crate) fn verify_signature(bundle: &Bundle, sums: &[u8], trusted: Option<&[u8; 32]>) -> Result<[u8; 32], DomainError> {
    let refused = |detail: String| DomainError::new(ErrorCode::ArtifactChecksumMismatch, detail);
    let sig_rel = &bundle.index.signature.path;
    let key_rel = &bundle.index.signature.pubkey_ref;
    let key_text = bundle.read_checksum_file(key_rel)?;
    let key = parse_public_key(&String::from_utf8_lossy(&key_text)).map_err(|e| refused(format!("{key_rel}: {}", e.detail)))?;
    if let Some(trusted) = trusted {
        if trusted != &key {
            return Err(refused(format!(
                "{key_rel}: the bundle is signed by {}, not by the trusted key {}",
                encode_public_key(&key),
                encode_public_key(trusted)
            )));
        }
    }
    let sig_text = bundle.read_checksum_file(sig_rel)?;
    let raw = BASE64.decode(String::from_utf8_lossy(&sig_text).trim()).map_err(|e| refused(format!("{sig_rel}: not base64: {e}")))?;
    let raw: [u8; 64] =
        raw.try_into().map_err(|raw: Vec<u8>| refused(format!("{sig_rel}: {} bytes, an ed25519 signature has 64", raw.len())))?;
    let verifying = VerifyingKey::from_bytes(&key).map_err(|e| refused(format!("{key_rel}: {e}")))?;
    verifying.verify_strict(sums, &Signature::from_bytes(&raw)).map_err(|_| {
        refused(format!(
            "{sig_rel}: the signature does not verify over {} with the key {} ({key_rel}); the list was changed after signing, or signed by another key",
            bundle.index.checksums.path,
            encode_public_key(&key)
        ))
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_read_from_base64_and_from_spki_pem() {
        let raw = "6uh0/PkJRkDs9l6+YHKx1thRB7NQcGN9RwQVKOUiwss=";
        let key = parse_public_key(&format!("{raw}\n")).unwrap();
        // The same key as an SPKI PEM: the fixed ed25519 prefix, then the raw key.
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend_from_slice(&key);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", BASE64.encode(&der));
        assert_eq!(parse_public_key(&pem).unwrap(), key);
        assert_eq!(encode_public_key(&key), raw);
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        let err = parse_public_key(&BASE64.encode([1u8; 31])).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError);
        assert!(err.detail.contains("31 bytes"), "{}", err.detail);
    }
}
