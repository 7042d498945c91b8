"""Apache Superset support for salespulse over Arrow Flight SQL.

Installing this package into Superset's environment registers, through entry points:

- the SQLAlchemy dialect `datafusion+flightsql://` (flightsql-dbapi's DataFusion dialect,
  with column types Superset can read), and
- a Superset engine spec for the `datafusion` backend: time grains, epoch conversions and
  datetime literals in DataFusion SQL, so time-series charts and time filters work.

Nothing here imports Superset except `salespulse_superset.engine_spec`, which only
Superset loads.
"""

__version__ = "0.1.0"
