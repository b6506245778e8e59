use thiserror::Error;

/// A failure of the runtime itself (the store could not commit, the data folder is
/// unusable). Nothing was acknowledged; the sender may retry.
#[derive(Debug, Clone, Error)]
pub enum EngineError {
    #[error("store: {0}")]
    Store(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Why an operator's action (resolve, dismiss, replay) was refused.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("{0} was not found")]
    NotFound(String),
    /// The target is not in a state that allows the action (HTTP 409).
    #[error("{0}")]
    WrongState(String),
    /// The work is still blocked for the same reason (HTTP 422).
    #[error("{0}")]
    StillFailing(String),
    /// The corrected input is still invalid (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}
