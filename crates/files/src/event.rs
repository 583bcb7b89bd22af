//! S3 event notifications (the `Records` format S3 and compatible stores
//! publish): which objects were created.

use serde::Deserialize;

/// One created object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Its bucket.
    pub bucket: String,
    /// Its key, URL-decoded.
    pub key: String,
    /// Its size as the store reported it.
    pub size: u64,
    /// Its ETag.
    pub etag: String,
    /// Its version, when the bucket keeps versions.
    pub version_id: Option<String>,
    /// The store's ordering token of this change to the key: two
    /// deliveries of one notification carry the same one, a new upload a
    /// different one.
    pub sequencer: String,
    /// The record as it came (one record, for the dead-letter queue).
    pub record: serde_json::Value,
}

impl Created {
    /// What distinguishes this version of the object from every other:
    /// the version id when there is one, else the sequencer.
    pub fn version(&self) -> &str {
        self.version_id
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "null")
            .unwrap_or(&self.sequencer)
    }

    /// A notification holding only this record (what is dead-lettered,
    /// and what a redrive brings back).
    pub fn notification(&self) -> serde_json::Value {
        serde_json::json!({ "Records": [self.record] })
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3,
}

#[derive(Deserialize)]
struct S3 {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "eTag", default)]
    etag: String,
    #[serde(rename = "versionId", default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: String,
}

/// The objects a notification says were created (other events, such as
/// removals and S3's test event, are skipped). An error is a notification
/// that is not one: it can never be processed.
pub fn parse(payload: &[u8]) -> Result<Vec<Created>, String> {
    let n: Notification = serde_json::from_slice(payload)
        .map_err(|e| format!("not an S3 event notification: {e}"))?;
    let mut out = Vec::new();
    for raw in n.records {
        let r: Record =
            serde_json::from_value(raw.clone()).map_err(|e| format!("an S3 event record: {e}"))?;
        if !(r.event_name.starts_with("s3:ObjectCreated:")
            || r.event_name.starts_with("ObjectCreated:"))
        {
            continue;
        }
        // Keys arrive URL-encoded, spaces as '+'.
        let plus = r.s3.object.key.replace('+', " ");
        let key = percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .map_err(|e| format!("an object key that is not UTF-8: {e}"))?
            .into_owned();
        if r.s3.object.sequencer.is_empty()
            && r.s3.object.version_id.as_deref().is_none_or(str::is_empty)
        {
            return Err(format!(
                "the record of {key:?} has neither a sequencer nor a version id"
            ));
        }
        out.push(Created {
            bucket: r.s3.bucket.name,
            key,
            size: r.s3.object.size,
            etag: r.s3.object.etag,
            version_id: r.s3.object.version_id,
            sequencer: r.s3.object.sequencer,
            record: raw,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_object_with_an_encoded_key() {
        let n =
            br#"{"EventName":"s3:ObjectCreated:Put","Records":[{"eventName":"s3:ObjectCreated:Put",
            "s3":{"bucket":{"name":"uploads"},"object":{"key":"f_1%2Fmy+data.csv","size":8,
            "eTag":"e5","sequencer":"18EACE1E573F732B"}}}]}"#;
        let c = parse(n).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key, "f_1/my data.csv");
        assert_eq!(c[0].version(), "18EACE1E573F732B");
        assert_eq!(c[0].notification()["Records"][0]["s3"]["object"]["size"], 8);
    }

    #[test]
    fn removals_are_skipped_and_garbage_is_refused() {
        let n = br#"{"Records":[{"eventName":"s3:ObjectRemoved:Delete",
            "s3":{"bucket":{"name":"b"},"object":{"key":"k","sequencer":"1"}}}]}"#;
        assert!(parse(n).unwrap().is_empty());
        assert!(parse(b"not json").is_err());
        let n = br#"{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert!(parse(n).unwrap_err().contains("sequencer"));
    }
}
