"""Grafana's macro expansion, as its data sources do it, so tests run the SQL Grafana sends.

`flightsql` follows the Flight SQL plugin (influxdata/grafana-flightsql-datasource v1.1.1
plus grafana-plugin-sdk-go's sqlutil defaults; docs/clients.md § Grafana plugin macros).
`postgres` follows Grafana's built-in PostgreSQL data source.
"""
import re
from datetime import datetime, timezone


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def flightsql(sql: str, start: datetime, end: datetime, interval_seconds: float) -> str:
    f, t = _rfc3339(start), _rfc3339(end)
    n = int(interval_seconds)  # whole seconds; 0 under one second, as the plugin does
    def group(col, part, alias):
        parts = ["minute", "hour", "day", "month", "year"]
        chosen = parts[parts.index(part):]
        return ",".join(f"datepart('{p}', {col})" + (f" as {col}_{p}" if alias else "") for p in chosen)
    rules = [
        (r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} >= '{f}' AND {m[1]} <= '{t}'"),
        (r"\$__timeRange\(([^)]+)\)", lambda m: f"{m[1]} >= '{f}' AND {m[1]} <= '{t}'"),
        (r"\$__timeRangeFrom\(([^)]+)\)", lambda m: f"{m[1]} >= '{f}'"),
        (r"\$__timeRangeTo\(([^)]+)\)", lambda m: f"{m[1]} <= '{t}'"),
        (r"\$__dateBinAlias\(([^)]+)\)", lambda m: f"date_bin(interval '{n} second', {m[1]}, timestamp '1970-01-01T00:00:00Z') as {m[1]}_binned"),
        (r"\$__dateBin\(([^)]+)\)", lambda m: f"date_bin(interval '{n} second', {m[1]}, timestamp '1970-01-01T00:00:00Z')"),
        (r"\$__timeGroupAlias\(([^,]+),\s*(\w+)\)", lambda m: group(m[1].strip(), m[2], True)),
        (r"\$__timeGroup\(([^,]+),\s*(\w+)\)", lambda m: group(m[1].strip(), m[2], False)),
        (r"\$__timeFrom\b", lambda m: f"cast('{start.isoformat()}' as timestamp)"),
        (r"\$__timeTo\b", lambda m: f"cast('{end.isoformat()}' as timestamp)"),
        (r"\$__interval\b", lambda m: f"interval '{n} second'"),
    ]
    for pattern, replace in rules:
        sql = re.sub(pattern, replace, sql)
    return sql


def postgres(sql: str, start: datetime, end: datetime, interval_seconds: float) -> str:
    f, t = _rfc3339(start), _rfc3339(end)
    n = max(int(interval_seconds), 1)
    rules = [
        (r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} BETWEEN '{f}' AND '{t}'"),
        (r"\$__timeGroupAlias\(([^,]+),\s*'?(\w+)'?\)", lambda m: f"floor(extract(epoch from {m[1]})/{n})*{n} AS \"time\""),
        (r"\$__timeGroup\(([^,]+),\s*'?(\w+)'?\)", lambda m: f"floor(extract(epoch from {m[1]})/{n})*{n}"),
        (r"\$__timeFrom\(\)", lambda m: f"'{f}'"),
        (r"\$__timeTo\(\)", lambda m: f"'{t}'"),
    ]
    for pattern, replace in rules:
        sql = re.sub(pattern, replace, sql)
    return sql
