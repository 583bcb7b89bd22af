//! Table creation: every table has a string partition key (and, for rules
//! and subscriptions, a string sort key), on-demand capacity, and (where
//! items expire) a TTL attribute `expires_at`; the tasks table has its
//! global secondary indexes (crate::tasks).

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::{classify, StoreError, Tables};

/// (table, partition key, sort key, has TTL)
fn definitions(t: &Tables) -> Vec<(&str, &'static str, Option<&'static str>, bool)> {
    vec![
        (&t.events, "id", None, false),
        (&t.orders, "order_id", None, false),
        (&t.inventory, "sku", None, false),
        (&t.idempotency, "key", None, true),
        (&t.buses, "name", None, false),
        (&t.rules, "bus", Some("name"), false),
        (&t.queues, "name", None, false),
        (&t.topics, "name", None, false),
        (&t.subscriptions, "topic", Some("id"), false),
        (&t.tasks, "taskId", None, true),
        (&t.files, "file_id", None, false),
        (&t.archives, "bus", Some("name"), false),
        (&t.replays, "bus", Some("name"), false),
    ]
}

fn string_key(
    name: &str,
    kind: KeyType,
) -> Result<(AttributeDefinition, KeySchemaElement), StoreError> {
    Ok((
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?,
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?,
    ))
}

pub(crate) async fn ensure(client: &Client, tables: &Tables) -> Result<(), StoreError> {
    let mut existing = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(classify)?;
        existing.extend(out.table_names().iter().cloned());
        match out.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_string()),
            None => break,
        }
    }
    for (name, key, sort, ttl) in definitions(tables) {
        if existing.iter().any(|t| t == name) {
            continue;
        }
        let (attr, schema) = string_key(key, KeyType::Hash)?;
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr)
            .key_schema(schema);
        if let Some(sort) = sort {
            let (attr, schema) = string_key(sort, KeyType::Range)?;
            req = req.attribute_definitions(attr).key_schema(schema);
        }
        if name == tables.tasks {
            let (attrs, gsis) = crate::tasks::indexes()?;
            for a in attrs {
                req = req.attribute_definitions(a);
            }
            for g in gsis {
                req = req.global_secondary_indexes(g);
            }
        }
        let created = req.send().await;
        if let Err(e) = created {
            // Another replica created it first: fine.
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception())
            {
                continue;
            }
            return Err(classify(e));
        }
        wait_active(client, name).await?;
        if ttl {
            // TTL is an optimisation (expired items are also ignored on read);
            // a store without TTL support still works.
            let r = client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name("expires_at")
                        .build()
                        .map_err(|e| StoreError::Rejected(e.to_string()))?,
                )
                .send()
                .await;
            if let Err(e) = r {
                tracing::warn!(table = name, error = %classify(e), "cannot enable TTL");
            }
        }
    }
    Ok(())
}

async fn wait_active(client: &Client, name: &str) -> Result<(), StoreError> {
    for _ in 0..60 {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(classify)?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(StoreError::Unavailable(format!(
        "table {name} did not become active"
    )))
}
