//! `rules`: the rules of every bus, keyed by `bus` (partition) and `name`
//! (sort), so a bus's rules are one Query, in name order, pageable and
//! filterable by name prefix.
//!
//! The rule itself is an opaque blob (`spec`, the transformer's protobuf
//! encoding) next to a `version` that every write increments: writes are
//! conditional on the version they read, so two admins changing one rule's
//! targets at once cannot lose either change.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Select};

use crate::{applied, classify, get_n, get_s, n, now_rfc3339, s, Item, Store, StoreError};

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    /// The bus it belongs to.
    pub bus: String,
    /// Its name, unique on the bus.
    pub name: String,
    /// The rule's encoding.
    pub spec: Vec<u8>,
    /// Incremented by every write; 1 when created.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// What a rule write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No rule of that name.
    Absent,
    /// The rule at this version.
    Version(u64),
}

fn record(item: &Item) -> Option<RuleRecord> {
    Some(RuleRecord {
        bus: get_s(item, "bus")?,
        name: get_s(item, "name")?,
        spec: item.get("spec")?.as_b().ok()?.as_ref().to_vec(),
        version: get_n(item, "version").unwrap_or(0),
        created_at: get_s(item, "created_at").unwrap_or_default(),
        updated_at: get_s(item, "updated_at").unwrap_or_default(),
    })
}

impl Store {
    /// Reads a rule (consistent read).
    pub async fn rule(&self, bus: &str, name: &str) -> Result<Option<RuleRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.rules)
            .key("bus", s(bus))
            .key("name", s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        match out.item {
            None => Ok(None),
            Some(item) => record(&item)
                .map(Some)
                .ok_or_else(|| self.corrupt(bus, name)),
        }
    }

    fn corrupt(&self, bus: &str, name: &str) -> StoreError {
        StoreError::Corrupt {
            table: self.tables.rules.clone(),
            reason: format!("rule {bus}/{name} lacks its spec"),
        }
    }

    /// Writes a rule if what is stored is as `expect` says. Returns the
    /// stored record, or `None` when the condition did not hold (someone
    /// else wrote it meanwhile: read again and retry).
    pub async fn put_rule(
        &self,
        bus: &str,
        name: &str,
        spec: Vec<u8>,
        expect: Expect,
        created_at: Option<&str>,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let now = now_rfc3339();
        let version = match expect {
            Expect::Absent => 1,
            Expect::Version(v) => v + 1,
        };
        let rec = RuleRecord {
            bus: bus.to_string(),
            name: name.to_string(),
            spec,
            version,
            created_at: created_at.unwrap_or(&now).to_string(),
            updated_at: now,
        };
        let req = self
            .client
            .put_item()
            .table_name(&self.tables.rules)
            .item("bus", s(bus))
            .item("name", s(name))
            .item("spec", AttributeValue::B(Blob::new(rec.spec.clone())))
            .item("version", n(version))
            .item("created_at", s(&rec.created_at))
            .item("updated_at", s(&rec.updated_at))
            .expression_attribute_names("#n", "name");
        let req = match expect {
            Expect::Absent => req.condition_expression("attribute_not_exists(#n)"),
            Expect::Version(v) => req
                .condition_expression("attribute_exists(#n) AND version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        Ok(applied(req.send().await)?.then_some(rec))
    }

    /// Deletes a rule if it is still at `version`. Returns `false` when it
    /// is not (gone, or changed meanwhile: read again).
    pub async fn delete_rule(
        &self,
        bus: &str,
        name: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .delete_item()
                .table_name(&self.tables.rules)
                .key("bus", s(bus))
                .key("name", s(name))
                .condition_expression("attribute_exists(#n) AND version = :v")
                .expression_attribute_names("#n", "name")
                .expression_attribute_values(":v", n(version))
                .send()
                .await,
        )
    }

    /// One page of a bus's rules in name order: names starting with
    /// `prefix`, after the name `after`, at most `limit`. The second value
    /// is the last name returned when more may follow.
    pub async fn rules_page(
        &self,
        bus: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<RuleRecord>, Option<String>), StoreError> {
        let mut out = Vec::new();
        // A cursor outside the prefix's range: before it, start at the
        // beginning; after it, there is nothing more.
        let after = match after {
            Some(a) if !a.starts_with(prefix) && a < prefix => None,
            Some(a) if !a.starts_with(prefix) => return Ok((out, None)),
            other => other,
        };
        let mut start = after.map(|a| {
            [("bus".to_string(), s(bus)), ("name".to_string(), s(a))]
                .into_iter()
                .collect::<Item>()
        });
        // A page of the query may hold fewer than asked; keep reading until
        // `limit` rules or the end.
        loop {
            let want = limit - out.len();
            let mut q = self
                .client
                .query()
                .table_name(&self.tables.rules)
                .consistent_read(true)
                .expression_attribute_values(":b", s(bus))
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(want).unwrap_or(i32::MAX));
            q = if prefix.is_empty() {
                q.key_condition_expression("bus = :b")
            } else {
                q.key_condition_expression("bus = :b AND begins_with(#n, :p)")
                    .expression_attribute_names("#n", "name")
                    .expression_attribute_values(":p", s(prefix))
            };
            let page = q.send().await.map_err(classify)?;
            for item in page.items() {
                out.push(record(item).ok_or_else(|| self.corrupt(bus, "?"))?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && out.len() < limit => start = Some(k),
                Some(k) if !k.is_empty() => {
                    let next = out.last().map(|r| r.name.clone());
                    return Ok((out, next));
                }
                _ => return Ok((out, None)),
            }
        }
    }

    /// Every rule of a bus.
    pub async fn rules_of(&self, bus: &str) -> Result<Vec<RuleRecord>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.rules_page(bus, "", after.as_deref(), 1000).await?;
            out.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// How many rules a bus has.
    pub async fn count_rules(&self, bus: &str) -> Result<usize, StoreError> {
        let mut count = 0usize;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.rules)
                .key_condition_expression("bus = :b")
                .expression_attribute_values(":b", s(bus))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            count += usize::try_from(page.count).unwrap_or(0);
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
    }

    /// Every rule of every bus.
    pub async fn all_rules(&self) -> Result<Vec<RuleRecord>, StoreError> {
        let items = self.scan_all(&self.tables.rules).await?;
        items
            .iter()
            .map(|i| record(i).ok_or_else(|| self.corrupt("?", "?")))
            .collect()
    }
}
