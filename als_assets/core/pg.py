"""PostgreSQL connection settings, connecting, and safe SQL identifiers.

This module is deliberately free of Dagster (and Spark) imports so that the command-line loader,
tests and Dagster resources can all share one definition of "where the database is" and one
error type for "the database could not be reached" without pulling in a framework.

Two rules run through it:

* The password never leaves :class:`PgSettings` in printable form: it is excluded from ``repr``,
  from :meth:`PgSettings.dsn_for_display` and :meth:`PgSettings.jdbc_url`, and scrubbed from
  connection error messages, because those strings end up in logs, Dagster run metadata and CI
  output.
* Table names come from the command line or config, so they are validated against a strict
  pattern and always rendered with :mod:`psycopg2.sql` (never string formatting), which makes
  SQL injection through a table name impossible rather than merely unlikely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TypeAlias

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

PgConnection: TypeAlias = psycopg2.extensions.connection

__all__ = [
    "PgConnection",
    "PgConnectionError",
    "PgSettings",
    "classify_pg_error",
    "connect",
    "pg_faults",
    "qualified_table",
    "split_qualified_name",
    "validate_identifier",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5432
DEFAULT_DATABASE = "postgres"
DEFAULT_USER = "postgres"
DEFAULT_CONNECT_TIMEOUT = 10

# An unquoted-style PostgreSQL identifier. 63 characters is PostgreSQL's NAMEDATALEN - 1; longer
# names would be silently truncated by the server, so two different names could collide.
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PgConnectionError(RuntimeError):
    """The database could not be reached, refused the login, or lacks a table we read.

    A separate type (rather than psycopg2's ``OperationalError`` or Spark's ``Py4JJavaError``)
    lets callers map "cannot connect" to its own exit code / retry policy, and guarantees the
    message was built by us, with the password scrubbed, instead of whatever libpq or the JDBC
    driver happened to print. ``kind`` says which fault it is (see :func:`classify_pg_error`);
    ``permanent`` is True when a retry cannot help, so callers need not read the message.
    """

    def __init__(self, message: str, kind: str = "unreachable", permanent: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.permanent = permanent


def _env_int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Read an integer setting from the environment, failing with the variable's name.

    A bare ``int()`` error ("invalid literal for int() with base 10: 'abc'") does not tell the
    user which of six variables is wrong.
    """
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class PgSettings:
    """Where and as whom to connect.

    Frozen so a settings object can be shared between threads / Dagster resources and used as a
    dict key; ``dataclasses.replace`` gives a modified copy (e.g. another database).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    user: str = DEFAULT_USER
    # repr=False: settings objects get logged and shown in tracebacks; the password must not be.
    password: str = field(default="", repr=False)
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT  # seconds; bounds how long a dead host hangs

    def __post_init__(self) -> None:
        """Reject impossible values early, where the mistake is made, not inside libpq."""
        if not self.host:
            raise ValueError("PostgreSQL host must not be empty")
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"PostgreSQL port must be between 1 and 65535, got {self.port}")
        if not self.database:
            raise ValueError("PostgreSQL database must not be empty")
        if not self.user:
            raise ValueError("PostgreSQL user must not be empty")
        if int(self.connect_timeout) < 1:
            raise ValueError(
                f"connect_timeout must be at least 1 second, got {self.connect_timeout}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PgSettings:
        """Build settings from ``ALS_PG_*`` variables, with local-development defaults.

        Taking ``environ`` as a parameter keeps tests from having to mutate ``os.environ``.
        Variables: ALS_PG_HOST (127.0.0.1), ALS_PG_PORT (5432), ALS_PG_DATABASE (postgres),
        ALS_PG_USER (postgres), ALS_PG_PASSWORD (empty), ALS_PG_CONNECT_TIMEOUT (10 seconds).
        """
        return cls(
            host=environ.get("ALS_PG_HOST", "").strip() or DEFAULT_HOST,
            port=_env_int(environ, "ALS_PG_PORT", DEFAULT_PORT, 1, 65535),
            database=environ.get("ALS_PG_DATABASE", "").strip() or DEFAULT_DATABASE,
            user=environ.get("ALS_PG_USER", "").strip() or DEFAULT_USER,
            password=environ.get("ALS_PG_PASSWORD", ""),
            connect_timeout=_env_int(
                environ, "ALS_PG_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, 1, 3600
            ),
        )

    def _host_port(self) -> str:
        # IPv6 literals need brackets in URLs, otherwise the port is ambiguous.
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    def dsn_for_display(self) -> str:
        """A URL-style description for logs and error messages; never includes the password."""
        return f"postgresql://{self.user}@{self._host_port()}/{self.database}"

    def jdbc_url(self) -> str:
        """The JDBC URL Spark needs; credentials are passed separately as properties.

        Keeping user/password out of the URL means the URL can be logged and shown in the Spark
        UI (which displays JDBC options) without leaking secrets.
        """
        return f"jdbc:postgresql://{self._host_port()}/{self.database}"


def _scrub(text: str, secret: str) -> str:
    """Remove ``secret`` from ``text`` and fold libpq's multi-line messages into one line.

    libpq does not normally echo the password, but a DSN typo or a driver change could; we do
    not want our guarantee to depend on libpq's wording.
    """
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split())


def connect(settings: PgSettings, *, application_name: str = "als_assets") -> PgConnection:
    """Open a psycopg2 connection (autocommit off), bounded by ``settings.connect_timeout``.

    Raises :class:`PgConnectionError` with a one-line message naming ``user@host:port/database``
    and libpq's reason, with the password scrubbed. The password is passed only when set so that
    libpq can still fall back to ``~/.pgpass`` / ``PGPASSWORD`` when it is empty.
    """
    kwargs: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "dbname": settings.database,
        "user": settings.user,
        "connect_timeout": settings.connect_timeout,
        "application_name": application_name,
    }
    if settings.password:
        kwargs["password"] = settings.password
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as exc:
        # `from None`: the chained exception would repeat the unscrubbed text.
        raise classify_pg_error(exc, settings) from None
    conn.set_client_encoding("UTF8")
    return conn


def validate_identifier(name: str, what: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ``ValueError``.

    Even though identifiers are always quoted via :mod:`psycopg2.sql`, the strict pattern also
    rejects names that would be legal but surprising (spaces, dots, quotes, >63 characters that
    the server would truncate), and makes the error appear at argument-parsing time, naming
    ``what`` ("schema", "ratings table", ...), instead of as a SQL error later.

    Note: quoting preserves case, so ``Ratings`` and ``ratings`` are different tables.
    """
    if not isinstance(name, str) or _IDENTIFIER_RE.fullmatch(name) is None:
        raise ValueError(
            f"invalid {what} {name!r}: expected a letter or underscore followed by up to 62 "
            "letters, digits or underscores"
        )
    return name


