//! Projects, teams, users and API tokens: who may do what, where.

pub mod api_token;
pub mod project;
pub mod team;
pub mod user;
