//! The system scheduler: expires pending tickets past their expiry, and
//! records certificates crossing an expiry warning threshold. It only records;
//! what follows is the process manager's. Safe on several replicas: expiring
//! or warning twice records once.

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
                let thresholds = opspilot_domain::cluster::CERT_EXPIRY_WARNINGS;
                match opspilot_projections::cluster_certs::due_warnings(commands.store.pool(), &thresholds, chrono::Utc::now()).await {
                    Ok(due) if !due.is_empty() => {
                        if let Err(e) = commands.record_expiring_certificates(&due).await {
                            tracing::warn!(error = ?e, "recording expiring certificates failed; retrying next round");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "reading expiring certificates failed"),
                }
            }
        }
        .instrument(tracing::info_span!("scheduler")),
    );
}