def split_qualified_name(name: str, what: str = "table") -> tuple[str, str]:
    """Split and validate ``schema.table``; a schema is required.

    Requiring the schema avoids depending on the connection's ``search_path``, so the loader
    and the Spark reader are guaranteed to agree on which table they mean.
    """
    if not isinstance(name, str) or name.count(".") != 1:
        raise ValueError(f"invalid {what} {name!r}: expected schema.table, e.g. movielens.ratings")
    schema, table = name.split(".")
    for part, role in ((schema, "schema"), (table, "table name")):
        try:
            validate_identifier(part, role)
        except ValueError as exc:
            raise ValueError(f"invalid {what} {name!r}: {exc}") from None
    return schema, table


def qualified_table(name: str, what: str = "table") -> sql.Identifier:
    """Parse ``schema.table`` into a quoted ``sql.Identifier(schema, table)``."""
    return sql.Identifier(*split_qualified_name(name, what))


# ---------------------------------------------------------------------------------------------
# Classifying faults: one place decides what a retry can fix, for psycopg2 and for Spark's JDBC

# Ordered: the first kind whose SQLSTATE or text matches wins. A refused role ("role "x" does
# not exist") must be recognised before the generic "does not exist" of a missing table.
_KINDS: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    ("refused login", frozenset({"28P01", "28000"}),
     ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
      "no password supplied", "requested password-based authentication", "role \"")),
    ("unknown database", frozenset({"3D000"}), ("database \"",)),
    ("unknown host", frozenset(),
     ("java.net.unknownhostexception", "could not translate host name",
      "name or service not known", "temporary failure in name resolution",
      "nodename nor servname")),
    ("closed port", frozenset(), ("connection refused",)),
    ("missing table", frozenset({"42P01", "3F000"}),
     ("relation \"", "schema \"", "undefinedtable")),
)


def _why(kind: str, settings: PgSettings, table: str) -> str:
    """What the user should check, in the words of the settings they can change."""
    return {
        "refused login": f"the server refused the login of user {settings.user!r} "
                         "(check ALS_PG_USER and ALS_PG_PASSWORD)",
        "unknown database": f"database {settings.database!r} does not exist "
                            "(check ALS_PG_DATABASE)",
        "unknown host": f"host {settings.host!r} is unknown (check ALS_PG_HOST)",
        "closed port": f"nothing listens on port {settings.port} of {settings.host} "
                       "(is the server running? check ALS_PG_HOST and ALS_PG_PORT)",
        "missing table": f"table {table or '?'} does not exist (load it with "
                         "als-load-movielens, or check ALS_PG_RATINGS_TABLE / "
                         "ALS_PG_MOVIES_TABLE)",
    }.get(kind, "the database could not be reached")


