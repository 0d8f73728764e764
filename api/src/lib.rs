//! The OpsPilot server: GraphQL and REST over the same commands and read models.

pub mod app;
pub mod config;
pub mod error;
pub mod graphql;
pub mod graphql_environments;
pub mod metrics;
pub mod rest;
pub mod rest_environments;
pub mod state;

pub use app::{start, Running};
pub use config::Config;
