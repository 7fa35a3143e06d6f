//! What every operation can answer besides its own successes, added to the generated
//! document from the code paths they share, so `/openapi.json` lists every status the API
//! sends: the extractors (400 malformed input, 413, 415, 422), authentication (401), the
//! admin and tenant checks (403), lookups by path (404), `Idempotency-Key` and `If-Match`
//! (409). Every error is an RFC 9457 problem (`application/problem+json`).
//!
//! Handlers still declare the answers that are theirs (`202`, `409 name_conflict`, …); this
//! only fills in the shared ones and fixes every error's media type.

use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The shared answers: (status, component name, description).
const SHARED: [(&str, &str, &str); 8] = [
    ("400", "BadRequest", "Malformed input: a path id that is not a UUID, a query string, header or JSON body that does not parse"),
    ("401", "Unauthorized", "No bearer token, or one that is unknown, expired or revoked"),
    ("403", "Forbidden", "The token may not do this (platform-admin operations, another tenant's resources)"),
    ("404", "NotFound", "No such resource, or not visible to this token"),
    ("409", "Conflict", "The resource's state or version forbids it, a name is taken, or a request with the same Idempotency-Key is still running"),
    ("412", "PreconditionFailed", "`If-Match` names a version the resource no longer has"),
    ("413", "PayloadTooLarge", "The body is over 1 MiB"),
    ("415", "UnsupportedMediaType", "The body is not sent as application/json"),
];

const UNPROCESSABLE: (&str, &str, &str) =
    ("422", "Unprocessable", "A field is invalid: `errors` names each one (`field`, `code`, `message`)");

/// Adds the shared answers and the problem media type to every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, description) in SHARED.iter().chain([&UNPROCESSABLE]) {
        components.responses.insert(name.to_string(), RefOr::T(problem(description)));
    }
    let names_tenant = bodies_naming_a_tenant(doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (&mut item.get, HttpMethod::Get),
            (&mut item.post, HttpMethod::Post),
            (&mut item.put, HttpMethod::Put),
            (&mut item.patch, HttpMethod::Patch),
            (&mut item.delete, HttpMethod::Delete),
        ];
        for (op, method) in ops {
            let post = method == HttpMethod::Post;
            if let Some(op) = op {
                let tenant_in_body = body_schema(op).is_some_and(|name| names_tenant.contains(&name));
                complete_operation(path, op, method != HttpMethod::Get, method == HttpMethod::Patch, tenant_in_body);
                // The idempotency middleware reads the key on every POST.
                if post {
                    document_idempotency_key(op);
                }
            }
        }
    }
}

fn complete_operation(path: &str, op: &mut Operation, mutates: bool, is_patch: bool, tenant_in_body: bool) {
    let has_path_params = path.contains('{');
    let query: Vec<&str> = op
        .parameters
        .iter()
        .flatten()
        .filter(|p| p.parameter_in == ParameterIn::Query)
        .map(|p| p.name.as_str())
        .collect();
    let has_query = !query.is_empty();
    // A filter or a body naming a tenant answers 404 for a tenant the token cannot see (the
    // same answer whether it exists or not).
    let looks_up = has_path_params || query.contains(&"tenant") || tenant_in_body;
    let has_body = op.request_body.is_some();
    let responses = &mut op.responses.responses;
    // Errors a handler declared itself take the problem media type too.
    for (status, r) in responses.iter_mut() {
        if let (RefOr::T(resp), true) = (r, status.starts_with('4') || status.starts_with('5')) {
            if let Some(content) = resp.content.shift_remove("application/json") {
                resp.content.insert(PROBLEM_JSON.into(), content);
            }
        }
    }
    for (status, name, _) in SHARED.iter().chain([&UNPROCESSABLE]) {
        let applies = match *status {
            "404" => looks_up,
            "409" => mutates,
            "412" => is_patch,
            "413" | "415" => has_body,
            "422" => has_body || has_query || mutates || has_path_params,
            _ => true,
        };
        if applies && !responses.contains_key(*status) {
            responses.insert(status.to_string(), RefOr::Ref(Ref::from_response_name(*name)));
        }
    }
}

/// The component schema a request body refers to.
fn body_schema(op: &Operation) -> Option<String> {
    let content = op.request_body.as_ref()?.content.get("application/json")?;
    match content.schema.as_ref()? {
        RefOr::Ref(r) => r.ref_location.strip_prefix("#/components/schemas/").map(str::to_owned),
        RefOr::T(_) => None,
    }
}

/// Request schemas with a `tenant` property.
fn bodies_naming_a_tenant(doc: &OpenApi) -> Vec<String> {
    let Some(components) = &doc.components else { return Vec::new() };
    components
        .schemas
        .iter()
        .filter(|(_, s)| match s {
            RefOr::T(utoipa::openapi::schema::Schema::Object(o)) => o.properties.contains_key("tenant"),
            _ => false,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// `Idempotency-Key` in words rather than as a header parameter: HTTP trims and drops header
/// values a generator would call invalid (empty, surrounded by spaces), so a parameter schema
/// would promise a refusal the server never sees.
const IDEMPOTENCY_NOTE: &str =
    "Send `Idempotency-Key: <1-255 visible ASCII characters>` to make retries safe: a retry \
    with the same key and body gets the first answer again (`Idempotent-Replayed: true`); the same key with \
    another body is 422 `idempotency_key_reused`, a key not yet answered 409.";

fn document_idempotency_key(op: &mut Operation) {
    if let Some(params) = op.parameters.as_mut() {
        params.retain(|p| !p.name.eq_ignore_ascii_case("Idempotency-Key"));
    }
    let description = op.description.get_or_insert_with(String::new);
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(IDEMPOTENCY_NOTE);
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_lists_auth_and_problem_answers() {
        let (_, mut doc) = super::super::api();
        complete(&mut doc);
        for (path, item) in &doc.paths.paths {
            for (method, op) in
                [("get", &item.get), ("post", &item.post), ("patch", &item.patch), ("delete", &item.delete)]
            {
                let Some(op) = op else { continue };
                let r = &op.responses.responses;
                assert!(r.contains_key("401") && r.contains_key("403"), "{method} {path}");
                if path.contains('{') {
                    assert!(r.contains_key("404"), "{method} {path}");
                }
                for (status, resp) in r {
                    if let RefOr::T(resp) = resp {
                        if !status.starts_with('2') {
                            assert!(!resp.content.contains_key("application/json"), "{method} {path} {status}");
                        }
                    }
                }
            }
        }
    }
}
