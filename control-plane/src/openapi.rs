//! The OpenAPI document (utoipa), built from the same route table the server uses.
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::routes::{audit, auth, llm, tokens, usage, users};
use crate::routes::{
    events, files, fleet, health, jobs, maintenance, openai, retention, schedules, search,
    settings, shares, speakers, stats,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "voxfleet control plane", description = "Jobs, queues, workers and GPUs of a voxfleet fleet."),
    modifiers(&Bearer),
    tags((name = "jobs"), (name = "files"), (name = "speakers"), (name = "search"), (name = "maintenance", description = "Admin: search index, data integrity, embedding consistency and migration"), (name = "openai", description = "OpenAI-compatible transcription"), (name = "fleet"), (name = "settings"), (name = "health"), (name = "users", description = "Users, their tokens and usage; `/v1/me`"), (name = "tokens"), (name = "audit", description = "super_admin: the audit log and its export"), (name = "auth", description = "Sign-in, sessions and the password policy"))
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `max_upload` is the body limit of the routes that take media; the others keep the
/// general limit set around the whole router.
pub fn router(max_upload: usize) -> OpenApiRouter<AppState> {
    let media = OpenApiRouter::new()
        .routes(routes!(files::upload_file, files::list_files))
        .routes(routes!(openai::transcriptions))
        .routes(routes!(openai::translations))
        .layer(axum::extract::DefaultBodyLimit::max(max_upload));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(media)
        .routes(routes!(openai::models::list_models))
        .routes(routes!(openai::models::get_model))
        .routes(routes!(files::get_file, files::delete_file))
        .routes(routes!(files::get_transcript))
        .routes(routes!(shares::create_share, shares::list_shares))
        .routes(routes!(shares::revoke_share))
        .routes(routes!(shares::shared_transcript))
        .routes(routes!(files::usage))
        .routes(routes!(speakers::file_speakers))
        .routes(routes!(speakers::get_speaker, speakers::rename_speaker))
        .routes(routes!(
            speakers::get_embedding_settings,
            speakers::put_embedding_settings
        ))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token, tokens::update_token))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::recover_files))
        .routes(routes!(users::list_user_tokens, users::create_user_token))
        .routes(routes!(users::me))
        .routes(routes!(users::my_tokens, users::create_my_token))
        .routes(routes!(users::revoke_my_token))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::unlock))
        .routes(routes!(auth::mfa_enroll))
        .routes(routes!(auth::mfa_verify))
        .routes(routes!(auth::mfa_disable))
        .routes(routes!(auth::get_settings, auth::put_settings))
        .routes(routes!(llm::reserve))
        .routes(routes!(llm::commit))
        .routes(routes!(llm::release))
        .routes(routes!(llm::report))
        .routes(routes!(usage::report_transcription))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(jobs::submit, jobs::list_jobs))
        .routes(routes!(jobs::submit_batch))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(events::job_events))
        .routes(routes!(events::all_events))
        .routes(routes!(fleet::queues))
        .routes(routes!(fleet::workers))
        .routes(routes!(fleet::gpus))
        .routes(routes!(stats::system_stats))
        .routes(routes!(stats::task_health))
        .routes(routes!(settings::get_retry, settings::put_retry))
        .routes(routes!(settings::get_budgets, settings::put_budgets))
        .routes(routes!(settings::get_prices, settings::put_prices))
        .routes(routes!(schedules::list_schedules))
        .routes(routes!(
            schedules::get_schedule_settings,
            schedules::put_schedule_settings
        ))
        .routes(routes!(search::search))
        .routes(routes!(search::similar_speakers))
        .routes(routes!(search::search_status))
        .routes(routes!(search::start_reindex))
        .routes(routes!(search::stop_reindex))
        .routes(routes!(
            search::get_search_settings,
            search::put_search_settings
        ))
        .routes(routes!(maintenance::integrity))
        .routes(routes!(maintenance::start_integrity))
        .routes(routes!(maintenance::stop_integrity))
        .routes(routes!(maintenance::consistency))
        .routes(routes!(maintenance::start_repair))
        .routes(routes!(maintenance::stop_repair))
        .routes(routes!(maintenance::get_migration))
        .routes(routes!(maintenance::migration_action))
        .routes(routes!(retention::status))
        .routes(routes!(retention::preview))
        .routes(routes!(retention::run))
        .routes(routes!(retention::stop))
        .routes(routes!(
            retention::get_retention_settings,
            retention::put_retention_settings
        ))
}
