//! `sluice.v1.Queues`: creating, reading and deleting sluice queues. The
//! queue's stream and consumer are declared in JetStream first, then the
//! queue is recorded in the store (a failure between the two is healed by
//! putting the queue again).

use std::time::Duration;

use prost::Message;
use sluice_bus::queues::QueueSettings;
use sluice_proto::v1;
use sluice_proto::v1::queues_server::Queues;
use tonic::{Request, Response, Status};

use crate::error::{AdminError, AdminResult};
use crate::model::Violation;
use crate::Shared;

/// SQS's bounds and defaults.
pub const DEFAULT_VISIBILITY: u32 = 30;
/// Longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: u32 = 43_200;
/// Default maxReceiveCount.
pub const DEFAULT_MAX_RECEIVE: u32 = 5;
/// Largest maxReceiveCount.
pub const MAX_MAX_RECEIVE: u32 = 1000;
/// Default retention (4 days).
pub const DEFAULT_RETENTION: u32 = 345_600;
/// Shortest retention.
pub const MIN_RETENTION: u32 = 60;
/// Longest retention (14 days).
pub const MAX_RETENTION: u32 = 1_209_600;

/// The service.
#[derive(Debug, Clone)]
pub struct QueuesApi {
    /// Shared state.
    pub state: Shared,
}

/// Checks a queue's settings, filling in defaults.
pub fn check(q: &v1::Queue) -> Result<(v1::Queue, QueueSettings), Violation> {
    sluice_model::names::check_queue(&q.name).map_err(|e| Violation::new("", e))?;
    let visibility = q.visibility_timeout_seconds.unwrap_or(DEFAULT_VISIBILITY);
    if visibility > MAX_VISIBILITY {
        return Err(Violation::new(
            "/visibility_timeout_seconds",
            format!("must be 0 to {MAX_VISIBILITY}"),
        ));
    }
    let max_receive = q.max_receive_count.unwrap_or(DEFAULT_MAX_RECEIVE);
    if !(1..=MAX_MAX_RECEIVE).contains(&max_receive) {
        return Err(Violation::new(
            "/max_receive_count",
            format!("must be 1 to {MAX_MAX_RECEIVE}"),
        ));
    }
    let retention = q.retention_seconds.unwrap_or(DEFAULT_RETENTION);
    if !(MIN_RETENTION..=MAX_RETENTION).contains(&retention) {
        return Err(Violation::new(
            "/retention_seconds",
            format!("must be {MIN_RETENTION} to {MAX_RETENTION}"),
        ));
    }
    let filled = v1::Queue {
        name: q.name.clone(),
        visibility_timeout_seconds: Some(visibility),
        max_receive_count: Some(max_receive),
        retention_seconds: Some(retention),
        created_at: String::new(),
        messages: 0,
    };
    let settings = QueueSettings {
        visibility_timeout: Duration::from_secs(u64::from(visibility)),
        max_receive,
        retention: Duration::from_secs(u64::from(retention)),
    };
    Ok((filled, settings))
}

impl QueuesApi {
    async fn read(&self, rec: &sluice_store::queues::QueueRecord) -> AdminResult<v1::Queue> {
        let mut q = v1::Queue::decode(rec.spec.as_slice())
            .map_err(|e| AdminError::Internal(format!("stored queue {}: {e}", rec.name)))?;
        q.name = rec.name.clone();
        q.created_at = rec.created_at.clone();
        q.messages = self
            .state
            .bus
            .queue_state(&rec.name)
            .await?
            .map(|s| s.messages)
            .unwrap_or(0);
        Ok(q)
    }
}

