//! Security headers on every response: a Content-Security-Policy that
//! allows only this origin's scripts, the wasm, and the inline loader of
//! `index.html` by its SHA-256 (computed from the file at start), and no
//! framing; `nosniff`; no referrer.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::AppState;

/// The `'sha256-…'` source of every inline `<script>` in `html`.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<script") {
        rest = &rest[i..];
        let Some(end_tag) = rest.find('>') else { break };
        let tag = &rest[..end_tag];
        let body = &rest[end_tag + 1..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        if !tag.contains("src=") {
            let digest = Sha256::digest(&body.as_bytes()[..close]);
            out.push(format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
        }
        rest = &body[close..];
    }
    out
}

/// The policy for a frontend whose `index.html` is `html`.
pub fn csp(html: &str) -> String {
    let scripts = inline_script_hashes(html).join(" ");
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {scripts}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Adds the headers.
pub async fn layer(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, app.csp.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_loader_is_hashed_and_a_script_with_src_is_not() {
        let html = "<head><script type=\"module\">\n  init();\n</script><script src=\"/a.js\"></script></head>";
        let h = inline_script_hashes(html);
        assert_eq!(h.len(), 1);
        let want =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"\n  init();\n"));
        assert_eq!(h[0], format!("'sha256-{want}'"));
        assert!(csp(html).contains("frame-ancestors 'none'"));
    }
}
