//! Makes the generated OpenAPI document say everything the server does,
//! the same way for every operation, so handlers only document what is
//! their own:
//!
//! - every error response is `application/problem+json` with the Problem schema;
//! - every authenticated operation can answer 401 (credentials), 403
//!   (scope), 429 (throttled), 503 (shed, or a dependency down) and 504
//!   (timeout);
//! - every operation with a body can answer 400 (malformed JSON, or a
//!   parameter that cannot be right), 413 (too large), 415 (not JSON) and
//!   422 (the wrong shape or values); one with query parameters, 400;
//! - the variants of tagged unions (targets, credentials) refuse unknown
//!   fields, as the server does.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};

const PROBLEM: &str = "application/problem+json";

fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
}

fn ensure(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(PROBLEM, problem_content())
                    .build(),
            )
        });
}

fn complete_operation(op: &mut Operation) {
    let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
    if authenticated {
        ensure(op, 401, "Missing or invalid credentials");
        ensure(op, 403, "The credentials lack the scope");
        ensure(op, 429, "Over the principal's rate (see Retry-After)");
        ensure(
            op,
            503,
            "At capacity, or a dependency is unavailable (see Retry-After)",
        );
        ensure(
            op,
            504,
            "The request took longer than the gateway's timeout",
        );
    }
    let has_query = op.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => p.parameter_in == ParameterIn::Query,
        RefOr::Ref(_) => false,
    });
    if has_query {
        ensure(
            op,
            400,
            "A query parameter that cannot be right, or an unknown one",
        );
    }
    if op.request_body.is_some() {
        ensure(
            op,
            400,
            "Malformed JSON, or a parameter that cannot be right",
        );
        ensure(op, 413, "The body is larger than the limit");
        ensure(op, 415, "The body is not JSON");
        ensure(op, 422, "The body has the wrong shape or values");
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(r)) = (is_error, response) {
            r.content.clear();
            r.content
                .insert(PROBLEM.to_string(), RefOr::T(problem_content()));
        }
    }
}

/// Schemas of internally tagged enums: serde refuses unknown fields in each
/// variant, which utoipa does not say.
const CLOSED_UNIONS: &[&str] = &["Target", "Auth"];

fn close_variants(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in CLOSED_UNIONS {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(*name) {
            for item in &mut one_of.items {
                if let RefOr::T(Schema::Object(o)) = item {
                    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// Completes every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    close_variants(doc);
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(op);
        }
    }
}
