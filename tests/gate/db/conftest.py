"""Fixtures of the database tests: private PostgreSQL/MariaDB databases (tests/helpers/databases.py)."""

from helpers.databases import mysql_uri, postgres_uri, sql_uri  # noqa: F401  (fixtures)
