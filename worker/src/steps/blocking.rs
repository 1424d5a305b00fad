//! Model work in a blocking thread, with progress reported to the job and a stop flag set
//! on cancellation or when the caller's future is dropped.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use voxfleet_jobs::HandlerError;

use crate::context::JobContext;
use crate::steps::errors::join_error;

/// Sets the stop flag when dropped: the blocking work sees it at its next check.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs model work in a blocking thread. `work` gets a progress sink (audio milliseconds done;
/// reported to the job, clamped to `total_ms`, for the API's ETA) and a stop flag that is set
/// when the job is cancelled or this future is dropped (a job timeout, a drain): it checks the
/// flag between steps.
pub async fn run_blocking<T: Send + 'static>(
    ctx: &JobContext,
    total_ms: u64,
    work: impl FnOnce(&dyn Fn(u64), &AtomicBool) -> Result<T, HandlerError> + Send + 'static,
) -> Result<T, HandlerError> {
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let (ptx, mut prx) = watch::channel::<Option<u64>>(None);
    let flag = stop.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let progress = |done_ms: u64| {
            let _ = ptx.send(Some(done_ms));
        };
        work(&progress, &flag)
    });
    loop {
        tokio::select! {
            res = &mut task => return res.map_err(join_error)?,
            changed = prx.changed() => {
                if changed.is_ok() {
                    let done = *prx.borrow_and_update();
                    if let Some(done) = done {
                        ctx.progress(done.min(total_ms), total_ms).await;
                    }
                }
            }
            _ = ctx.cancel.cancelled(), if !stop.load(Ordering::Relaxed) => {
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
}
