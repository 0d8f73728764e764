//! The AI command center: the intent engine and the session aggregate.

pub mod intent;
pub mod session;
pub mod messages;
