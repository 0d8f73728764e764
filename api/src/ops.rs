//! What operators and orchestrators probe: `/healthz`, `/readyz` and the
//! Prometheus `/metrics` (with each projection's and follower's lag).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::edge::AppState;

/// The probe routes (outside `/api/v1`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.pool.get().await {
        Ok(c) if c.simple_query("SELECT 1").await.is_ok() => "ready".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let (Ok(head), Ok(checkpoints)) = (state.commands.store.head().await, opspilot_projections::runner::checkpoints(&state.pool).await) {
        state.metrics.log_head.set(head);
        for (name, position) in checkpoints {
            state.metrics.projection_lag.with_label_values(&[&name]).set(head - position);
        }
    }
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
