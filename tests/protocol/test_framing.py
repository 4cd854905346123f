"""Newline framing with a size limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import MessageTooLargeError
from opex_trio.protocol.framing import LineFramer


def feed_all(framer: LineFramer, chunks: list[bytes]) -> list[bytes | str]:
    return [
        f"too large: {item.size}" if isinstance(item, MessageTooLargeError) else item
        for chunk in chunks
        for item in framer.feed(chunk)
    ]


def test_splits_lines_and_keeps_partial_ones() -> None:
    framer = LineFramer(100)
    assert framer.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert framer.pending() == 4
    assert framer.feed(b":2}\r\n\n  \n") == [b'{"b":2}']
    assert framer.pending() == 0


def test_an_oversized_line_is_reported_once_and_the_stream_recovers() -> None:
    framer = LineFramer(10)
    out = feed_all(framer, [b"ok\n" + b"x" * 8, b"x" * 30, b"x" * 5 + b"\nnext\n"])
    assert out == [b"ok", "too large: 43", b"next"]
    # A long line inside one chunk is caught too.
    assert feed_all(framer, [b"y" * 11 + b"\nz\n"]) == ["too large: 11", b"z"]


def test_the_error_keeps_the_head_for_finding_the_id() -> None:
    framer = LineFramer(50)
    (err,) = framer.feed(b'{"jsonrpc":"2.0","id":7,"result":{"text":"' + b"a" * 100 + b'"}}\n')
    assert isinstance(err, MessageTooLargeError)
    assert err.head.startswith(b'{"jsonrpc":"2.0","id":7')
    assert err.limit == 50


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LineFramer(0)


lines = st.lists(
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=10
)


@pytest.mark.fuzz
@given(lines, st.data())
def test_any_chunking_gives_the_same_lines(items: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(item + b"\n" for item in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole = feed_all(LineFramer(30), [stream])
    assert feed_all(LineFramer(30), chunks) == whole


def model(stream: bytes, limit: int) -> list[bytes | str]:
    """What the framer must give for ``stream``, written the plain way."""
    out: list[bytes | str] = []
    for line in stream.split(b"\n")[:-1]:
        if len(line) > limit:
            out.append(f"too large: {len(line)}")
        elif line.removesuffix(b"\r").strip():
            out.append(line.removesuffix(b"\r"))
    return out


@pytest.mark.fuzz
@given(
    st.lists(st.sampled_from([b"x", b"{}", b" ", b"\r", b"\t", b"y" * 25]), max_size=12),
    st.lists(st.integers(0, 6), max_size=12),
    st.data(),
)
def test_lines_are_what_a_plain_split_gives(
    pieces: list[bytes], ends: list[int], data: st.DataObject
) -> None:
    # Lines of whitespace, carriage returns and over-long runs, cut anywhere:
    # the bulk path for plain chunks and the line-by-line one agree with the model.
    stream = b"".join(p + (b"\n" if i in ends else b"") for i, p in enumerate(pieces)) + b"\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(LineFramer(30), chunks) == model(stream, 30)
