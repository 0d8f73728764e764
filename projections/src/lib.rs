//! Read models. Each projection is a plain function from an event to SQL on
//! the tables it owns; the runner feeds it with durable checkpoints, and any
//! projection can be dropped and rebuilt from the log at any time.

pub mod accounts;
pub mod ai_sessions;
pub mod audit_log;
pub mod catalog;
pub mod cluster_certs;
pub mod delivery;
pub mod clusters;
pub mod environments;
pub mod inbox;
pub mod page;
pub mod release_history;
pub mod releases;
pub mod runner;
pub mod timelines;

pub use page::{Page, PageRequest};

/// Why a read answered nothing: the caller may not read it (a dictionary
/// error), or the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Refused(opspilot_domain::DomainError),
    #[error(transparent)]
    Store(#[from] opspilot_eventstore::StoreError),
}

impl From<opspilot_domain::DomainError> for ReadError {
    fn from(e: opspilot_domain::DomainError) -> Self {
        ReadError::Refused(e)
    }
}

impl From<deadpool_postgres::PoolError> for ReadError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ReadError::Store(e.into())
    }
}

impl From<tokio_postgres::Error> for ReadError {
    fn from(e: tokio_postgres::Error) -> Self {
        ReadError::Store(e.into())
    }
}
pub use runner::{Projection, RunnerHandle};

/// Every projection, in the order the runner applies them. The audit log is
/// last: when it publishes an event live, every other read model has it.
pub fn all() -> Vec<Projection> {
    vec![accounts::PROJECTION, clusters::PROJECTION, cluster_certs::PROJECTION, catalog::PROJECTION, environments::PROJECTION, releases::PROJECTION, release_history::PROJECTION, delivery::PROJECTION, inbox::PROJECTION, timelines::PROJECTION, ai_sessions::PROJECTION, audit_log::PROJECTION]
}

/// Looks a projection up by name.
pub fn by_name(name: &str) -> Option<Projection> {
    all().into_iter().find(|p| p.name == name)
}
