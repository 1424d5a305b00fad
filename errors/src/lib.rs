//! voxfleet-errors: one error vocabulary for every crate of the workspace.
//!
//! Each crate's error type says the same two things the same way, through [`Classified`]:
//! - **what went wrong**: a stable machine-readable [`Classified::code`] (`corrupt_audio`,
//!   `model_missing`, `database_unavailable`, …), what job records, API answers and metrics
//!   carry;
//! - **what to do about it**: its [`ErrorClass`]: `permanent` (the same input fails again: bad
//!   audio, a missing model), `retryable` (another attempt may succeed: a runtime failure),
//!   `unavailable` (a service it needs is down: PostgreSQL, Redis, storage, the search index;
//!   retry later), `cancelled` (someone asked it to stop).
//!
//! The worker turns any such error into a job error with `?` (`voxfleet_jobs::HandlerError`
//! has a blanket `From`); the control plane maps the ones a request can meet to HTTP answers.
//! A crate never matches another crate's message text.

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The same request fails again: do not retry.
    Permanent,
    /// Another attempt may succeed.
    Retryable,
    /// A service it needs cannot be reached: retry later.
    Unavailable,
    /// The work was asked to stop.
    Cancelled,
}

impl ErrorClass {
    /// Whether trying again (later) may help.
    pub fn may_retry(self) -> bool {
        matches!(self, Self::Retryable | Self::Unavailable)
    }
}

/// The vocabulary every voxfleet error speaks (see the crate docs).
pub trait Classified: std::error::Error {
    /// A stable, machine-readable code.
    fn code(&self) -> &'static str;

    /// What a caller should do about it.
    fn class(&self) -> ErrorClass;

    /// What the error may tell a user (a job's owner, an API client). The full text by
    /// default; errors whose text names host paths, URLs or credentials say less here and
    /// leave the detail to the log.
    fn public_message(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Disk(&'static str);

    impl std::fmt::Display for Disk {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "disk {} is full", self.0)
        }
    }

    impl std::error::Error for Disk {}

    impl Classified for Disk {
        fn code(&self) -> &'static str {
            "disk_full"
        }
        fn class(&self) -> ErrorClass {
            ErrorClass::Unavailable
        }
    }

    #[test]
    fn the_public_message_is_the_text_unless_overridden() {
        let e = Disk("/srv/a");
        assert_eq!(e.public_message(), "disk /srv/a is full");
        assert_eq!(
            (e.code(), e.class()),
            ("disk_full", ErrorClass::Unavailable)
        );
        assert!(ErrorClass::Unavailable.may_retry() && ErrorClass::Retryable.may_retry());
        assert!(!ErrorClass::Permanent.may_retry() && !ErrorClass::Cancelled.may_retry());
    }
}
