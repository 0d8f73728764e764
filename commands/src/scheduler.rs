//! The system scheduler: expires pending tickets past their expiry. It only
//! records the expiry; what the ticket was raised for ends as the process
//! manager's follow-up. Safe on several replicas: expiring twice records once.

use std::time::Duration;

use tracing::Instrument;

use crate::Commands;

/// Starts the scheduler, one round every `every`.
pub fn spawn(commands: Commands, every: Duration) {
    tokio::spawn(
        async move {
            loop {
                tokio::time::sleep(every).await;
                match opspilot_projections::inbox::due_tickets(commands.store.pool(), chrono::Utc::now()).await {
                    Ok(due) if !due.is_empty() => {
                        if let Err(e) = commands.expire_due_tickets(&due).await {
                            tracing::warn!(error = ?e, "expiring tickets failed; retrying next round");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "reading due tickets failed"),
                }
            }
        }
        .instrument(tracing::info_span!("scheduler")),
    );
}
