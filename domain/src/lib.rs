//! OpsPilot's pure domain: aggregates in the decide/evolve shape, the events
//! they record, the error dictionary and RBAC. Nothing here does I/O, reads a
//! clock or draws a random number: time and ids arrive inside commands.

pub mod ai;
pub mod approval;
pub mod catalog;
pub mod cluster;
pub mod compose;
pub mod credential;
pub mod environment;
pub mod error;
pub mod event;
pub mod host;
pub mod identity;
pub mod install_task;
pub mod k8s;
pub mod name;
pub mod policy;
pub mod preview;
pub mod rbac;
pub mod release;
pub mod security;
pub mod text;
pub mod upcast;

pub use error::{DomainError, ErrorCode, Lang, DICTIONARY};
pub use event::{stream_id_of, ActorType, Aggregate, DomainEvent, EventScope, EventStatus, Severity, Source};
pub use name::ResourceName;
pub use rbac::{Principal, Role};
