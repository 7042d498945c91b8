"""The `datafusion+flightsql://` SQLAlchemy dialect, as Superset needs it.

flightsql-dbapi 0.2.2 (`flightsql.sqlalchemy.DataFusionDialect`, name `datafusion`, driver
`flightsql`) registers `datafusion.flightsql` only as a side effect of importing
`flightsql.sqlalchemy`; its package metadata declares just the `datafusion` entry point.
This module is the `datafusion.flightsql` entry point, so the URI works in a process that
never imports flightsql (Superset).

URI: `datafusion+flightsql://[USER:PASSWORD@]HOST:PORT[?PARAMS]`, where flightsql-dbapi
reads `insecure` (plaintext gRPC; any value turns it on), `disable_server_verification`
(TLS without certificate checks), `token` (sent as `authorization: Bearer …`) and
`feature-…` switches; every other parameter becomes a request header (salespulse reads
`database` as the tenant).
"""

from flightsql.sqlalchemy import DataFusionDialect
from sqlalchemy.dialects import registry
from sqlalchemy.engine import reflection


class DataFusionFlightSQLDialect(DataFusionDialect):
    """flightsql-dbapi's DataFusion dialect, with instantiated column types.

    flightsql-dbapi's `get_columns` returns type classes (`sqlalchemy.types.TIMESTAMP`),
    not instances. Superset only compiles and classifies `TypeEngine` instances
    (superset/connectors/sqla/utils.py, get_physical_table_metadata); with classes every
    column of a dataset becomes type `UNKNOWN`, so no column is temporal and no chart can
    have a time axis.
    """

    supports_statement_cache = True

    @reflection.cache
    def get_columns(self, connection, table, schema=None, **kwargs):
        columns = connection.connection.flightsql_get_columns(table, schema)
        return [{**column, "type": _instance(column["type"])} for column in columns]


def _instance(type_):
    return type_() if isinstance(type_, type) else type_


# flightsql.sqlalchemy registered its own class under "datafusion.flightsql" when it was
# imported above; point both names at this one so every URI gets the same dialect.
registry.register("datafusion.flightsql", __name__, "DataFusionFlightSQLDialect")
registry.register("datafusion", __name__, "DataFusionFlightSQLDialect")
