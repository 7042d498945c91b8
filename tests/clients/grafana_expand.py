"""What Grafana sends for a dashboard target: template variables interpolated as the
frontend does, then the macros expanded as each datasource's backend does, ported line by
line from their sources so the tests run the very SQL Grafana would.

PostgreSQL datasource (built into Grafana):
- variables: packages/grafana-sql/src/datasource/SqlDatasource.ts (`interpolateVariable`:
  a multi-value or include-All variable's values become quoted literals `'v'` joined by `,`;
  *All* with a custom `allValue` is inserted as written, TemplateSrv skips formatting it);
  grafana/grafana@e75b5e7d.
- global substitutions first: pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go
  `Interpolate` ($__interval_ms, $__interval, $__unixEpochFrom(), $__unixEpochTo());
  grafana/grafana@e509a738.
- then the macros: pkg/tsdb/grafana-postgresql-datasource/macros.go (`sExpr` regex
  `\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)`, `evaluateMacro`); grafana/grafana@02ab314b.
  `$__timeFilter(c)` is `c BETWEEN '<from RFC3339Nano>' AND '<to RFC3339Nano>'`, UTC.

Flight SQL datasource (influxdata-flightsql-datasource v1.1.1,
influxdata/grafana-flightsql-datasource@a7cc7d81):
- variables: src/datasource.ts (`interpolateVariable`, the same rules as above, applied to
  the target's `queryText`).
- macros: pkg/flightsql/macro.go (dateBin, dateBinAlias, interval, timeGroup,
  timeGroupAlias, timeRange/timeRangeFrom/timeRangeTo = the SDK's timeFilter/timeFrom/timeTo,
  and its own timeFrom/timeTo), run by grafana-plugin-sdk-go v0.184.0's
  data/sqlutil/macros.go `Interpolate` / `getMacroMatches` (grafana/grafana-plugin-sdk-go
  tag v0.184.0), which also adds the SDK defaults it lacks (timeFilter, table, column). Note
  getMacroMatches' quirk, kept here: a macro written without parentheses ($__timeFrom,
  $__interval) swallows the next parenthesised group after it unless a `)` comes first.
  The SDK loops over a Go map (random order), so with that quirk one query can expand
  differently from run to run (`x >= $__timeFrom AND x <= $__timeTo)`: if timeTo is
  expanded first, timeFrom swallows `AND x <= cast(...)`); `reverse=` checks for it.
"""
import re
from datetime import datetime, timedelta, timezone

ALL = "$__all"


# --- Go formatting -------------------------------------------------------------------------

