//! The pipeline's transform: a CSV file becomes JSON lines (one object
//! per row, keyed by the header, cells typed by the file's schema); a
//! JSON-lines file is re-written one compact value per line; anything else
//! is copied as it is. The copy goes to the processed bucket under the
//! file's id, so a retried transform overwrites its own earlier attempt.
//! It streams: a part of [`PART_SIZE`] at a time is held, whatever the
//! object's size.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde_json::Value;

use crate::inspect::{csv_object, CsvRows, Format, Invalid, JsonLines, Schema};

/// Bytes uploaded per part (S3's minimum is 5 MiB but for the last).
pub const PART_SIZE: usize = 8 << 20;

/// Why a transform failed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The store failed; another attempt may succeed.
    #[error("{0}")]
    Store(String),
    /// The content cannot be transformed (it changed since validation).
    #[error("row {}: {}", .0.row.unwrap_or(0), .0.reason)]
    Content(Invalid),
}

fn store_error<E: std::error::Error>(what: &str, e: E) -> TransformError {
    TransformError::Store(format!("{what}: {}", crate::activities::error_chain(&e)))
}

/// Writes the JSON-lines copy of `bucket/key` (a `format` file) to
/// `dest_bucket/dest_key`, heartbeating after each part.
#[allow(clippy::too_many_arguments)]
pub async fn to_json_lines(
    ctx: &temporalio_sdk::activities::ActivityContext,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    format: Format,
    schema: Option<&Schema>,
    max_row: usize,
    dest_bucket: &str,
    dest_key: &str,
) -> Result<u64, TransformError> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| store_error("reading the object", e))?;
    let mut body = object.body;
    let mut upload = Upload::new(s3, dest_bucket, dest_key);
    // One buffer for the whole transform: each part is split off it and,
    // once uploaded, its storage is reclaimed for the next. (A fresh 8 MiB
    // buffer per part made glibc's allocator raise its mmap threshold and
    // keep what was freed: the resident set grew with the file.)
    let mut out = bytes::BytesMut::with_capacity(PART_SIZE + (1 << 16));
    let mut csv = CsvRows::new(max_row);
    let mut lines = JsonLines::new(max_row);
    let emit = |value: &Value, out: &mut bytes::BytesMut| {
        use bytes::BufMut as _;
        // Writing a Value into memory cannot fail.
        let _ = serde_json::to_writer((&mut *out).writer(), value);
        out.put_u8(b'\n');
    };
    let result: Result<(), TransformError> = async {
        loop {
            let chunk = body
                .try_next()
                .await
                .map_err(|e| store_error("reading the object", e))?;
            let data = chunk.as_deref().unwrap_or_default();
            if chunk.is_some() && data.is_empty() {
                continue;
            }
            match format {
                Format::Csv => csv.feed(data, &mut |_, header, cells| {
                    emit(&csv_object(header, cells, schema), &mut out);
                    Ok(())
                }),
                Format::JsonLines => lines.feed(data, &mut |_, value| {
                    emit(&value, &mut out);
                    Ok(())
                }),
            }
            .map_err(TransformError::Content)?;
            if out.len() >= PART_SIZE {
                upload.part(out.split().freeze()).await?;
                out.reserve(PART_SIZE + (1 << 16));
                // Alive, for the step's heartbeat timeout.
                let _ = ctx.record_heartbeat(upload.bytes).await;
            }
            if chunk.is_none() {
                break;
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => upload.finish(out.freeze()).await,
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// A streamed upload: one PUT when it fits a part, else a multipart upload.
struct Upload<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    id: Option<String>,
    parts: Vec<CompletedPart>,
    bytes: u64,
}

impl<'a> Upload<'a> {
    fn new(s3: &'a aws_sdk_s3::Client, bucket: &'a str, key: &'a str) -> Self {
        Self {
            s3,
            bucket,
            key,
            id: None,
            parts: Vec::new(),
            bytes: 0,
        }
    }

    async fn part(&mut self, data: bytes::Bytes) -> Result<(), TransformError> {
        if self.id.is_none() {
            let created = self
                .s3
                .create_multipart_upload()
                .bucket(self.bucket)
                .key(self.key)
                .content_type(crate::inspect::JSON_LINES)
                .send()
                .await
                .map_err(|e| store_error("starting the upload", e))?;
            self.id = created.upload_id;
        }
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        self.bytes += data.len() as u64;
        let done = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.id.clone().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| store_error("uploading a part", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(done.e_tag)
                .build(),
        );
        Ok(())
    }

    async fn finish(mut self, rest: bytes::Bytes) -> Result<u64, TransformError> {
        if self.id.is_none() {
            let bytes = rest.len() as u64;
            self.s3
                .put_object()
                .bucket(self.bucket)
                .key(self.key)
                .content_type(crate::inspect::JSON_LINES)
                .body(ByteStream::from(rest))
                .send()
                .await
                .map_err(|e| store_error("writing the copy", e))?;
            return Ok(bytes);
        }
        if !rest.is_empty() {
            if let Err(e) = self.part(rest).await {
                self.abort().await;
                return Err(e);
            }
        }
        let done = self
            .s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.id.clone().unwrap_or_default())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await;
        match done {
            Ok(_) => Ok(self.bytes),
            Err(e) => {
                self.abort().await;
                Err(store_error("completing the upload", e))
            }
        }
    }

    async fn abort(&self) {
        if let Some(id) = &self.id {
            if let Err(e) = self
                .s3
                .abort_multipart_upload()
                .bucket(self.bucket)
                .key(self.key)
                .upload_id(id)
                .send()
                .await
            {
                tracing::warn!(key = self.key, error = %crate::activities::error_chain(&e),
                    "cannot abort a multipart upload; the store's lifecycle rules remove it");
            }
        }
    }
}

/// Copies `bucket/key` to `dest_bucket/dest_key` inside the store.
pub async fn copy(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    dest_bucket: &str,
    dest_key: &str,
) -> Result<(), TransformError> {
    let source = format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, COPY_SOURCE)
    );
    s3.copy_object()
        .bucket(dest_bucket)
        .key(dest_key)
        .copy_source(source)
        .send()
        .await
        .map_err(|e| store_error("copying the object", e))?;
    Ok(())
}

/// What a copy source's key keeps unescaped.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
