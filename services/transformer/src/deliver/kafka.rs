//! `kafka` targets: one record per delivery on a topic of the brokers in
//! `SLUICE_KAFKA_BROKERS`, with rskafka (pure Rust; decision 0020).
//!
//! The record's key is taken from the event (`key_path`); its partition is
//! the one Kafka's own producers pick for that key (murmur2 of the key, as
//! the Java client's default partitioner), so consumers that rely on "one
//! key, one partition" see sluice's records where they expect them. A record
//! without a key goes to the partition its delivery id hashes to, so a
//! repeated delivery lands where the first one did. Every record carries
//! `sluice-delivery-id`, `sluice-event-id`, `sluice-bus`, `sluice-rule` and
//! `sluice-target` headers: a consumer drops a repeat by its delivery id.
//!
//! Failures follow the target's retry policy: an unreachable broker, a
//! missing topic or a timeout is retried; a record the broker refuses as
//! too large goes to the dead-letter queue at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::Mutex;

use super::retry::Outcome;
use super::Meta;
use crate::model::{CompiledTarget, Kafka};

/// How long a topic's partition count is trusted.
const PARTITIONS_FRESH: Duration = Duration::from_secs(30);

/// The connection to the brokers, made on first use and shared by every
/// Kafka target of this replica.
#[derive(Default)]
pub struct Producer {
    brokers: Vec<String>,
    client: Mutex<Option<Arc<Client>>>,
    partitions: Mutex<HashMap<String, (i32, Instant)>>,
    clients: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `n`.
pub fn partition_for(key: &[u8], n: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % n.max(1)
}

fn retry(reason: String) -> Outcome {
    Outcome::Retry {
        reason,
        response: None,
    }
}

impl Producer {
    /// A producer for `brokers` (none: every delivery is retried with the reason).
    pub fn new(brokers: Vec<String>) -> Self {
        Self {
            brokers,
            ..Default::default()
        }
    }

    async fn client(&self) -> Result<Arc<Client>, Outcome> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        if self.brokers.is_empty() {
            return Err(retry(
                "no Kafka brokers are configured (SLUICE_KAFKA_BROKERS)".into(),
            ));
        }
        let client = ClientBuilder::new(self.brokers.clone())
            .client_id("sluice-transformer")
            .build()
            .await
            .map_err(|e| retry(format!("cannot reach the Kafka brokers: {e}")))?;
        let client = Arc::new(client);
        *guard = Some(client.clone());
        Ok(client)
    }

