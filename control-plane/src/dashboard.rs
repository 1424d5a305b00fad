//! The admin dashboard (issue 18): a page of plain HTML, CSS and JavaScript in `web/`,
//! compiled into the binary, served at `/`, `/admin` and `/admin/...` (the page routes itself)
//! with its files under `/assets/`. It is a client of the public JSON API and its event streams
//! only; nothing here reads the database.
//!
//! A handful of files known at build time: `include_bytes!` and a match serve them without a
//! crate (rust-embed and friends earn their keep with trees of files or a dev-mode reload,
//! neither of which this page has).
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The page may load only its own files and talk only to this origin; no inline script or
/// style, so text from the API that reached the DOM as markup still could not run.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

const INDEX: &[u8] = include_bytes!("../web/index.html");

/// A module of the page's script.
macro_rules! script {
    ($name:literal) => {
        (
            $name,
            "text/javascript; charset=utf-8",
            include_bytes!(concat!("../web/", $name)),
        )
    };
}

/// (name under `/assets/`, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
    script!("app.js"),
    script!("api.js"),
    script!("dom.js"),
    script!("ui.js"),
    script!("admin.js"),
    script!("ops.js"),
    script!("account.js"),
];

fn page_file(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Small files that change with the binary: always revalidated, never stale after an upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The page itself, for `/`, `/admin` and every `/admin/...` path.
pub async fn index() -> Response {
    page_file("text/html; charset=utf-8", INDEX)
}

/// One of the page's files; anything else is the API's coded 404.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, body)| page_file(ct, body))
        .ok_or_else(|| ApiError::not_found("asset"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `web/` but not to [`ASSETS`] would be a 404 the page cannot load.
    #[test]
    fn every_file_of_the_page_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "index.html" || ASSETS.iter().any(|(n, _, _)| *n == name),
                "web/{name} is not in dashboard::ASSETS"
            );
        }
        assert!(ASSETS.iter().all(|(_, _, body)| !body.is_empty()));
    }
}
