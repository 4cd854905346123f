"""Stopping a child process and everything it started, as one process group.

Children that opex_trio starts (stdio MCP servers, the embedded model server)
are spawned with ``start_new_session=True``: each leads a new session, hence a
process group whose id is its pid, so that a shell, ``npx`` or ``uvx`` in
between cannot hide a grandchild from the signals. A terminal's Ctrl-C, sent to
the foreground group, does not reach them either: the program decides when
they stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import trio

__all__ = ["group_alive", "signal_group", "terminate_group", "wait_group"]


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg also finds zombies; on Linux, look closer so an orphan waiting for
    # init to reap it does not count as alive.
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 2 and int(rest[2]) == pgid and rest[0] != b"Z":
            return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def wait_group(process: trio.Process) -> None:
    """Wait until ``process`` and every other member of its group have exited."""
    await process.wait()
    # The leader is gone; give the rest of its group time to follow.
    # No process can be awaited for the others of the group, so poll them.
    while group_alive(process.pid):  # noqa: ASYNC110
        await trio.sleep(0.05)


async def terminate_group(
    process: trio.Process, *, term_grace: float, label: str, logger: logging.Logger
) -> None:
    """SIGTERM the group of ``process``, SIGKILL it after ``term_grace`` seconds, reap the leader.

    Run it shielded: it is cleanup, and it is bounded by the grace. ``label``
    names the process in the warning logged when SIGKILL is needed.
    """
    pgid = process.pid
    if group_alive(pgid):
        signal_group(pgid, signal.SIGTERM)
        with trio.move_on_after(term_grace):
            await wait_group(process)
    if group_alive(pgid):
        logger.warning("%s (pid %d) ignored SIGTERM; killing its process group", label, pgid)
        signal_group(pgid, signal.SIGKILL)
    await process.wait()
