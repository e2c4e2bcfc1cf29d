"""What the ``strata`` subcommands share: one :class:`~trace_store.config.Config` per
run (every setting is read through it), and the flags several commands take."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import ServeSettings
from lifecycle_policies.policy import Policy, PolicyError
from trace_store.backends.url import SETTING, parse_store_url
from trace_store.config import Config
from trace_store.errors import ConfigError

if TYPE_CHECKING:
    import argparse

    from trace_store.backends.base import ObjectStore

#: The flags that override a ``STRATA_*`` setting of :class:`ServeSettings`.
SETTING_FLAGS = (
    "apps",
    "store",
    "database_url",
    "data_dir",
    "gateway_port",
    "editor_port",
    "host",
    "role",
    "policy",
    "reload",
)


def config(args: argparse.Namespace) -> Config:
    """The run's settings reader (``main`` sets it; a caller building its own
    namespace gets the process environment's)."""
    given = getattr(args, "config", None)
    return given if isinstance(given, Config) else Config()


def settings(args: argparse.Namespace) -> ServeSettings:
    """``strata serve``'s settings, with the command's flags over the environment."""
    flags = {name: getattr(args, name, None) for name in SETTING_FLAGS}
    return ServeSettings.from_env(config(args), **flags)


def db_flags(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--database-url``, for commands that open the index."""
    parser.add_argument("--data-dir", help="data directory (STRATA_DATA_DIR, default ./.strata)")
    parser.add_argument("--database-url", help="Postgres DSN (STRATA_DATABASE_URL)")


def store(args: argparse.Namespace) -> ObjectStore:
    """The store of ``--store`` or ``STRATA_STORE`` (one of them is required)."""
    url = args.store or config(args).get("STRATA_STORE")
    if not url:
        raise ConfigError(f"{SETTING}: no store given (--store URL or STRATA_STORE)")
    return parse_store_url(url, config(args))


def policy(args: argparse.Namespace) -> Policy:
    """The retention policy of ``--policy`` or ``STRATA_POLICY`` (default: SPEC §10's)."""
    path = args.policy or config(args).get("STRATA_POLICY")
    try:
        return Policy.from_file(path) if path else Policy()
    except PolicyError as exc:
        raise ConfigError(f"STRATA_POLICY (--policy): {exc}") from None
