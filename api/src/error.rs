//! One mapping from dictionary errors to the REST envelope and to GraphQL
//! `extensions`, so a mistake reads the same through either door.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use opspilot_commands::CommandError;
use opspilot_domain::{DomainError, ErrorCode, Lang};
use opspilot_eventstore::StoreError;
use serde_json::json;

/// An error on its way to a client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub lang: Lang,
}

impl ApiError {
    /// From a code and specifics.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into(), lang: Lang::En }
    }

    /// Sets the hint language.
    pub fn in_lang(mut self, lang: Lang) -> Self {
        self.lang = lang;
        self
    }

    /// The `data` object of the envelope and GraphQL extensions.
    pub fn data(&self) -> serde_json::Value {
        json!({ "error_key": self.code.key(), "hint": self.code.hint(self.lang), "detail": self.detail })
    }

    /// As a GraphQL error: message plus `code`, `error_key`, `hint`, `detail`.
    pub fn into_graphql(self) -> async_graphql::Error {
        let mut e = async_graphql::Error::new(self.code.entry().msg);
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", self.code.code());
        ext.set("error_key", self.code.key());
        ext.set("hint", self.code.hint(self.lang));
        ext.set("detail", self.detail.clone());
        e.extensions = Some(ext);
        e
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::new(e.code, e.detail)
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::new(ErrorCode::ResourceConflict, e.to_string()),
            other => {
                // The cause is logged, not sent: it may name internals.
                tracing::error!(error = ?other, "storage failure");
                ApiError::new(ErrorCode::InternalError, "storage failure")
            }
        }
    }
}

impl From<opspilot_projections::ReadError> for ApiError {
    fn from(e: opspilot_projections::ReadError) -> Self {
        match e {
            opspilot_projections::ReadError::Refused(d) => d.into(),
            opspilot_projections::ReadError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.entry().http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "code": self.code.code(), "msg": self.code.entry().msg, "data": self.data() });
        let mut resp = (status, Json(body)).into_response();
        if self.code == ErrorCode::RateLimited {
            resp.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("60"));
        }
        resp
    }
}

/// The success envelope `{"code":1000,"msg":"ok","data":...}`.
pub fn ok<T: serde::Serialize>(data: T) -> Response {
    Json(json!({ "code": 1000, "msg": "ok", "data": data })).into_response()
}
