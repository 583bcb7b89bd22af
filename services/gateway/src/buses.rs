//! Which buses exist, for events that name one: read from the store and
//! kept for a few seconds, so naming a bus costs no store read per event.
//! A bus created a moment ago is found by re-reading (at most once a
//! second); `default` always exists.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_model::names::DEFAULT_BUS;
use sluice_store::{Store, StoreError};

/// How long the list is trusted.
const FRESH: Duration = Duration::from_secs(5);
/// Least time between two reads prompted by an unknown name.
const MIN_REREAD: Duration = Duration::from_secs(1);

/// The cache.
#[derive(Debug, Default)]
pub struct BusCache {
    inner: Mutex<Option<(Instant, HashSet<String>)>>,
}

impl BusCache {
    /// Whether `name` is a bus.
    pub async fn exists(&self, store: &Store, name: &str) -> Result<bool, StoreError> {
        if name == DEFAULT_BUS {
            return Ok(true);
        }
        {
            let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, names)) = guard.as_ref() {
                let age = at.elapsed();
                if names.contains(name) && age < FRESH {
                    return Ok(true);
                }
                if !names.contains(name) && age < MIN_REREAD {
                    return Ok(false);
                }
            }
        }
        let names: HashSet<String> = store.buses().await?.into_iter().map(|b| b.name).collect();
        let found = names.contains(name);
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), names));
        Ok(found)
    }

    /// Forgets the list (after a bus is deleted).
    pub fn forget(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