def rfc3339(t: datetime) -> str:
    """Go's time.RFC3339 of a UTC time: whole seconds."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339nano(t: datetime) -> str:
    """Go's time.RFC3339Nano of a UTC time: fraction with trailing zeros trimmed."""
    t = t.astimezone(timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def go_float(seconds: float) -> str:
    """fmt %v of a float64 (interval.Seconds()): 86400 -> "86400", 0.5 -> "0.5"."""
    return repr(float(seconds)).removesuffix(".0") if float(seconds).is_integer() else repr(float(seconds))


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def parse_interval(text: str) -> float:
    """gtime.ParseInterval for the plain `<n><unit>` forms dashboards use; seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|M|y)", text.strip())
    if not m:
        raise ValueError(f"error parsing interval {text}")
    return int(m[1]) * _UNITS[m[2]]


def format_interval(ms: int) -> str:
    """gtime.FormatInterval (what $__interval becomes in the PostgreSQL datasource)."""
    seconds = ms / 1000
    for unit, size in [("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{ms}ms"


# --- the frontend: template variables ------------------------------------------------------

def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate_variables(sql: str, variables: dict, values: dict) -> str:
    """TemplateSrv.replace with the SQL datasources' interpolateVariable. `variables` are the
    dashboard's templating entries by name; `values` the selection (ALL, a string or a list)."""
    def value_of(name):
        var = variables[name]
        value = values.get(name, var.get("current", {}).get("value"))
        if value == ALL or value == [ALL]:
            if var.get("allValue"):
                return var["allValue"]  # inserted as written
            raise NotImplementedError("All without a custom allValue")
        if isinstance(value, list):
            return ",".join(quote_literal(str(v)) for v in value)
        if var.get("multi") or var.get("includeAll"):
            return quote_literal(str(value))
        return str(value).replace("'", "''")

    def replace(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return value_of(name) if name in variables else m.group(0)
    # $var, ${var}, [[var]] (TemplateSrv's variableRegex, without the format suffixes)
    return re.sub(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]", replace, sql)


# --- the PostgreSQL datasource's backend ----------------------------------------------------

def postgres_backend(sql: str, frm: datetime, to: datetime, interval_ms: int) -> str:
    # sqleng.Interpolate
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$__interval", format_interval(interval_ms))
    sql = sql.replace("$__unixEpochFrom()", str(int(frm.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(to.timestamp())))
    original = sql

    def evaluate(name, args):
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339nano(frm)}' AND '{rfc3339nano(to)}'"
        if name == "__timeFrom":
            return f"'{rfc3339nano(frm)}'"
        if name == "__timeTo":
            return f"'{rfc3339nano(to)}'"
        if name == "__timeGroup":
            if len(args) < 2:
                raise ValueError(f"macro {name} needs time column and interval and optional fill value")
            secs = go_float(parse_interval(args[1].strip("'")))
            return f"floor(extract(epoch from {args[0]})/{secs})*{secs}"
        if name == "__timeGroupAlias":
            return evaluate("__timeGroup", args) + ' AS "time"'
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(frm.timestamp())} AND {args[0]} <= {int(to.timestamp())}"
        if name == "__unixEpochNanoFilter":
            return f"{args[0]} >= {int(frm.timestamp() * 1e9)} AND {args[0]} <= {int(to.timestamp() * 1e9)}"
        if name == "__unixEpochNanoFrom":
            return str(int(frm.timestamp() * 1e9))
        if name == "__unixEpochNanoTo":
            return str(int(to.timestamp() * 1e9))
        if name == "__unixEpochGroup":
            secs = go_float(parse_interval(args[1].strip("'")))
            return f"floor(({args[0]})/{secs})*{secs}"
        if name == "__unixEpochGroupAlias":
            return evaluate("__unixEpochGroup", args) + ' AS "time"'
        raise ValueError(f"unknown macro {name!r}")

    def replace(m):
        name = m.group(1)
        if name == "__timeGroup":  # pre-5.3 compatibility: a ',' right after means Alias
            index = original.find(m.group(0))
            if index >= 0 and len(original) > index + len(m.group(0)) and original[index + len(m.group(0))] == ",":
                name = "__timeGroupAlias"
        args = [a.strip(" ") for a in m.group(2).split(",")]
        return evaluate(name, args)
    return re.sub(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)", replace, sql)


def postgres_datasource(sql, frm, to, interval_ms, variables=None, values=None):
    return postgres_backend(interpolate_variables(sql, variables or {}, values or {}), frm, to, interval_ms)


# --- the Flight SQL plugin's backend ---------------------------------------------------------

def _macro_matches(text: str, name: str):
    """grafana-plugin-sdk-go v0.184.0 data/sqlutil getMacroMatches, rune for rune."""
    found = []
    for match in re.finditer(r"\$__" + name + r"\b", text):
        macro_start = match.start()
        rest = text[macro_start:]
        macro_end, arg_start, force_break, depth = 0, 0, False, 0
        for idx, ch in enumerate(rest):
            if (depth == 0 and macro_end > 0) or force_break:
                break
            if ch == "(":
                depth += 1
                if arg_start == 0:
                    arg_start = idx + 1
            elif ch == ")":
                if depth == 0:
                    macro_end, force_break = 0, True
                    continue
                depth -= 1
                macro_end = idx + 1
        if macro_end == 0:
            macro_end = match.end() - macro_start
        whole = rest[:macro_end]
        args = rest[arg_start:macro_end - 1] if arg_start > 0 else ""
        found.append((whole, args))
    return found


def flightsql_backend(sql: str, frm: datetime, to: datetime, interval_ms: int, reverse: bool = False) -> str:
    """`reverse` runs the macros in the other order: Go iterates the macro map in random
    order, and with getMacroMatches' quirk the result can depend on it (a test checks that
    the shipped targets expand the same either way)."""
    seconds = int(interval_ms / 1000)  # int64(query.Interval.Seconds())
    f, t = rfc3339(frm), rfc3339(to)

    def group(args, alias):
        column, part = args[0], args[1]
        parts = ["minute", "hour", "day", "month", "year"]
        if part not in parts:
            return ""
        return ",".join(f"datepart('{p}', {column})" + (f" as {column}_{p}" if alias else "") for p in parts[parts.index(part):])

    def need(args, n):
        if len(args) != n:
            raise ValueError(f"unexpected number of arguments: expected {n}, received {len(args)}")
        return args

    macros = {
        "dateBin": lambda a: f"date_bin(interval '{seconds} second', {need(a, 1)[0]}, timestamp '1970-01-01T00:00:00Z')",
        "dateBinAlias": lambda a: f"date_bin(interval '{seconds} second', {need(a, 1)[0]}, timestamp '1970-01-01T00:00:00Z') as {a[0]}_binned",
        "interval": lambda a: f"interval '{seconds} second'",
        "timeGroup": lambda a: group(need(a, 2), False),
        "timeGroupAlias": lambda a: group(need(a, 2), True),
        "timeRangeFrom": lambda a: f"{need(a, 1)[0]} >= '{f}'",
        "timeRangeTo": lambda a: f"{need(a, 1)[0]} <= '{t}'",
        "timeRange": lambda a: f"{need(a, 1)[0]} >= '{f}' AND {a[0]} <= '{t}'",
        # the plugin's own: TimeRange.From.Format(time.RFC3339), in the plugin process's zone
        # (UTC in Grafana's images)
        "timeTo": lambda a: f"cast('{t}' as timestamp)",
        "timeFrom": lambda a: f"cast('{f}' as timestamp)",
        # SDK defaults the plugin does not override
        "timeFilter": lambda a: f"{need(a, 1)[0]} >= '{f}' AND {a[0]} <= '{t}'",
        "table": lambda a: "",
        "column": lambda a: "",
    }
    for name, macro in (reversed(list(macros.items())) if reverse else macros.items()):
        for whole, args in _macro_matches(sql, name):
            arg_list = [a.strip() for a in args.split(",")]
            sql = sql.replace(whole, macro(arg_list))
    return sql


def flightsql_datasource(sql, frm, to, interval_ms, variables=None, values=None):
    return flightsql_backend(interpolate_variables(sql, variables or {}, values or {}), frm, to, interval_ms)


# --- the time range -----------------------------------------------------------------------------

def relative_range(expr_from: str, expr_to: str, now: datetime):
    """The dashboard's `time` (`now-6M` .. `now`), as Grafana's dateMath parses it: calendar
    units, no rounding unless `/unit` is given (not supported here)."""
    def parse(expr):
        if expr == "now":
            return now
        m = re.fullmatch(r"now-(\d+)([smhdwMy])", expr)
        if not m:
            raise NotImplementedError(expr)
        n, unit = int(m[1]), m[2]
        if unit in "My":
            months = n * (12 if unit == "y" else 1)
            year, month = divmod(now.month - 1 - months, 12)
            return now.replace(year=now.year + year, month=month + 1)
        return now - timedelta(seconds=n * _UNITS[unit])
    return parse(expr_from), parse(expr_to)
