"""The chat's skills option: a server's skills offered to the model, loaded when it asks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from opex_trio.agent.chat import Chat
from opex_trio.agent.hooks import NOT_MINE
from opex_trio.errors import ConfigError, SkillVerificationError
from opex_trio.mcp.skills import SkillCatalog
from opex_trio.testing.mcp_server import ToolContext
from opex_trio.testing.task_server import TaskTestServer

from .test_chat import asks, call, says, setup, tool_messages

BODY = "Fill each form field from the document, then flatten the PDF.\n"
FORMS = "Field names: applicant, date, signature.\n"


def skill_server() -> TaskTestServer:
    server = TaskTestServer(modern=False)
    server.add_skill(
        "pdf-processing",
        "Extract, fill, and assemble PDF documents",
        BODY,
        **{"references/FORMS.md": FORMS},
    )
    server.add_skill("release-notes", "Write release notes from a changelog", "Group by kind.\n")
    return server


def offered_tools(request: Any) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in request.json.get("tools") or []}


async def test_the_model_loads_a_skill_it_chooses(autojump_clock: Any) -> None:
    server = skill_server()
    reads_when_asked: list[list[str]] = []

    def on_assistant_message(message: Mapping[str, Any], context: Any) -> None:
        reads_when_asked.append(list(server.reads))

    async with setup(server) as (llm, client, mcp):
        llm.push(asks(call("c1", "load_skill", {"name": "pdf-processing"})), says("filled"))
        chat = Chat(client, mcp=mcp, offer_skills=True, on_assistant_message=on_assistant_message)
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "fill the form"}])

    tool = offered_tools(llm.requests[0])["load_skill"]
    assert "- pdf-processing: Extract, fill, and assemble PDF documents" in tool["description"]
    assert "- release-notes: Write release notes from a changelog" in tool["description"]
    assert tool["parameters"]["properties"]["name"]["enum"] == ["pdf-processing", "release-notes"]
    # Listing read nothing; the model's call read the chosen skill's files only.
    assert reads_when_asked[0] == []
    assert server.reads == [
        "skill://pdf-processing/SKILL.md",
        "skill://pdf-processing/references/FORMS.md",
    ]
    assert [r.method for r in server.requests].count("skills/list") == 1
    assert result.tool_calls[0].outcome == "ok" and result.tool_calls[0].server is None
    content = tool_messages(llm.requests[1])[0]["content"]
    assert content.startswith("---\nname: pdf-processing\n")
    assert BODY in content
    assert f"- skill://pdf-processing/references/FORMS.md ({len(FORMS)} bytes)" in content
    assert result.content == "filled"


async def test_a_tampered_skill_is_refused_and_its_text_never_reaches_the_model(
    autojump_clock: Any,
) -> None:
    server = skill_server()
    server.tamper("skill://pdf-processing/SKILL.md", "---\nname: pdf-processing\n---\nEvil!\n")
    async with setup(server) as (llm, client, mcp):
        llm.push(asks(call("c1", "load_skill", {"name": "pdf-processing"})), says("sorry"))
        result = await Chat(client, mcp=mcp, offer_skills=True).chat(
            model="m", messages=[{"role": "user", "content": "fill the form"}]
        )
    outcome = result.tool_calls[0]
    assert outcome.outcome == "error" and isinstance(outcome.error, SkillVerificationError)
    content = tool_messages(llm.requests[1])[0]["content"]
    assert "skill://pdf-processing/SKILL.md is" in content and "Evil" not in content
    # Refused at the first file: the supporting file was never read.
    assert server.reads == ["skill://pdf-processing/SKILL.md"]


async def test_the_skill_tool_takes_a_name_no_other_tool_has(autojump_clock: Any) -> None:
    server = skill_server()

    def server_load_skill(args: Mapping[str, Any], ctx: ToolContext) -> str:
        return "the server's own load_skill"

    server.add_tool("load_skill", server_load_skill)
    custom = [{"type": "function", "function": {"name": "load_skill_2", "parameters": {}}}]
    async with setup(server) as (llm, client, mcp):
        llm.push(
            asks(
                call("c1", "load_skill", {}),
                call("c2", "load_skill_3", {"name": "release-notes"}),
            ),
            says("both"),
        )
        chat = Chat(
            client,
            mcp=mcp,
            offer_skills=True,
            custom_tools=custom,
            custom_tool_executor=lambda name, args, ctx: (
                "custom" if name == "load_skill_2" else NOT_MINE
            ),
        )
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "go"}])
    offered = offered_tools(llm.requests[0])
    assert {"load_skill", "load_skill_2", "load_skill_3"} <= set(offered)
    assert "Skills:" in offered["load_skill_3"]["description"]
    answers = {m["tool_call_id"]: m["content"] for m in tool_messages(llm.requests[1])}
    assert answers["c1"] == "the server's own load_skill"
    assert "Group by kind." in answers["c2"]
    assert [r.server for r in result.tool_calls] == ["tools", None]


async def test_skills_are_not_offered_unless_asked_for(autojump_clock: Any) -> None:
    server = skill_server()
    async with setup(server) as (llm, client, mcp):
        llm.push(says("hello"))
        await Chat(client, mcp=mcp).chat(model="m", messages=[{"role": "user", "content": "hi"}])
        assert "load_skill" not in offered_tools(llm.requests[0])
        assert "skills/list" not in [r.method for r in server.requests]
        with pytest.raises(ConfigError, match="offer_skills needs mcp"):
            Chat(client, offer_skills=True)


async def test_a_catalog_names_shared_skills_by_server(autojump_clock: Any) -> None:
    server = skill_server()
    async with setup(server) as (_llm, _client, mcp):
        other = mcp.client("tools")
        catalog = await SkillCatalog.of_clients({"a": other, "b": other})
        assert [o.name for o in catalog.skills] == [
            "a/pdf-processing",
            "a/release-notes",
            "b/pdf-processing",
            "b/release-notes",
        ]
        with pytest.raises(ConfigError, match="no skill named 'pdf-processing'; the skills"):
            await catalog.load("pdf-processing")
        loaded = await catalog.load("b/release-notes")
        assert loaded.instructions.endswith("Group by kind.\n")
        assert json.dumps(catalog.tool()["function"]["parameters"])
