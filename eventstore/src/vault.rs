//! Encrypted credentials: AES-256-GCM with a fresh data key per record, the
//! data key wrapped (AES-256-GCM) by the master key. Only ids and keyed
//! fingerprints ever leave this module in the clear.

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::StoreError;

/// The master key, from `OPSPILOT_MASTER_KEY` or a key file.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<MasterKey, StoreError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| StoreError::Config(format!("master key is not base64: {e}")))?;
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| StoreError::Config("master key must be 32 bytes (base64 of 32 random bytes)".into()))?;
        Ok(MasterKey(arr))
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        MasterKey(k)
    }

    /// The key as base64, for writing the key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

/// An encrypted record as stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub wrapped_dek: Vec<u8>,
    pub dek_nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

/// A secret sealed for the `credentials` table, to be stored in the same
/// transaction as the event announcing it ([`crate::EventStore::append_with_secrets`]).
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub id: Uuid,
    pub kind: String,
    pub sealed: Sealed,
    pub fingerprint: String,
}

impl SealedSecret {
    pub(crate) async fn insert(&self, client: &impl deadpool_postgres::GenericClient) -> Result<(), StoreError> {
        let s = &self.sealed;
        client
            .execute(
                "INSERT INTO credentials (id, kind, wrapped_dek, dek_nonce, ciphertext, nonce, fingerprint) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                &[&self.id, &self.kind, &s.wrapped_dek, &s.dek_nonce, &s.ciphertext, &s.nonce, &self.fingerprint],
            )
            .await?;
        Ok(())
    }
}

/// Seals and opens secrets, and stores them in the `credentials` table.
#[derive(Clone)]
pub struct Vault {
    master: MasterKey,
    pool: Pool,
}

type HmacSha256 = Hmac<Sha256>;

impl Vault {
    /// A vault over the credentials table of `pool`.
    pub fn new(master: MasterKey, pool: Pool) -> Self {
        Vault { master, pool }
    }

    /// Encrypts `secret` under a fresh data key wrapped by the master key.
    pub fn seal(&self, secret: &[u8]) -> Sealed {
        let dek = Aes256Gcm::generate_key(OsRng);
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let ciphertext = Aes256Gcm::new(&dek).encrypt(&nonce, secret).expect("aes-gcm encrypts");
        let dek_nonce = Aes256Gcm::generate_nonce(OsRng);
        let wrapped_dek = self.kek().encrypt(&dek_nonce, dek.as_slice()).expect("aes-gcm wraps");
        Sealed { wrapped_dek, dek_nonce: dek_nonce.to_vec(), ciphertext, nonce: nonce.to_vec() }
    }

    /// Decrypts a sealed record; fails if the master key differs or bytes were changed.
    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, StoreError> {
        let bad = || StoreError::Crypto("credential cannot be decrypted with this master key".into());
        if sealed.dek_nonce.len() != 12 || sealed.nonce.len() != 12 {
            return Err(bad());
        }
        let dek = self.kek().decrypt(Nonce::from_slice(&sealed.dek_nonce), sealed.wrapped_dek.as_slice()).map_err(|_| bad())?;
        if dek.len() != 32 {
            return Err(bad());
        }
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&dek))
            .decrypt(Nonce::from_slice(&sealed.nonce), sealed.ciphertext.as_slice())
            .map_err(|_| bad())
    }

    /// A keyed fingerprint of a secret: equal secrets give equal fingerprints,
    /// but without the master key it reveals nothing (not even to brute force).
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.derived(b"opspilot/fingerprint")).expect("hmac key");
        mac.update(secret);
        format!("hmac-sha256:{}", &hex::encode(mac.finalize().into_bytes())[..32])
    }

    /// Seals a secret for `id` without storing it.
    pub fn prepare(&self, id: Uuid, kind: &str, secret: &[u8]) -> SealedSecret {
        SealedSecret { id, kind: kind.to_string(), sealed: self.seal(secret), fingerprint: self.fingerprint(secret) }
    }

    /// Seals and stores a secret under `id`; returns its fingerprint.
    pub async fn put(&self, id: Uuid, kind: &str, secret: &[u8]) -> Result<String, StoreError> {
        let prepared = self.prepare(id, kind, secret);
        prepared.insert(&self.pool.get().await?).await?;
        Ok(prepared.fingerprint)
    }

    /// Reads and decrypts the secret stored under `id`.
    pub async fn get(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.pool.get().await?;
        let Some(row) = client
            .query_opt("SELECT wrapped_dek, dek_nonce, ciphertext, nonce FROM credentials WHERE id = $1", &[&id])
            .await?
        else {
            return Ok(None);
        };
        let sealed = Sealed { wrapped_dek: row.get(0), dek_nonce: row.get(1), ciphertext: row.get(2), nonce: row.get(3) };
        self.open(&sealed).map(Some)
    }

    /// Removes the stored secret (the `credential.deleted` event stays).
    pub async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute("DELETE FROM credentials WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    fn derived(&self, label: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(label);
        h.update(self.master.0);
        h.finalize().into()
    }

    fn kek(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.derived(b"opspilot/kek")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(key: MasterKey) -> Vault {
        // The pool is never touched by seal/open/fingerprint.
        Vault::new(key, crate::db::pool("host=/nonexistent user=x", 1).unwrap())
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_master_key() {
        let k = MasterKey::generate();
        let v = vault(k.clone());
        let s = v.seal(b"-----BEGIN OPENSSH PRIVATE KEY----- secret");
        assert!(!s.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(v.open(&s).unwrap(), b"-----BEGIN OPENSSH PRIVATE KEY----- secret");
        assert!(vault(MasterKey::generate()).open(&s).is_err());
        let mut tampered = s.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(v.open(&tampered).is_err());
    }

    #[test]
    fn fingerprints_are_keyed() {
        let a = vault(MasterKey::generate());
        let b = vault(MasterKey::generate());
        assert_eq!(a.fingerprint(b"pw"), a.fingerprint(b"pw"));
        assert_ne!(a.fingerprint(b"pw"), b.fingerprint(b"pw"));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
