//! voxfleet-jobs: everything both binaries must agree on about a job.
//!
//! - [`kinds`]: the job kinds, one file each with its payload type, checks, default queue,
//!   admin-only flag, run time and maintenance section (parsed once at the edge).
//! - [`model`]: ids, statuses, priorities and queue names.
//! - [`snapshot`]: a job's whole state at one moment, and the request that queues one.
//! - [`clock`]: where the queue reads the time (the system's, or a manual one in tests).
//! - [`retry`]: the retry policy (global setting + per-job cap) and exponential backoff with jitter.
//! - [`error`]: errors a handler returns (with a retry class and a stable code) and queue errors.
//! - [`keys`]: every Redis key, built in one place.
//! - [`conn`]: the connection to one Redis server or to a Redis Cluster, chosen by the URL.
//! - [`queue`]: the Redis queue protocol (enqueue, claim with lease, renew, finish, release,
//!   cancel, progress, reap, persist hand-off), all state changes done by Lua scripts in `scripts/`.
//! - [`events`]: the status/progress events published on Redis pub/sub.
pub mod clock;
pub mod conn;
pub mod error;
pub mod events;
pub mod fleet;
mod hash;
pub mod keys;
pub mod kinds;
pub mod model;
pub mod outage;
pub mod queue;
pub mod retry;
pub mod schedule;
mod scripts;
pub mod snapshot;

pub use clock::Clock;
pub use conn::{RedisConn, RedisTarget};
pub use error::{ErrorClass, HandlerError, QueueError};
pub use events::JobEvent;
pub use keys::Keys;
pub use kinds::{
    CollectStatsInput, DeleteUserInput, DiagnosticFail, DiagnosticInput, DiarizeInput,
    EMBEDDING_PROFILES, EmbeddingMigrationInput, EmbeddingRepairInput, ExtractEmbeddingsInput,
    InputError, IntegrityCheckInput, JobInput, JobKind, Kind, KnownSpeaker, MigrationAction,
    ReindexInput, ReindexMode, RetentionInput, RunState, Section, Task, TranscribeInput,
};
pub use model::{JobId, JobStatus, Priority, QueueName};
pub use outage::Outage;
pub use queue::{
    CancelOutcome, Claim, ClaimedJob, Finished, Outcome, QueueClient, QueueOptions, QueueStats,
};
pub use retry::{RetryDecision, RetrySettings};
pub use snapshot::{EnqueueRequest, JobSnapshot};
