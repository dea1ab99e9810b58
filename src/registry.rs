//! The live set of streams: the `streams` table plus an in-memory index that the push path reads
//! without touching SQLite. Every change goes to the database first, then to the index.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{watch, Mutex};

use crate::store::{Store, StoreError};
use crate::stream::Stream;

pub struct Registry {
    store: Store,
    live: RwLock<HashMap<String, Arc<Stream>>>,
    /// Serialises read-modify-write cycles so that two admin calls cannot lose each other's change.
    edits: Mutex<()>,
    /// Bumped on every change; pollers and health checks watch it.
    version: watch::Sender<u64>,
}

impl Registry {
    pub async fn load(store: Store) -> Result<Registry, StoreError> {
        let rows = store.load_live_streams().await?;
        let live = rows
            .into_iter()
            .map(|s| (s.id.clone(), Arc::new(s)))
            .collect();
        Ok(Registry {
            store,
            live: RwLock::new(live),
            edits: Mutex::new(()),
            version: watch::channel(0).0,
        })
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Stream>>> {
        match self.live.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn put(&self, stream: Arc<Stream>) {
        let mut map = match self.live.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if stream.deleted_at.is_some() {
            map.remove(&stream.id);
        } else {
            map.insert(stream.id.clone(), stream);
        }
        drop(map);
        self.version.send_modify(|v| *v += 1);
    }

    /// A stream that is not deleted.
    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.read_map().get(id).cloned()
    }

    /// Every stream that is not deleted, oldest first.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self.read_map().values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    pub fn len(&self) -> usize {
        self.read_map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Stores a new stream.
    pub async fn create(&self, stream: Stream) -> Result<Arc<Stream>, StoreError> {
        let _guard = self.edits.lock().await;
        let row = stream.clone();
        self.store.upsert_stream(row).await?;
        let stream = Arc::new(stream);
        self.put(stream.clone());
        Ok(stream)
    }

    /// Applies `edit` to the stored record of a live stream and saves it. `edit` may refuse the
    /// change by returning an error, in which case nothing is written.
    pub async fn modify<E, F>(&self, id: &str, edit: F) -> Result<Option<Arc<Stream>>, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut Stream) -> Result<(), E>,
    {
        let _guard = self.edits.lock().await;
        let current = self.store.get_stream(id).await?;
        let Some(mut stream) = current.filter(|s| s.deleted_at.is_none()) else {
            return Ok(None);
        };
        edit(&mut stream)?;
        let row = stream.clone();
        self.store.upsert_stream(row).await?;
        let stream = Arc::new(stream);
        self.put(stream.clone());
        Ok(Some(stream))
    }

    /// Re-reads one stream (`Some(id)`) or every stream (`None`) from the database, after
    /// another replica changed it; a deleted or unknown stream leaves the index.
    pub async fn reload(&self, id: Option<&str>) -> Result<(), StoreError> {
        match id {
            Some(id) => {
                let fresh = self.store.get_stream(id).await?;
                match fresh {
                    Some(s) => self.put(Arc::new(s)),
                    None => {
                        let mut map = match self.live.write() {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        map.remove(id);
                        drop(map);
                        self.version.send_modify(|v| *v += 1);
                    }
                }
            }
            None => {
                let rows = self.store.load_live_streams().await?;
                let fresh: HashMap<String, Arc<Stream>> = rows
                    .into_iter()
                    .map(|s| (s.id.clone(), Arc::new(s)))
                    .collect();
                let mut map = match self.live.write() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                // Only a real difference wakes the pollers and health checks.
                let changed = map.len() != fresh.len()
                    || fresh
                        .iter()
                        .any(|(k, v)| map.get(k).is_none_or(|cur| **cur != **v));
                if changed {
                    *map = fresh;
                    drop(map);
                    self.version.send_modify(|v| *v += 1);
                }
            }
        }
        Ok(())
    }

    /// Updates the cached copy after a targeted UPDATE made elsewhere (intake bookkeeping) has
    /// committed. Read, change and replace happen under one write lock, so a concurrent delete,
    /// rotation or update is never overwritten with an older copy.
    pub fn refresh_cached(&self, id: &str, update: impl FnOnce(&mut Stream)) {
        let mut map = match self.live.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some(current) = map.get(id) else {
            return;
        };
        let mut s = (**current).clone();
        update(&mut s);
        map.insert(id.to_string(), Arc::new(s));
        drop(map);
        self.version.send_modify(|v| *v += 1);
    }
}
