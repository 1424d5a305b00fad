//! voxfleet-bench-search: reindex throughput (chunks/s) and search latency (p50/p99) of the
//! embedded index on a generated corpus of at least 10,000 transcript chunks.
//!
//! - Corpus: `--chunks` chunks (default 10,000) in files of ~10 chunks. Each file is a
//!   generated transcript (deterministic, seeded): 30 segments of 2–4 s, its words drawn from
//!   a common-English word list mixed with one of 24 topics' words, so text and vector
//!   queries have something to find. Chunked exactly as the `reindex` job does it
//!   (`chunk_transcript`, 200 words, 40 overlap).
//! - Reindex: what the `reindex` job does per batch of 8 files, minus PostgreSQL: embed every
//!   chunk with the text model (`--model`, both by default), then one `replace_chunks` write
//!   of the batch into an `EmbeddedIndex` in a temporary folder. Embedding and index-write
//!   times are reported apart.
//! - Search: `--queries` queries (two topic words, or a paraphrase-like word pair) through
//!   `hybrid_search` (BM25 + exact vector scan + reciprocal rank fusion, limit 10), query
//!   embedding included; then text-only and vector-only. p50 and p99 over all queries, after
//!   10 warm-up queries.
//!
//! No peer is named for this benchmark; the figures go in the README as voxfleet's own.
//!
//! ```text
//! cargo build --release -p voxfleet-benches --bin voxfleet-bench-search
//! $CARGO_TARGET_DIR/release/voxfleet-bench-search [--chunks 10000] [--queries 200] [--model all-minilm-l6-v2-int8]
//! ```

#[path = "../cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "../progress.rs"]
#[allow(dead_code)]
mod progress;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use cli::parse_positive;
use progress::bar;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use uuid::Uuid;
use voxfleet_models::ModelsDir;
use voxfleet_search::{ChunkDoc, EmbeddedIndex, Scope, SearchIndex, chunk_id, hybrid_search};
use voxfleet_textembed::{ChunkOptions, TextEmbedder, TimedText, chunk_transcript};

#[derive(Debug, Parser)]
#[command(
    name = "voxfleet-bench-search",
    about = "Reindex throughput and search latency of the embedded index"
)]
struct Args {
    /// Chunks in the corpus (at least this many are generated).
    #[arg(long, default_value_t = 10_000, value_parser = parse_positive)]
    chunks: usize,
    /// Search queries timed per mode.
    #[arg(long, default_value_t = 200, value_parser = parse_positive)]
    queries: usize,
    /// Text-embedding model(s); repeat for several (default: both shipped ones).
    #[arg(long)]
    model: Vec<String>,
    /// The models directory (default: VOXFLEET_MODELS_DIR or ~/.cache/voxfleet/models).
    #[arg(long, env = "VOXFLEET_MODELS_DIR")]
    models_dir: Option<std::path::PathBuf>,
}

const COMMON: &[&str] = &[
    "the", "and", "we", "that", "is", "it", "for", "on", "with", "as", "this", "was", "at", "by",
    "be", "have", "from", "or", "one", "had", "not", "but", "what", "all", "were", "when", "there",
    "can", "an", "your", "which", "their", "said", "if", "do", "will", "each", "about", "how",
    "up", "out", "them", "then", "she", "many", "some", "so", "these", "would", "other", "into",
    "has", "more", "her", "two", "like", "him", "see", "time", "could", "no", "make", "than",
    "first", "been", "its", "who", "now", "people", "my", "made", "over", "did", "down", "only",
    "way", "find", "use", "may", "water", "long", "little", "very", "after", "words", "called",
    "just", "where", "most", "know", "get", "through", "back", "much", "before", "go", "good",
    "new", "write", "our", "used", "me", "man", "too", "any", "day", "same", "right", "look",
    "think", "also", "around", "another", "came", "come", "work", "three", "word", "must",
    "because", "does", "part", "even", "place", "well", "such", "here", "take", "why", "things",
];

