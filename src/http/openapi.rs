//! `GET /admin/openapi.json`: the OpenAPI 3.1 document of the admin API,
//! generated from the handlers' `#[utoipa::path]` and their request and
//! answer types. The error answers (the body of `crate::errors`) and the
//! security schemes are added here, once for every operation.

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, announcements, messages, revocations, rooms};
use crate::errors::{CommandError, ErrorCode};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "realtime-server admin API",
        description = "The admin HTTP API (docs/protocol.md sections 9 and 13.5). \
            Every operation takes `Authorization: Bearer` with the admin key or an \
            admin JWT; error answers have the body `{code, message}`."
    ),
    paths(
        admin::kick,
        admin::notify,
        admin::broadcast,
        admin::stats,
        admin::connections,
        admin::rooms,
        admin::room_presence,
        admin::audit,
        revocations::revoke,
        revocations::list,
        revocations::lift,
        rooms::create,
        rooms::get,
        rooms::update,
        rooms::delete,
        rooms::members,
        rooms::put_member,
        rooms::remove_member,
        messages::publish,
        announcements::create,
        announcements::list,
        announcements::end,
    ),
    components(schemas(CommandError, ErrorCode)),
    security(("adminKey" = []), ("adminJwt" = [])),
    modifiers(&Security, &Errors)
)]
pub struct ApiDoc;

/// The two credentials of docs/protocol.md 9.1, both in `Authorization`.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let key = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "the configured admin key (`auth.admin_token`), compared in constant time",
            ))
            .build();
        let jwt = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("a valid JWT with `\"role\": \"admin\"`"))
            .build();
        components.add_security_scheme("adminKey", SecurityScheme::Http(key));
        components.add_security_scheme("adminJwt", SecurityScheme::Http(jwt));
    }
}

/// The error answers each operation may give, with the error body.
struct Errors;

impl Errors {
    /// The codes an operation may answer with, besides its successes.
    fn codes(path: &str, method: &str) -> Vec<ErrorCode> {
        use ErrorCode::*;
        let mut codes = vec![BadRequest, Unauthorized, Forbidden, Unavailable];
        if path.contains('{') {
            codes.push(NotFound);
        }
        let managed = path.starts_with("/admin/rooms/") || path == "/admin/rooms";
        if managed && method != "get" {
            codes.push(Conflict);
        }
        if path.ends_with("/messages") {
            codes.extend([TooLarge, RateLimited]);
        }
        codes
    }
}

impl Modify for Errors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops: [(&str, &mut Option<Operation>); 5] = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                for code in Self::codes(path, method) {
                    let content = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build();
                    let response = ResponseBuilder::new()
                        .description(code.as_str())
                        .content("application/json", content)
                        .build();
                    let status = code.http_status().to_string();
                    op.responses
                        .responses
                        .entry(status)
                        .or_insert(response.into());
                }
            }
        }
    }
}

/// `GET /admin/openapi.json`: the document, without authentication (it
/// holds no data).
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_its_errors_and_the_security_schemes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["adminKey"]["scheme"], "bearer");
        assert_eq!(schemes["adminJwt"]["bearerFormat"], "JWT");
        let kick = &doc["paths"]["/admin/kick"]["post"]["responses"];
        assert!(kick["200"].is_object() && kick["401"].is_object());
        let room = &doc["paths"]["/admin/rooms/{room}"]["delete"]["responses"];
        assert!(room["404"].is_object() && room["409"].is_object());
        let code = &doc["components"]["schemas"]["ErrorCode"]["enum"];
        assert!(code.as_array().unwrap().contains(&"UNAVAILABLE".into()));
    }
}
