//! Archives and replays of the event bus, by bus and name.
//!
//! An archive is a definition (its owner's encoding) with its creation
//! time; its events live in the bus stream. A replay is a definition plus
//! the state of the run: a transformer replica claims it with a lease,
//! records progress (the last bus-stream sequence done and the counts)
//! under that lease, and finishes it; a cancel is a state change the
//! runner sees at its next progress write. Every change is one conditional
//! single-item write (Alternator's LWT), so two replicas never run one
//! replay at once and a dead runner's replay is taken over once its lease
//! runs out.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::{applied, classify, get_n, get_s, now_rfc3339, s, Item, Store, StoreError};

/// A stored archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// Its bus.
    pub bus: String,
    /// Its name.
    pub name: String,
    /// The definition's encoding.
    pub spec: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
}

/// The states of a replay, as stored.
pub mod state {
    /// Created, not claimed yet.
    pub const STARTING: &str = "STARTING";
    /// A replica is sending its events.
    pub const RUNNING: &str = "RUNNING";
    /// Asked to stop; the runner stops at its next progress write.
    pub const CANCELLING: &str = "CANCELLING";
    /// Every event of the range was sent.
    pub const COMPLETED: &str = "COMPLETED";
    /// Stopped by a cancel.
    pub const CANCELLED: &str = "CANCELLED";
    /// Stopped by an error.
    pub const FAILED: &str = "FAILED";
}

/// A stored replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayRecord {
    /// Its bus.
    pub bus: String,
    /// Its name.
    pub name: String,
    /// The definition's encoding (archive, range, rules).
    pub spec: Vec<u8>,
    /// One of [`state`].
    pub state: String,
    /// Why it failed or was cancelled.
    pub reason: String,
    /// Archive events sent through the rules.
    pub events_replayed: u64,
    /// Deliveries those made.
    pub deliveries: u64,
    /// The last bus-stream sequence done (0: none yet).
    pub cursor: u64,
    /// The bus stream's last sequence when the replay was first claimed:
    /// nothing after it is replayed.
    pub end_seq: u64,
    /// The replica running it.
    pub owner: String,
    /// When the owner's lease ends (milliseconds since the epoch).
    pub lease_until: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; empty until claimed.
    pub started_at: String,
    /// RFC 3339; empty until finished.
    pub ended_at: String,
    /// RFC 3339 time of the last event sent.
    pub last_event_time: String,
}

fn archive_record(item: &Item) -> Option<ArchiveRecord> {
    Some(ArchiveRecord {
        bus: get_s(item, "bus")?,
        name: get_s(item, "name")?,
        spec: item.get("spec")?.as_b().ok()?.as_ref().to_vec(),
        created_at: get_s(item, "created_at").unwrap_or_default(),
    })
}

