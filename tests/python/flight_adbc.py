"""MetricStore's Flight SQL endpoint driven by a real client: ADBC's Flight SQL driver.

Run by `tests/flight.rs` (`adbc_client_*`) against an in-process server:

    flight_adbc.py --flight grpc://127.0.0.1:PORT --http http://127.0.0.1:PORT --token TOKEN

It writes rows over HTTP, lists tables through ADBC, runs a query with a parameter
and compares it with the HTTP SQL endpoint's answer, bulk-ingests pyarrow tables
(append and create_append) and reads them back, and checks that a wrong token is
refused. Exits non-zero with the failing check's message.
"""

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.request

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa

checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


def http(base, path, token, body):
    request = urllib.request.Request(
        base + path,
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def http_sql(base, token, sql):
    return http(base, "/api/v1/sql", token, sql)


def epoch_ms(value):
    """Milliseconds since the epoch of a datetime or an RFC 3339 string."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return round(value.timestamp() * 1000)


def connect(uri, token):
    return flight_sql.connect(
        uri,
        # The server has no transactions; ADBC would otherwise warn it cannot turn
        # autocommit off.
        autocommit=True,
        db_kwargs={
            adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}",
        },
    )


def table_names(conn):
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    names = set()
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for table in schema["db_schema_tables"] or []:
                names.add((catalog["catalog_name"], schema["db_schema_name"], table["table_name"]))
    return names


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--flight", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()

    # Rows written over HTTP (line protocol, ms precision).
    lines = "\n".join(
        f"cpu,host={host},region=eu usage={usage},idle={100 - usage} {t}"
        for t, (host, usage) in enumerate(
            [("a", 1.0), ("b", 2.5), ("c", 4.0), ("a", 3.5), ("b", 0.5), ("c", 6.0)], start=1
        )
    )
    http(args.http, "/write?precision=ms", args.token, lines)

    with connect(args.flight, args.token) as conn:
        # Tables, and a table's Arrow schema.
        names = table_names(conn)
        check(("metricstore", "public", "cpu") in names, f"cpu not listed: {sorted(names)}")
        schema = conn.adbc_get_table_schema("cpu", catalog_filter="metricstore", db_schema_filter="public")
        check(
            schema.names == ["host", "region", "time", "usage", "idle"],
            f"cpu schema: {schema}",
        )
        check(pa.types.is_timestamp(schema.field("time").type), f"time type: {schema}")

        # A query with a parameter, against the HTTP SQL endpoint's JSON.
        sql = "SELECT host, time, usage FROM cpu WHERE usage > {} ORDER BY host, time"
        with conn.cursor() as cur:
            cur.execute(sql.format("$1"), (1.5,))
            flight = cur.fetch_arrow_table()
        expected = http_sql(args.http, args.token, sql.format("1.5"))
        check(flight.column_names == expected["columns"], f"columns {flight.column_names} vs {expected['columns']}")
        got = [
            [row["host"], epoch_ms(row["time"]), row["usage"]] for row in flight.to_pylist()
        ]
        want = [[host, epoch_ms(time), usage] for host, time, usage in expected["rows"]]
        check(len(want) == 4, f"HTTP rows: {expected['rows']}")
        check(got == want, f"Flight rows {got} vs HTTP rows {want}")

        # Bulk ingest into the existing table (append), then read it back.
        data = pa.table(
            {
                "host": pa.array(["a", "b", "d"]),
                "time": pa.array(
                    [dt.datetime(2026, 1, 1, 0, 0, s, tzinfo=dt.timezone.utc) for s in (1, 2, 3)],
                    type=pa.timestamp("ns", tz="UTC"),
                ),
                "usage": pa.array([10.0, None, 30.0]),
                "idle": pa.array([90, 80, None], type=pa.int64()),
            }
        )
        with conn.cursor() as cur:
            cur.adbc_ingest("cpu", data, mode="append")
            cur.execute(
                "SELECT host, time, usage, idle FROM cpu WHERE time >= $1 ORDER BY host",
                (dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),),
            )
            back = cur.fetch_arrow_table().to_pylist()
        check(
            [(r["host"], epoch_ms(r["time"]), r["usage"], r["idle"]) for r in back]
            == [
                ("a", epoch_ms(dt.datetime(2026, 1, 1, 0, 0, 1)), 10.0, 90.0),
                ("b", epoch_ms(dt.datetime(2026, 1, 1, 0, 0, 2)), None, 80.0),
                ("d", epoch_ms(dt.datetime(2026, 1, 1, 0, 0, 3)), 30.0, None),
            ],
            f"ingested rows read back: {back}",
        )

        # A new table: append refuses it, create_append creates it.
        mem = pa.table(
            {
                "host": ["a", "a"],
                "time": pa.array([1_000, 2_000], type=pa.timestamp("ms")),
                "used": [1.5, 2.5],
            }
        )
        with conn.cursor() as cur:
            try:
                cur.adbc_ingest("mem", mem, mode="append")
                check(False, "append into a missing table was accepted")
            except flight_sql.Error as e:
                check("not found" in str(e), f"append into a missing table: {e}")
        with conn.cursor() as cur:
            cur.adbc_ingest("mem", mem, mode="create_append")
            cur.execute("SELECT sum(used) AS total FROM mem")
            total = cur.fetch_arrow_table().to_pylist()
        check(total == [{"total": 4.0}], f"mem total: {total}")
        check(("metricstore", "public", "mem") in table_names(conn), "mem not listed")

        # A planner error comes back with the planner's message.
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT nope FROM cpu")
                cur.fetch_arrow_table()
                check(False, "a bad column was accepted")
            except flight_sql.Error as e:
                check("nope" in str(e), f"planner error: {e}")

    # The wrong token is refused.
    try:
        with connect(args.flight, "wrong") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetch_arrow_table()
        check(False, "a wrong token was accepted")
    except flight_sql.Error as e:
        check("nauthenticated" in str(e) or "UNAUTHENTICATED" in str(e), f"wrong token: {e}")

    print(f"{checks} checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