def _java_chain(throwable) -> Iterator[tuple[str, str, str]]:
    """(class name, message, SQLSTATE) of a Java throwable and its causes.

    Spark redacts the JDBC URL in its own message and often says only "Couldn't connect"; the
    driver's cause (ConnectException, UnknownHostException, PSQLException with its SQLSTATE)
    is further down the chain, so the whole chain is read.
    """
    seen = 0
    while throwable is not None and seen < 20:
        seen += 1
        try:
            name = str(throwable.getClass().getName())
            message = str(throwable.getMessage() or "")
            state = ""
            with suppress(Exception):  # not a java.sql.SQLException: no SQLSTATE
                state = str(throwable.getSQLState() or "")
            yield name, message, state
            throwable = throwable.getCause()
        except Exception:  # the JVM is gone or the object is not a Java throwable
            return


def _evidence(exc: BaseException) -> tuple[list[str], set[str]]:
    """Texts and SQLSTATEs of an exception, its Python causes and any Java throwable inside."""
    texts: list[str] = []
    states: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        state = getattr(current, "pgcode", None) or ""
        if state:
            states.add(state)
        java = getattr(current, "java_exception", None) or getattr(current, "_origin", None)
        for name, message, java_state in _java_chain(java):
            texts.append(f"{name}: {message}")
            if java_state:
                states.add(java_state)
        current = current.__cause__ or current.__context__
    return texts, states


def _kind_of(texts: list[str], states: set[str]) -> str | None:
    lowered = " ".join(texts).lower()
    for kind, codes, needles in _KINDS:
        if states & codes or any(needle in lowered for needle in needles):
            return kind
    return None


def _cause(texts: list[str], secret: str) -> str:
    """The most specific line of the evidence: the deepest driver message, scrubbed.

    Spark's top-level message is a redacted URL plus "Couldn't connect"; the last text of the
    chain is the driver's own reason (e.g. 'FATAL: role "x" does not exist').
    """
    meaningful = [t for t in texts if t.split(": ", 1)[-1].strip()]
    text = meaningful[-1] if meaningful else (texts[0] if texts else "")
    return _scrub(text, secret)[:300]


def classify_pg_error(exc: BaseException, settings: PgSettings,
                      table: str = "") -> PgConnectionError | None:
    """The :class:`PgConnectionError` ``exc`` amounts to, or None when it is no database fault.

    Reads psycopg2 errors, our own :class:`PgConnectionError`, and Spark's JDBC errors
    (``Py4JJavaError`` / captured exceptions wrapping ``java.sql.SQLException`` and
    ``org.postgresql.util.PSQLException``). A refused login, an unknown host or database, a
    closed port and a missing table are permanent: retrying only repeats the failed logins and
    delays the message. Anything else that looks like a connection problem (a timeout, a reset
    connection) is transient. The message names host, port, database and user, never the
    password; ``table`` names the table being read, for the missing-table case.
    """
    if isinstance(exc, PgConnectionError) and exc.permanent:
        return exc
    texts, states = _evidence(exc)
    kind = _kind_of(texts, states)
    if kind is None:
        transient = isinstance(exc, (PgConnectionError, psycopg2.OperationalError)) or any(
            marker in " ".join(texts).lower()
            for marker in ("java.net.", "couldn't connect", "connection attempt", "timed out",
                           "connection reset", "i/o error")
        )
        if not transient:
            return None
        kind = "unreachable"
    where = f"PostgreSQL at {settings._host_port()}/{settings.database} as user {settings.user!r}"
    permanent = kind != "unreachable"
    verb = f"reading {table} from {where}" if kind == "missing table" else \
        f"cannot connect to {where}"
    retry = "not retried" if permanent else "may be retried"
    message = f"{verb}: {_why(kind, settings, table)}; {retry} ({_cause(texts, settings.password)})"
    return PgConnectionError(message, kind=kind, permanent=permanent)


@contextmanager
def pg_faults(settings: PgSettings, table: str = "") -> Iterator[None]:
    """Turn any database fault raised inside into a classified :class:`PgConnectionError`.

    Other errors pass through unchanged. The original is not chained (``from None``) because
    its text may hold what libpq or the driver printed, unscrubbed.
    """
    try:
        yield
    except PgConnectionError:
        raise  # connect() classified it already
    except Exception as exc:
        fault = classify_pg_error(exc, settings, table)
        if fault is None:
            raise
        raise fault from None
