"""The command's parts on their own: which model, progress lines, reading stdin, one-line errors."""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio

from opex_trio.cli._answer import llm_options
from opex_trio.cli._errors import EXIT_USAGE, CliError, describe, one_line, status_of
from opex_trio.cli._input import LineReader
from opex_trio.cli._model import (
    LOCAL_MAX_TOKENS,
    MAX_TOKENS,
    OpenModel,
    choose_model,
    token_limit,
)
from opex_trio.cli._ui import Ui, fit, progress_text
from opex_trio.errors import AuthenticationError, ConfigError, ServerExitedError

OPENROUTER = "https://openrouter.ai/api/v1"


@pytest.mark.parametrize(
    ("local", "base_url", "model", "environ", "expected"),
    [
        # Nothing at all: the embedded model.
        (False, None, None, {}, ("local", None, None, None, None)),
        # Empty keys count as unset.
        (False, None, None, {"OPENAI_API_KEY": " "}, ("local", None, None, None, None)),
        (
            False,
            None,
            None,
            {"OPENROUTER_API_KEY": "or", "OPENAI_API_KEY": "oa"},
            ("openrouter", OPENROUTER, "or", "openai/gpt-4o-mini", "OPENROUTER_API_KEY"),
        ),
        (
            False,
            None,
            "gpt-4.1",
            {"OPENAI_API_KEY": "oa"},
            ("openai", "https://api.openai.com/v1", "oa", "gpt-4.1", "OPENAI_API_KEY"),
        ),
        # A URL: its key by host, else none; the model is asked later when not given.
        (
            False,
            "http://127.0.0.1:8080/v1",
            None,
            {"OPENROUTER_API_KEY": "or"},
            ("base_url", "http://127.0.0.1:8080/v1", None, None, None),
        ),
        (
            False,
            "http://127.0.0.1:8080/v1",
            "m",
            {"OPENAI_API_KEY": "oa"},
            ("base_url", "http://127.0.0.1:8080/v1", "oa", "m", "OPENAI_API_KEY"),
        ),
        (
            False,
            OPENROUTER,
            "x/y",
            {"OPENROUTER_API_KEY": "or", "OPENAI_API_KEY": "oa"},
            ("base_url", OPENROUTER, "or", "x/y", "OPENROUTER_API_KEY"),
        ),
        (
            False,
            OPENROUTER,
            None,
            {},
            ("base_url", OPENROUTER, None, "openai/gpt-4o-mini", None),
        ),
        # --local wins over keys.
        (True, None, None, {"OPENAI_API_KEY": "oa"}, ("local", None, None, None, None)),
    ],
)
def test_which_model(
    local: bool,
    base_url: str | None,
    model: str | None,
    environ: dict[str, str],
    expected: tuple[str | None, ...],
) -> None:
    choice = choose_model(local=local, base_url=base_url, model=model, environ=environ)
    got = (choice.source, choice.base_url, choice.api_key, choice.model, choice.key_name)
    assert got == expected
    assert "oa" not in repr(choice) and "or'" not in repr(choice)


def test_local_and_base_url_exclude_each_other() -> None:
    with pytest.raises(CliError) as info:
        choose_model(local=True, base_url="http://x/v1", model=None, environ={})
    assert info.value.status == EXIT_USAGE


def test_progress_text() -> None:
    assert progress_text("t", 3, 10, "copying", bar=True) == (
        "[progress] t [######--------------] 3/10 (30%) copying"
    )
    assert progress_text("t", 3, 10, None, bar=False) == "[progress] t 3/10 (30%)"
    assert progress_text("t", 0.5, None, "thinking", bar=True) == "[progress] t 0.5 thinking"
    assert progress_text("t", 12, 10, None, bar=True).startswith("[progress] t [" + "#" * 20)


async def test_progress_lines_are_throttled_off_a_terminal(autojump_clock: object) -> None:
    err = io.StringIO()
    ui = Ui(io.StringIO(), err)
    for step in range(1, 6):
        ui.progress("c1", "t", step, 5, None)
        await trio.sleep(0.3)
    assert err.getvalue().splitlines() == ["[progress] t 1/5 (20%)", "[progress] t 5/5 (100%)"]


def test_answers_and_notices_do_not_share_a_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    ui = Ui(out, err)
    ui.text("Let me check")
    ui.notice("something")
    ui.text("Done.")
    ui.end_answer()
    assert out.getvalue() == "Let me check\nDone.\n"
    assert err.getvalue() == "opex-trio: something\n"


def test_errors_in_one_line() -> None:
    exited = ServerExitedError(
        "MCP server 'x' exited", server="x", returncode=1, stderr_tail=["a", "", "b", "c", "d"]
    )
    assert describe(exited) == "MCP server 'x' exited (exit status 1); stderr: b | c | d"
    assert one_line("first\n\n  second  \n") == "first | second"
    assert len(one_line("x" * 5000)) == 600
    refused = AuthenticationError("bad key", status=401)
    assert describe(refused) == "the model API refused the key (HTTP 401): bad key"
    assert status_of(refused) == status_of(ConfigError("x")) == EXIT_USAGE
    assert status_of(exited) == 1


