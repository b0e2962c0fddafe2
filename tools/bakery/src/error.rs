//! The errors that stop a check before it can judge the image, and their
//! exit codes (a failed check is not an error: it is a finding, exit 1).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BakeryError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("{0}")]
    Image(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl BakeryError {
    pub fn io(what: &str, source: std::io::Error) -> BakeryError {
        BakeryError::Io {
            what: what.to_string(),
            source,
        }
    }

    /// 64 for usage, 66 for an image that cannot be read (sysexits).
    pub fn exit_code(&self) -> u8 {
        match self {
            BakeryError::Usage(_) => 64,
            BakeryError::Image(_) | BakeryError::Io { .. } => 66,
        }
    }
}
