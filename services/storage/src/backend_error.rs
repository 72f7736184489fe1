//! Backend errors as a [`StorageError`], at each backend call (`conn.execute(…).db()?`).
//!
//! `StorageError` is defined in `switchyard-model`, so the edge can name it without a
//! database client; the orphan rule then forbids `From` impls for the backends' error
//! types here, and this trait does what they did.

use crate::StorageError;

/// A backend's result with its error made a [`StorageError`].
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StorageError>;
}

impl<T> DbResult<T> for Result<T, rusqlite::Error> {
    fn db(self) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::Unavailable(e.to_string()))
    }
}

impl<T> DbResult<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T, StorageError> {
        self.map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => StorageError::NotFound,
            _ => StorageError::Unavailable(with_causes(&e)),
        })
    }
}

impl<T> DbResult<T> for Result<T, deadpool_postgres::PoolError> {
    fn db(self) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::Unavailable(with_causes(&e)))
    }
}

/// An error with what caused it, so that "error performing TLS handshake" says which
/// certificate check failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}
