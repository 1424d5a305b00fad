//! How an idle worker sleeps until there is work: every enqueue pushes a token onto its queue's
//! `wake` LIST, and idle workers block on those lists.
//!
//! On one Redis server that is one `BLPOP` over all the worker's queues. On a Redis Cluster each
//! queue's keys live in their own hash slot, and a command over several slots is refused
//! (`CROSSSLOT`), so there each queue has its own blocking connection and a task that blocks on
//! that queue's list, but only while the worker is waiting: a busy worker takes no tokens, and
//! they wake the idle workers they were pushed for. A token that arrives as a wait ends is kept
//! and ends the next wait at once, so no signal is lost.
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::QueueClient;
use crate::conn::RedisConn;
use crate::error::QueueError;
use crate::model::QueueName;

pub struct WorkWaiter {
    inner: Inner,
}

enum Inner {
    /// One server: one connection, one `BLPOP` over every queue's list.
    Together { conn: RedisConn, keys: Vec<String> },
    /// A cluster: a blocking task per queue, let loose while `waiting` is true.
    PerQueue {
        waiting: watch::Sender<bool>,
        woke: Arc<Notify>,
        tasks: Vec<JoinHandle<()>>,
    },
}

impl WorkWaiter {
    pub(super) fn new(
        q: &QueueClient,
        queues: &[QueueName],
        max_block: Duration,
    ) -> Result<Self, QueueError> {
        let keys: Vec<String> = queues.iter().map(|n| q.keys().queue(n).wake()).collect();
        if !q.is_cluster() {
            return Ok(Self {
                inner: Inner::Together {
                    conn: q.blocking_connection(max_block)?,
                    keys,
                },
            });
        }
        let (waiting, _) = watch::channel(false);
        let woke = Arc::new(Notify::new());
        let mut tasks = vec![];
        for key in keys {
            let conn = q.blocking_connection(max_block)?;
            tasks.push(tokio::spawn(block_while_waiting(
                conn,
                key,
                max_block,
                waiting.subscribe(),
                woke.clone(),
            )));
        }
        Ok(Self {
            inner: Inner::PerQueue {
                waiting,
                woke,
                tasks,
            },
        })
    }

    /// Blocks up to `timeout` until an enqueue signals one of the queues. Returns whether a
    /// signal arrived.
    pub async fn wait(&mut self, timeout: Duration) -> Result<bool, QueueError> {
        match &mut self.inner {
            Inner::Together { conn, keys } => {
                let secs = timeout.as_secs_f64().max(0.01);
                let got: Option<(String, String)> = conn.blpop(keys.as_slice(), secs).await?;
                Ok(got.is_some())
            }
            Inner::PerQueue { waiting, woke, .. } => {
                waiting.send_replace(true);
                let got = tokio::time::timeout(timeout, woke.notified()).await;
                waiting.send_replace(false);
                Ok(got.is_ok())
            }
        }
    }
}

impl Drop for WorkWaiter {
    fn drop(&mut self) {
        if let Inner::PerQueue { tasks, .. } = &self.inner {
            for t in tasks {
                t.abort();
            }
        }
    }
}

/// One queue's blocking loop on a cluster: `BLPOP` its wake list while the worker waits, and
/// tell the worker when a token came.
async fn block_while_waiting(
    mut conn: RedisConn,
    key: String,
    max_block: Duration,
    mut waiting: watch::Receiver<bool>,
    woke: Arc<Notify>,
) {
    let secs = max_block.as_secs_f64().max(0.01);
    loop {
        while !*waiting.borrow_and_update() {
            if waiting.changed().await.is_err() {
                return;
            }
        }
        let got: Result<Option<(String, String)>, _> = conn.blpop(&key, secs).await;
        match got {
            Ok(Some(_)) => woke.notify_one(),
            Ok(None) => {}
            // the fetch loop's claims see the outage and back off; here, only don't spin
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
