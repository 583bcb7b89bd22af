//! `sluice.v1.EventBus`: buses, rules, targets and TestEventPattern.
//!
//! Every write goes to the store first (rules with a version condition, so
//! concurrent changes to one rule are never lost), then this replica
//! reloads the bus and tells the others (`control.rules`), so every replica
//! routes by the change within a second. Removing a target also removes its
//! consumer and the deliveries still waiting for it.

use prost::Message;
use sluice_model::names::{self, DEFAULT_BUS};
use sluice_proto::v1;
use sluice_proto::v1::event_bus_server::EventBus;
use sluice_store::rules::{Expect, RuleRecord};
use tonic::{Request, Response, Status};

use crate::error::{AdminError, AdminResult};
use crate::model::{self, keep_secrets, Destination, Violation};
use crate::Shared;

/// Attempts of a read-modify-write of one rule before giving up.
const WRITE_ATTEMPTS: usize = 8;

/// The service.
#[derive(Debug, Clone)]
pub struct BusApi {
    /// Shared state.
    pub state: Shared,
}

fn bus_of(rec: &sluice_store::buses::BusRecord) -> v1::Bus {
    v1::Bus {
        name: rec.name.clone(),
        description: rec.description.clone(),
        created_at: rec.created_at.clone(),
    }
}

fn default_bus() -> v1::Bus {
    v1::Bus {
        name: DEFAULT_BUS.into(),
        description: "The bus every deployment has; events name no bus land here.".into(),
        created_at: String::new(),
    }
}

/// The stored rule with its server-set fields filled in.
fn decode(rec: &RuleRecord) -> AdminResult<v1::Rule> {
    let mut r = v1::Rule::decode(rec.spec.as_slice())
        .map_err(|e| AdminError::Internal(format!("stored rule {}/{}: {e}", rec.bus, rec.name)))?;
    r.bus = rec.bus.clone();
    r.name = rec.name.clone();
    r.created_at = rec.created_at.clone();
    r.updated_at = rec.updated_at.clone();
    r.version = rec.version;
    Ok(r)
}

fn for_storage(rule: &v1::Rule) -> Vec<u8> {
    let mut r = rule.clone();
    r.created_at.clear();
    r.updated_at.clear();
    r.version = 0;
    r.encode_to_vec()
}

/// A "not found" for `what` `name` on `bus` when either name is malformed
/// (a malformed name names nothing).
fn named(what: &str, bus: &str, name: &str) -> AdminResult<()> {
    if names::check_bus(bus).is_err() || names::check_rule(name).is_err() {
        return Err(AdminError::NotFound(format!(
            "no {what} {name:?} on bus {bus:?}"
        )));
    }
    Ok(())
}