#[tonic::async_trait]
impl Queues for QueuesApi {
    async fn put_queue(
        &self,
        request: Request<v1::PutQueueRequest>,
    ) -> Result<Response<v1::PutQueueResponse>, Status> {
        let q = request
            .into_inner()
            .queue
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "a queue is required")))?;
        let (filled, settings) = check(&q).map_err(AdminError::from)?;
        let store = &self.state.store;
        if store
            .queue(&filled.name)
            .await
            .map_err(AdminError::from)?
            .is_none()
        {
            let count = store.queues().await.map_err(AdminError::from)?.len();
            let max = self.state.config.max_queues;
            if count >= max {
                return Err(AdminError::Conflict(format!(
                    "there are {count} queues, the most allowed (SLUICE_TRANSFORMER_MAX_QUEUES is {max})"
                ))
                .into());
            }
        }
        let common = &self.state.config.common;
        self.state
            .bus
            .declare_queue(
                &filled.name,
                settings,
                self.state.config.queue_max_messages,
                common.nats.replicas,
            )
            .await
            .map_err(AdminError::from)?;
        let (rec, created) = store
            .put_queue(&filled.name, filled.encode_to_vec())
            .await
            .map_err(AdminError::from)?;
        let queue = self.read(&rec).await?;
        Ok(Response::new(v1::PutQueueResponse {
            queue: Some(queue),
            created,
        }))
    }

    async fn get_queue(
        &self,
        request: Request<v1::GetQueueRequest>,
    ) -> Result<Response<v1::Queue>, Status> {
        let name = request.into_inner().name;
        let not_found = || AdminError::NotFound(format!("no queue named {name:?}"));
        if sluice_model::names::check_queue(&name).is_err() {
            return Err(not_found().into());
        }
        match self
            .state
            .store
            .queue(&name)
            .await
            .map_err(AdminError::from)?
        {
            Some(rec) => Ok(Response::new(self.read(&rec).await?)),
            None => Err(not_found().into()),
        }
    }

    async fn list_queues(
        &self,
        _request: Request<v1::ListQueuesRequest>,
    ) -> Result<Response<v1::ListQueuesResponse>, Status> {
        let records = self.state.store.queues().await.map_err(AdminError::from)?;
        let queues = futures::future::join_all(records.iter().map(|r| self.read(r)))
            .await
            .into_iter()
            .collect::<AdminResult<Vec<_>>>()?;
        Ok(Response::new(v1::ListQueuesResponse { queues }))
    }

    async fn delete_queue(
        &self,
        request: Request<v1::DeleteQueueRequest>,
    ) -> Result<Response<v1::DeleteQueueResponse>, Status> {
        let name = request.into_inner().name;
        let not_found = || AdminError::NotFound(format!("no queue named {name:?}"));
        if sluice_model::names::check_queue(&name).is_err() {
            return Err(not_found().into());
        }
        if let Some(user) = super::bus::queue_in_use(&self.state, &name) {
            return Err(AdminError::Conflict(format!(
                "target {user} sends to queue {name:?}; remove it first"
            ))
            .into());
        }
        let had_stream = self
            .state
            .bus
            .delete_queue(&name)
            .await
            .map_err(AdminError::from)?;
        let had_record = self
            .state
            .store
            .delete_queue(&name)
            .await
            .map_err(AdminError::from)?;
        if !had_stream && !had_record {
            return Err(not_found().into());
        }
        Ok(Response::new(v1::DeleteQueueResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_settings_follow_sqs_bounds() {
        let (q, s) = check(&v1::Queue {
            name: "jobs".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(q.visibility_timeout_seconds, Some(30));
        assert_eq!(s.max_receive, 5);
        assert_eq!(s.retention.as_secs(), 345_600);
        for (q, ptr) in [
            (
                v1::Queue {
                    name: "a.b".into(),
                    ..Default::default()
                },
                "",
            ),
            (
                v1::Queue {
                    name: "a".into(),
                    visibility_timeout_seconds: Some(43_201),
                    ..Default::default()
                },
                "/visibility_timeout_seconds",
            ),
            (
                v1::Queue {
                    name: "a".into(),
                    max_receive_count: Some(0),
                    ..Default::default()
                },
                "/max_receive_count",
            ),
            (
                v1::Queue {
                    name: "a".into(),
                    retention_seconds: Some(59),
                    ..Default::default()
                },
                "/retention_seconds",
            ),
        ] {
            assert_eq!(check(&q).unwrap_err().pointer, ptr);
        }
    }
}
