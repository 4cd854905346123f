"""What the actor needs to know of the protocol eras: the session to make, what to listen for.

The rules themselves are the sans-IO session's (:mod:`opex_trio.protocol.session`);
this module only turns the client's options into its arguments.
"""

from __future__ import annotations

from ..protocol.modern import SubscriptionFilter
from ..protocol.session import ClientSession
from ..protocol.tasks import TASK_RESULT_TYPE, TASKS_EXTENSION
from ..protocol.versions import Era
from ._options import ClientOptions

__all__ = ["listen_filter", "new_session"]


def new_session(options: ClientOptions, known: Era | None) -> ClientSession:
    """A session for ``options``; an era ``known`` from an earlier session of the server wins."""
    return ClientSession(
        client_info=options.client_info,
        capabilities=options.capabilities(),
        protocol_version=options.protocol_version,
        era=known if known is not None else options.era,
        modern_version=options.modern_version,
        # Tool calls follow task handles to their end (see mcp/_tasks.py).
        result_types=frozenset({TASK_RESULT_TYPE}),
        extensions={TASKS_EXTENSION: {}},
    )


def listen_filter(
    session: ClientSession, resources: tuple[str, ...] = ()
) -> SubscriptionFilter | None:
    """What an open modern session should listen for.

    The list changes its server offers, and updates of ``resources`` (the
    URIs the client subscribed to) when the server offers subscriptions. The
    filter may be empty; ``None`` in the legacy era (changes come unasked, and
    resources are subscribed with ``resources/subscribe``) or before the
    session is open.
    """
    result = session.initialize_result
    if session.features is None or session.features.era is not Era.MODERN or result is None:
        return None
    caps = result.capabilities
    offered = caps.resources is not None and caps.resources.get("subscribe") is True
    return SubscriptionFilter(
        tools_list_changed=caps.list_changed("tools"),
        prompts_list_changed=caps.list_changed("prompts"),
        resources_list_changed=caps.list_changed("resources"),
        resource_subscriptions=resources if offered else (),
    )
