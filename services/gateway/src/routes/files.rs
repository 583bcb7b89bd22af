//! Files (S3 uploads that trigger processing): `POST /v1/files` registers
//! a file and answers a presigned PUT URL, so the bytes go straight to the
//! object store and never through the gateway; the store's notification
//! starts the file's pipeline (file-ingest, the orchestrator).
//! `GET /v1/files/{file_id}` shows its metadata, validation and pipeline.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_model::file::{FileRecord, FileStatus};
use sluice_model::FieldError;
use utoipa::ToSchema;

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::Shared;

/// `POST /v1/files` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFile {
    /// The file's name (1 to 255 characters, no `/` or control characters).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^/\\u0000-\\u001F\\u007F-\\u009F]{1,255}$"
    )]
    pub name: String,
    /// What the file holds, e.g. `text/csv` or `application/x-ndjson`;
    /// checked against the bytes once uploaded.
    #[schema(
        min_length = 3,
        max_length = 255,
        pattern = "^[-!#$&^_.+0-9A-Za-z]+/[-!#$&^_.+0-9A-Za-z]+( *;[ -~]*)?$"
    )]
    pub content_type: String,
    /// A JSON Schema every row must satisfy (CSV and JSON-lines files
    /// only; a CSV row is an object keyed by the header, its cells typed as
    /// the schema's properties say).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
}

/// A registered file and where to upload it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upload {
    /// Its id: read it with `GET /v1/files/{file_id}`.
    pub file_id: String,
    /// A presigned URL: `curl -X PUT --data-binary @file "$upload_url"`.
    pub upload_url: String,
    /// When the URL stops working (RFC 3339).
    pub expires_at: String,
    /// The bucket.
    pub bucket: String,
    /// The object key (`<file_id>/<name>`).
    pub key: String,
}

fn check_name(name: &str) -> Result<(), FieldError> {
    let ok = (1..=255).contains(&name.chars().count())
        && !name.contains('/')
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "/name",
            "must be 1 to 255 characters, without '/' or control characters",
        ))
    }
}

fn check_content_type(ct: &str) -> Result<(), FieldError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let ok = ct.len() <= 255
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b))
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "/content_type",
            "must be a media type such as text/csv or application/x-ndjson",
        ))
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Registers a file and answers a presigned upload URL. Uploading starts
/// its pipeline by itself.
#[utoipa::path(post, path = "/v1/files", tag = "files", request_body = CreateFile,
    responses((status = 201, body = Upload), (status = 400, body = Problem), (status = 422, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Upload>), ApiError> {
    principal.require(scope::FILES_WRITE)?;
    let input: CreateFile = body.parse()?;
    check_name(&input.name)?;
    check_content_type(&input.content_type)?;
    if let Some(schema) = &input.schema {
        if !schema.is_object() {
            return Err(ApiError::BadRequest(FieldError::new(
                "/schema",
                "must be a JSON Schema object",
            )));
        }
        if sluice_files::inspect::format_of(&input.content_type).is_none() {
            return Err(ApiError::BadRequest(FieldError::new(
                "/schema",
                "applies to text/csv and application/x-ndjson files only",
            )));
        }
        sluice_files::inspect::Schema::compile(schema).map_err(|e| {
            ApiError::BadRequest(FieldError::new(
                "/schema",
                format!("is not a valid JSON Schema: {e}"),
            ))
        })?;
    }
    let files = &state.config.files;
    let file_id = sluice_model::ids::new_id();
    // "." and ".." are names, not paths, in the key too.
    let key_name = match input.name.as_str() {
        "." | ".." => input.name.replace('.', "_"),
        n => n.to_string(),
    };
    let key = format!("{file_id}/{key_name}");
    let expiry: Duration = files.upload_expiry;
    let now = time::OffsetDateTime::now_utc();
    let expires_at = rfc3339(now + expiry);
    let presigning = PresigningConfig::expires_in(expiry)
        .map_err(|e| ApiError::Internal(format!("presigning: {e}")))?;
    let presigned = state
        .files_public
        .put_object()
        .bucket(&files.bucket)
        .key(&key)
        .presigned(presigning)
        .await
        .map_err(|e| ApiError::Internal(format!("presigning the upload URL: {e}")))?;
    let record = FileRecord {
        file_id: file_id.clone(),
        name: input.name,
        owner: principal.name.clone(),
        bucket: files.bucket.clone(),
        key: key.clone(),
        declared_content_type: input.content_type,
        schema: input.schema,
        status: FileStatus::Pending,
        size: None,
        sha256: None,
        content_type: None,
        rows: None,
        workflow_id: None,
        processed_object: None,
        error: None,
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
        upload_expires_at: expires_at.clone(),
        traceparent: sluice_telemetry::current_traceparent(),
    };
    if !state.store.create_file(&record).await? {
        return Err(ApiError::Internal("a new file id exists already".into()));
    }
    metrics::counter!("sluice.files.registered").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(Upload {
            file_id,
            upload_url: presigned.uri().to_string(),
            expires_at,
            bucket: files.bucket.clone(),
            key,
        }),
    ))
}

/// A file: `status` (`pending`, `processing`, `processed`, `failed`,
/// `dead_lettered`), what inspection found (`size`, `sha256`, the sniffed
/// `content_type`, `rows`), its pipeline's `workflow_id`, and `error`.
#[utoipa::path(get, path = "/v1/files/{file_id}", tag = "files",
    params(("file_id" = String, Path)),
    responses((status = 200, body = FileRecord), (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(file_id): Path<String>,
) -> Result<Json<FileRecord>, ApiError> {
    principal.require(scope::FILES_READ)?;
    let not_found = || ApiError::NotFound(format!("no file with id {file_id:?}"));
    if sluice_model::ids::check_client_id(&file_id).is_err() {
        return Err(not_found());
    }
    match state.store.file(&file_id).await? {
        Some(r) => Ok(Json(r)),
        None => Err(not_found()),
    }
}