fn replay_record(item: &Item) -> Option<ReplayRecord> {
    Some(ReplayRecord {
        bus: get_s(item, "bus")?,
        name: get_s(item, "name")?,
        spec: item.get("spec")?.as_b().ok()?.as_ref().to_vec(),
        state: get_s(item, "state")?,
        reason: get_s(item, "reason").unwrap_or_default(),
        events_replayed: get_n(item, "events_replayed").unwrap_or(0),
        deliveries: get_n(item, "deliveries").unwrap_or(0),
        cursor: get_n(item, "cursor").unwrap_or(0),
        end_seq: get_n(item, "end_seq").unwrap_or(0),
        owner: get_s(item, "owner").unwrap_or_default(),
        lease_until: get_n(item, "lease_until").unwrap_or(0),
        created_at: get_s(item, "created_at").unwrap_or_default(),
        started_at: get_s(item, "started_at").unwrap_or_default(),
        ended_at: get_s(item, "ended_at").unwrap_or_default(),
        last_event_time: get_s(item, "last_event_time").unwrap_or_default(),
    })
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Store {
    fn corrupt_in(&self, table: &str, bus: &str, name: &str) -> StoreError {
        StoreError::Corrupt {
            table: table.to_string(),
            reason: format!("{bus}/{name} is not a whole record"),
        }
    }

    async fn get2(&self, table: &str, bus: &str, name: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("bus", s(bus))
            .key("name", s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    async fn query_bus(&self, table: &str, bus: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("bus = :b")
                .expression_attribute_values(":b", s(bus))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Reads an archive.
    pub async fn archive(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<Option<ArchiveRecord>, StoreError> {
        let table = &self.tables.archives;
        match self.get2(table, bus, name).await? {
            None => Ok(None),
            Some(item) => archive_record(&item)
                .map(Some)
                .ok_or_else(|| self.corrupt_in(table, bus, name)),
        }
    }

    /// Creates or replaces an archive, keeping its creation time. Returns
    /// the record and whether it was created.
    pub async fn put_archive(
        &self,
        bus: &str,
        name: &str,
        spec: Vec<u8>,
    ) -> Result<(ArchiveRecord, bool), StoreError> {
        let existing = self.archive(bus, name).await?;
        let created_at = existing
            .as_ref()
            .map(|a| a.created_at.clone())
            .unwrap_or_else(now_rfc3339);
        self.client
            .put_item()
            .table_name(&self.tables.archives)
            .item("bus", s(bus))
            .item("name", s(name))
            .item("spec", AttributeValue::B(Blob::new(spec.clone())))
            .item("created_at", s(&created_at))
            .send()
            .await
            .map_err(classify)?;
        Ok((
            ArchiveRecord {
                bus: bus.to_string(),
                name: name.to_string(),
                spec,
                created_at,
            },
            existing.is_none(),
        ))
    }

    /// A bus's archives, by name.
    pub async fn archives_of(&self, bus: &str) -> Result<Vec<ArchiveRecord>, StoreError> {
        let table = &self.tables.archives;
        self.query_bus(table, bus)
            .await?
            .iter()
            .map(|i| archive_record(i).ok_or_else(|| self.corrupt_in(table, bus, "?")))
            .collect()
    }

    /// Deletes an archive; `false` if there was none.
    pub async fn delete_archive(&self, bus: &str, name: &str) -> Result<bool, StoreError> {
        applied(
            self.client
                .delete_item()
                .table_name(&self.tables.archives)
                .key("bus", s(bus))
                .key("name", s(name))
                .condition_expression("attribute_exists(#n)")
                .expression_attribute_names("#n", "name")
                .send()
                .await,
        )
    }

    /// Reads a replay (consistent read).
    pub async fn replay(&self, bus: &str, name: &str) -> Result<Option<ReplayRecord>, StoreError> {
        let table = &self.tables.replays;
        match self.get2(table, bus, name).await? {
            None => Ok(None),
            Some(item) => replay_record(&item)
                .map(Some)
                .ok_or_else(|| self.corrupt_in(table, bus, name)),
        }
    }

    /// Creates a replay in state STARTING; `None` when the name is taken.
    pub async fn create_replay(
        &self,
        bus: &str,
        name: &str,
        spec: Vec<u8>,
    ) -> Result<Option<ReplayRecord>, StoreError> {
        let rec = ReplayRecord {
            bus: bus.to_string(),
            name: name.to_string(),
            spec,
            state: state::STARTING.to_string(),
            created_at: now_rfc3339(),
            ..Default::default()
        };
        let done = applied(
            self.client
                .put_item()
                .table_name(&self.tables.replays)
                .item("bus", s(bus))
                .item("name", s(name))
                .item("spec", AttributeValue::B(Blob::new(rec.spec.clone())))
                .item("state", s(&rec.state))
                .item("created_at", s(&rec.created_at))
                .condition_expression("attribute_not_exists(#n)")
                .expression_attribute_names("#n", "name")
                .send()
                .await,
        )?;
        Ok(done.then_some(rec))
    }

    /// A bus's replays, by name.
    pub async fn replays_of(&self, bus: &str) -> Result<Vec<ReplayRecord>, StoreError> {
        let table = &self.tables.replays;
        self.query_bus(table, bus)
            .await?
            .iter()
            .map(|i| replay_record(i).ok_or_else(|| self.corrupt_in(table, bus, "?")))
            .collect()
    }

    /// Every replay not finished yet, of every bus.
    pub async fn unfinished_replays(&self) -> Result<Vec<ReplayRecord>, StoreError> {
        let table = &self.tables.replays;
        let mut out = Vec::new();
        for item in self.scan_all(table).await? {
            // One unreadable item must not stop every other replay.
            let Some(rec) = replay_record(&item) else {
                tracing::warn!(table = %table, "skipping a replay item that is not a whole record");
                continue;
            };
            if matches!(
                rec.state.as_str(),
                state::STARTING | state::RUNNING | state::CANCELLING
            ) {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Takes (or renews) the lease on an unfinished replay for `owner`, if
    /// nobody else holds a live one. Sets `end_seq` and `started_at` the
    /// first time. Returns the replay as it now is, or `None`.
    pub async fn claim_replay(
        &self,
        bus: &str,
        name: &str,
        owner: &str,
        now_ms: i64,
        lease_until: i64,
        end_seq: u64,
    ) -> Result<Option<ReplayRecord>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.replays)
            .key("bus", s(bus))
            .key("name", s(name))
            .update_expression(
                "SET #o = :o, lease_until = :l, end_seq = if_not_exists(end_seq, :e), \
                 started_at = if_not_exists(started_at, :t)",
            )
            .condition_expression(
                "attribute_exists(#n) AND #s IN (:starting, :running, :cancelling) \
                 AND (attribute_not_exists(#o) OR #o = :o OR lease_until < :now)",
            )
            .expression_attribute_names("#n", "name")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":l", n(lease_until))
            .expression_attribute_values(":e", n(end_seq))
            .expression_attribute_values(":t", s(now_rfc3339()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":starting", s(state::STARTING))
            .expression_attribute_values(":running", s(state::RUNNING))
            .expression_attribute_values(":cancelling", s(state::CANCELLING))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(o) => Ok(o.attributes.as_ref().and_then(replay_record)),
            Err(e) if crate::is_condition_failed(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Records progress under `owner`'s lease (and marks the replay
    /// RUNNING). `false` when the lease is lost or the replay was cancelled
    /// meanwhile: read it to find out which.
    #[allow(clippy::too_many_arguments)]
    pub async fn replay_progress(
        &self,
        bus: &str,
        name: &str,
        owner: &str,
        cursor: u64,
        events_replayed: u64,
        deliveries: u64,
        last_event_time: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .update_item()
                .table_name(&self.tables.replays)
                .key("bus", s(bus))
                .key("name", s(name))
                .update_expression(
                    "SET #s = :running, #c = :c, events_replayed = :r, deliveries = :d, \
                     last_event_time = :t, lease_until = :l",
                )
                .condition_expression("#o = :o AND #s IN (:starting, :running)")
                .expression_attribute_names("#s", "state")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_names("#c", "cursor")
                .expression_attribute_values(":o", s(owner))
                .expression_attribute_values(":c", n(cursor))
                .expression_attribute_values(":r", n(events_replayed))
                .expression_attribute_values(":d", n(deliveries))
                .expression_attribute_values(":t", s(last_event_time))
                .expression_attribute_values(":l", n(lease_until))
                .expression_attribute_values(":starting", s(state::STARTING))
                .expression_attribute_values(":running", s(state::RUNNING))
                .send()
                .await,
        )
    }

    /// Ends a replay `owner` holds, in `final_state` with `reason` and its
    /// final counts (events replayed, deliveries).
    pub async fn finish_replay(
        &self,
        bus: &str,
        name: &str,
        owner: &str,
        final_state: &str,
        reason: &str,
        (events_replayed, deliveries): (u64, u64),
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .update_item()
                .table_name(&self.tables.replays)
                .key("bus", s(bus))
                .key("name", s(name))
                .update_expression(
                    "SET #s = :f, reason = :r, ended_at = :t, events_replayed = :e, deliveries = :d \
                     REMOVE lease_until",
                )
                .expression_attribute_values(":e", n(events_replayed))
                .expression_attribute_values(":d", n(deliveries))
                .condition_expression("#o = :o AND #s IN (:starting, :running, :cancelling)")
                .expression_attribute_names("#s", "state")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_values(":o", s(owner))
                .expression_attribute_values(":f", s(final_state))
                .expression_attribute_values(":r", s(reason))
                .expression_attribute_values(":t", s(now_rfc3339()))
                .expression_attribute_values(":starting", s(state::STARTING))
                .expression_attribute_values(":running", s(state::RUNNING))
                .expression_attribute_values(":cancelling", s(state::CANCELLING))
                .send()
                .await,
        )
    }

    /// Asks an unfinished replay to stop: a replay nobody runs yet is
    /// CANCELLED at once, a running one becomes CANCELLING. Returns the
    /// replay as it then is, `None` if there is none.
    pub async fn cancel_replay(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<Option<ReplayRecord>, StoreError> {
        let try_state = |from: &'static str, to: &'static str, ended: bool| {
            let mut req = self
                .client
                .update_item()
                .table_name(&self.tables.replays)
                .key("bus", s(bus))
                .key("name", s(name))
                .condition_expression("#s = :from AND attribute_not_exists(#o)")
                .expression_attribute_names("#s", "state")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to));
            if ended {
                req = req
                    .update_expression("SET #s = :to, ended_at = :t, reason = :r")
                    .expression_attribute_values(":t", s(now_rfc3339()))
                    .expression_attribute_values(":r", s("cancelled"));
            } else {
                req = req.update_expression("SET #s = :to");
            }
            req
        };
        // Not claimed yet: nobody will see a CANCELLING, so it ends here.
        if applied(
            try_state(state::STARTING, state::CANCELLED, true)
                .send()
                .await,
        )? {
            return self.replay(bus, name).await;
        }
        applied(
            self.client
                .update_item()
                .table_name(&self.tables.replays)
                .key("bus", s(bus))
                .key("name", s(name))
                .update_expression("SET #s = :to")
                .condition_expression("#s IN (:starting, :running)")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":to", s(state::CANCELLING))
                .expression_attribute_values(":starting", s(state::STARTING))
                .expression_attribute_values(":running", s(state::RUNNING))
                .send()
                .await,
        )?;
        self.replay(bus, name).await
    }
}
