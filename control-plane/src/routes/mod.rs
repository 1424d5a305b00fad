//! The API's routes, one module per resource.
pub mod audit;
pub mod auth;
pub mod events;
pub mod files;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod llm;
pub mod maintenance;
pub mod openai;
pub mod retention;
pub mod schedules;
pub mod search;
pub mod settings;
pub mod shares;
pub mod speakers;
pub mod stats;
pub mod tokens;
pub mod usage;
pub mod users;

use crate::error::{ApiError, Code};

pub async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}
