//! Every audit event code in one table, [`AuditEvent`]: the audit writers
//! ([`crate::audit::record`] and its kin) take one, so a row can carry no other code, and the
//! control plane's `GET /v1/admin/audit/events` lists the table for the audit log's filter.
use voxfleet_jobs::{RunState, Section};

/// Defines [`AuditEvent`]: one line per event, its doc comment (one line) saying what it
/// records.
macro_rules! audit_events {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal;)*) => {
        /// A kind of audit row, by the code its `event` carries.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditEvent {
            $($(#[doc = $doc])* $variant,)*
        }

        impl AuditEvent {
            /// Every event, grouped by the first part of its code.
            pub const ALL: &'static [AuditEvent] = &[$(Self::$variant,)*];

            /// The code audit rows carry (`admin.user.role_change`).
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// What the event records, for people choosing a filter.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($($doc),*).trim(),)*
                }
            }
        }
    };
}

audit_events! {
    /// A sign-in succeeded (a session was opened).
    AuthLoginSuccess = "auth.login.success";
    /// A sign-in was refused (unknown email, wrong password or code, locked or disabled).
    AuthLoginFailure = "auth.login.failure";
    /// An account was locked after too many failed sign-ins.
    AuthLockout = "auth.lockout";
    /// An admin unlocked a locked account.
    AuthUnlock = "auth.unlock";
    /// A session was refreshed.
    AuthRefresh = "auth.refresh";
    /// A used refresh token was presented again (the session was revoked).
    AuthRefreshReuse = "auth.refresh.reuse";
    /// A session was signed out.
    AuthLogout = "auth.logout";
    /// A user changed their password (their other sessions ended).
    AuthPasswordChange = "auth.password.change";
    /// A user began enrolling a second factor.
    AuthMfaEnroll = "auth.mfa.enroll";
    /// A second factor was verified and turned on.
    AuthMfaEnable = "auth.mfa.enable";
    /// A second factor was turned off.
    AuthMfaDisable = "auth.mfa.disable";
    /// A user account was created.
    AdminUserCreate = "admin.user.create";
    /// A user account's fields were changed.
    AdminUserUpdate = "admin.user.update";
    /// A user's role was changed.
    AdminUserRoleChange = "admin.user.role_change";
    /// An admin reset a user's password.
    AdminUserPasswordReset = "admin.user.password_reset";
    /// A user was deleted (tokens revoked, files queued for removal).
    AdminUserDelete = "admin.user.delete";
    /// A deleted user's last data was removed.
    AdminUserDeleted = "admin.user.deleted";
    /// A user's failed and stuck work was queued again.
    AdminUserRecover = "admin.user.recover";
    /// The bootstrap user was restored to an enabled super_admin at start-up.
    AdminUserBootstrapRestore = "admin.user.bootstrap_restore";
    /// An API token was created.
    TokenCreate = "token.create";
    /// An API token was revoked.
    TokenRevoke = "token.revoke";
    /// A bootstrap token was replaced by a new VOXFLEET_ADMIN_TOKEN.
    TokenRotate = "token.rotate";
    /// A token's right to act for other users was granted or withdrawn.
    TokenDelegation = "token.delegation";
    /// The authentication settings (password policy, lockout, sessions) were changed.
    SettingsAuth = "settings.auth";
    /// The retry settings were changed.
    SettingsRetry = "settings.retry";
    /// The usage budgets were changed.
    SettingsBudgets = "settings.budgets";
    /// The prices were changed.
    SettingsPrices = "settings.prices";
    /// The retention settings were changed.
    SettingsRetention = "settings.retention";
    /// The maintenance schedules were changed.
    SettingsSchedules = "settings.schedules";
    /// The search text-embedding model was changed (a full reindex started).
    SettingsSearch = "settings.search";
    /// The active speaker-embedding profile was changed.
    SettingsEmbeddings = "settings.embeddings";
    /// A transcription was refused: its owner's budget is spent.
    BudgetTranscriptionBlock = "budget.transcription.block";
    /// An LLM reservation was refused: the user's token budget is spent.
    BudgetLlmBlock = "budget.llm.block";
    /// A search reindex was started.
    MaintenanceReindexStart = "maintenance.reindex.start";
    /// An integrity check was started.
    MaintenanceIntegrityStart = "maintenance.integrity.start";
    /// An embedding repair was started.
    MaintenanceRepairStart = "maintenance.repair.start";
    /// An embedding migration was started.
    MaintenanceMigrationStart = "maintenance.migration.start";
    /// A retention run was started.
    MaintenanceRetentionStart = "maintenance.retention.start";
    /// An embedding migration was finalized (speaker search reads the new profile).
    MaintenanceMigrationFinalized = "maintenance.migration.finalized";
    /// An embedding migration was rolled back (speaker search reads the old profile).
    MaintenanceMigrationRolledBack = "maintenance.migration.rolled_back";
    /// A share link to a transcript was created.
    ShareCreate = "share.create";
    /// A share link was revoked.
    ShareRevoke = "share.revoke";
    /// A file was deleted.
    FileDelete = "file.delete";
    /// A failed job was run again.
    JobRetry = "job.retry";
}

impl AuditEvent {
    /// The start of a maintenance section's run (`maintenance.reindex.start`, …).
    pub fn section_start(section: Section) -> Self {
        match section {
            Section::Reindex => Self::MaintenanceReindexStart,
            Section::Integrity => Self::MaintenanceIntegrityStart,
            Section::Repair => Self::MaintenanceRepairStart,
            Section::Migration => Self::MaintenanceMigrationStart,
            Section::Retention => Self::MaintenanceRetentionStart,
        }
    }

    /// The end of a migration by an alias swap: rolled back, or else finalized.
    pub fn migration_swap(state: RunState) -> Self {
        if state == RunState::RolledBack {
            Self::MaintenanceMigrationRolledBack
        } else {
            Self::MaintenanceMigrationFinalized
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use voxfleet_jobs::{RunState, Section};

    use super::AuditEvent;

    #[test]
    fn codes_are_unique_dotted_and_described() {
        let word =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let mut seen = HashSet::new();
        for e in AuditEvent::ALL {
            let code = e.code();
            assert!(seen.insert(code), "{code} is listed twice");
            let dotted = code.split('.').count() >= 2 && code.split('.').all(word);
            assert!(dotted, "{code} is not dotted lowercase words");
            assert!(!e.description().is_empty(), "{code} has no description");
        }
    }

    #[test]
    fn maintenance_codes_are_the_ones_rows_already_carry() {
        for s in Section::ALL {
            assert_eq!(
                AuditEvent::section_start(s).code(),
                format!("maintenance.{s}.start")
            );
        }
        for state in [RunState::Finalized, RunState::RolledBack] {
            assert_eq!(
                AuditEvent::migration_swap(state).code(),
                format!("maintenance.migration.{state}")
            );
        }
    }
}
