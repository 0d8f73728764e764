//! The PostgreSQL event store of OpsPilot, and the tables kept beside it:
//! encrypted credentials, password and token hashes, idempotency keys and
//! projection checkpoints.

pub mod artifacts;
pub mod db;
pub mod notify;
pub mod secrets;
pub mod store;
pub mod vault;

pub use db::{migrate, pool};
pub use deadpool_postgres::Pool;
pub use store::{AppendOutcome, ChainReport, EventMeta, EventStore, ExpectedVersion, IdempotencyRecord, NewEvent, RecordedEvent, StreamAppend};
pub use vault::{MasterKey, SealedSecret, Vault};

/// What can go wrong at the storage edge.
#[derive(thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version: someone else wrote first.
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict { stream_id: String, expected: ExpectedVersion, actual: i64 },
    #[error("configuration: {0}")]
    Config(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("database")]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl std::fmt::Debug for StoreError {
    // Print the whole source chain: the top-level message alone hides the cause.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut cur = std::error::Error::source(self);
        while let Some(s) = cur {
            write!(f, "\n  caused by: {s}")?;
            cur = s.source();
        }
        Ok(())
    }
}
