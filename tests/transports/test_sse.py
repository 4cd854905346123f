"""The SSE parser: the event-stream rules, any chunking, and the per-event size limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.transports._sse import SseDecoder, SseEvent


def parse(data: bytes, limit: int = 1000, cuts: list[int] | None = None) -> list[SseEvent]:
    decoder = SseDecoder(limit)
    events: list[SseEvent] = []
    points = sorted({0, len(data), *(c for c in (cuts or []) if 0 <= c <= len(data))})
    for a, b in itertools.pairwise(points):
        events.extend(decoder.feed(data[a:b]))
    return events + decoder.end()


def test_fields_comments_and_line_endings() -> None:
    stream = (
        b"\xef\xbb\xbf: a comment\r\n"
        b"event: message\rid: 7\r\ndata: one\ndata:two\n\n"
        b"retry: 1500\nid: 8\ndata: \n\n"
        b"event: endpoint\ndata: /messages?x=1\r\n\r\n"
        b"data: unfinished"
    )
    events = parse(stream)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("message", "one\ntwo", "7", None),
        ("message", "", "8", 1500),
        ("endpoint", "/messages?x=1", "8", None),
    ]


def test_the_last_event_id_carries_over_and_blank_lines_alone_dispatch_nothing() -> None:
    events = parse(b"\n\nid: a\ndata: x\n\ndata: y\n\n")
    assert [(e.data, e.id) for e in events] == [("x", "a"), ("y", "a")]


def test_an_oversized_event_keeps_its_head_and_the_stream_goes_on() -> None:
    big = b'{"jsonrpc":"2.0","id":42,"result":{"text":"' + b"x" * 5000 + b'"}}'
    events = parse(b"id: 1\ndata: " + big + b"\n\ndata: small\n\n", limit=1000)
    assert events[0].oversized and events[0].size > 1000
    assert events[0].data.startswith('{"jsonrpc":"2.0","id":42') and len(events[0].data) <= 256
    assert (events[1].data, events[1].oversized) == ("small", False)


def test_an_endless_line_is_not_buffered_whole() -> None:
    decoder = SseDecoder(1000)
    assert decoder.feed(b"data: " + b"y" * 3000) == []
    assert len(decoder._pending) < 1000
    for _ in range(10):
        assert decoder.feed(b"y" * 3000) == []
    (event,) = decoder.feed(b"\n\ndata: next\n\n")[:1]
    assert event.oversized and event.data.startswith("yyy")


@pytest.mark.fuzz
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["message", "other"]),
            st.text(
                alphabet=st.characters(
                    blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]
                ),
                max_size=40,
            ),
            st.sampled_from(["\n", "\r\n", "\r"]),
        ),
        max_size=8,
    ),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_chunking_gives_the_same_events(
    items: list[tuple[str, str, str]], cuts: list[int]
) -> None:
    stream = "".join(f"event: {kind}{nl}data: {text}{nl}{nl}" for kind, text, nl in items).encode()
    whole = parse(stream)
    assert parse(stream, cuts=cuts) == whole
    assert [(e.event, e.data) for e in whole] == [(kind, text) for kind, text, _ in items]
