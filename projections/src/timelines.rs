//! One timeline per release and per install task: every event that belongs
//! to it — its own, its execution facts (k8s, compose), and every event of
//! every ticket raised for it (created, viewed, assigned, commented, decided)
//! — and the steps of every AI session about it — in log order. The list is the same wherever it is shown: REST, GraphQL
//! and the live subscription all read [`timeline`] or [`contains`].

use opspilot_domain::rbac::Permission;
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::{DomainError, ErrorCode, Principal};
use opspilot_eventstore::{RecordedEvent, StoreError};

use crate::audit_log::{row_entry, AuditEntry, ENTRY_COLUMNS};
use crate::runner::Projection;
use crate::ReadError;

/// The timelines projection.
pub const PROJECTION: Projection = Projection { name: "timelines", tables: &["timeline_tickets", "timeline_entries"], apply: |tx, e| apply(tx, e).boxed() };

/// What a timeline is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Release,
    InstallTask,
}

impl Subject {
    fn as_str(self) -> &'static str {
        match self {
            Subject::Release => "release",
            Subject::InstallTask => "install_task",
        }
    }
}

/// The timeline an event of a ticket's scope belongs to, by the ticket's binding.
fn ticket_subject(scope_type: &str) -> Option<Subject> {
    match scope_type {
        "release" => Some(Subject::Release),
        "install" => Some(Subject::InstallTask),
        _ => None,
    }
}

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let text = |k: &str| e.detail.get(k).and_then(|v| v.as_str()).map(String::from);
    let subject: Option<(Subject, String)> = match e.resource_type.as_str() {
        // A release's own stream and its execution facts share its scope.
        "deployment_release" => Some((Subject::Release, e.resource_id.clone())),
        "install_task" => Some((Subject::InstallTask, e.resource_id.clone())),
        "environment" => text("task_id").map(|t| (Subject::InstallTask, t)),
        // An AI session's steps about a release stand beside the release's own.
        "ai_session" => text("release_id").map(|r| (Subject::Release, r)),
        "approval_ticket" => {
            if e.action == "approval.ticket_created" {
                if let (Some(subject), Some(id)) = (text("scope_type").as_deref().and_then(ticket_subject), text("scope_id")) {
                    tx.execute(
                        "INSERT INTO timeline_tickets (ticket, subject_type, subject_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&e.resource_id, &subject.as_str(), &id],
                    )
                    .await?;
                }
            }
            tx.query_opt("SELECT subject_type, subject_id FROM timeline_tickets WHERE ticket = $1", &[&e.resource_id])
                .await?
                .map(|r| (if r.get::<_, String>(0) == "release" { Subject::Release } else { Subject::InstallTask }, r.get(1)))
        }
        _ => None,
    };
    if let Some((subject, id)) = subject {
        tx.execute(
            "INSERT INTO timeline_entries (subject_type, subject_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&subject.as_str(), &id, &e.position],
        )
        .await?;
    }
    Ok(())
}

/// The timeline of a release or install task the caller may read, in log order.
/// `read_permission` is checked here so every surface asks the same question.
pub async fn timeline(pool: &Pool, p: &Principal, subject: Subject, id: &str) -> Result<Vec<AuditEntry>, ReadError> {
    p.require(read_permission(subject))?;
    let c = pool.get().await.map_err(StoreError::from)?;
    let projects: Vec<String> = p.project_ids.iter().map(|u| u.to_string()).collect();
    let rows = c
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM timeline_entries t JOIN audit_log_entries a ON a.position = t.position
                 WHERE t.subject_type = $3 AND t.subject_id = $4 AND ($1 OR a.project_id = ANY($2))
                 ORDER BY t.position"
            ),
            &[&p.is_admin(), &projects, &subject.as_str(), &id],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(rows.iter().map(row_entry).collect())
}

/// Whether the event at `position` is on the timeline (for live updates,
/// which arrive once the projections hold the event).
pub async fn contains(pool: &Pool, subject: Subject, id: &str, position: i64) -> Result<bool, StoreError> {
    let c = pool.get().await?;
    Ok(c.query_opt("SELECT 1 FROM timeline_entries WHERE subject_type = $1 AND subject_id = $2 AND position = $3", &[&subject.as_str(), &id, &position])
        .await?
        .is_some())
}

/// The permission a timeline needs.
pub fn read_permission(subject: Subject) -> Permission {
    match subject {
        Subject::Release => Permission::DeployReleaseRead,
        Subject::InstallTask => Permission::EnvironmentRead,
    }
}

/// A timeline the caller cannot read is answered as not found by the caller's surface.
pub fn not_found(subject: Subject, id: &str) -> DomainError {
    match subject {
        Subject::Release => DomainError::new(ErrorCode::ReleaseNotFound, format!("release {id} does not exist")),
        Subject::InstallTask => DomainError::new(ErrorCode::InstallTaskNotFound, format!("install task {id} does not exist")),
    }
}
