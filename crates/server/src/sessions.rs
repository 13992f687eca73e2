//! A small pool of store sessions for request handlers and background work.

use std::sync::{Arc, Mutex};

use upmarket_store::{StoreError, StoreSession};

/// Sessions are forked from a root session on demand and reused.
#[derive(Clone)]
pub struct SessionPool {
    inner: Arc<Inner>,
}

struct Inner {
    root: Mutex<Box<dyn StoreSession>>,
    idle: Mutex<Vec<Box<dyn StoreSession>>>,
}

impl SessionPool {
    /// A pool forking from `root`.
    pub fn new(root: Box<dyn StoreSession>) -> Self {
        SessionPool {
            inner: Arc::new(Inner {
                root: Mutex::new(root),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// An idle session, or a new one.
    pub fn take(&self) -> Result<Box<dyn StoreSession>, StoreError> {
        if let Some(s) = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
        {
            return Ok(s);
        }
        self.inner
            .root
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fork()
    }

    /// Returns a session for reuse.
    pub fn give_back(&self, session: Box<dyn StoreSession>) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 8 {
            idle.push(session);
        }
    }
}