    async fn partition_count(&self, client: &Client, topic: &str) -> Result<i32, Outcome> {
        if let Some((n, at)) = self.partitions.lock().await.get(topic) {
            if at.elapsed() < PARTITIONS_FRESH {
                return Ok(*n);
            }
        }
        let topics = client
            .list_topics()
            .await
            .map_err(|e| retry(format!("cannot read the Kafka topics: {e}")))?;
        let Some(t) = topics.iter().find(|t| t.name == topic) else {
            return Err(retry(format!(
                "the Kafka topic {topic:?} does not exist (yet)"
            )));
        };
        let n = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX).max(1);
        self.partitions
            .lock()
            .await
            .insert(topic.to_string(), (n, Instant::now()));
        Ok(n)
    }

    async fn partition_client(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, Outcome> {
        let key = (topic.to_string(), partition);
        if let Some(pc) = self.clients.lock().await.get(&key) {
            return Ok(pc.clone());
        }
        let pc = client
            .partition_client(topic, partition, UnknownTopicHandling::Error)
            .await
            .map_err(|e| {
                retry(format!(
                    "cannot reach partition {partition} of {topic:?}: {e}"
                ))
            })?;
        let pc = Arc::new(pc);
        self.clients.lock().await.insert(key, pc.clone());
        Ok(pc)
    }

    /// Forgets what a failure may have made stale.
    async fn forget(&self, topic: &str, partition: i32) {
        self.partitions.lock().await.remove(topic);
        self.clients
            .lock()
            .await
            .remove(&(topic.to_string(), partition));
    }

    /// Produces one record for a delivery.
    pub async fn send(
        &self,
        target: &CompiledTarget,
        kafka: &Kafka,
        meta: &Meta<'_>,
        event: &[u8],
        body: Bytes,
    ) -> Outcome {
        let key: Option<Vec<u8>> = match &kafka.key {
            None => None,
            Some(path) => {
                let Ok(event) = serde_json::from_slice::<serde_json::Value>(event) else {
                    return Outcome::Terminal {
                        reason: "the event is not JSON, so key_path cannot apply".into(),
                        response: None,
                    };
                };
                path.select(&event).map(|v| match v {
                    serde_json::Value::String(s) => s.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                })
            }
        };
        let attempt = async {
            let client = self.client().await?;
            let n = self.partition_count(&client, &kafka.topic).await?;
            let partition = partition_for(key.as_deref().unwrap_or(meta.delivery_id.as_bytes()), n);
            let pc = self
                .partition_client(&client, &kafka.topic, partition)
                .await?;
            let mut headers = BTreeMap::new();
            headers.insert(
                "sluice-delivery-id".to_string(),
                meta.delivery_id.as_bytes().to_vec(),
            );
            headers.insert(
                "sluice-event-id".to_string(),
                meta.event_id.as_bytes().to_vec(),
            );
            headers.insert("sluice-bus".to_string(), target.bus.as_bytes().to_vec());
            headers.insert("sluice-rule".to_string(), target.rule.as_bytes().to_vec());
            headers.insert("sluice-target".to_string(), target.id.as_bytes().to_vec());
            let record = Record {
                key: key.clone(),
                value: Some(body.to_vec()),
                headers,
                timestamp: chrono::Utc::now(),
            };
            match pc.produce(vec![record], Compression::NoCompression).await {
                Ok(_) => Ok(()),
                Err(KafkaError::ServerError {
                    protocol_error:
                        ProtocolError::MessageTooLarge | ProtocolError::RecordListTooLarge,
                    ..
                }) => Err(Outcome::Terminal {
                    reason: format!(
                        "the Kafka broker refused the record as too large ({} bytes)",
                        body.len()
                    ),
                    response: None,
                }),
                Err(e) => {
                    self.forget(&kafka.topic, partition).await;
                    Err(retry(format!("Kafka did not take the record: {e}")))
                }
            }
        };
        match tokio::time::timeout(target.timeout, attempt).await {
            Ok(Ok(())) => Outcome::Delivered,
            Ok(Err(outcome)) => outcome,
            Err(_) => {
                // A connection stuck in rskafka's own retries: start afresh.
                *self.client.lock().await = None;
                self.clients.lock().await.clear();
                retry(format!(
                    "Kafka did not answer within {} s",
                    target.timeout.as_secs()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the Java client's `Utils.murmur2` and of its default
    /// partitioner (`toPositive(murmur2(key)) % n`) for the same keys,
    /// computed with kafka-clients 4.4.0.
    #[test]
    fn keys_hash_and_partition_as_the_java_client_does() {
        let table: &[(&str, i32, i32, i32)] = &[
            ("", 275_646_681, 0, 2),
            ("a", -1_563_381_124, 1, 5),
            ("ab", 316_155_434, 2, 0),
            ("abc", 479_470_107, 0, 4),
            ("abcd", -1_323_649_548, 2, 5),
            ("order-17", 1_568_318_961, 0, 6),
            ("21", -973_932_308, 0, 3),
            ("customer-42", -542_987_495, 0, 1),
            ("ünï", -570_454_509, 2, 0),
            ("a-much-longer-key-with-35-characters", -70_092_341, 0, 5),
        ];
        for (key, hash, of3, of7) in table {
            assert_eq!(murmur2(key.as_bytes()), *hash, "{key:?}");
            assert_eq!(partition_for(key.as_bytes(), 3), *of3, "{key:?}");
            assert_eq!(partition_for(key.as_bytes(), 7), *of7, "{key:?}");
        }
    }
}