const TOPICS: &[&[&str]] = &[
    &[
        "budget",
        "revenue",
        "quarterly",
        "forecast",
        "spending",
        "invoice",
        "accounting",
        "profit",
    ],
    &[
        "hiking", "mountain", "trail", "summit", "boots", "backpack", "camping", "ridge",
    ],
    &[
        "cooking", "recipe", "oven", "garlic", "onions", "simmer", "kitchen", "flavour",
    ],
    &[
        "football", "match", "goal", "striker", "referee", "season", "league", "penalty",
    ],
    &[
        "election",
        "voters",
        "campaign",
        "ballot",
        "senate",
        "policy",
        "candidate",
        "debate",
    ],
    &[
        "vaccine",
        "patients",
        "clinic",
        "doctor",
        "symptoms",
        "hospital",
        "treatment",
        "nurse",
    ],
    &[
        "server", "database", "deploy", "latency", "cluster", "queue", "backup", "outage",
    ],
    &[
        "garden", "tomatoes", "soil", "compost", "seeds", "watering", "harvest", "roses",
    ],
    &[
        "river", "delta", "flood", "channel", "sediment", "lake", "current", "bank",
    ],
    &[
        "guitar",
        "concert",
        "melody",
        "drummer",
        "album",
        "chorus",
        "rehearsal",
        "stage",
    ],
    &[
        "school",
        "teacher",
        "homework",
        "exam",
        "classroom",
        "pupils",
        "lesson",
        "grades",
    ],
    &[
        "airport", "flight", "luggage", "passport", "boarding", "delay", "runway", "pilot",
    ],
    &[
        "painting", "canvas", "gallery", "brush", "portrait", "colour", "museum", "sketch",
    ],
    &[
        "housing",
        "rent",
        "mortgage",
        "landlord",
        "apartment",
        "tenant",
        "lease",
        "deposit",
    ],
    &[
        "weather",
        "storm",
        "rainfall",
        "forecasting",
        "thunder",
        "humidity",
        "snow",
        "wind",
    ],
    &[
        "startup",
        "investors",
        "funding",
        "founder",
        "pitch",
        "valuation",
        "product",
        "launch",
    ],
    &[
        "dog", "puppy", "leash", "training", "vet", "walks", "treats", "bark",
    ],
    &[
        "train",
        "railway",
        "station",
        "platform",
        "ticket",
        "commuters",
        "carriage",
        "timetable",
    ],
    &[
        "climate",
        "emissions",
        "carbon",
        "solar",
        "turbines",
        "renewable",
        "warming",
        "grid",
    ],
    &[
        "novel",
        "author",
        "chapter",
        "library",
        "poetry",
        "publisher",
        "fiction",
        "reader",
    ],
    &[
        "chess",
        "opening",
        "bishop",
        "knight",
        "tournament",
        "endgame",
        "checkmate",
        "rook",
    ],
    &[
        "coffee", "espresso", "beans", "roast", "barista", "latte", "grinder", "brew",
    ],
    &[
        "ocean", "whales", "coral", "divers", "reef", "tides", "shark", "sailing",
    ],
    &[
        "space",
        "rocket",
        "orbit",
        "astronaut",
        "telescope",
        "planet",
        "launchpad",
        "galaxy",
    ],
];

/// One generated transcript of `words` words on `topic`.
fn transcript(rng: &mut StdRng, topic: usize, words: usize) -> Vec<TimedText> {
    let mut out = Vec::new();
    let mut t = 0.0;
    let per = words.div_ceil(30);
    for _ in 0..30 {
        let text: Vec<&str> = (0..per)
            .map(|_| {
                if rng.random_bool(0.25) {
                    TOPICS[topic][rng.random_range(0..TOPICS[topic].len())]
                } else {
                    COMMON[rng.random_range(0..COMMON.len())]
                }
            })
            .collect();
        let d = rng.random_range(2.0..4.0);
        out.push(TimedText {
            start_s: t,
            end_s: t + d,
            text: text.join(" "),
        });
        t += d + 0.2;
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "  {name:<22} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   ({} queries)",
        pct(&ms, 50.0),
        pct(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN),
        ms.len()
    );
}

struct File {
    id: Uuid,
    owner: Uuid,
    chunks: Vec<voxfleet_textembed::Chunk>,
}

fn corpus(n: usize) -> Vec<File> {
    let mut rng = StdRng::seed_from_u64(7);
    let owners: Vec<Uuid> = (0..20).map(|_| Uuid::from_u128(rng.random())).collect();
    let opts = ChunkOptions::default();
    let mut files = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < n {
        // ~1,700 words: 10 chunks of 200 words with 40 of overlap.
        let segs = transcript(&mut rng, i % TOPICS.len(), 1_700);
        let chunks = chunk_transcript(&segs, &[], &opts).expect("default options are valid");
        total += chunks.len();
        files.push(File {
            id: Uuid::from_u128(rng.random()),
            owner: owners[i % owners.len()],
            chunks,
        });
        i += 1;
    }
    files
}

