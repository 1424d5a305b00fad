//! `AudioError`: what went wrong with an input, as a stable code and a retry class.

use symphonia::core::errors::Error as SymphoniaError;
use voxfleet_errors::{Classified, ErrorClass};

/// Why an input could not be turned into 16 kHz mono samples.
///
/// Every variant but [`AudioError::Io`] is a property of the bytes themselves, so retrying the
/// same input gives the same answer ([`AudioError::is_permanent`]).
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A zero-length input, or a well-formed container that holds no audio frames.
    /// A file of pure silence is not empty: it decodes, and the transcriber decides.
    #[error("audio is empty: it holds no samples")]
    Empty,
    /// The container is not recognised, or holds no audio track with a codec we can decode.
    #[error("unsupported audio format: {detail}")]
    UnsupportedFormat {
        /// What was found, e.g. "no audio track", "codec opus is not supported".
        detail: String,
    },
    /// The container was recognised but its data could not be decoded.
    #[error("corrupt audio: {detail}")]
    Corrupt {
        /// What failed, as reported by the demuxer or decoder.
        detail: String,
    },
    /// The audio is longer than [`crate::DecodeOptions::max_duration`]. `duration_s` is the
    /// stated duration when the header gave it, otherwise how far decoding got before stopping.
    #[error("audio too long: {duration_s:.1} s exceeds the limit of {max_s:.1} s")]
    TooLong {
        /// Duration found, in seconds.
        duration_s: f64,
        /// The configured limit, in seconds.
        max_s: f64,
    },
    /// Reading the input failed (a file system or device error, not bad data).
    #[error("I/O error while reading audio")]
    Io(#[source] std::io::Error),
}

impl AudioError {
    pub(crate) fn unsupported(detail: impl Into<String>) -> Self {
        AudioError::UnsupportedFormat {
            detail: detail.into(),
        }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        AudioError::Corrupt {
            detail: detail.into(),
        }
    }

    /// Classifies an error from symphonia once the container has been recognised.
    ///
    /// An end-of-file or invalid-data I/O error means the bytes ran out or made no sense (a
    /// truncated or damaged file), which is corruption; any other I/O error came from the
    /// file system and stays [`AudioError::Io`].
    pub(crate) fn from_symphonia(err: SymphoniaError) -> Self {
        match err {
            SymphoniaError::Unsupported(what) => AudioError::unsupported(what),
            SymphoniaError::IoError(io) => match io.kind() {
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                    AudioError::corrupt(format!("unexpected end or invalid data: {io}"))
                }
                _ => AudioError::Io(io),
            },
            other => AudioError::corrupt(other.to_string()),
        }
    }
}

impl Classified for AudioError {
    fn code(&self) -> &'static str {
        match self {
            AudioError::Empty => "empty_audio",
            AudioError::UnsupportedFormat { .. } => "unsupported_format",
            AudioError::Corrupt { .. } => "corrupt_audio",
            AudioError::TooLong { .. } => "too_long",
            AudioError::Io(_) => "io_error",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            AudioError::Io(_) => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_permanence() {
        let io = AudioError::Io(std::io::Error::other("disk"));
        assert_eq!(io.code(), "io_error");
        assert_eq!(io.class(), ErrorClass::Retryable);
        for (err, code) in [
            (AudioError::Empty, "empty_audio"),
            (AudioError::unsupported("x"), "unsupported_format"),
            (AudioError::corrupt("x"), "corrupt_audio"),
            (
                AudioError::TooLong {
                    duration_s: 2.0,
                    max_s: 1.0,
                },
                "too_long",
            ),
        ] {
            assert_eq!(err.code(), code);
            assert_eq!(err.class(), ErrorClass::Permanent);
        }
    }

    #[test]
    fn eof_is_corrupt_but_other_io_is_io() {
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(
            AudioError::from_symphonia(SymphoniaError::IoError(eof)).code(),
            "corrupt_audio"
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            AudioError::from_symphonia(SymphoniaError::IoError(denied)).code(),
            "io_error"
        );
        let unsup = SymphoniaError::Unsupported("codec");
        assert_eq!(
            AudioError::from_symphonia(unsup).code(),
            "unsupported_format"
        );
        let bad = SymphoniaError::DecodeError("bad frame");
        assert_eq!(AudioError::from_symphonia(bad).code(), "corrupt_audio");
    }
}
