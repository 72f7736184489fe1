//! Storage errors: what callers can act on, with backend detail kept for logs.

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("already exists")]
    AlreadyExists,
    #[error("not found")]
    NotFound,
    /// A per-account limit (e.g. the offline message quota) is reached.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The caller asked for something malformed (a cursor this backend never gave);
    /// retrying the same request cannot help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend could not answer (down, timed out, corrupt); retrying may help.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}