impl BusApi {
    fn ctx(&self) -> model::Ctx<'_> {
        model::Ctx {
            policy: &self.state.policy,
            default_concurrency: self.state.config.default_concurrency,
            schedules: crate::model::schedule::Allow {
                seconds: self.state.config.schedule_allow_seconds,
            },
            stored: false,
        }
    }

    async fn require_bus(&self, bus: &str) -> AdminResult<()> {
        if names::check_bus(bus).is_err() {
            return Err(AdminError::NotFound(format!("no bus named {bus:?}")));
        }
        if bus == DEFAULT_BUS || self.state.store.bus(bus).await?.is_some() {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!("no bus named {bus:?}")))
        }
    }

    /// Queue targets must name queues that exist.
    async fn check_queues(&self, rule: &v1::Rule, at: impl Fn(usize) -> String) -> AdminResult<()> {
        for (i, t) in rule.targets.iter().enumerate() {
            if let Some(v1::target::Destination::Queue(q)) = &t.destination {
                if self.state.store.queue(&q.queue).await?.is_none() {
                    return Err(Violation::new(
                        format!("{}/queue", at(i)),
                        format!("there is no queue named {:?}; create it first", q.queue),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// After a write: reload the bus here, tell the other replicas (so
    /// their workers of removed targets stop), then remove what removed
    /// targets left behind: their consumers and waiting deliveries.
    async fn after_write(
        &self,
        bus: &str,
        name: &str,
        before: Option<&v1::Rule>,
        after: Option<&v1::Rule>,
    ) {
        crate::reload_rule(&self.state, bus, name).await;
        crate::announce(&self.state, bus, name).await;
        let kept: Vec<&str> = after
            .map(|r| r.targets.iter().map(|t| t.id.as_str()).collect())
            .unwrap_or_default();
        if let Some(rule) = before {
            for t in rule
                .targets
                .iter()
                .filter(|t| !kept.contains(&t.id.as_str()))
            {
                let key = sluice_bus::subjects::target_key(bus, &rule.name, &t.id);
                if let Err(e) = crate::deliver::discard_target(&self.state, &key).await {
                    tracing::warn!(error = %e, "cannot remove a removed target's consumer");
                }
            }
        }
    }

    /// Writes `rule` (already compiled), creating it when `existing` is None.
    async fn write(
        &self,
        rule: &v1::Rule,
        existing: Option<&RuleRecord>,
    ) -> AdminResult<Option<RuleRecord>> {
        let expect = match existing {
            None => {
                let count = self.state.store.count_rules(&rule.bus).await?;
                let max = self.state.config.max_rules_per_bus;
                if count >= max {
                    return Err(AdminError::Conflict(format!(
                        "bus {:?} has {count} rules, the most allowed (SLUICE_TRANSFORMER_MAX_RULES_PER_BUS is {max})",
                        rule.bus
                    )));
                }
                Expect::Absent
            }
            Some(rec) => Expect::Version(rec.version),
        };
        Ok(self
            .state
            .store
            .put_rule(
                &rule.bus,
                &rule.name,
                for_storage(rule),
                expect,
                existing.map(|r| r.created_at.as_str()),
            )
            .await?)
    }

    async fn put_rule_inner(&self, mut rule: v1::Rule) -> AdminResult<(v1::Rule, bool)> {
        self.require_bus(&rule.bus).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let existing = self.state.store.rule(&rule.bus, &rule.name).await?;
            let before = existing.as_ref().map(decode).transpose()?;
            for t in &mut rule.targets {
                let old = before
                    .as_ref()
                    .and_then(|b| b.targets.iter().find(|o| o.id == t.id));
                keep_secrets(t, old);
            }
            let compiled = model::compile_rule(&rule, &self.ctx())?;
            self.check_queues(&compiled.proto, |i| format!("/targets/{i}"))
                .await?;
            if let Some(rec) = self.write(&compiled.proto, existing.as_ref()).await? {
                let stored = decode(&RuleRecord {
                    spec: for_storage(&compiled.proto),
                    ..rec
                })?;
                self.after_write(&rule.bus, &rule.name, before.as_ref(), Some(&stored))
                    .await;
                return Ok((model::redacted(&stored), existing.is_none()));
            }
        }
        Err(AdminError::Conflict(
            "the rule kept changing while it was written; try again".into(),
        ))
    }

    /// Applies `change` to a stored rule and writes it back.
    async fn modify_rule(
        &self,
        bus: &str,
        name: &str,
        mut change: impl FnMut(&mut v1::Rule) -> AdminResult<bool>,
    ) -> AdminResult<(v1::Rule, bool)> {
        self.require_bus(bus).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(existing) = self.state.store.rule(bus, name).await? else {
                return Err(AdminError::NotFound(format!(
                    "no rule {name:?} on bus {bus:?}"
                )));
            };
            let before = decode(&existing)?;
            let mut rule = before.clone();
            let created = change(&mut rule)?;
            let compiled = model::compile_rule(&rule, &self.ctx()).map_err(|v| {
                // The change itself was checked; what is left is a limit of the whole rule.
                AdminError::Invalid(Violation::new("", v.to_string()))
            })?;
            self.check_queues(&compiled.proto, |_| String::new())
                .await?;
            if let Some(rec) = self.write(&compiled.proto, Some(&existing)).await? {
                let stored = decode(&RuleRecord {
                    spec: for_storage(&compiled.proto),
                    ..rec
                })?;
                self.after_write(bus, name, Some(&before), Some(&stored))
                    .await;
                return Ok((model::redacted(&stored), created));
            }
        }
        Err(AdminError::Conflict(
            "the rule kept changing while it was written; try again".into(),
        ))
    }
}

#[tonic::async_trait]
impl EventBus for BusApi {
    async fn put_bus(
        &self,
        request: Request<v1::PutBusRequest>,
    ) -> Result<Response<v1::PutBusResponse>, Status> {
        let req = request.into_inner();
        model::check_bus(&req.name, &req.description).map_err(AdminError::from)?;
        if req.name == DEFAULT_BUS {
            return Ok(Response::new(v1::PutBusResponse {
                bus: Some(default_bus()),
                created: false,
            }));
        }
        let store = &self.state.store;
        if store
            .bus(&req.name)
            .await
            .map_err(AdminError::from)?
            .is_none()
        {
            let count = store.buses().await.map_err(AdminError::from)?.len();
            let max = self.state.config.max_buses;
            if count >= max {
                return Err(AdminError::Conflict(format!(
                    "there are {count} buses, the most allowed (SLUICE_TRANSFORMER_MAX_BUSES is {max})"
                ))
                .into());
            }
        }
        let (rec, created) = store
            .put_bus(&req.name, &req.description)
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(v1::PutBusResponse {
            bus: Some(bus_of(&rec)),
            created,
        }))
    }

    async fn get_bus(
        &self,
        request: Request<v1::GetBusRequest>,
    ) -> Result<Response<v1::Bus>, Status> {
        let name = request.into_inner().name;
        if name == DEFAULT_BUS {
            return Ok(Response::new(default_bus()));
        }
        let not_found = || AdminError::NotFound(format!("no bus named {name:?}"));
        if names::check_bus(&name).is_err() {
            return Err(not_found().into());
        }
        match self
            .state
            .store
            .bus(&name)
            .await
            .map_err(AdminError::from)?
        {
            Some(rec) => Ok(Response::new(bus_of(&rec))),
            None => Err(not_found().into()),
        }
    }

    async fn list_buses(
        &self,
        _request: Request<v1::ListBusesRequest>,
    ) -> Result<Response<v1::ListBusesResponse>, Status> {
        let mut buses = vec![default_bus()];
        buses.extend(
            self.state
                .store
                .buses()
                .await
                .map_err(AdminError::from)?
                .iter()
                .map(bus_of),
        );
        Ok(Response::new(v1::ListBusesResponse { buses }))
    }

    async fn delete_bus(
        &self,
        request: Request<v1::DeleteBusRequest>,
    ) -> Result<Response<v1::DeleteBusResponse>, Status> {
        let name = request.into_inner().name;
        if name == DEFAULT_BUS {
            return Err(AdminError::Conflict("the default bus cannot be deleted".into()).into());
        }
        self.require_bus(&name).await?;
        let rules = self
            .state
            .store
            .count_rules(&name)
            .await
            .map_err(AdminError::from)?;
        if rules > 0 {
            return Err(AdminError::Conflict(format!(
                "bus {name:?} still has {rules} rules; delete them first"
            ))
            .into());
        }
        // A bus made again under this name must not inherit its archives.
        let archives = self
            .state
            .store
            .archives_of(&name)
            .await
            .map_err(AdminError::from)?;
        if !archives.is_empty() {
            return Err(AdminError::Conflict(format!(
                "bus {name:?} still has {} archives; delete them first",
                archives.len()
            ))
            .into());
        }
        if !self
            .state
            .store
            .delete_bus(&name)
            .await
            .map_err(AdminError::from)?
        {
            return Err(AdminError::NotFound(format!("no bus named {name:?}")).into());
        }
        Ok(Response::new(v1::DeleteBusResponse {}))
    }

    async fn put_rule(
        &self,
        request: Request<v1::PutRuleRequest>,
    ) -> Result<Response<v1::PutRuleResponse>, Status> {
        let rule = request
            .into_inner()
            .rule
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "a rule is required")))?;
        let (rule, created) = self.put_rule_inner(rule).await?;
        Ok(Response::new(v1::PutRuleResponse {
            rule: Some(rule),
            created,
        }))
    }

    async fn get_rule(
        &self,
        request: Request<v1::GetRuleRequest>,
    ) -> Result<Response<v1::Rule>, Status> {
        let req = request.into_inner();
        let not_found =
            || AdminError::NotFound(format!("no rule {:?} on bus {:?}", req.name, req.bus));
        if names::check_bus(&req.bus).is_err() || names::check_rule(&req.name).is_err() {
            return Err(not_found().into());
        }
        match self
            .state
            .store
            .rule(&req.bus, &req.name)
            .await
            .map_err(AdminError::from)?
        {
            Some(rec) => Ok(Response::new(model::redacted(&decode(&rec)?))),
            None => Err(not_found().into()),
        }
    }

    async fn list_rules(
        &self,
        request: Request<v1::ListRulesRequest>,
    ) -> Result<Response<v1::ListRulesResponse>, Status> {
        let req = request.into_inner();
        self.require_bus(&req.bus).await?;
        let limit = match req.limit {
            0 => 50,
            n @ 1..=100 => n as usize,
            _ => {
                return Err(
                    AdminError::Invalid(Violation::new("/limit", "must be 1 to 100")).into(),
                )
            }
        };
        if !req.prefix.is_empty() && names::check_rule(&req.prefix).is_err() {
            return Err(AdminError::Invalid(Violation::new(
                "/prefix",
                "must be the start of a rule name (letters, digits, . - _; at most 64)",
            ))
            .into());
        }
        let after = if req.next.is_empty() {
            None
        } else {
            if names::check_rule(&req.next).is_err() {
                return Err(AdminError::Invalid(Violation::new(
                    "/next",
                    "is not a cursor of this listing",
                ))
                .into());
            }
            Some(req.next.as_str())
        };
        let (records, next) = self
            .state
            .store
            .rules_page(&req.bus, &req.prefix, after, limit)
            .await
            .map_err(AdminError::from)?;
        let rules = records
            .iter()
            .map(|r| decode(r).map(|d| model::redacted(&d)))
            .collect::<AdminResult<Vec<_>>>()?;
        Ok(Response::new(v1::ListRulesResponse {
            rules,
            next: next.unwrap_or_default(),
        }))
    }

    async fn delete_rule(
        &self,
        request: Request<v1::DeleteRuleRequest>,
    ) -> Result<Response<v1::DeleteRuleResponse>, Status> {
        let req = request.into_inner();
        let not_found =
            || AdminError::NotFound(format!("no rule {:?} on bus {:?}", req.name, req.bus));
        if names::check_bus(&req.bus).is_err() || names::check_rule(&req.name).is_err() {
            return Err(not_found().into());
        }
        let store = &self.state.store;
        // Deleted at the version read, so a target added meanwhile is
        // either seen here (and its consumer removed) or keeps the rule.
        let mut deleted = None;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(existing) = store
                .rule(&req.bus, &req.name)
                .await
                .map_err(AdminError::from)?
            else {
                return Err(not_found().into());
            };
            if store
                .delete_rule(&req.bus, &req.name, existing.version)
                .await
                .map_err(AdminError::from)?
            {
                deleted = Some(decode(&existing)?);
                break;
            }
        }
        let Some(before) = deleted else {
            return Err(AdminError::Conflict(
                "the rule kept changing while it was deleted; try again".into(),
            )
            .into());
        };
        self.after_write(&req.bus, &req.name, Some(&before), None)
            .await;
        Ok(Response::new(v1::DeleteRuleResponse {}))
    }

    async fn put_target(
        &self,
        request: Request<v1::PutTargetRequest>,
    ) -> Result<Response<v1::PutTargetResponse>, Status> {
        let req = request.into_inner();
        let mut target = req
            .target
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "a target is required")))?;
        if names::check_rule(&req.rule).is_err() {
            return Err(AdminError::NotFound(format!(
                "no rule {:?} on bus {:?}",
                req.rule, req.bus
            ))
            .into());
        }
        let ctx = self.ctx();
        let (rule, created) = self
            .modify_rule(&req.bus, &req.rule, |rule| {
                let old = rule.targets.iter().find(|t| t.id == target.id).cloned();
                keep_secrets(&mut target, old.as_ref());
                // Checked on its own first, so problems point into the target.
                model::compile_target(&rule.bus, &rule.name, &target, "", &ctx)?;
                match rule.targets.iter_mut().find(|t| t.id == target.id) {
                    Some(t) => {
                        *t = target.clone();
                        Ok(false)
                    }
                    None => {
                        if rule.targets.len() >= model::MAX_TARGETS {
                            return Err(AdminError::Conflict(format!(
                                "rule {:?} already has {} targets, the most a rule may have",
                                rule.name,
                                model::MAX_TARGETS
                            )));
                        }
                        rule.targets.push(target.clone());
                        Ok(true)
                    }
                }
            })
            .await?;
        Ok(Response::new(v1::PutTargetResponse {
            rule: Some(rule),
            created,
        }))
    }

    async fn remove_target(
        &self,
        request: Request<v1::RemoveTargetRequest>,
    ) -> Result<Response<v1::RemoveTargetResponse>, Status> {
        let req = request.into_inner();
        if names::check_rule(&req.rule).is_err() {
            return Err(AdminError::NotFound(format!(
                "no rule {:?} on bus {:?}",
                req.rule, req.bus
            ))
            .into());
        }
        let (rule, _) = self
            .modify_rule(&req.bus, &req.rule, |rule| {
                let before = rule.targets.len();
                rule.targets.retain(|t| t.id != req.id);
                if rule.targets.len() == before {
                    return Err(AdminError::NotFound(format!(
                        "rule {:?} has no target {:?}",
                        rule.name, req.id
                    )));
                }
                Ok(false)
            })
            .await?;
        Ok(Response::new(v1::RemoveTargetResponse { rule: Some(rule) }))
    }

    async fn test_event_pattern(
        &self,
        request: Request<v1::TestEventPatternRequest>,
    ) -> Result<Response<v1::TestEventPatternResponse>, Status> {
        let req = request.into_inner();
        let pattern = model::compile_pattern("/event_pattern", &req.event_pattern)
            .map_err(AdminError::from)?;
        let event: serde_json::Value = serde_json::from_str(&req.event).map_err(|e| {
            AdminError::Invalid(Violation::new("/event", format!("is not JSON: {e}")))
        })?;
        if !event.is_object() {
            return Err(
                AdminError::Invalid(Violation::new("/event", "must be a JSON object")).into(),
            );
        }
        let matches = pattern
            .matches(&event)
            .map_err(|e| AdminError::Invalid(Violation::new("/event", e.to_string())))?;
        Ok(Response::new(v1::TestEventPatternResponse { matches }))
    }

    async fn put_archive(
        &self,
        request: Request<v1::PutArchiveRequest>,
    ) -> Result<Response<v1::PutArchiveResponse>, Status> {
        let archive = request
            .into_inner()
            .archive
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "an archive is required")))?;
        self.require_bus(&archive.bus).await?;
        crate::replay::check_archive(&archive, self.state.config.common.queue.bus_retention)
            .map_err(AdminError::from)?;
        let spec = v1::Archive {
            event_pattern: archive.event_pattern.clone(),
            retention_days: archive.retention_days,
            description: archive.description.clone(),
            ..Default::default()
        };
        let (rec, created) = self
            .state
            .store
            .put_archive(&archive.bus, &archive.name, spec.encode_to_vec())
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(v1::PutArchiveResponse {
            archive: crate::replay::archive_of(&rec),
            created,
        }))
    }

    async fn get_archive(
        &self,
        request: Request<v1::GetArchiveRequest>,
    ) -> Result<Response<v1::Archive>, Status> {
        let req = request.into_inner();
        named("archive", &req.bus, &req.name)?;
        let not_found =
            || AdminError::NotFound(format!("no archive {:?} on bus {:?}", req.name, req.bus));
        match self
            .state
            .store
            .archive(&req.bus, &req.name)
            .await
            .map_err(AdminError::from)?
            .as_ref()
            .and_then(crate::replay::archive_of)
        {
            Some(a) => Ok(Response::new(a)),
            None => Err(not_found().into()),
        }
    }

    async fn list_archives(
        &self,
        request: Request<v1::ListArchivesRequest>,
    ) -> Result<Response<v1::ListArchivesResponse>, Status> {
        let req = request.into_inner();
        self.require_bus(&req.bus).await?;
        let archives = self
            .state
            .store
            .archives_of(&req.bus)
            .await
            .map_err(AdminError::from)?
            .iter()
            .filter_map(crate::replay::archive_of)
            .collect();
        Ok(Response::new(v1::ListArchivesResponse { archives }))
    }

    async fn delete_archive(
        &self,
        request: Request<v1::DeleteArchiveRequest>,
    ) -> Result<Response<v1::DeleteArchiveResponse>, Status> {
        let req = request.into_inner();
        named("archive", &req.bus, &req.name)?;
        let not_found =
            || AdminError::NotFound(format!("no archive {:?} on bus {:?}", req.name, req.bus));
        if !self
            .state
            .store
            .delete_archive(&req.bus, &req.name)
            .await
            .map_err(AdminError::from)?
        {
            return Err(not_found().into());
        }
        Ok(Response::new(v1::DeleteArchiveResponse {}))
    }

    async fn start_replay(
        &self,
        request: Request<v1::StartReplayRequest>,
    ) -> Result<Response<v1::Replay>, Status> {
        let replay = request
            .into_inner()
            .replay
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "a replay is required")))?;
        self.require_bus(&replay.bus).await?;
        let spec = crate::replay::check_replay(&replay).map_err(AdminError::from)?;
        let store = &self.state.store;
        if store
            .archive(&replay.bus, &spec.archive)
            .await
            .map_err(AdminError::from)?
            .is_none()
        {
            return Err(AdminError::Invalid(Violation::new(
                "/archive",
                format!(
                    "there is no archive named {:?} on bus {:?}",
                    spec.archive, replay.bus
                ),
            ))
            .into());
        }
        for (i, rule) in spec.rules.iter().enumerate() {
            if store
                .rule(&replay.bus, rule)
                .await
                .map_err(AdminError::from)?
                .is_none()
            {
                return Err(AdminError::Invalid(Violation::new(
                    format!("/rules/{i}"),
                    format!("there is no rule named {rule:?} on bus {:?}", replay.bus),
                ))
                .into());
            }
        }
        let Some(rec) = store
            .create_replay(&replay.bus, &replay.name, spec.encode_to_vec())
            .await
            .map_err(AdminError::from)?
        else {
            return Err(AdminError::Conflict(format!(
                "a replay named {:?} already exists on bus {:?}",
                replay.name, replay.bus
            ))
            .into());
        };
        // This replica runs it, unless another claims it first.
        crate::replay::try_start(&self.state, &replay.bus, &replay.name).await;
        let now = store
            .replay(&replay.bus, &replay.name)
            .await
            .ok()
            .flatten()
            .unwrap_or(rec);
        crate::replay::replay_of(&now)
            .map(Response::new)
            .ok_or_else(|| AdminError::Internal("the stored replay cannot be read".into()).into())
    }

    async fn get_replay(
        &self,
        request: Request<v1::GetReplayRequest>,
    ) -> Result<Response<v1::Replay>, Status> {
        let req = request.into_inner();
        named("replay", &req.bus, &req.name)?;
        let not_found =
            || AdminError::NotFound(format!("no replay {:?} on bus {:?}", req.name, req.bus));
        match self
            .state
            .store
            .replay(&req.bus, &req.name)
            .await
            .map_err(AdminError::from)?
            .as_ref()
            .and_then(crate::replay::replay_of)
        {
            Some(r) => Ok(Response::new(r)),
            None => Err(not_found().into()),
        }
    }

    async fn list_replays(
        &self,
        request: Request<v1::ListReplaysRequest>,
    ) -> Result<Response<v1::ListReplaysResponse>, Status> {
        let req = request.into_inner();
        self.require_bus(&req.bus).await?;
        let replays = self
            .state
            .store
            .replays_of(&req.bus)
            .await
            .map_err(AdminError::from)?
            .iter()
            .filter_map(crate::replay::replay_of)
            .collect();
        Ok(Response::new(v1::ListReplaysResponse { replays }))
    }

    async fn cancel_replay(
        &self,
        request: Request<v1::CancelReplayRequest>,
    ) -> Result<Response<v1::Replay>, Status> {
        let req = request.into_inner();
        named("replay", &req.bus, &req.name)?;
        let not_found =
            || AdminError::NotFound(format!("no replay {:?} on bus {:?}", req.name, req.bus));
        let Some(rec) = self
            .state
            .store
            .cancel_replay(&req.bus, &req.name)
            .await
            .map_err(AdminError::from)?
        else {
            return Err(not_found().into());
        };
        if !matches!(
            rec.state.as_str(),
            sluice_store::replays::state::CANCELLING | sluice_store::replays::state::CANCELLED
        ) {
            return Err(AdminError::Conflict(format!(
                "the replay has ended ({}); only a replay that has not can be cancelled",
                rec.state
            ))
            .into());
        }
        crate::replay::replay_of(&rec)
            .map(Response::new)
            .ok_or_else(|| AdminError::Internal("the stored replay cannot be read".into()).into())
    }
}

/// Whether any rule's target sends to queue `name` (by this replica's view).
pub fn queue_in_use(state: &Shared, name: &str) -> Option<String> {
    state
        .registry
        .snapshot()
        .targets()
        .find_map(|t| match &t.destination {
            Destination::Queue(q) if q == name => Some(format!("{}/{}/{}", t.bus, t.rule, t.id)),
            _ => None,
        })
}
