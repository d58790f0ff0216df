//! Arrow Flight SQL against an in-process server on free loopback ports, with
//! arrow-flight's own `FlightSqlServiceClient`.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Schema};
use arrow_flight::FlightInfo;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, CommandStatementIngest, SqlInfo, TableDefinitionOptions,
    TableExistsOption, TableNotExistOption,
};
use futures::TryStreamExt;
use metricstore::server::{ServerConfig, serve};
use tonic::Code;
use tonic::transport::Channel;

type Client = FlightSqlServiceClient<Channel>;

mod common;
use common::server::Server;

async fn client(server: &Server) -> Client {
    let flight = server.flight.expect("Flight SQL is on by default");
    let channel = Channel::from_shared(format!("http://{flight}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

/// One HTTP request; returns the status code and the response (head and body).
async fn http(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, head, body) = server.request(method, path, headers, body.as_bytes()).await;
    (
        status,
        format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body)),
    )
}

fn no_stats() -> ServerConfig {
    ServerConfig {
        statsd_enabled: false,
        ..ServerConfig::default()
    }
}

/// Every batch of every endpoint of `info`.
async fn fetch(client: &mut Client, info: FlightInfo) -> Result<Vec<RecordBatch>, FlightError> {
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let batches: Vec<RecordBatch> = client.do_get(ticket).await?.try_collect().await?;
        out.extend(batches);
    }
    Ok(out)
}

async fn query(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, FlightError> {
    let info = client.execute(sql.to_string(), None).await?;
    fetch(client, info).await
}

/// The gRPC code of a failed call.
fn code(e: &FlightError) -> Code {
    match e {
        FlightError::Tonic(status) => status.code(),
        other => panic!("expected a gRPC status, got {other}"),
    }
}

fn message(e: &FlightError) -> String {
    match e {
        FlightError::Tonic(status) => status.message().to_string(),
        other => other.to_string(),
    }
}

fn ingest_command(
    table: &str,
    if_not_exist: TableNotExistOption,
    if_exists: TableExistsOption,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: if_not_exist.into(),
            if_exists: if_exists.into(),
        }),
        table: table.to_string(),
        schema: None,
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

/// `cpu` rows: host a/b/c at 1000 and 2000 ms with usage = 10 * host index + second.
fn cpu_batch() -> RecordBatch {
    let hosts = ["a", "b", "c", "a", "b", "c"];
    let host: DictionaryArray<Int32Type> = hosts.iter().copied().collect();
    let schema = Schema::new(vec![
        Field::new("host", host.data_type().clone(), true),
        Field::new(
            "time",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("usage", DataType::Float64, true),
        Field::new("cores", DataType::Int64, true),
    ]);
    let usage: Vec<f64> = (0..6)
        .map(|i| (i % 3) as f64 * 10.0 + (i / 3 + 1) as f64)
        .collect();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(host) as ArrayRef,
            Arc::new(TimestampMillisecondArray::from(vec![
                1000, 1000, 1000, 2000, 2000, 2000,
            ])),
            Arc::new(Float64Array::from(usage)),
            Arc::new(Int64Array::from(vec![
                Some(4),
                Some(8),
                None,
                Some(4),
                Some(8),
                None,
            ])),
        ],
    )
    .unwrap()
}

async fn ingest(
    client: &mut Client,
    command: CommandStatementIngest,
    batches: Vec<RecordBatch>,
) -> Result<i64, FlightError> {
    client
        .execute_ingest(command, futures::stream::iter(batches.into_iter().map(Ok)))
        .await
}

