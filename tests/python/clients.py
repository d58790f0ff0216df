"""Real client libraries against a running MetricStore.

Usage: clients.py HTTP_ADDR STATSD_ADDR
Writes with influxdb-client (line protocol, v2 API) and the statsd package, then
prints what it sent as JSON so the Rust test can compare it with what was stored.
"""
import json
import sys

import statsd
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

http_addr, statsd_addr = sys.argv[1], sys.argv[2]

client = InfluxDBClient(url=f"http://{http_addr}", token="unused", org="unused")
write = client.write_api(write_options=SYNCHRONOUS)
points = []
for i in range(20):
    p = (
        Point("py_cpu")
        .tag("host", f"h{i % 3}")
        .tag("note", "with space, comma=equals")
        .field("usage", i * 1.5)
        .field("count", i)
        .time(1_700_000_000_000 + i * 1000, WritePrecision.MS)
    )
    points.append(p)
write.write(bucket="any", record=points)
client.close()

host, port = statsd_addr.rsplit(":", 1)
c = statsd.StatsClient(host, int(port), prefix="pyapp")
for i in range(10):
    c.incr("hits")
c.gauge("temperature", 21.5)
c.gauge("temperature", 2, delta=True)
for ms in [10, 20, 30, 40]:
    c.timing("latency", ms)

json.dump(
    {
        "influx_rows": 20,
        "usage_sum": sum(i * 1.5 for i in range(20)),
        "statsd_hits": 10,
        "statsd_temperature": 23.5,
        "statsd_timer_count": 4,
    },
    sys.stdout,
)
