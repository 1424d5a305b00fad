//! The control plane's services: what the routes, the scheduler and the upload path do,
//! without HTTP. A route checks who calls, extracts the request, calls one service and shapes
//! the answer; services never import routes.
//! - [`submit`]: checks on a caller's submission and the one submission path.
//! - [`files`]: files read with their jobs' live state, only the caller's; upload `process`.
//! - [`jobs`]: jobs read with their live state, only the caller's.
//! - [`recovery`]: re-runs, stuck jobs, and recovering a user's failed and stuck work.
//! - [`sections`]: the maintenance sections' runs (start one at a time, stop, read).
pub mod files;
pub mod jobs;
pub mod recovery;
pub mod sections;
pub mod submit;
