//! Store and ingest errors as gRPC statuses, keeping the planner's or validator's
//! message.
//!
//! | error | code |
//! |---|---|
//! | SQL, planning, schema, bad parameters, invalid names and rows, too-old samples | `InvalidArgument` |
//! | unknown table or prepared statement | `NotFound` |
//! | series / tag-value limits (retrying will not help until limits change) | `FailedPrecondition` |
//! | memory limit, query memory exhausted | `ResourceExhausted` |
//! | write-ahead log failure (nothing was acknowledged) | `Unavailable` |
//! | corrupt data, bugs | `Internal` |

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tonic::{Code, Status};

use crate::Error;
use crate::ingest::arrow::ArrowIngestError;

/// The gRPC code a store error deserves.
pub fn code_of(e: &Error) -> Code {
    match e {
        Error::BatchItem { source, .. } => code_of(source),
        Error::TableNotFound(_) => Code::NotFound,
        Error::MemoryLimit { .. } => Code::ResourceExhausted,
        Error::Durability(_) | Error::ColdTier(_) => Code::Unavailable,
        Error::SeriesLimit { .. } | Error::TagValueLimit { .. } => Code::FailedPrecondition,
        Error::Query(q) => query_code(q),
        Error::Arrow(a) => arrow_code(a),
        Error::Corrupt { .. } => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

fn query_code(e: &DataFusionError) -> Code {
    use DataFusionError as Df;
    match e.find_root() {
        Df::Plan(_) | Df::SQL(..) | Df::SchemaError(..) | Df::NotImplemented(_) => {
            Code::InvalidArgument
        }
        Df::ResourcesExhausted(_) => Code::ResourceExhausted,
        Df::ArrowError(a, _) => arrow_code(a),
        Df::External(inner) => match inner.downcast_ref::<Error>() {
            Some(store) => code_of(store),
            None => Code::Internal,
        },
        _ => Code::Internal,
    }
}

/// Arrow errors raised while evaluating a query are the query's fault (bad casts,
/// division by zero, unparsable strings); the rest are ours.
fn arrow_code(e: &ArrowError) -> Code {
    match e {
        ArrowError::CastError(_)
        | ArrowError::ParseError(_)
        | ArrowError::DivideByZero
        | ArrowError::ArithmeticOverflow(_)
        | ArrowError::InvalidArgumentError(_)
        | ArrowError::ComputeError(_) => Code::InvalidArgument,
        _ => Code::Internal,
    }
}

/// A store error as a status with the error's own message.
pub fn status(e: Error) -> Status {
    Status::new(code_of(&e), e.to_string())
}

/// A query error (planning or execution) as a status.
pub fn query_status(e: DataFusionError) -> Status {
    status(Error::Query(e))
}

/// A record batch that could not become rows: always the caller's fault.
pub fn ingest_status(batch: usize, e: ArrowIngestError) -> Status {
    Status::invalid_argument(format!("record batch {batch}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_who_is_at_fault() {
        let plan = Error::Query(DataFusionError::Plan("no such column".into()));
        let s = status(plan);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("no such column"), "{s}");
        assert_eq!(code_of(&Error::TableNotFound("cpu".into())), Code::NotFound);
        let item = Error::MemoryLimit {
            limit: 1,
            used: 1,
            requested: 1,
        }
        .at_item(3, "cpu");
        assert_eq!(code_of(&item), Code::ResourceExhausted);
        assert_eq!(
            code_of(&Error::Durability("disk full".into())),
            Code::Unavailable
        );
        assert_eq!(
            code_of(&Error::SeriesLimit {
                table: "cpu".into(),
                limit: 1
            }),
            Code::FailedPrecondition
        );
        assert_eq!(
            code_of(&Error::InvalidWrite("bad".into())),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(&Error::Corrupt {
                context: "x".into(),
                message: "y".into()
            }),
            Code::Internal
        );
        let wrapped = DataFusionError::Context(
            "while planning".into(),
            Box::new(DataFusionError::SQL(
                Box::new(
                    datafusion::sql::sqlparser::parser::ParserError::ParserError("oops".into()),
                ),
                None,
            )),
        );
        assert_eq!(query_code(&wrapped), Code::InvalidArgument);
        assert_eq!(
            query_code(&DataFusionError::Internal("bug".into())),
            Code::Internal
        );
    }
}
