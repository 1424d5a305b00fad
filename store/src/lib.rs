//! voxfleet-store: PostgreSQL, the source of truth, as both binaries use it.
//!
//! - [`budgets`]: monthly transcription budgets, reserved at submission; [`llm_budget`]:
//!   monthly LLM token budgets, reserved and committed by the platform.
//! - [`db`]: connect (creating the database if missing) and run the migrations.
//! - [`files`]: media file records, transcript segments and usage; [`media`]: the objects
//!   themselves through `object_store` (local folder or S3).
//! - [`jobs`]: job records: insert with idempotency, batched upserts of Redis snapshots
//!   (never overwriting a newer version), reads and listing.
//! - [`persist`]: moves job states from Redis's persist set into PostgreSQL, retrying while
//!   PostgreSQL is unreachable; nothing is dropped from Redis before PostgreSQL has it.
//! - [`reaper`]: recovers dead workers' jobs (expired leases).
//! - [`settings`]: the retry setting, read fresh at each decision with a last-known fallback;
//!   the active embedding profile.
//! - [`speakers`]: diarized speakers, their turns and voiceprints (the voiceprints' source of
//!   truth).
//! - [`submit`]: the one submission path (record, link, queue; undone when queueing fails).
//! - [`users`]: the people who own things, hold tokens and a role; [`tokens`]: hashed
//!   bearer tokens, each a user's; [`audit`]: the audit log, [`audit_events`] the codes its rows
//!   may carry.
pub mod audit;
pub mod audit_events;
pub mod auth_settings;
pub mod budgets;
pub mod costs;
pub mod db;
pub mod files;
pub mod jobs;
pub mod llm_budget;
pub mod media;
pub mod mfa;
pub mod persist;
pub mod reaper;
pub mod retention;
pub mod schedules;
pub mod search;
pub mod sessions;
pub mod settings;
pub mod shares;
pub mod speakers;
pub mod stats;
pub mod submit;
pub mod tokens;
pub mod users;

pub use db::{StoreError, connect};
pub use sqlx::PgPool;
