"""Write the intersphinx inventories of Python's and trio's documentation that the docs use.

The documentation build may reach no host (CI reaches only the package registries),
so instead of downloading ``objects.inv`` from docs.python.org and trio's Read the
Docs site, the build reads these small ones, which list only the names the pages and
docstrings refer to, each with its page and anchor on the real site. A reference to a
name missing here fails the build (nitpicky mode): add the name below and run
``python docs/_inventories/make.py``.

The files are in the format of Sphinx's ``objects.inv`` (version 2: four header lines,
then zlib-compressed ``name domain:role priority uri display`` lines); the script reads
each back with Sphinx's own inventory reader to check it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (role, page#anchor); "$" in the anchor stands for the name.
PYTHON: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ("str", "bytes", "dict", "list", "tuple", "set", "frozenset", "memoryview"),
        ("class", "library/stdtypes.html#$"),
    ),
    **dict.fromkeys(
        ("int", "float", "bool", "object", "type"), ("class", "library/functions.html#$")
    ),
    **dict.fromkeys(
        ("print", "open", "repr", "isinstance"), ("function", "library/functions.html#$")
    ),
    **dict.fromkeys(
        (
            "BaseException",
            "Exception",
            "ExceptionGroup",
            "BaseExceptionGroup",
            "ValueError",
            "TypeError",
            "RuntimeError",
            "KeyError",
            "OSError",
            "TimeoutError",
            "KeyboardInterrupt",
            "NotImplementedError",
            "ConnectionError",
            "FileNotFoundError",
            "PermissionError",
        ),
        ("exception", "library/exceptions.html#$"),
    ),
    **{
        f"collections.abc.{name}": ("class", "library/collections.abc.html#$")
        for name in (
            "Mapping",
            "MutableMapping",
            "Callable",
            "Sequence",
            "Awaitable",
            "Iterable",
            "Iterator",
            "AsyncIterator",
            "AsyncIterable",
            "AsyncGenerator",
            "Generator",
            "Collection",
            "Set",
            "Coroutine",
        )
    },
    **{
        f"typing.{name}": ("data", "library/typing.html#$")
        for name in ("Any", "Literal", "Union", "Optional", "TypeAlias", "Final", "ClassVar")
    },
    **{
        f"typing.{name}": ("class", "library/typing.html#$")
        for name in ("Protocol", "TypeVar", "Generic")
    },
    "contextlib.AbstractAsyncContextManager": ("class", "library/contextlib.html#$"),
    "contextlib.AbstractContextManager": ("class", "library/contextlib.html#$"),
    "contextlib.asynccontextmanager": ("function", "library/contextlib.html#$"),
    "pathlib.Path": ("class", "library/pathlib.html#$"),
    "abc.ABC": ("class", "library/abc.html#$"),
    "random.Random": ("class", "library/random.html#$"),
    "os.PathLike": ("class", "library/os.html#$"),
    "os.environ": ("data", "library/os.html#$"),
    "enum.Enum": ("class", "library/enum.html#$"),
    "enum.StrEnum": ("class", "library/enum.html#$"),
    "functools.partial": ("function", "library/functools.html#$"),
    "argparse.Namespace": ("class", "library/argparse.html#$"),
    "asyncio.Event": ("class", "library/asyncio-sync.html#$"),
    # Where annotations name it: the class is defined in asyncio.locks.
    "asyncio.locks.Event": ("class", "library/asyncio-sync.html#asyncio.Event"),
    "logging.Logger": ("class", "library/logging.html#$"),
    "datetime.datetime": ("class", "library/datetime.html#$"),
    "datetime.timedelta": ("class", "library/datetime.html#$"),
    "json.loads": ("function", "library/json.html#$"),
    "json.dumps": ("function", "library/json.html#$"),
    "subprocess.Popen": ("class", "library/subprocess.html#$"),
    "re.Pattern": ("class", "library/re.html#$"),
    **{
        name: ("module", f"library/{name}.html#module-{name}")
        for name in (
            "asyncio",
            "json",
            "logging",
            "subprocess",
            "webbrowser",
            "readline",
            "signal",
            "contextlib",
            "typing",
            "collections.abc",
        )
    },
}

TRIO: dict[str, tuple[str, str]] = {
    **{
        f"trio.{name}": ("function", "reference-core.html#$")
        for name in (
            "run",
            "current_time",
            "sleep",
            "sleep_until",
            "sleep_forever",
            "move_on_after",
            "move_on_at",
            "fail_after",
            "fail_at",
            "open_nursery",
            "open_memory_channel",
            "from_thread.run",
            "from_thread.run_sync",
            "to_thread.run_sync",
        )
    },
    **{
        f"trio.{name}": ("class", "reference-core.html#$")
        for name in (
            "CancelScope",
            "Nursery",
            "TaskStatus",
            "Event",
            "Lock",
            "MemoryReceiveChannel",
            "MemorySendChannel",
            "abc.Clock",
        )
    },
    "trio.TASK_STATUS_IGNORED": ("attribute", "reference-core.html#$"),
    **{
        f"trio.{name}": ("exception", "reference-core.html#$")
        for name in (
            "Cancelled",
            "TooSlowError",
            "EndOfChannel",
            "ClosedResourceError",
            "BrokenResourceError",
        )
    },
    **{
        f"trio.{name}": ("class", "reference-io.html#$")
        for name in (
            "abc.SendStream",
            "abc.ReceiveStream",
            "abc.Stream",
            "abc.SendChannel",
            "abc.ReceiveChannel",
            "SocketStream",
            "Process",
            "Path",
        )
    },
    **{
        f"trio.{name}": ("function", "reference-io.html#$")
        for name in ("run_process", "open_tcp_listeners", "serve_listeners", "open_tcp_stream")
    },
    "trio.lowlevel.open_process": ("function", "reference-lowlevel.html#$"),
    "trio.testing.MockClock": ("class", "reference-testing.html#$"),
    "trio": ("module", "reference-core.html#module-trio"),
}


def inventory(project: str, version: str, entries: dict[str, tuple[str, str]]) -> bytes:
    """The bytes of an ``objects.inv`` (version 2) listing ``entries``."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = [f"{name} py:{role} 1 {uri} -\n" for name, (role, uri) in sorted(entries.items())]
    return header.encode() + zlib.compress("".join(lines).encode())


def check(path: Path, entries: dict[str, tuple[str, str]]) -> None:
    """Read ``path`` back with Sphinx's reader; it must list exactly ``entries``."""
    from sphinx.util.inventory import InventoryFile

    loaded = InventoryFile.loads(path.read_bytes(), uri="https://example.invalid/")
    names = {name for objects in loaded.data.values() for name in objects}
    if names != set(entries):
        raise SystemExit(f"{path.name}: read back {len(names)} names, wrote {len(entries)}")


def main() -> None:
    """Write ``python.inv`` and ``trio.inv`` beside this file and check them."""
    for name, project, version, entries in (
        ("python.inv", "Python", "3", PYTHON),
        ("trio.inv", "Trio", "stable", TRIO),
    ):
        path = HERE / name
        path.write_bytes(inventory(project, version, entries))
        check(path, entries)
        print(f"{path}: {len(entries)} names")


if __name__ == "__main__":
    main()
