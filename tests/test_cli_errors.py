"""Every ``strata`` command turns an expected failure into one line on stderr and exit
status 2, never a traceback (SPEC §16); the client commands find the editor API with
``strata serve``'s own settings (SPEC §3)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.config import ServeSettings
from tests.canvases import shop
from tests.cli_support import assert_one_line_error, strata
from tests.harness import Server, serve
from trace_store.errors import ConfigError

UNKNOWN_TRACE = "01a20400-0ca1-72de-be1b-09fcceaec63a"


@pytest.fixture
def ports() -> Iterator[dict[str, str]]:
    """``dead``: a port nothing listens on; ``silent``: one that accepts connections
    (the kernel's backlog) but never answers."""
    with socket.socket() as dead, socket.socket() as silent:
        dead.bind(("127.0.0.1", 0))
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield {"dead": str(dead.getsockname()[1]), "silent": str(silent.getsockname()[1])}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Bad inputs on disk (policies, a canvas file) and paths that cannot be used."""
    made = {
        "invalid_policy": ("invalid.toml", "[traces]\nkeep_latest = 0\n"),
        "broken_policy": ("broken.toml", "[traces\n"),
        "syntax_app": ("syntax.py", "from runtime import Canvas\ncanvas = Canvas(\n"),
        "a_file": ("a_file", ""),
    }
    for name, text in made.values():
        (tmp_path / name).write_text(text)
    return {key: str(tmp_path / name) for key, (name, _) in made.items()} | {"tmp": str(tmp_path)}


CLIENT = {"STRATA_TOKEN": "strata_whatever", "STRATA_CANVAS": "shop"}

# (args, env, what the line must say); {dead}, {silent} and file names are filled in.
OFFLINE_CASES = {
    "server stopped": (
        ["traces", "list"],
        {**CLIENT, "STRATA_EDITOR_PORT": "{dead}"},
        ["127.0.0.1:{dead}", "connection refused"],
    ),
    "server stopped (show)": (
        ["traces", "show", UNKNOWN_TRACE, "--editor-url", "http://127.0.0.1:{dead}"],
        CLIENT,
        ["127.0.0.1:{dead}"],
    ),
    "timeout": (
        ["traces", "list", "--timeout", "0.3"],
        {**CLIENT, "STRATA_EDITOR_PORT": "{silent}"},
        ["no answer within 0.3s"],
    ),
    "missing token": (["traces", "list"], {"STRATA_CANVAS": "shop"}, ["STRATA_TOKEN"]),
    "missing canvas": (["traces", "list"], {"STRATA_TOKEN": "t"}, ["STRATA_CANVAS"]),
    "bad editor port": (
        ["traces", "list"],
        {**CLIENT, "STRATA_EDITOR_PORT": "http"},
        ["STRATA_EDITOR_PORT", "'http'"],
    ),
    "editor port out of range": (
        ["traces", "list"],
        {**CLIENT, "STRATA_EDITOR_PORT": "70000"},
        ["STRATA_EDITOR_PORT"],
    ),
    "bad editor url": (
        ["traces", "list"],
        {**CLIENT, "STRATA_EDITOR_URL": "localhost:8001"},
        ["STRATA_EDITOR_URL"],
    ),
    "bad editor url flag": (
        ["traces", "list", "--editor-url", "127.0.0.1:8001"],
        CLIENT,
        ["--editor-url", "'127.0.0.1:8001'"],
    ),
    "bad flag value": (["traces", "list", "--limit", "many"], CLIENT, ["--limit", "'many'"]),
    "bad timeout": (["traces", "show", "x", "--timeout", "0"], CLIENT, ["--timeout"]),
    "unknown command": (["trace", "list"], {}, ["invalid choice", "'trace'"]),
    "replay bad app": (
        ["replay", UNKNOWN_TRACE, "--app", "tests.no_such_module:shop"],
        {**CLIENT, "STRATA_EDITOR_PORT": "{dead}"},
        ["STRATA_APP (--app)", "tests.no_such_module"],
    ),
    "replay missing app file": (
        ["replay", UNKNOWN_TRACE, "--app", "./nowhere/shop.py:canvas"],
        {**CLIENT, "STRATA_EDITOR_PORT": "{dead}"},
        ["STRATA_APP (--app)", "./nowhere/shop.py"],
    ),
    "render unreadable policy": (
        ["lifecycle", "render", "--provider", "s3", "--policy", "{tmp}/none.toml"],
        {},
        ["cannot read policy file", "none.toml"],
    ),
    "render policy is a directory": (
        ["lifecycle", "render", "--provider", "gcs", "--policy", "{tmp}"],
        {},
        ["cannot read policy file"],
    ),
    "render invalid policy": (
        ["lifecycle", "render", "--provider", "s3"],
        {"STRATA_POLICY": "{invalid_policy}"},
        ["traces.keep_latest", "invalid.toml"],
    ),
    "render malformed policy": (
        ["lifecycle", "render", "--provider", "s3", "--policy", "{broken_policy}"],
        {},
        ["broken.toml"],
    ),
    "verify without credentials": (
        ["lifecycle", "verify", "--store", "s3://bucket?endpoint=http://127.0.0.1:{dead}"],
        {"AWS_SHARED_CREDENTIALS_FILE": "{tmp}/none", "AWS_CONFIG_FILE": "{tmp}/none"},
        ["STRATA_STORE", "credentials"],
    ),
    "plan endpoint down": (
        ["lifecycle", "plan", "--store", "s3://bucket?endpoint=http://127.0.0.1:{dead}"],
        {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        ["unreachable", "127.0.0.1:{dead}"],
    ),
    "store check unusable directory": (
        ["store", "check", "--store", "file://{a_file}/store"],
        {},
        ["STRATA_STORE", "a_file"],
    ),
    "store without url": (["store", "check"], {}, ["STRATA_STORE"]),
    "serve missing app file": (
        ["serve", "--app", "./nowhere/shop.py:canvas"],
        {},
        ["STRATA_APP (--app)", "./nowhere/shop.py"],
    ),
    "serve app syntax error": (
        ["serve", "--app", "{syntax_app}:canvas"],
        {},
        ["STRATA_APP (--app)", "syntax error", "syntax.py:2"],
    ),
    "serve app not a python file": (
        ["serve", "--app", "{tmp}/policy.toml:canvas"],
        {},
        ["STRATA_APP (--app)", "not a .py file"],
    ),
    "serve without app": (["serve"], {}, ["STRATA_APP"]),
    "migrate database down": (
        ["migrate", "--database-url", "postgresql://nobody@127.0.0.1:{dead}/none"],
        {},
        ["STRATA_DATABASE_URL"],
    ),
    "token create bad canvas name": (
        ["token", "create", "--canvas", "Shop Front"],
        {"STRATA_DATABASE_URL": "postgresql://nobody@127.0.0.1:{dead}/none"},
        ["invalid canvas name 'Shop Front'"],
    ),
    "token create database down": (
        ["token", "create", "--canvas", "shop"],
        {"STRATA_DATABASE_URL": "postgresql://nobody@127.0.0.1:{dead}/none"},
        ["STRATA_DATABASE_URL"],
    ),
}


@pytest.mark.parametrize("case", OFFLINE_CASES, ids=str)
async def test_expected_failures_are_one_line(
    case: str, ports: dict[str, str], files: dict[str, str]
) -> None:
    args, env, expected = OFFLINE_CASES[case]
    values = {**ports, **files}
    code, out, err = await strata(
        *(a.format(**values) for a in args),
        env={k: v.format(**values) for k, v in env.items()},
    )
    assert out == ""
    assert_one_line_error(code, err, *(e.format(**values) for e in expected))


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(database_url, tmp_path, {"shop": shop}) as running:
        yield running


# (args, which token, what the line must say) against a running server.
SERVER_CASES = {
    "bad token": (["traces", "list"], "strata_wrong", ["401", "invalid token"]),
    "another canvas's token": (["traces", "list"], "blog", ["403", "not valid for canvas"]),
    "unknown trace": (["traces", "show", UNKNOWN_TRACE], "shop", ["404", UNKNOWN_TRACE]),
    "malformed trace id": (["traces", "show", "nope", "--merged"], "shop", ["400", "'nope'"]),
    "unknown handler": (["traces", "list", "--handler", "nope"], "shop", ["404", "'nope'"]),
    "limit out of range": (["traces", "list", "--limit", "9999"], "shop", ["400", "limit"]),
    "replay unknown trace": (
        ["replay", UNKNOWN_TRACE, "--app", "tests.canvases:shop"],
        "shop",
        ["404", UNKNOWN_TRACE],
    ),
    "replay app of another canvas": (
        ["replay", UNKNOWN_TRACE, "--app", "tests.canvases:blog"],
        "shop",
        ["--app", "'blog'"],
    ),
}


@pytest.mark.parametrize("case", SERVER_CASES, ids=str)
async def test_error_answers_are_one_line(case: str, server: Server) -> None:
    args, token, expected = SERVER_CASES[case]
    if not token.startswith("strata_"):
        token = await server.token(token)
    env = {"STRATA_TOKEN": token, "STRATA_CANVAS": "shop", "STRATA_EDITOR_URL": server.editor}
    code, out, err = await strata(*args, env=env)
    assert out == ""
    assert_one_line_error(code, err, *expected)


@pytest.mark.parametrize(
    ("env", "flags"),
    [
        ({}, []),  # STRATA_EDITOR_PORT alone
        ({"STRATA_HOST": "0.0.0.0"}, []),  # a server on every interface: use loopback
        ({"STRATA_HOST": "127.0.0.1"}, []),
        # --editor-url wins over the environment.
        ({"STRATA_EDITOR_URL": "http://127.0.0.1:9"}, ["--editor-url", "{editor}"]),
    ],
)
async def test_client_finds_the_server_with_serves_settings(
    env: dict[str, str], flags: list[str], server: Server
) -> None:
    port = server.editor.rsplit(":", 1)[1]
    assert port != "8001"
    code, out, err = await strata(
        "traces",
        "list",
        *(f.format(editor=server.editor) for f in flags),
        env={
            "STRATA_TOKEN": await server.token("shop"),
            "STRATA_CANVAS": "shop",
            "STRATA_EDITOR_PORT": "9" if flags else port,
            **env,
        },
    )
    assert code == 0, err
    assert out.startswith("trace_id")


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8001"),
        ({"STRATA_EDITOR_PORT": "9001"}, "http://127.0.0.1:9001"),
        ({"STRATA_HOST": "0.0.0.0", "STRATA_EDITOR_PORT": "9001"}, "http://127.0.0.1:9001"),
        ({"STRATA_HOST": "::"}, "http://[::1]:8001"),
        ({"STRATA_HOST": "fd00::5"}, "http://[fd00::5]:8001"),
        ({"STRATA_HOST": "10.1.2.3"}, "http://10.1.2.3:8001"),
        ({"STRATA_EDITOR_URL": "https://editor.example.com/", "STRATA_EDITOR_PORT": "1"},
         "https://editor.example.com"),
    ],
)  # fmt: skip
def test_local_editor_url(env: dict[str, str], url: str) -> None:
    assert ServeSettings.from_env(env).local_editor_url == url


def test_serve_refuses_a_malformed_editor_url() -> None:
    with pytest.raises(ConfigError, match="STRATA_EDITOR_URL"):
        ServeSettings.from_env({"STRATA_EDITOR_URL": "editor.example.com"})


async def test_serve_on_a_taken_port_is_one_line(
    database_url: str, tmp_path: Path, ports: dict[str, str]
) -> None:
    code, _, err = await strata(
        "serve",
        "--app",
        "tests.canvases:shop",
        "--gateway-port",
        "0",
        "--editor-port",
        ports["silent"],
        env={"STRATA_DATABASE_URL": database_url, "STRATA_DATA_DIR": str(tmp_path)},
    )
    assert_one_line_error(code, err, "STRATA_EDITOR_PORT", f"127.0.0.1:{ports['silent']}")
