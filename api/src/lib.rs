//! The OpsPilot server: GraphQL and REST over the same commands and read
//! models, one module per capability (each holding its REST routes and its
//! GraphQL roots) over shared plumbing that imports none of them.

pub mod app;
pub mod config;
pub mod error;
pub mod metrics;
pub mod schema;
pub mod state;

mod edge;
mod graphql_edge;
mod ops;

mod accounts;
mod ai;
mod audit;
mod catalog;
mod certs;
mod clusters;
mod console;
mod delivery;
mod environments;
mod hosts;
mod inbox;
mod releases;

pub use app::{start, Running};
pub use config::Config;