async def test_line_reader_on_a_pipe_a_file_and_dev_null(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        reader = LineReader(read_end)
        os.write(write_end, b"one\r\ntwo\nthr")
        with trio.fail_after(10):
            assert await reader.readline() == "one"
            assert await reader.readline() == "two"
            os.write(write_end, "ée\n".encode())
            assert await reader.readline() == "thrée"
            os.close(write_end)
            write_end = -1
            assert await reader.readline() is None
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)

    path = tmp_path / "input.txt"
    path.write_text("a\nb")
    with open(path, "rb") as f:
        reader = LineReader(f.fileno())
        assert [await reader.readline() for _ in range(3)] == ["a", "b", None]
    with open(os.devnull, "rb") as f:
        assert await LineReader(f.fileno()).readline() is None


async def test_line_reader_can_be_cancelled() -> None:
    read_end, write_end = os.pipe()
    try:
        with trio.move_on_after(0.2) as scope:
            await LineReader(read_end).readline()
        assert scope.cancelled_caught
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize(
    ("choice", "requested", "expected"),
    [
        # The default bound, in the field each API takes.
        ({"base_url": "http://127.0.0.1:8080/v1"}, None, {"max_tokens": MAX_TOKENS}),
        ({"base_url": OPENROUTER}, None, {"max_tokens": MAX_TOKENS}),
        ({"local": True}, None, {"max_tokens": LOCAL_MAX_TOKENS}),
        (
            {"environ": {"OPENAI_API_KEY": "k"}},
            None,
            {"max_completion_tokens": MAX_TOKENS},
        ),
        ({"base_url": "https://api.openai.com/v1"}, 99, {"max_completion_tokens": 99}),
        # Asked for: that bound; 0: none at all.
        ({"base_url": "http://127.0.0.1:8080/v1"}, 7, {"max_tokens": 7}),
        ({"base_url": "http://127.0.0.1:8080/v1"}, 0, {}),
        ({"local": True}, 0, {}),
    ],
)
def test_every_answer_has_a_token_bound(
    choice: dict[str, Any], requested: int | None, expected: dict[str, int]
) -> None:
    chosen = choose_model(
        local=choice.get("local", False),
        base_url=choice.get("base_url"),
        model="m",
        environ=choice.get("environ", {}),
    )
    assert token_limit(chosen, requested) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HTTP 401: HTTP 401", "HTTP 401"),
        ("HTTP 502 Bad Gateway: 502 Bad Gateway", "HTTP 502 Bad Gateway"),
        # Short parts may mean something when repeated; different parts stay.
        ("a: a", "a: a"),
        (
            "tool 'x' failed: timeout: timeout after 5 s",
            "tool 'x' failed: timeout: timeout after 5 s",
        ),
        (
            "HTTP 503: <html><head><title>Service &amp; Maintenance</title></head>"
            "<body><h1>Down</h1></body></html>",
            "HTTP 503: Service & Maintenance",
        ),
        ("HTTP 500: <!doctype html><body><p>oops</p></body>", "HTTP 500: an HTML page"),
        (
            "answered with HTTP 404 Not Found: <html><title>404 Not Found</title></html>; more",
            "answered with HTTP 404 Not Found; more",
        ),
    ],
)
def test_error_text_is_said_once_without_html(text: str, expected: str) -> None:
    assert one_line(text) == expected


def test_in_place_lines_fit_the_width() -> None:
    assert fit("abcdef", 4) == "abcd"
    assert fit("abc", 4) == "abc"
    # Wide characters take two columns; combining marks none.
    assert fit("東京都", 5) == "東京"
    assert fit("e\u0301e\u0301e\u0301", 2) == "e\u0301e\u0301"


@pytest.mark.parametrize(
    ("choice", "tool_choice"),
    [
        # The embedded model cannot call tools: "none" keeps them out of its prompt.
        ({"local": True}, "none"),
        ({"base_url": "http://127.0.0.1:8080/v1"}, None),
        ({"environ": {"OPENROUTER_API_KEY": "k"}}, None),
    ],
)
def test_the_embedded_model_is_asked_for_no_tool_calls(
    choice: dict[str, Any], tool_choice: str | None
) -> None:
    chosen = choose_model(
        local=choice.get("local", False),
        base_url=choice.get("base_url"),
        model="m",
        environ=choice.get("environ", {}),
    )
    args = argparse.Namespace(max_tokens=None)
    options = llm_options(args, cast(OpenModel, SimpleNamespace(choice=chosen)))
    assert options.get("tool_choice") == tool_choice
    assert options["max_tokens"] == token_limit(chosen, None)["max_tokens"]
