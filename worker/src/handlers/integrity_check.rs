//! `integrity_check`: scans every index, page by page, for documents whose PostgreSQL rows are
//! gone (a chunk of a deleted or no-longer-transcribed file, a voiceprint of a deleted
//! speaker), deletes them (unless `dry_run`), and reports per index: documents scanned,
//! orphans found, orphans cleaned, with PostgreSQL's reference counts.
use std::collections::HashSet;

use serde_json::{Value, json};
use uuid::Uuid;
use voxfleet_jobs::{HandlerError, IntegrityCheckInput, RunState, Section};
use voxfleet_search::{CHUNKS, DocKey, SearchIndex};

use crate::context::JobContext;
use crate::steps::section_run::{Run, finish_or_record};

const PAGE: usize = 500;

#[derive(Debug, Clone, Default)]
struct IndexCount {
    index: String,
    docs: u64,
    scanned: u64,
    orphans: u64,
    cleaned: u64,
}

fn report(dry_run: bool, per: &[IndexCount], refs: &Value) -> Value {
    json!({
        "dry_run": dry_run,
        "indices": per.iter().map(|c| json!({
            "index": c.index,
            "docs": c.docs,
            "scanned": c.scanned,
            "orphans": c.orphans,
            "cleaned": c.cleaned,
        })).collect::<Vec<_>>(),
        "orphans": per.iter().map(|c| c.orphans).sum::<u64>(),
        "cleaned": per.iter().map(|c| c.cleaned).sum::<u64>(),
        "references": refs,
    })
}

pub async fn run(ctx: &JobContext, input: IntegrityCheckInput) -> Result<Value, HandlerError> {
    let run = Run::start(
        ctx,
        Some(Section::Integrity),
        &report(input.dry_run, &[], &json!({})),
    )
    .await?;
    let mut per = Vec::new();
    let mut refs = json!({});
    let res = check(ctx, &run, input.dry_run, &mut per, &mut refs).await;
    finish_or_record(&run, res, || report(input.dry_run, &per, &refs)).await
}

async fn check(
    ctx: &JobContext,
    run: &Run<'_>,
    dry_run: bool,
    per: &mut Vec<IndexCount>,
    refs: &mut Value,
) -> Result<Value, HandlerError> {
    let pool = &ctx.rt.pool;
    let index = &ctx.rt.search.index;
    let counts = voxfleet_store::search::reference_counts(pool).await?;
    *refs = serde_json::to_value(&counts).unwrap_or_default();
    let infos = index.indices().await?;
    *per = infos
        .iter()
        .map(|i| IndexCount {
            index: i.name.clone(),
            docs: i.docs,
            ..Default::default()
        })
        .collect();
    let total: u64 = per.iter().map(|c| c.docs).sum();
    let mut done = 0u64;
    run.progress(0, total, &report(dry_run, per, refs)).await;
    for i in 0..per.len() {
        let name = per[i].index.clone();
        let mut cursor = None;
        loop {
            if run.stop_requested() {
                return Err(run.stopped(done, total, report(dry_run, per, refs)).await);
            }
            let page = index.scan(&name, cursor.take(), PAGE).await?;
            let orphans = orphans(ctx, &name, &page.keys).await?;
            let c = &mut per[i];
            c.scanned += page.keys.len() as u64;
            c.orphans += orphans.len() as u64;
            if !dry_run && !orphans.is_empty() {
                c.cleaned += index.delete_docs(&name, &orphans).await?;
            }
            done += page.keys.len() as u64;
            run.progress(done, total.max(done), &report(dry_run, per, refs))
                .await;
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    let r = report(dry_run, per, refs);
    tracing::info!(job.id = %ctx.job.job.id, orphans = %r["orphans"], cleaned = %r["cleaned"], "integrity check done");
    Ok(run.finish(RunState::Completed, r).await)
}

/// The ids of documents in `keys` whose rows are gone.
async fn orphans(
    ctx: &JobContext,
    index: &str,
    keys: &[DocKey],
) -> Result<Vec<String>, HandlerError> {
    let pool = &ctx.rt.pool;
    if index == CHUNKS {
        let files: Vec<Uuid> = keys
            .iter()
            .map(|k| k.file_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let live = voxfleet_store::search::transcribed_files(pool, &files).await?;
        Ok(keys
            .iter()
            .filter(|k| !live.contains(&k.file_id))
            .map(|k| k.id.clone())
            .collect())
    } else if index.starts_with("speakers_") {
        let ids: Vec<Uuid> = keys.iter().filter_map(|k| k.speaker_id).collect();
        let live = voxfleet_store::search::existing_speakers(pool, &ids).await?;
        Ok(keys
            .iter()
            .filter(|k| k.speaker_id.is_none_or(|s| !live.contains(&s)))
            .map(|k| k.id.clone())
            .collect())
    } else {
        // An index this version does not know: leave it alone.
        Ok(Vec::new())
    }
}
