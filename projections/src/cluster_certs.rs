//! The certificates read model: every certificate OpsPilot holds or placed
//! for a cluster (for an imported cluster, the CA and client certificate it
//! was given), with expiry, for the cluster's certificate list and the
//! fleet-wide "expiring within N days" view.

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::cluster::CertInfo;
use opspilot_domain::rbac::Permission;
use opspilot_domain::Principal;
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::runner::Projection;
use crate::ReadError;

/// The certificates projection.
pub const PROJECTION: Projection = Projection { name: "cluster_certs", tables: &["cluster_certificates"], apply: |tx, e| apply(tx, e).boxed() };

/// The longest look-ahead of the expiring view, in days.
pub const MAX_WITHIN_DAYS: i64 = 3650;

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let d = &e.detail;
    let uuid = |k: &str| d.get(k).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
    match e.action.as_str() {
        "cluster.import_kubeconfig_succeeded" | "cluster.import_cert_succeeded" => {
            let certs: Vec<CertInfo> = d.get("certificates").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
            // A new connection replaces what the old one carried.
            tx.execute("DELETE FROM cluster_certificates WHERE cluster_id = $1 AND origin = 'imported'", &[&uuid("cluster_id")]).await?;
            for c in &certs {
                upsert(tx, uuid("cluster_id"), uuid("project_id"), uuid("team_id"), "imported", c, e.occurred_at).await?;
            }
        }
        "cluster.cert_expiring" => {
            let days = d.get("threshold_days").and_then(|v| v.as_i64()).unwrap_or_default() as i32;
            tx.execute(
                "UPDATE cluster_certificates SET warned_days = array_append(warned_days, $4)
                 WHERE cluster_id = $1 AND cert_id = $2 AND serial = $3 AND NOT ($4 = ANY(warned_days))",
                &[&uuid("cluster_id"), &d.get("cert_id").and_then(|v| v.as_str()), &d.get("serial").and_then(|v| v.as_str()), &days],
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn upsert(tx: &Transaction<'_>, cluster: Option<Uuid>, project: Option<Uuid>, team: Option<Uuid>, origin: &str, c: &CertInfo, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO cluster_certificates (cluster_id, cert_id, project_id, team_id, origin, subject, issuer, sans, serial, fingerprint,
            not_before, not_after, is_ca, updated_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)
         ON CONFLICT (cluster_id, cert_id) DO UPDATE SET origin = EXCLUDED.origin, subject = EXCLUDED.subject, issuer = EXCLUDED.issuer,
            sans = EXCLUDED.sans, fingerprint = EXCLUDED.fingerprint, not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after,
            is_ca = EXCLUDED.is_ca, updated_at = EXCLUDED.updated_at,
            warned_days = CASE WHEN cluster_certificates.serial = EXCLUDED.serial THEN cluster_certificates.warned_days ELSE '{}' END,
            serial = EXCLUDED.serial",
        &[&cluster, &c.id, &project, &team, &origin, &c.subject, &c.issuer, &serde_json::json!(c.sans), &c.serial, &c.fingerprint, &c.not_before, &c.not_after, &c.is_ca, &at],
    )
    .await?;
    Ok(())
}

/// A certificate as listed (`GET /clusters/:id/certs`, `GET /certs/expiring`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "ClusterCertificate"))]
pub struct CertificateView {
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub cert_id: String,
    /// `imported` (given with the connection) or `platform` (minted by OpsPilot).
    pub origin: String,
    pub subject: String,
    /// Who issued it (the issuer's name).
    pub issuer: String,
    pub sans: Value,
    pub serial: String,
    pub fingerprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub days_left: i64,
    pub is_ca: bool,
}

const SELECT: &str = "SELECT k.cluster_id, c.name, k.cert_id, k.origin, k.subject, k.issuer, k.sans, k.serial, k.fingerprint, k.not_before, k.not_after, k.is_ca
    FROM cluster_certificates k JOIN clusters c ON c.id = k.cluster_id";

fn view(r: &tokio_postgres::Row, now: DateTime<Utc>) -> CertificateView {
    let not_after: DateTime<Utc> = r.get(10);
    CertificateView {
        cluster_id: r.get(0),
        cluster_name: r.get(1),
        cert_id: r.get(2),
        origin: r.get(3),
        subject: r.get(4),
        issuer: r.get(5),
        sans: r.get(6),
        serial: r.get(7),
        fingerprint: r.get(8),
        not_before: r.get(9),
        not_after,
        days_left: (not_after - now).num_days(),
        is_ca: r.get(11),
    }
}

/// The certificates of one cluster visible to `p`, soonest expiry first.
pub async fn of_cluster(pool: &Pool, p: &Principal, cluster_id: Uuid, now: DateTime<Utc>) -> Result<Vec<CertificateView>, ReadError> {
    p.require(Permission::ClusterRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let rows = c.query(&format!("{SELECT} WHERE k.cluster_id = $3 AND ($1 OR k.project_id = ANY($2)) ORDER BY k.not_after, k.cert_id"), &[&p.is_admin(), &ids, &cluster_id]).await?;
    Ok(rows.iter().map(|r| view(r, now)).collect())
}

/// Every certificate visible to `p` that expires within `within_days` of `now`
/// (already expired ones included), soonest first; at most 500.
pub async fn expiring(pool: &Pool, p: &Principal, within_days: i64, now: DateTime<Utc>) -> Result<Vec<CertificateView>, ReadError> {
    p.require(Permission::ClusterRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let until = now + Duration::days(within_days.clamp(0, MAX_WITHIN_DAYS));
    let rows = c.query(&format!("{SELECT} WHERE k.not_after < $3 AND ($1 OR k.project_id = ANY($2)) ORDER BY k.not_after, c.name, k.cert_id LIMIT 500"), &[&p.is_admin(), &ids, &until]).await?;
    Ok(rows.iter().map(|r| view(r, now)).collect())
}

/// A certificate the scheduler should record as expiring: within `threshold`
/// days and not yet recorded for that threshold and serial.
#[derive(Debug, Clone)]
pub struct DueWarning {
    pub cluster_id: Uuid,
    pub cert: CertInfo,
    pub threshold_days: u32,
}

/// Certificates crossing a warning threshold (`thresholds` in days), at most 500.
pub async fn due_warnings(pool: &Pool, thresholds: &[u32], now: DateTime<Utc>) -> Result<Vec<DueWarning>, StoreError> {
    let c = pool.get().await?;
    let mut due = vec![];
    for &t in thresholds {
        let until = now + Duration::days(i64::from(t));
        let rows = c
            .query(
                "SELECT cluster_id, cert_id, subject, issuer, sans, serial, fingerprint, not_before, not_after, is_ca FROM cluster_certificates
                 WHERE not_after < $1 AND NOT ($2 = ANY(warned_days)) ORDER BY not_after LIMIT 500",
                &[&until, &(t as i32)],
            )
            .await?;
        due.extend(rows.iter().map(|r| DueWarning {
            cluster_id: r.get(0),
            cert: CertInfo {
                id: r.get(1),
                subject: r.get(2),
                issuer: r.get(3),
                sans: serde_json::from_value(r.get(4)).unwrap_or_default(),
                serial: r.get(5),
                fingerprint: r.get(6),
                not_before: r.get(7),
                not_after: r.get(8),
                is_ca: r.get(9),
            },
            threshold_days: t,
        }));
    }
    Ok(due)
}
