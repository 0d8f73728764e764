//! Read models. Each projection is a plain function from an event to SQL on
//! the tables it owns; the runner feeds it with durable checkpoints, and any
//! projection can be dropped and rebuilt from the log at any time.

pub mod accounts;
pub mod audit_log;
pub mod catalog;
pub mod clusters;
pub mod environments;
pub mod inbox;
pub mod page;
pub mod releases;
pub mod runner;

pub use page::{Page, PageRequest};
pub use runner::{Projection, RunnerHandle};

/// Every projection, in the order the runner applies them. The audit log is
/// last: when it publishes an event live, every other read model has it.
pub fn all() -> Vec<Projection> {
    vec![accounts::PROJECTION, clusters::PROJECTION, catalog::PROJECTION, environments::PROJECTION, releases::PROJECTION, inbox::PROJECTION, audit_log::PROJECTION]
}

/// Looks a projection up by name.
pub fn by_name(name: &str) -> Option<Projection> {
    all().into_iter().find(|p| p.name == name)
}
