//! `GET /admin/ui`: the admin page (static HTML and one ES module, built
//! into the binary, no build step). It asks for the admin key or an admin
//! JWT in the page and calls the admin API with it; the page itself holds
//! no data, so serving it needs no credential.

use actix_web::HttpResponse;

const PAGE: &str = include_str!("admin_ui/index.html");
const APP: &str = include_str!("admin_ui/app.js");

/// Scripts and everything else from this server only; inline styles are
/// the page's own; no framing (the page holds a credential).
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("Cache-Control", "no-store"))
        .body(PAGE)
}

pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(APP)
}
