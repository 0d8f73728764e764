//! The web console: the built `web/dist` served at `/`, with an SPA fallback
//! (a path that is not a file answers `index.html`, so a release opens from
//! anywhere by its URL) and cache headers (hashed assets are immutable, the
//! page itself is revalidated). API paths never fall back to the page.

use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opspilot_domain::ErrorCode;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

/// Where the console is, if it is built.
pub fn folder(configured: Option<&Path>) -> Option<PathBuf> {
    let dir = configured.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("web/dist"));
    dir.join("index.html").is_file().then_some(dir)
}

/// Paths that belong to the API: unknown ones answer the dictionary's not_found.
fn is_api(path: &str) -> bool {
    ["/api/", "/graphql", "/graphiql", "/metrics", "/healthz", "/readyz"].iter().any(|p| path == p.trim_end_matches('/') || path.starts_with(p))
}

/// Answers a request no route matched.
pub async fn fallback(dir: Option<PathBuf>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some(dir) = dir.filter(|_| !is_api(&path) && req.method() == axum::http::Method::GET) else {
        return ApiError::new(ErrorCode::NotFound, "no such route").into_response();
    };
    let index = dir.join("index.html");
    let service = ServeDir::new(&dir).fallback(ServeFile::new(&index));
    let mut resp = match service.oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(e) => return ApiError::new(ErrorCode::InternalError, format!("console: {e}")).into_response(),
    };
    if resp.status() == StatusCode::OK {
        // Vite names every asset by its content hash.
        let cache = if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_never_fall_back_to_the_page() {
        for p in ["/api/v1/nope", "/graphql", "/graphql/ws", "/metrics", "/healthz"] {
            assert!(is_api(p), "{p}");
        }
        for p in ["/", "/releases/1f0e", "/inbox", "/assets/index-abc.js", "/apis"] {
            assert!(!is_api(p), "{p}");
        }
    }
}