fn strings(column: &ArrayRef) -> Vec<String> {
    let cast = arrow::compute::cast(column, &DataType::Utf8).unwrap();
    cast.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

fn floats(column: &ArrayRef) -> Vec<Option<f64>> {
    column.as_primitive::<Float64Type>().iter().collect()
}

#[tokio::test]
async fn ingest_then_query_streams_the_rows_back() {
    let server = Server::start(no_stats()).await;
    let mut client = client(&server).await;
    let stored = ingest(
        &mut client,
        ingest_command(
            "cpu",
            TableNotExistOption::Create,
            TableExistsOption::Append,
        ),
        vec![cpu_batch(), cpu_batch().slice(0, 0)],
    )
    .await
    .unwrap();
    assert_eq!(stored, 6);

    let batches = query(
        &mut client,
        "SELECT host, time, usage, cores FROM cpu ORDER BY host, time",
    )
    .await
    .unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(batch.num_rows(), 6);
    // Tags travel as dictionaries by default.
    assert!(matches!(
        batch.column(0).data_type(),
        DataType::Dictionary(..)
    ));
    assert_eq!(strings(batch.column(0)), ["a", "a", "b", "b", "c", "c"]);
    assert_eq!(
        floats(batch.column(2)),
        [1.0, 2.0, 11.0, 12.0, 21.0, 22.0].map(Some)
    );
    // The integer field is stored as a float; the null is an absent value.
    assert_eq!(
        floats(batch.column(3)),
        [Some(4.0), Some(4.0), Some(8.0), Some(8.0), None, None]
    );

    // A larger result comes in several batches, streamed.
    let info = client
        .execute("SELECT * FROM generate_series(1, 100000)".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert!(batches.len() > 1, "{} batches", batches.len());
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        100_000
    );

    // Appending to an existing table adds rows; two rows of one series at one time
    // (the batch repeats each host at 3000) keep the later one.
    let later = cpu_batch();
    let times = TimestampMillisecondArray::from(vec![3000; 6]);
    let mut columns = later.columns().to_vec();
    columns[1] = Arc::new(times);
    let later = RecordBatch::try_new(later.schema(), columns).unwrap();
    let n = ingest(
        &mut client,
        ingest_command("cpu", TableNotExistOption::Fail, TableExistsOption::Append),
        vec![later],
    )
    .await
    .unwrap();
    assert_eq!(n, 6);
    let count = query(&mut client, "SELECT count(*) AS n FROM cpu")
        .await
        .unwrap();
    assert_eq!(
        count[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        9
    );
    server.stop().await;
}

#[tokio::test]
async fn prepared_statements_bind_parameters() {
    let server = Server::start(no_stats()).await;
    let mut client = client(&server).await;
    ingest(
        &mut client,
        ingest_command(
            "cpu",
            TableNotExistOption::Create,
            TableExistsOption::Append,
        ),
        vec![cpu_batch()],
    )
    .await
    .unwrap();

    let mut statement = client
        .prepare(
            "SELECT host, usage FROM cpu WHERE usage > $1 AND host <> $2 ORDER BY usage".into(),
            None,
        )
        .await
        .unwrap();
    let params = statement.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 2);
    assert_eq!(params.field(0).name(), "$1");
    assert_eq!(params.field(0).data_type(), &DataType::Float64);
    assert_eq!(statement.dataset_schema().unwrap().field(1).name(), "usage");

    // Executing before binding says what is missing.
    let err = statement.execute().await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(message(&err).contains("$1, $2"), "{err}");

    let bind = |threshold: ArrayRef, host: &str| {
        let schema = Schema::new(vec![
            Field::new("threshold", threshold.data_type().clone(), false),
            Field::new("host", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![threshold, Arc::new(StringArray::from(vec![host]))],
        )
        .unwrap()
    };
    statement
        .set_parameters(bind(Arc::new(Float64Array::from(vec![10.5])), "c"))
        .unwrap();
    let info = statement.execute().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(strings(batch.column(0)), ["b", "b"]);
    assert_eq!(floats(batch.column(1)), [Some(11.0), Some(12.0)]);

    // Rebinding with an integer (cast to the column's type) changes the answer.
    statement
        .set_parameters(bind(Arc::new(Int64Array::from(vec![1])), "a"))
        .unwrap();
    let info = statement.execute().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 4);

    // Two parameter rows for a query are refused.
    let two = bind(Arc::new(Float64Array::from(vec![1.0])), "a");
    let two = arrow::compute::concat_batches(&two.schema(), &[two.clone(), two.clone()]).unwrap();
    statement.set_parameters(two).unwrap();
    let err = statement.execute().await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");

    statement.close().await.unwrap();

    // A statement without parameters runs as is.
    let mut plain = client
        .prepare("SELECT count(*) FROM cpu".into(), None)
        .await
        .unwrap();
    assert!(plain.parameter_schema().unwrap().fields().is_empty());
    let info = plain.execute().await.unwrap();
    assert_eq!(fetch(&mut client, info).await.unwrap()[0].num_rows(), 1);
    server.stop().await;
}

#[tokio::test]
async fn unknown_statement_handles_are_not_found() {
    use arrow_flight::sql::{CommandPreparedStatementQuery, ProstMessageExt};
    use prost::Message;
    let server = Server::start(no_stats()).await;
    let mut client = client(&server).await;
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: u64::MAX.to_be_bytes().to_vec().into(),
    };
    let ticket = arrow_flight::Ticket::new(command.as_any().encode_to_vec());
    let err = match client.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(code(&err), Code::NotFound, "{err}");
    server.stop().await;
}

#[tokio::test]
async fn metadata_lists_catalogs_schemas_tables_and_info() {
    let server = Server::start(no_stats()).await;
    let mut client = client(&server).await;
    ingest(
        &mut client,
        ingest_command(
            "cpu",
            TableNotExistOption::Create,
            TableExistsOption::Append,
        ),
        vec![cpu_batch()],
    )
    .await
    .unwrap();

    let info = client.get_catalogs().await.unwrap();
    let catalogs = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(catalogs[0].column(0)), ["metricstore"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("metricstore".into()),
            db_schema_filter_pattern: Some("pub%".into()),
        })
        .await
        .unwrap();
    let schemas = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(schemas[0].column(1)), ["public"]);

    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("c_u".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, info).await.unwrap();
    let t = &tables[0];
    assert_eq!(t.num_rows(), 1);
    assert_eq!(strings(t.column(2)), ["cpu"]);
    assert_eq!(strings(t.column(3)), ["TABLE"]);
    let ipc = t.column(4).as_binary::<i32>().value(0).to_vec();
    let schema = Schema::try_from(arrow_flight::IpcMessage(ipc.into())).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["host", "time", "usage", "cores"]);

    let info = client.get_table_types().await.unwrap();
    let types = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(types[0].column(0)), ["TABLE", "VIEW"]);

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let sql_info = fetch(&mut client, info).await.unwrap();
    let batch = &sql_info[0];
    assert_eq!(batch.num_rows(), 2);
    let ids: Vec<u32> = batch
        .column(0)
        .as_primitive::<arrow::datatypes::UInt32Type>()
        .values()
        .to_vec();
    assert_eq!(
        ids,
        [
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::FlightSqlServerReadOnly as u32
        ]
    );
    let values = batch.column(1).as_union();
    let name = values.value(0);
    assert_eq!(name.as_string::<i32>().value(0), "MetricStore");
    let read_only = values.value(1);
    assert!(!read_only.as_boolean().value(0));
    server.stop().await;
}

