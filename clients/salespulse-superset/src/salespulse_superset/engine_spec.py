"""A Superset engine spec for DataFusion behind Arrow Flight SQL (salespulse).

Superset picks an engine spec by the SQLAlchemy backend name (`datafusion` for both
`datafusion://` and `datafusion+flightsql://`). Without one it falls back to
`BaseEngineSpec`, which has no time grains ("No grain spec for P1D for database base"),
cannot write datetime literals for time filters and knows no epoch conversion. Superset
loads this class from the `superset.db_engine_specs` entry point
(superset/db_engine_specs/__init__.py, load_engine_specs). The SQL below is DataFusion's:
`date_trunc` for calendar units (weeks start on Monday, ISO), `date_bin` for fixed
intervals (two-argument form: bins counted from the Unix epoch).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import types
from sqlalchemy.types import TypeEngine

from superset.constants import TimeGrain
from superset.db_engine_specs.base import BaseEngineSpec, DatabaseCategory

# Importing the dialect registers `datafusion+flightsql` (and `datafusion`) with
# SQLAlchemy before Superset creates an engine.
from salespulse_superset import dialect as _dialect  # noqa: F401


def _bin(interval: str) -> str:
    return f"date_bin(INTERVAL '{interval}', {{col}})"


class DataFusionEngineSpec(BaseEngineSpec):
    engine = "datafusion"
    engine_name = "DataFusion (Arrow Flight SQL)"
    drivers = {"flightsql": "Arrow Flight SQL (flightsql-dbapi)"}
    default_driver = "flightsql"

    sqlalchemy_uri_placeholder = (
        "datafusion+flightsql://USER:PASSWORD@HOST:50051?insecure=true&database=TENANT"
    )

    metadata = {
        "description": (
            "Apache DataFusion served over Arrow Flight SQL (salespulse), through "
            "flightsql-dbapi."
        ),
        "categories": [DatabaseCategory.ANALYTICAL_DATABASES, DatabaseCategory.OPEN_SOURCE],
        "pypi_packages": ["salespulse-superset", "flightsql-dbapi"],
        "connection_string": (
            "datafusion+flightsql://USER:PASSWORD@HOST:50051?insecure=true&database=TENANT"
        ),
        "default_port": 50051,
        "notes": (
            "insecure=true means plaintext gRPC (any value turns it on): leave it out with "
            "TLS. disable_server_verification=true skips certificate checks; token=... "
            "sends a bearer token; every other parameter becomes a request header."
        ),
    }

    # The server is read-only.
    supports_file_upload = False

    _time_grain_expressions = {
        None: "{col}",
        TimeGrain.SECOND: "date_trunc('second', {col})",
        TimeGrain.FIVE_SECONDS: _bin("5 seconds"),
        TimeGrain.THIRTY_SECONDS: _bin("30 seconds"),
        TimeGrain.MINUTE: "date_trunc('minute', {col})",
        TimeGrain.FIVE_MINUTES: _bin("5 minutes"),
        TimeGrain.TEN_MINUTES: _bin("10 minutes"),
        TimeGrain.FIFTEEN_MINUTES: _bin("15 minutes"),
        TimeGrain.THIRTY_MINUTES: _bin("30 minutes"),
        TimeGrain.HALF_HOUR: _bin("30 minutes"),
        TimeGrain.HOUR: "date_trunc('hour', {col})",
        TimeGrain.SIX_HOURS: _bin("6 hours"),
        TimeGrain.DAY: "date_trunc('day', {col})",
        TimeGrain.WEEK: "date_trunc('week', {col})",
        TimeGrain.WEEK_STARTING_MONDAY: "date_trunc('week', {col})",
        TimeGrain.WEEK_STARTING_SUNDAY: (
            "date_trunc('week', {col} + INTERVAL '1 day') - INTERVAL '1 day'"
        ),
        TimeGrain.WEEK_ENDING_SATURDAY: (
            "date_trunc('week', {col} + INTERVAL '1 day') + INTERVAL '5 days'"
        ),
        TimeGrain.WEEK_ENDING_SUNDAY: "date_trunc('week', {col}) + INTERVAL '6 days'",
        TimeGrain.MONTH: "date_trunc('month', {col})",
        TimeGrain.QUARTER: "date_trunc('quarter', {col})",
        TimeGrain.QUARTER_YEAR: "date_trunc('quarter', {col})",
        TimeGrain.YEAR: "date_trunc('year', {col})",
    }

    @classmethod
    def epoch_to_dttm(cls) -> str:
        return "to_timestamp_seconds({col})"

    @classmethod
    def epoch_ms_to_dttm(cls) -> str:
        return "to_timestamp_millis({col})"

    @classmethod
    def convert_dttm(
        cls, target_type: str, dttm: datetime, db_extra: dict[str, Any] | None = None
    ) -> str | None:
        """Datetime literals for time filters (`time_range`) and SQL Lab templates.

        flightsql-dbapi binds parameters by writing them into the SQL text, and
        SQLAlchemy's default dialect cannot render a datetime literal, so a time filter
        without this fails before it reaches the server.
        """
        sqla_type = cls.get_sqla_column_type(target_type)
        if isinstance(sqla_type, types.DateTime) or (target_type or "").upper().startswith("TIMESTAMP"):
            return f"""CAST('{dttm.isoformat(sep=" ", timespec="microseconds")}' AS TIMESTAMP)"""
        if isinstance(sqla_type, types.Date):
            return f"CAST('{dttm.date().isoformat()}' AS DATE)"
        return None

    @classmethod
    def get_datatype(cls, type_code: Any) -> str | None:
        """flightsql-dbapi's cursor description holds SQLAlchemy type classes
        (`sqlalchemy.types.TIMESTAMP`); name them as SQL types so SQL Lab results and
        virtual datasets know which columns are temporal or numeric."""
        if isinstance(type_code, type) and issubclass(type_code, TypeEngine):
            return type_code.__visit_name__.upper()
        if isinstance(type_code, TypeEngine):
            return type(type_code).__visit_name__.upper()
        return super().get_datatype(type_code)
