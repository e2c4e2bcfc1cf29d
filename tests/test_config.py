"""Bad configuration fails at start-up with the setting's name; nothing is half-started."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ServeSettings
from gateway.loader import load_canvases
from trace_store.backends.url import parse_store_url
from trace_store.config import Config
from trace_store.errors import ConfigError


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"STRATA_GATEWAY_PORT": "http"}, "STRATA_GATEWAY_PORT"),
        ({"STRATA_EDITOR_PORT": "70000"}, "STRATA_EDITOR_PORT"),
        ({"STRATA_ROLE": "both"}, "STRATA_ROLE"),
        ({"STRATA_TRACE_SAMPLE": "half"}, "STRATA_TRACE_SAMPLE"),
        ({"STRATA_SECRET": "short"}, "STRATA_SECRET"),
        ({"STRATA_MAX_BODY_BYTES": "-1"}, "STRATA_MAX_BODY_BYTES"),
        ({"STRATA_SIGNED_URL_TTL": "0"}, "STRATA_SIGNED_URL_TTL"),
        ({"STRATA_GC": "off"}, "STRATA_GC"),
        (
            {"STRATA_SPOOL_BYTES": "1073741824"},
            "STRATA_SPOOL_BYTES: the spool became the trace log",
        ),
        ({"STRATA_LOG_BYTES": "lots"}, "STRATA_LOG_BYTES"),
        ({"STRATA_LOG_BYTES": "1000"}, "STRATA_LOG_BYTES"),
        ({"STRATA_QUEUE_CALLS": "0"}, "STRATA_QUEUE_CALLS"),
        ({"STRATA_EVENTS_RING": "many"}, "STRATA_EVENTS_RING"),
        ({"STRATA_EVENTS_HEARTBEAT": "0"}, "STRATA_EVENTS_HEARTBEAT"),
        ({"STRATA_WRITER": "thread"}, "STRATA_WRITER"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        ServeSettings.from_env(env)


def test_every_setting_is_read_from_the_given_environment_only() -> None:
    settings = ServeSettings.from_env(
        Config({"STRATA_EVENTS_RING": "16", "STRATA_QUEUE_CALLS": "7", "STRATA_REDACT_FIELDS": ""})
    )
    assert (settings.events.ring_size, settings.writer.queue_calls) == (16, 7)
    assert settings.limits.redact_fields == frozenset()  # set but empty: none
    assert ServeSettings.from_env(Config({})).events.ring_size == 1024


def test_flags_override_the_environment() -> None:
    settings = ServeSettings.from_env(
        {"STRATA_GATEWAY_PORT": "9000", "STRATA_APP": "a:b, c:d", "STRATA_HOST": "0.0.0.0"},
        gateway_port=9100,
    )
    assert settings.gateway_port == 9100
    assert settings.apps == ("a:b", "c:d")
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize(
    "url", ["ftp://x", "file://", "s3://", "gs://", "nonsense", "file://remotehost/dir"]
)
def test_malformed_store_urls_name_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="STRATA_STORE"):
        parse_store_url(url)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "MODULE:ATTR"),
        ("tests.does_not_exist:canvas", "cannot import"),
        ("tests.canvases:add_tax", "not a runtime.Canvas"),
    ],
)
def test_bad_app_specs_name_the_setting(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_canvases([spec])


def test_two_canvases_with_one_name_fail() -> None:
    with pytest.raises(ConfigError, match="two canvases"):
        load_canvases(["tests.canvases:shop", "tests.canvases:shop"])


def test_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = ServeSettings(data_dir=tmp_path)
    first = settings.resolve_secret()
    assert settings.resolve_secret() == first
    assert len(first) >= 32
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


async def test_a_wildcard_listen_address_prints_and_signs_loopback_urls(
    database_url: str, tmp_path: Path
) -> None:
    from tests.canvases import shop
    from tests.harness import serve

    async with serve(database_url, tmp_path, {"shop": shop}, host="0.0.0.0") as server:
        assert server.editor.startswith("http://127.0.0.1:")
        assert server.gateway.startswith("http://127.0.0.1:")
        async with server.http.post(server.gateway + "/echo", data=b"x") as response:
            assert response.status == 200
        await server.flush()
        token = await server.token("shop")
        _, listed = await server.api("/api/v1/canvases/shop/handlers/echo/traces", token)
        path = f"/api/v1/canvases/shop/traces/{listed['traces'][0]['trace_id']}"
        _, manifest = await server.api(path, token)
        assert manifest["base"]["url"].startswith(server.editor + "/objects/")