#[tokio::test]
async fn errors_carry_grpc_codes_and_messages() {
    let mut config = no_stats();
    config.storage.max_series_per_table = 3;
    let server = Server::start(config).await;
    let mut client = client(&server).await;

    let err = query(&mut client, "SELEC 1").await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(message(&err).contains("SELEC"), "{err}");

    let err = query(&mut client, "SELECT nope FROM cpu")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(message(&err).to_lowercase().contains("cpu"), "{err}");

    // DDL stays refused over Flight as over HTTP.
    let err = query(&mut client, "CREATE TABLE t AS SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");

    // So does SET, which would change every client's session; the setting stays.
    let err = query(&mut client, "SET datafusion.execution.batch_size = 7")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(message(&err).contains("SetVariable"), "{err}");
    let shown = query(&mut client, "SHOW datafusion.execution.batch_size")
        .await
        .unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&shown)
        .unwrap()
        .to_string();
    assert!(shown.contains("8192"), "{shown}");
    // Nor through a prepared statement, or a ticket forged to carry the SET.
    let err = client
        .prepare("SET datafusion.execution.batch_size = 7".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    {
        use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
        use prost::Message;
        let forged = TicketStatementQuery {
            statement_handle: "SET datafusion.execution.batch_size = 7".into(),
        };
        let ticket = arrow_flight::Ticket::new(forged.as_any().encode_to_vec());
        let err = match client.do_get(ticket).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    }
    let shown = query(&mut client, "SHOW datafusion.execution.batch_size")
        .await
        .unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&shown)
        .unwrap()
        .to_string();
    assert!(shown.contains("8192"), "{shown}");

    // Append needs an existing table.
    let err = ingest(
        &mut client,
        ingest_command("cpu", TableNotExistOption::Fail, TableExistsOption::Append),
        vec![cpu_batch()],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Code::NotFound, "{err}");

    // A batch that cannot become rows names the column.
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("time", DataType::Int64, false),
            Field::new("blob", DataType::Binary, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            Arc::new(arrow::array::BinaryArray::from(vec![&b"x"[..]])),
        ],
    )
    .unwrap();
    let create = || {
        ingest_command(
            "cpu",
            TableNotExistOption::Create,
            TableExistsOption::Append,
        )
    };
    let err = ingest(&mut client, create(), vec![bad]).await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(message(&err).contains("\"blob\""), "{err}");

    // The store's validation: a reserved tag name.
    let bad_name = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("__reserved", DataType::Utf8, false),
            Field::new("time", DataType::Int64, false),
            Field::new("x", DataType::Float64, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["v"])) as ArrayRef,
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    )
    .unwrap();
    let err = ingest(&mut client, create(), vec![bad_name])
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(message(&err).contains("__reserved"), "{err}");

    // Per-batch atomicity: the first batch is stored, the second (a fourth series
    // past the limit of three) is refused whole, and the error says so.
    let fourth = {
        let b = cpu_batch();
        let host: DictionaryArray<Int32Type> = ["a", "b", "c", "d", "a", "b"].into_iter().collect();
        let mut columns = b.columns().to_vec();
        columns[0] = Arc::new(host);
        let times = TimestampMillisecondArray::from(vec![5000, 5000, 5000, 5000, 6000, 6000]);
        columns[1] = Arc::new(times);
        RecordBatch::try_new(b.schema(), columns).unwrap()
    };
    let err = ingest(&mut client, create(), vec![cpu_batch(), fourth])
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::FailedPrecondition, "{err}");
    assert!(
        message(&err).starts_with("record batch 1 (6 rows before it were stored)"),
        "{err}"
    );
    let count = query(&mut client, "SELECT count(*) FROM cpu")
        .await
        .unwrap();
    assert_eq!(
        count[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        6
    );

    // Create refuses an existing table; replace is not supported.
    let err = ingest(
        &mut client,
        ingest_command("cpu", TableNotExistOption::Create, TableExistsOption::Fail),
        vec![cpu_batch()],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Code::AlreadyExists, "{err}");
    let err = ingest(
        &mut client,
        ingest_command(
            "cpu",
            TableNotExistOption::Create,
            TableExistsOption::Replace,
        ),
        vec![cpu_batch()],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_token_guards_flight_and_http_alike() {
    let mut config = no_stats();
    config.auth_token = Some("s3cret".into());
    let server = Server::start(config).await;

    let mut anonymous = client(&server).await;
    let err = query(&mut anonymous, "SELECT 1").await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated, "{err}");

    let mut wrong = client(&server).await;
    wrong.set_token("guess".into());
    let err = query(&mut wrong, "SELECT 1").await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated, "{err}");
    assert!(wrong.handshake("admin", "guess").await.is_err());

    let mut bearer = client(&server).await;
    bearer.set_token("s3cret".into());
    assert_eq!(
        query(&mut bearer, "SELECT 1").await.unwrap()[0].num_rows(),
        1
    );

    // Basic credentials (any user, the token as password) give back the token.
    let mut basic = client(&server).await;
    let payload = basic.handshake("admin", "s3cret").await.unwrap();
    assert_eq!(&payload[..], b"s3cret");
    assert_eq!(basic.token().map(String::as_str), Some("s3cret"));
    assert_eq!(
        query(&mut basic, "SELECT 1").await.unwrap()[0].num_rows(),
        1
    );

    // HTTP: the same token; probes stay open.
    let (status, text) = http(&server, "POST", "/api/v1/sql", &[], "SELECT 1").await;
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_lowercase().contains("www-authenticate: bearer"),
        "{text}"
    );
    let (status, _) = http(
        &server,
        "POST",
        "/api/v1/sql",
        &[("Authorization", "Bearer guess")],
        "SELECT 1",
    )
    .await;
    assert_eq!(status, 401);
    let (status, text) = http(
        &server,
        "POST",
        "/api/v1/sql",
        &[("Authorization", "Bearer s3cret")],
        "SELECT 1",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = http(&server, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 401);
    for probe in ["/-/healthy", "/-/ready"] {
        let (status, text) = http(&server, "GET", probe, &[], "").await;
        assert_eq!(status, 200, "{probe}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn without_a_token_everything_is_open() {
    let server = Server::start(no_stats()).await;
    let mut client = client(&server).await;
    assert_eq!(
        query(&mut client, "SELECT 1").await.unwrap()[0].num_rows(),
        1
    );
    // The handshake succeeds and hands back no token.
    let payload = client.handshake("anyone", "anything").await.unwrap();
    assert!(payload.is_empty());
    let (status, text) = http(&server, "POST", "/api/v1/sql", &[], "SELECT 1").await;
    assert_eq!(status, 200, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn flight_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = no_stats();
    config.data_dir = dir.path().to_path_buf();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.statsd_enabled = false;
    config.flight.enabled = false;
    let (ready, addrs) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(serve(config, async {}, move |running| {
        let _ = ready.send(running.flight_addr);
    }));
    assert_eq!(addrs.await.unwrap(), None);
    task.await.unwrap().unwrap();
}

/// The Python interpreter with `adbc-driver-flightsql` and `pyarrow`
/// (`METRICSTORE_PYTHON`, set by `.ci/run`). Without it a developer's `cargo test`
/// skips with a note; under CI (`METRICSTORE_CI` set) its absence fails the test.
fn python() -> Option<String> {
    match std::env::var("METRICSTORE_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("METRICSTORE_CI").is_some() => {
            panic!("METRICSTORE_PYTHON is not set under CI: .ci/run must install the ADBC venv")
        }
        _ => {
            eprintln!(
                "note: METRICSTORE_PYTHON is not set; skipping the ADBC client test \
                 (see .ci/run for the venv it needs)"
            );
            None
        }
    }
}

#[tokio::test]
async fn adbc_python_client_queries_lists_and_ingests() {
    let Some(python) = python() else {
        return;
    };
    let mut config = no_stats();
    config.auth_token = Some("adbc-token".into());
    let server = Server::start(config).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/flight_adbc.py");
    let flight = format!("grpc://{}", server.flight.unwrap());
    let http = format!("http://{}", server.addr);
    let output = tokio::process::Command::new(&python)
        .args([
            script,
            "--flight",
            &flight,
            "--http",
            &http,
            "--token",
            "adbc-token",
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the ADBC script finishes within two minutes")
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ADBC script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("checks passed"), "{stdout}\n{stderr}");
    server.stop().await;
}

#[tokio::test]
async fn hydrated_dictionaries_arrive_as_plain_strings() {
    let mut config = no_stats();
    config.flight.hydrate_dictionaries = true;
    let server = Server::start(config).await;
    let mut client = client(&server).await;
    ingest(
        &mut client,
        ingest_command(
            "cpu",
            TableNotExistOption::Create,
            TableExistsOption::Append,
        ),
        vec![cpu_batch()],
    )
    .await
    .unwrap();
    let info = client
        .execute(
            "SELECT host, usage FROM cpu ORDER BY host, time".into(),
            None,
        )
        .await
        .unwrap();
    // The announced schema is the one that arrives.
    let announced = Schema::try_from(info.clone()).unwrap();
    assert_eq!(announced.field(0).data_type(), &DataType::Utf8);
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Utf8);
    assert_eq!(
        strings(batches[0].column(0)),
        ["a", "a", "b", "b", "c", "c"]
    );
    server.stop().await;
}
