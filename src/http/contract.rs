//! What every route answers besides its own results, written into the OpenAPI description once
//! instead of on each route: `/v1` needs a bearer key (401 without a valid one) and refuses a
//! malformed id, query parameter or body (400); a JSON body must say it is JSON (415) and fit
//! the size limit (413); the operational routes need no key. Also registers the schemas that
//! query parameters refer to, which the route macros leave out.

use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use super::error::ErrorBody;
use crate::domain::folder::FolderOrder;
use crate::domain::item::ItemOrder;

/// Completes `doc` with the answers and schemas every route shares.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (FolderOrder::name(), FolderOrder::schema()),
        (ItemOrder::name(), ItemOrder::schema()),
        (ErrorBody::name(), ErrorBody::schema()),
    ] {
        components.schemas.entry(name.into_owned()).or_insert(schema);
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
        ];
        for operation in operations.into_iter().flatten() {
            if path.starts_with("/v1/") {
                shared_answers(operation);
            } else {
                // Liveness and readiness: for probes, without a key.
                operation.security = Some(Vec::new());
                add(operation, "400", "a query parameter was given; this route takes none");
            }
        }
    }
}

/// Adds the answers every `/v1` operation can give to `operation`.
fn shared_answers(operation: &mut Operation) {
    add(
        operation,
        "400",
        "a malformed id, query parameter or body; the message says what to change",
    );
    add(
        operation,
        "401",
        "no `Authorization: Bearer KEY` header, or a key that is not valid",
    );
    add(
        operation,
        "404",
        "something the request names does not exist, or the caller may not see it",
    );
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    if json_body {
        add(
            operation,
            "413",
            "the body is over the size limit (server.max_body_bytes)",
        );
        add(
            operation,
            "415",
            "the body was not sent with `Content-Type: application/json`",
        );
    }
}

/// Documents answer `status` with an error body, unless the operation documents it already.
fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error_response(description));
}

/// An error answer: `description`, with the [`ErrorBody`] JSON.
fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        ErrorBody::name(),
                    ))))
                    .build(),
            )
            .build(),
    )
}
