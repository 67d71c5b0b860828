//! The OpenAPI 3.1 document served at `/api/openapi.json`: built from the routes' own
//! `#[utoipa::path]` attributes, then completed here once for every operation, so that the
//! document validates (`openapi-spec-validator`, `redocly lint`) and client generators
//! (`openapi-python-client`, `openapi-typescript`) can use it:
//!
//! - operation ids are `resource_verb`, set on each route and unique (`tests/api/openapi.rs`);
//! - the bearer scheme is declared once; routes without a token say so (`security: []`);
//! - every error answer is `application/problem+json` with the one `Problem` schema, and the
//!   answers any `/api/v1` route may give (400, 413, 415, 422, 429, 503) are added here;
//! - pagination (`limit`, `cursor`, `next_cursor`) is described once, as shared components;
//! - CSV bodies are `text/csv` strings (`format: binary`: a file to upload);
//! - examples come from the demo's generator ([`examples`]), never from real people.

pub mod examples;

use std::collections::HashMap;

use serde_json::{json, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, PathItem, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "reprise",
        description = "Postponed care, call centre, contact lists and patient emails after a hospital IT shutdown."
    ),
    servers((url = "/", description = "the server that serves this document")),
    tags(
        (name = "appointments", description = "Appointments, their moves (reschedule, cancel), contact attempts and the CSV import"),
        (name = "audit", description = "Who did what, when"),
        (name = "callbacks", description = "Patients to call back after a missed call or a promise: the worklist, claims, attempts"),
        (name = "calls", description = "The call centre: calls logged, their statistics and import, the centre's state"),
        (name = "contact lists", description = "Postponed appointments to call back, per site (JSON, CSV, Excel)"),
        (name = "fhir", description = "FHIR R4: the CapabilityStatement, Patients and Appointments read and searched (application/fhir+json; errors are OperationOutcomes)"),
        (name = "incidents", description = "Shutdowns that postpone appointments"),
        (name = "notifications", description = "Emails queued for patients"),
        (name = "operations", description = "Health and metrics, without a token"),
        (name = "patients", description = "Patients: create, search, read"),
        (name = "planning", description = "Capacities, the plan of a reopening site, the deadline outlook"),
        (name = "sites", description = "Sites, their services, reopening"),
        (name = "telephony", description = "The telephone system's call events and the caller log they make"),
        (name = "users", description = "Accounts and their tokens"),
    ),
    modifiers(&BearerAuth),
    components(schemas(
        crate::error::Problem,
        crate::error::FieldError,
        routes::contact_lists::ContactList,
    ))
)]
struct ApiDoc;

/// The media type of an Excel workbook (the contact list as `format=xlsx`).
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The one security scheme: `Authorization: Bearer TOKEN`.
pub const BEARER: &str = "bearer";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An account's API token (`reprise token create`, `POST /api/v1/users`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of every route, as registered, completed (see the module's doc).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut spec = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::root)
        .service(utoipa_actix_web::scope("/api/v1").configure(routes::api_v1))
        .split_for_parts()
        .1;
    common_responses(&mut spec);
    problems_as_problem_json(&mut spec);
    public_operations(&mut spec);
    file_bodies(&mut spec);
    examples::add(&mut spec);
    spec
}

/// The document as served: [`openapi`] with the pagination parameters as shared components
/// (`#/components/parameters/limit`, `…/cursor`) and every page's `next_cursor` pointing to one
/// schema (`NextCursor`). utoipa's types cannot hold a parameter by reference, so this last
/// step works on the JSON.
pub fn document() -> Value {
    document_of(&openapi())
}

/// [`document`] from an [`openapi`] already built.
pub fn document_of(spec: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(spec).unwrap_or_else(|_| json!({}));
    shared_pagination(&mut doc);
    doc
}

/// The operations of a path item, each with its method.
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", &mut item.get),
        ("PUT", &mut item.put),
        ("POST", &mut item.post),
        ("DELETE", &mut item.delete),
        ("PATCH", &mut item.patch),
        ("HEAD", &mut item.head),
        ("OPTIONS", &mut item.options),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// The methods each route pattern answers, for the `Allow` header of a 405.
pub fn allowed_methods(spec: &utoipa::openapi::OpenApi) -> HashMap<String, String> {
    let mut spec = spec.clone();
    spec.paths
        .paths
        .iter_mut()
        .map(|(path, item)| {
            let methods: Vec<&str> = operations(item).map(|(method, _)| method).collect();
            (path.clone(), methods.join(", "))
        })
        .collect()
}

/// Every error answer is `application/problem+json` (`error::Problem`); utoipa writes
/// `application/json` for a `body = Problem` unless told otherwise on each response.
fn problems_as_problem_json(spec: &mut utoipa::openapi::OpenApi) {
    for item in spec.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.get("application/json").is_some_and(|c| {
                    matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                });
                if is_problem {
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert(crate::error::PROBLEM_JSON.into(), content);
                    }
                }
            }
        }
    }
}

