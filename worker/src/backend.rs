//! voxfleet's Redis queue as an apalis backend.
//!
//! apalis drives the worker (its lifecycle, the tower layers for concurrency and panics);
//! this backend hands it jobs that a fetch loop has already claimed with the Lua claim
//! script. The fetch loop is plain tokio + redis rather than logic inside `poll_next`
//! because a claim must be an atomic script with a lease, an idle worker must block on a
//! Redis wake list (not poll on a timer), and it must only claim while a concurrency slot is
//! free, so no job sits leased in a local buffer. apalis's `Backend` trait expresses the hand-off
//! (a stream of tasks) but not those three, so they live in `fetch.rs`.
use std::task::{Context, Poll};

use apalis::prelude::{Backend, Task, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::layers::Identity;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::{RandomId, TaskId};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use voxfleet_jobs::ClaimedJob;

/// A claimed job on its way to a handler, holding one of the worker's concurrency slots.
pub struct ClaimedTask {
    pub claimed: ClaimedJob,
    pub permit: OwnedSemaphorePermit,
}

pub struct RedisBackend {
    rx: mpsc::Receiver<ClaimedTask>,
}

impl RedisBackend {
    pub fn new(rx: mpsc::Receiver<ClaimedTask>) -> Self {
        Self { rx }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("redis backend closed")]
pub struct BackendClosed;

impl Backend for RedisBackend {
    type Task = Task<ClaimedTask>;
    type Error = BackendClosed;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.rx.poll_recv(cx).map(|t| {
            t.map(|t| {
                // the apalis task id is the job id, so apalis's spans name the job
                let id = TaskId::from(t.claimed.job.id.to_string());
                Ok(TaskBuilder::new(t).task_id(id).build())
            })
        })
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.rx.close();
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for RedisBackend {
    type Args = ClaimedTask;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}
