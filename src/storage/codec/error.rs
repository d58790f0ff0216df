//! The single error type of the codec module.

/// Why a buffer could not be decoded.
///
/// Every variant names the byte offset, counted from the start of the buffer handed
/// to the decoder, at which decoding failed, so a corrupted chunk can be reported
/// precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The buffer ended before the block did.
    #[error("truncated block: {what} missing at byte {offset}")]
    Truncated {
        /// Byte offset at which more input was needed.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// The bytes are present but cannot be a block written by this module.
    #[error("corrupt block: bad {what} at byte {offset}")]
    Corrupt {
        /// Byte offset of the offending field.
        offset: usize,
        /// Which field is invalid.
        what: &'static str,
    },
    /// The codec id in the first byte is not one this decoder knows (or belongs to
    /// the other column kind, e.g. a float block handed to the timestamp decoder).
    #[error("unknown codec id {id:#x} at byte {offset}")]
    UnknownCodec {
        /// Byte offset of the block's first byte.
        offset: usize,
        /// The codec id found (low nibble of the first byte).
        id: u8,
    },
    /// The block was written by a newer (or garbage) format version.
    #[error("unsupported format version {version} at byte {offset}")]
    UnsupportedVersion {
        /// Byte offset of the block's first byte.
        offset: usize,
        /// The version found (high nibble of the first byte).
        version: u8,
    },
}

impl CodecError {
    pub(super) fn truncated(offset: usize, what: &'static str) -> Self {
        CodecError::Truncated { offset, what }
    }

    pub(super) fn corrupt(offset: usize, what: &'static str) -> Self {
        CodecError::Corrupt { offset, what }
    }
}
