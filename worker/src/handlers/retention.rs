//! `retention`: deletes files older than the retention setting says, each in the crash-safe
//! order of `voxfleet_store::retention` (tombstone, index documents, storage object, rows).
//!
//! A run first finishes the files an interrupted run left tombstoned, then walks the eligible
//! files oldest first. The settings (days, timezone, whether failed files go too) are read when
//! the run starts and written into its report. A stop ends it between files; `dry_run` counts
//! and deletes nothing.
use chrono::Utc;
use serde_json::{Value, json};
use voxfleet_jobs::{HandlerError, RetentionInput, RunState, Section};
use voxfleet_store::retention::{self, Doomed};
use voxfleet_store::settings::get_retention_settings;

use crate::context::JobContext;
use crate::steps::file_removal::remove_file;
use crate::steps::section_run::{Run, finish_or_record};

/// Files listed per query (the list is re-read after each batch, so files that became
/// eligible or ineligible meanwhile are seen).
const BATCH: i64 = 200;

#[derive(Debug, Default)]
struct Counts {
    /// Eligible when the run started (plus the tombstoned ones it found).
    total: u64,
    deleted: u64,
    bytes_freed: u64,
    /// Tombstoned by an earlier, interrupted run and finished by this one.
    resumed: u64,
    /// Listed, but no longer eligible when their turn came (a new job started on them).
    skipped: u64,
}

pub async fn run(ctx: &JobContext, input: RetentionInput) -> Result<Value, HandlerError> {
    let settings = get_retention_settings(&ctx.rt.pool).await?;
    let tz = voxfleet_jobs::schedule::parse_timezone(&settings.timezone)
        .map_err(|e| HandlerError::permanent("invalid_setting", e))?;
    let as_of = input.as_of.unwrap_or_else(Utc::now);
    let cutoff = voxfleet_jobs::schedule::retention_cutoff(as_of, settings.retention_days, tz);
    let base = json!({
        "dry_run": input.dry_run,
        "as_of": as_of,
        "cutoff": cutoff,
        "retention_days": settings.retention_days,
        "timezone": settings.timezone,
        "delete_error_files": settings.delete_error_files,
    });
    let report = |c: &Counts| {
        let mut r = base.clone();
        if let Some(o) = r.as_object_mut() {
            o.insert("eligible".into(), json!(c.total));
            o.insert("files_deleted".into(), json!(c.deleted));
            o.insert("bytes_freed".into(), json!(c.bytes_freed));
            o.insert("resumed".into(), json!(c.resumed));
            o.insert("skipped".into(), json!(c.skipped));
        }
        r
    };
    let run = Run::start(ctx, Some(Section::Retention), &report(&Counts::default())).await?;
    let mut c = Counts::default();
    let res = sweep(
        ctx,
        &run,
        &input,
        cutoff,
        settings.delete_error_files,
        &mut c,
        &report,
    )
    .await;
    finish_or_record(&run, res, || report(&c)).await
}

async fn sweep(
    ctx: &JobContext,
    run: &Run<'_>,
    input: &RetentionInput,
    cutoff: chrono::DateTime<Utc>,
    delete_failed: bool,
    c: &mut Counts,
    report: &(dyn Fn(&Counts) -> Value + Sync),
) -> Result<Value, HandlerError> {
    let pool = &ctx.rt.pool;
    let (eligible, _) = retention::candidate_totals(pool, cutoff, delete_failed).await?;
    if input.dry_run {
        c.total = eligible as u64;
        return Ok(run.finish(RunState::Completed, report(c)).await);
    }
    let leftovers = retention::tombstoned(pool).await?;
    c.total = eligible as u64 + leftovers.len() as u64;
    run.progress(0, c.total, &report(c)).await;
    for d in leftovers {
        if run.stop_requested() {
            return Err(run.stopped(done(c), c.total, report(c)).await);
        }
        remove(ctx, input, &d, c).await?;
        c.resumed += 1;
        run.progress(done(c), c.total, &report(c)).await;
    }
    loop {
        let batch = retention::candidates(pool, cutoff, delete_failed, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for f in batch {
            if run.stop_requested() {
                return Err(run.stopped(done(c), c.total, report(c)).await);
            }
            match retention::mark_deleting(pool, f.id, cutoff, delete_failed).await? {
                Some(d) => remove(ctx, input, &d, c).await?,
                None => c.skipped += 1,
            }
            // files that became eligible after the start still count as work done
            c.total = c.total.max(done(c));
            run.progress(done(c), c.total, &report(c)).await;
        }
    }
    Ok(run.finish(RunState::Completed, report(c)).await)
}

fn done(c: &Counts) -> u64 {
    c.deleted + c.skipped
}

/// Steps 2 and 3 for a tombstoned file: its index documents, its object, then its rows. An
/// error leaves the file tombstoned (hidden) and fails the attempt as retryable: the retry,
/// or the next run, starts with it.
async fn remove(
    ctx: &JobContext,
    input: &RetentionInput,
    d: &Doomed,
    c: &mut Counts,
) -> Result<(), HandlerError> {
    let stall = input.stall_after.is_some_and(|n| c.deleted == u64::from(n));
    if remove_file(ctx, d, stall, "retention").await? {
        c.deleted += 1;
        c.bytes_freed += d.size_bytes.max(0) as u64;
    } else {
        // someone else (a concurrent run's attempt) finished it
        c.skipped += 1;
    }
    Ok(())
}
