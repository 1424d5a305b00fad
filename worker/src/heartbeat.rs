//! The heartbeat: every few seconds the worker publishes its queues, running jobs, device and
//! GPU statistics to Redis, and beside them its readings (GPUs and host CPU, memory, disks),
//! which expire three intervals later. The control plane reports a worker `lost` when its last
//! heartbeat is older than three intervals, and forgets it after an hour.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use voxfleet_jobs::Outage;
use voxfleet_jobs::fleet::{LoadedModel, SystemSampler, WorkerInfo, WorkerState, sample_system};

use crate::context::Runtime;
use crate::gpu::Gpus;

pub struct Heartbeat {
    pub rt: Arc<Runtime>,
    pub gpus: Arc<Gpus>,
    /// Kept between beats: each CPU reading covers the interval since the previous beat.
    pub sampler: Option<Arc<Mutex<SystemSampler>>>,
    pub device: String,
    pub host: String,
    pub concurrency: u32,
    pub interval: Duration,
    pub started_at: DateTime<Utc>,
}

impl Heartbeat {
    fn info(&self, state: WorkerState) -> WorkerInfo {
        WorkerInfo {
            name: self.rt.name.clone(),
            host: self.host.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            queues: self.rt.queues.iter().map(|q| q.to_string()).collect(),
            concurrency: self.concurrency,
            running: self
                .rt
                .running_ids()
                .into_iter()
                .map(|(_, id)| id)
                .collect(),
            device: self.device.clone(),
            gpus: self.gpus.stats(),
            state,
            started_at: self.started_at,
            last_heartbeat: Utc::now(),
            heartbeat_interval_s: self.interval.as_secs().max(1),
            models: self
                .rt
                .speech
                .models
                .loaded()
                .into_iter()
                .map(|m| LoadedModel {
                    name: m.name,
                    device: m.device,
                    bytes: m.bytes,
                    engine: m.engine,
                    compute_type: m.compute_type,
                    idle_s: m.idle_s,
                    in_use: m.in_use,
                })
                .chain(self.rt.speech.speaker_models.loaded())
                .chain(self.rt.search.loaded())
                .collect(),
        }
    }

    pub async fn beat(&self, state: WorkerState, outage: &mut Outage) {
        // kept for an hour: a worker that dies silently is then listed as `lost` (its last
        // heartbeat too old) instead of vanishing from the fleet
        let ttl = Duration::from_secs(3600);
        let system = match (&self.sampler, state) {
            (Some(s), WorkerState::Running | WorkerState::Draining) => {
                sample_system(s, Duration::from_secs(2)).await
            }
            _ => None,
        };
        match self
            .rt
            .queue
            .heartbeat_with(&self.info(state), ttl, system)
            .await
        {
            Ok(()) => outage.ok(),
            Err(e) => {
                outage.failed(&e);
            }
        }
    }

    /// Beats until the state becomes `Stopped`, then beats once more and returns.
    pub async fn run(self, mut state: watch::Receiver<WorkerState>) {
        let mut outage = Outage::new("redis");
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                r = state.changed() => if r.is_err() { return },
            }
            let s = *state.borrow();
            // Idle models go before the beat, so it reports what is held.
            let models = self.rt.speech.models.clone();
            if models.limits().unload_idle_after.is_some() {
                let _ = tokio::task::spawn_blocking(move || models.unload_idle()).await;
            }
            self.beat(s, &mut outage).await;
            if s == WorkerState::Stopped {
                return;
            }
        }
    }
}
