"""Reads Parquet files with DuckDB, without MetricStore: prints aggregates as JSON.

Usage: duckdb_check.py GLOB
"""
import json
import sys

import duckdb

rows = duckdb.sql(
    f"SELECT host, count(*), sum(user), min(epoch_ms(time)), max(epoch_ms(time)) "
    f"FROM read_parquet('{sys.argv[1]}', hive_partitioning = true) GROUP BY host ORDER BY host"
).fetchall()
json.dump([[r[0], r[1], r[2], r[3], r[4]] for r in rows], sys.stdout)