async fn bench_model(args: &Args, models: &ModelsDir, name: &str, files: &[File]) -> Result<()> {
    let t0 = Instant::now();
    let model = TextEmbedder::load(models, name)
        .with_context(|| format!("loading {name} (run `voxfleet-worker models fetch`)"))?;
    println!(
        "\n== {name} (loaded in {:.2} s, dim {})",
        t0.elapsed().as_secs_f64(),
        model.dim()
    );
    let dir = tempfile::tempdir()?;
    let index = EmbeddedIndex::open(dir.path())?;
    index.ensure_chunks(model.dim()).await?;
    let total: usize = files.iter().map(|f| f.chunks.len()).sum();
    let pb = bar(total as u64, format!("reindex {name}"));
    let (mut embed_s, mut write_s) = (0.0, 0.0);
    let started = Instant::now();
    for batch in files.chunks(8) {
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.text.as_str()))
            .collect();
        let t = Instant::now();
        let mut vectors = Vec::with_capacity(texts.len());
        for part in texts.chunks(32) {
            vectors.extend(model.embed(part)?);
        }
        embed_s += t.elapsed().as_secs_f64();
        let mut vectors = vectors.into_iter();
        let docs: Vec<(Uuid, Vec<ChunkDoc>)> = batch
            .iter()
            .map(|f| {
                let docs = f
                    .chunks
                    .iter()
                    .zip(vectors.by_ref())
                    .map(|(c, v)| ChunkDoc {
                        id: chunk_id(f.id, c.seq),
                        file_id: f.id,
                        owner: Some(f.owner),
                        seq: c.seq,
                        start_s: c.start_s,
                        end_s: c.end_s,
                        speakers: c.speakers.clone(),
                        text: c.text.clone(),
                        model: name.to_owned(),
                        vector: v,
                    })
                    .collect();
                (f.id, docs)
            })
            .collect();
        let t = Instant::now();
        index.replace_chunks(docs).await?;
        write_s += t.elapsed().as_secs_f64();
        pb.inc(texts.len() as u64);
    }
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let docs = index
        .indices()
        .await?
        .into_iter()
        .find(|i| i.name == voxfleet_search::CHUNKS)
        .map(|i| i.docs)
        .unwrap_or(0);
    ensure!(
        docs as usize == total,
        "the index holds {docs} chunks, expected {total}"
    );
    println!(
        "  reindex: {total} chunks of {} files in {wall:.1} s = {:.1} chunks/s",
        files.len(),
        total as f64 / wall
    );
    println!(
        "    embedding {embed_s:.1} s ({:.1} chunks/s), index writes {write_s:.2} s ({:.0} chunks/s)",
        total as f64 / embed_s,
        total as f64 / write_s.max(1e-9)
    );

    let mut rng = StdRng::seed_from_u64(11);
    let queries: Vec<String> = (0..args.queries + 10)
        .map(|_| {
            let t = TOPICS[rng.random_range(0..TOPICS.len())];
            format!(
                "{} {}",
                t[rng.random_range(0..t.len())],
                t[rng.random_range(0..t.len())]
            )
        })
        .collect();
    let scope = |i: usize| {
        if i.is_multiple_of(2) {
            Scope::All
        } else {
            Scope::Owner(files[i % files.len()].owner)
        }
    };
    let mut hybrid = Vec::new();
    let mut text = Vec::new();
    let mut vector = Vec::new();
    let mut embed_ms = Vec::new();
    let mut found = 0usize;
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let v = model
            .embed(&[q.as_str()])?
            .pop()
            .context("no query vector")?;
        let e = t.elapsed();
        let hits = hybrid_search(&index, q, Some(&v), scope(i), 10).await?;
        let h = t.elapsed();
        let t2 = Instant::now();
        index.search_text(q, scope(i), 10).await?;
        let tx = t2.elapsed();
        let t3 = Instant::now();
        index.search_vector(&v, scope(i), 10).await?;
        let vx = t3.elapsed();
        if i >= 10 {
            found += usize::from(!hits.is_empty());
            hybrid.push(ms(h));
            embed_ms.push(ms(e));
            text.push(ms(tx));
            vector.push(ms(vx));
        }
    }
    println!("  search over {total} chunks (limit 10; half the queries scoped to one owner):");
    summary("hybrid (incl. embed)", hybrid);
    summary("query embedding", embed_ms);
    summary("text (BM25)", text);
    summary("vector (exact scan)", vector);
    println!("  queries with hits: {found} of {}", args.queries);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let models = ModelsDir::new(
        args.models_dir
            .clone()
            .unwrap_or_else(voxfleet_models::default_models_dir),
    );
    voxfleet_models::onnx::ensure_onnxruntime(&models)
        .context("ONNX Runtime (run `voxfleet-worker models fetch`)")?;
    let names = if args.model.is_empty() {
        vec![
            "all-minilm-l6-v2-int8".to_owned(),
            "all-minilm-l6-v2".to_owned(),
        ]
    } else {
        args.model.clone()
    };
    let t = Instant::now();
    let files = corpus(args.chunks);
    let total: usize = files.iter().map(|f| f.chunks.len()).sum();
    println!(
        "corpus: {} files, {total} chunks (200 words, 40 overlap), generated in {:.2} s; {} CPUs",
        files.len(),
        t.elapsed().as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for n in &names {
        bench_model(&args, &models, n, &files).await?;
    }
    Ok(())
}
