//! Catalog metadata: `GetCatalogs`, `GetDbSchemas`, `GetTables` (with Arrow schemas on
//! request), `GetTableTypes` and `GetSqlInfo`, all read from the DataFusion session
//! so they list exactly what SQL can see (the store's tables in
//! `metricstore.public`, DataFusion's `information_schema` views).
//!
//! The builders from arrow-flight apply the commands' filters and LIKE patterns.

use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, SqlInfo, SqlSupportedCaseSensitivity, SqlSupportedTransaction,
};
use datafusion::datasource::TableType;
use tonic::Status;

use super::FlightSql;
use super::error::query_status;

/// Table types as Flight SQL names them.
fn type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

fn built(batch: Result<RecordBatch, FlightError>) -> Result<RecordBatch, Status> {
    batch.map_err(|e| Status::internal(format!("cannot build metadata: {e}")))
}

/// What `GetSqlInfo` answers.
pub fn sql_info() -> Result<SqlInfoData, FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "MetricStore");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59.3.2");
    // Bulk ingest writes; SQL itself is read-only (DDL and DML are refused).
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // DataFusion folds unquoted identifiers to lower case; quoted ones keep theirs.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.build()
}

/// `GetCatalogs`.
pub fn catalogs(svc: &FlightSql, query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    let mut names = svc.store.session().catalog_names();
    names.sort();
    for name in names {
        builder.append(name);
    }
    built(builder.build())
}

/// `GetDbSchemas`.
pub fn schemas(svc: &FlightSql, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    let session = svc.store.session();
    for catalog in session.catalog_names() {
        let Some(provider) = session.catalog(&catalog) else {
            continue;
        };
        for schema in provider.schema_names() {
            builder.append(&catalog, schema);
        }
    }
    built(builder.build())
}

/// `GetTables`.
pub async fn tables(svc: &FlightSql, query: CommandGetTables) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    let session = svc.store.session();
    for catalog in session.catalog_names() {
        let Some(catalog_provider) = session.catalog(&catalog) else {
            continue;
        };
        for schema in catalog_provider.schema_names() {
            let Some(schema_provider) = catalog_provider.schema(&schema) else {
                continue;
            };
            for table in schema_provider.table_names() {
                // A table dropped since it was listed is simply skipped.
                let Some(provider) = schema_provider.table(&table).await.map_err(query_status)?
                else {
                    continue;
                };
                let arrow_schema = svc.dictionaries.wire_schema(&provider.schema());
                builder
                    .append(
                        &catalog,
                        &schema,
                        &table,
                        type_name(provider.table_type()),
                        &arrow_schema,
                    )
                    .map_err(|e| Status::internal(format!("cannot encode a schema: {e}")))?;
            }
        }
    }
    built(builder.build())
}

/// `GetTableTypes`.
pub fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for t in [TableType::Base, TableType::View] {
        builder.append(type_name(t));
    }
    built(builder.build())
}

/// `GetSqlInfo`.
pub fn sql_info_batch(svc: &FlightSql, query: CommandGetSqlInfo) -> Result<RecordBatch, Status> {
    built(query.into_builder(&svc.sql_info).build())
}