/// An error answer: `application/problem+json`, the `Problem` schema.
fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::error::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// The answers any `/api/v1` route may give whatever it does, added to every operation once
/// rather than written on each: 503 when the database is away, 429 when the account is over
/// its budget (`ratelimit`); 400 and 422 when what it reads (body, query) cannot be parsed or
/// is invalid; 413 and 415 for a body too large or of another media type. A response written
/// on a route without words gets the standard ones (generators show them).
fn common_responses(spec: &mut utoipa::openapi::OpenApi) {
    for (path, item) in spec.paths.paths.iter_mut() {
        let api = path.starts_with("/api/v1/");
        for (_, operation) in operations(item) {
            let reads_input = operation.request_body.is_some()
                || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut operation.responses.responses;
            if api {
                if reads_input {
                    responses.entry("400".into()).or_insert_with(|| {
                        problem("The request cannot be read (malformed JSON or query string)")
                    });
                    responses
                        .entry("422".into())
                        .or_insert_with(|| problem("A field is invalid; `errors` names it"));
                }
                if operation.request_body.is_some() {
                    responses
                        .entry("413".into())
                        .or_insert_with(|| problem("The body is over the size limit"));
                    responses
                        .entry("415".into())
                        .or_insert_with(|| problem("The body is not of the documented media type"));
                }
                responses.entry("429".into()).or_insert_with(|| {
                    problem("Too many requests for this account; see Retry-After")
                });
                responses
                    .entry("503".into())
                    .or_insert_with(|| problem("The database cannot be reached"));
            }
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(response) = response {
                    if response.description.is_empty() {
                        response.description = standard_description(status).into();
                    }
                }
            }
        }
    }
}

fn standard_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No content",
        "400" => "The request cannot be read",
        "401" => "Missing, unknown or expired token",
        "403" => "The account's role may not do this",
        "404" => "No such record (or not one of the caller's services)",
        "409" => "The current state forbids it, or a duplicate",
        "413" => "The body is over the size limit",
        "415" => "The body is not of the documented media type",
        "422" => "A field is invalid; `errors` names it",
        "429" => "Too many requests; see Retry-After",
        "503" => "The database cannot be reached",
        _ => "See the operation's description",
    }
}

/// Operations without a security requirement need no token: they say so with an empty one
/// (`security: []`), which is what linters and generators read as "public".
fn public_operations(spec: &mut utoipa::openapi::OpenApi) {
    for item in spec.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            operation.security.get_or_insert_with(Vec::new);
        }
    }
}

/// A body other than JSON (the CSV imports' `text/csv`, the workbook) is a file: a string
/// with `format: binary`, which `openapi-python-client` turns into a `File` to upload (with
/// `.ci/openapi-python-client.yaml`) and `openapi-typescript` into a `string`.
fn file_bodies(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
    let file = |description: &str| -> RefOr<utoipa::openapi::Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some(description))
            .into()
    };
    for item in spec.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if let Some(body) = operation.request_body.as_mut() {
                if let Some(csv) = body.content.get_mut("text/csv") {
                    let header = body.description.clone().unwrap_or_default();
                    csv.schema = Some(file(&format!(
                        "A CSV file, UTF-8, with the header `{header}`"
                    )));
                }
            }
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if let Some(xlsx) = response.content.get_mut(XLSX) {
                    xlsx.schema = Some(file("An Excel workbook"));
                }
            }
        }
    }
}

/// `limit` and `cursor` described once, under `components/parameters`, and referred to by
/// every list; `next_cursor` described once, as the `NextCursor` schema.
fn shared_pagination(doc: &mut Value) {
    let max = routes::MAX_LIMIT;
    let default = routes::DEFAULT_LIMIT;
    doc["components"]["parameters"] = json!({
        "limit": {
            "name": "limit",
            "in": "query",
            "required": false,
            "description": format!("Items per page, 1 to {max} (default {default})."),
            "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": max, "default": default}
        },
        "cursor": {
            "name": "cursor",
            "in": "query",
            "required": false,
            "description": "The previous page's `next_cursor`, as it was (opaque); none for the first page.",
            "schema": {"type": "string"}
        }
    });
    doc["components"]["schemas"]["NextCursor"] = json!({
        "type": ["string", "null"],
        "description": "Pass as `?cursor=` for the next page; `null` on the last page."
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for parameter in parameters.iter_mut() {
                    let name = parameter["name"].as_str().unwrap_or_default().to_string();
                    if parameter["in"] == "query" && (name == "limit" || name == "cursor") {
                        *parameter = json!({"$ref": format!("#/components/parameters/{name}")});
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        let names: Vec<String> = schemas.keys().cloned().collect();
        for (name, schema) in schemas.iter_mut() {
            let Some(item) = name.strip_prefix("Page_") else {
                continue;
            };
            let Some(properties) = schema.get_mut("properties") else {
                continue;
            };
            properties["next_cursor"] = json!({"$ref": "#/components/schemas/NextCursor"});
            // utoipa inlines some pages' items: they refer to their schema instead.
            if names.iter().any(|n| n == item) {
                properties["items"]["items"] =
                    json!({"$ref": format!("#/components/schemas/{item}")});
            }
        }
    }
}
