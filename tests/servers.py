"""The throwaway servers (loopback/servers.py, shared with the benchmark), and
what only the tests ask of them."""

import psycopg2

from loopback.servers import ROOT, PostgresServer, RedisServer, free_port, pg_bindir, wait_until

__all__ = ["ROOT", "PostgresServer", "RedisServer", "free_port", "pg_bindir", "statements_kept", "wait_until"]


def statements_kept(url):
    """The text of every statement pg_stat_statements kept (on a server that preloads it)."""
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cur.execute("SELECT query FROM pg_stat_statements")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
