//! The OpenAPI document is one that tools accept (issue 18): unique operation ids, every
//! operation tagged and secured (or public on purpose), every error answer the one Problem
//! schema, pagination and the bearer scheme described once, CSV bodies as files, examples
//! from the demo's generator. CI also runs outside validators and generators over it
//! (`.ci/openapi.py`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                all.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} points nowhere")),
        None => v,
    }
}

async fn served() -> Value {
    let app = spawn_app().await;
    let r = app.anonymous().get("/api/openapi.json").await;
    assert_eq!(r.status(), 200);
    let served: Value = r.json().await.expect("json");
    assert_eq!(
        served,
        reprise::openapi::document(),
        "the served document is openapi::document()"
    );
    served
}

#[tokio::test]
async fn operation_ids_are_unique_and_name_resource_and_verb() {
    let doc = served().await;
    let mut seen = BTreeMap::new();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(
            id.contains('_') && id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{method} {path}: `{id}` is not resource_verb"
        );
        if let Some(other) = seen.insert(id.to_string(), format!("{method} {path}")) {
            panic!("{id} names both {other} and {method} {path}");
        }
    }
    assert!(seen.contains_key("calls_create") && seen.contains_key("patients_search"));
}

#[tokio::test]
async fn every_operation_is_tagged_with_a_declared_tag_and_says_how_it_is_secured() {
    let doc = reprise::openapi::document();
    let declared: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes.len(), 1, "one security scheme, declared once");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for (method, path, operation) in operations(&doc) {
        let tags = operation["tags"].as_array().map(Vec::len).unwrap_or(0);
        assert!(tags > 0, "{method} {path} has no tag");
        for tag in operation["tags"].as_array().into_iter().flatten() {
            assert!(
                declared.contains(tag.as_str().unwrap_or_default()),
                "{method} {path}: tag {tag} is not declared"
            );
        }
        let security = operation["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} says nothing of its security"));
        for requirement in security {
            for name in requirement.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(name), "{method} {path}: {name}");
            }
        }
    }
    // The routes with a token say so, those without say `security: []`.
    let users = &doc["paths"]["/api/v1/users"]["get"]["security"];
    assert_eq!(users, &serde_json::json!([{"bearer": []}]));
    assert_eq!(
        doc["paths"]["/health"]["get"]["security"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn every_error_answer_is_the_problem_schema() {
    let doc = reprise::openapi::document();
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            !path.starts_with("/api/v1/") || responses.keys().any(|s| s.starts_with('4')),
            "{method} {path} documents no 4xx"
        );
        for (status, response) in responses {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let response = resolve(&doc, response);
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {status}: no body"));
            for (media, body) in content {
                // FHIR routes answer their errors as OperationOutcomes (CONTRACT §4.10).
                if media == "application/fhir+json" {
                    continue;
                }
                assert_eq!(
                    media, "application/problem+json",
                    "{method} {path} {status}"
                );
                assert_eq!(
                    body["schema"]["$ref"], "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn pagination_is_described_once() {
    let doc = reprise::openapi::document();
    let limit = &doc["components"]["parameters"]["limit"];
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["schema"]["maximum"], 1000);
    assert_eq!(doc["components"]["parameters"]["cursor"]["in"], "query");
    let mut lists = 0;
    for (method, path, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            assert!(
                !(parameter["name"] == "limit" || parameter["name"] == "cursor"),
                "{method} {path} describes {} again",
                parameter["name"]
            );
            if parameter["$ref"] == "#/components/parameters/limit" {
                lists += 1;
            }
        }
    }
    assert!(lists >= 7, "{lists} lists refer to the shared limit");
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if name.starts_with("Page_") {
            assert_eq!(
                schema["properties"]["next_cursor"]["$ref"], "#/components/schemas/NextCursor",
                "{name}"
            );
            assert!(
                schema["properties"]["items"]["items"]["$ref"].is_string(),
                "{name}: its items refer to their schema"
            );
        }
    }
}

#[tokio::test]
async fn csv_bodies_are_files_and_the_contact_list_is_described() {
    let doc = reprise::openapi::document();
    for path in ["/api/v1/appointments/import", "/api/v1/calls/import"] {
        let schema = &doc["paths"][path]["post"]["requestBody"]["content"]["text/csv"]["schema"];
        assert_eq!(schema["type"], "string", "{path}");
        assert_eq!(schema["format"], "binary", "{path}");
    }
    let ok = &doc["paths"]["/api/v1/contact-list"]["get"]["responses"]["200"]["content"];
    assert_eq!(
        ok["application/json"]["schema"]["$ref"],
        "#/components/schemas/ContactList"
    );
    assert_eq!(ok["text/csv"]["schema"]["type"], "string");
    assert_eq!(ok[reprise::openapi::XLSX]["schema"]["format"], "binary");
}

#[tokio::test]
async fn examples_come_from_the_demo_generator() {
    let doc = reprise::openapi::document();
    let example = &doc["paths"]["/api/v1/patients"]["post"]["requestBody"]["content"]
        ["application/json"]["example"];
    let number = example["national_number"]
        .as_str()
        .expect("a national number");
    let generated = reprise::demo::People::new(18)
        .person(Some(reprise::demo::Patients::Adults))
        .national_number;
    assert_eq!(number, generated);
    let site = &doc["paths"]["/api/v1/sites"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    assert_eq!(site["code"], reprise::demo::SITES[0].code);
    // Every create has an example of its request.
    for path in ["/api/v1/calls", "/api/v1/appointments", "/api/v1/incidents"] {
        assert!(
            doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
                .is_object(),
            "{path}"
        );
    }
}
