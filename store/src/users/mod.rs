//! Users: the people (and service accounts) who own files, jobs, speakers and usage, hold
//! API tokens and a role (`user`, `admin`, `super_admin`).
//!
//! Until migration 0009 a token was the owner of what it made; each token then became a user
//! with the token's own id, so every `owner` column names a user. The rules an admin panel
//! needs are enforced here, in the transaction that changes the row, so every caller (API,
//! command line) gets them: nobody changes their own role, disables or deletes themselves,
//! the last active super_admin stays one, and only a super_admin touches a super_admin.
mod checks;
mod delete;
mod model;
mod read;
mod write;

pub(crate) use checks::hash_off_runtime;
pub use checks::{clean_email, hash_password, verify_password};
pub use delete::{Finished, Marked, finish_delete, is_deleting, mark_deleting};
pub use model::*;
pub use read::{UserFilter, find_external, get_user, list_users, transcription_defaults, usage};
pub(crate) use write::create_service_user;
pub use write::{Acting, check_manageable, create_user, reset_password, update_user};
