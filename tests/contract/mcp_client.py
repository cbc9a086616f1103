"""The official MCP Python SDK (PyPI `mcp`) against the running app.

    python mcp_client.py URL TOKEN

Initializes over Streamable HTTP, lists the tools page by page, then calls
every tool with valid arguments (checking the structured result against
the tool's output schema, which the SDK does) and with invalid ones
(checking for a tool error that names the field). Prints a summary line per
step; exits non-zero on the first mismatch.
"""
import asyncio
import sys

import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", flush=True)
        sys.exit(1)


async def tool_error(session, name, arguments, field):
    """A call the server must refuse as a tool error naming `field`."""
    result = await session.call_tool(name, arguments)
    check(result.is_error, f"{name}({arguments}) should be a tool error, got {result}")
    error = (result.structured_content or {}).get("error", {})
    check(error.get("field") == field, f"{name}({arguments}) should name `{field}`, got {error}")
    check(field in result.content[0].text, f"the text of {name}'s error names `{field}`")
    print(f"  {name}: invalid arguments refused, field `{field}`", flush=True)


async def ok(session, name, arguments):
    """A call that must succeed; the SDK checks structuredContent against outputSchema."""
    result = await session.call_tool(name, arguments)
    check(not result.is_error, f"{name}({arguments}) failed: {result.content}")
    check(result.structured_content is not None, f"{name} returned structuredContent")
    print(f"  {name}: ok", flush=True)
    return result.structured_content


async def main(url, token):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client, streamable_http_client(url, http_client=client) as (read, write, *_):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print(f"initialized: protocol {init.protocol_version}, server {init.server_info.name}", flush=True)
            await session.send_ping()
            print("ping: ok", flush=True)

            tools, cursor, pages = [], None, 0
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                tools += page.tools
                pages += 1
                cursor = page.next_cursor
                if not cursor:
                    break
            names = {t.name for t in tools}
            print(f"tools/list: {len(tools)} tools in {pages} pages", flush=True)
            check(pages == 1 and len(tools) == 19, "tools/list gives every tool in its first page")
            for tool in tools:
                check(tool.title, f"{tool.name} has a title")
                check(tool.output_schema and tool.output_schema.get("type") == "object", f"{tool.name} has an object outputSchema")
                check(tool.input_schema.get("type") == "object", f"{tool.name} has an object inputSchema")
                a = tool.annotations
                check(a is not None and a.read_only_hint is not None and a.destructive_hint is not None and a.idempotent_hint is not None, f"{tool.name} has hints")

            profile = await ok(session, "set_time_zone", {"time_zone": "Europe/Berlin"})
            check(profile["time_zone"] == "Europe/Berlin", "set_time_zone sets the zone")
            await tool_error(session, "set_time_zone", {"time_zone": "Atlantis/Capital"}, "time_zone")
            check((await ok(session, "get_profile", {}))["time_zone"] == "Europe/Berlin", "get_profile reads it back")
            quick = await ok(session, "quick_add", {"text": "Pay rent on the 1st every month 9am remind me the day before #home p1"})
            check(quick["task"]["title"] == "Pay rent" and quick["task"]["recurrence_pattern"] == "monthly"
                  and quick["task"]["remind_before_minutes"] == 1440 and quick["task"]["tags"] == ["home"]
                  and quick["task"]["priority"] == "urgent" and quick["task"]["time_zone"] == "Europe/Berlin",
                  f"quick_add understood the line: {quick}")
            check(quick["task"]["due_date"].endswith("T08:00:00Z"), "09:00 in Berlin in winter")
            await tool_error(session, "quick_add", {"text": "x", "time_zone": "Nowhere"}, "time_zone")
            task = await ok(session, "add_task", {"title": "Pay rent", "due_date": "2030-01-01T09:00:00Z", "tags": ["home"], "priority": "high"})
            tid = task["id"]
            await tool_error(session, "add_task", {"title": ""}, "title")
            await tool_error(session, "add_task", {"title": "x", "priority": "asap"}, "priority")
            page = await ok(session, "list_tasks", {"tag": ["home"], "sort": "priority", "limit": 5})
            check(any(t["id"] == tid for t in page["tasks"]), "list_tasks finds the new task")
            await tool_error(session, "list_tasks", {"limit": 1000}, "limit")
            await ok(session, "get_task", {"id": tid})
            await tool_error(session, "get_task", {"id": "no-such-task"}, "id")
            await ok(session, "update_task", {"id": tid, "description": "by bank transfer"})
            await tool_error(session, "update_task", {"id": tid, "due_date": "next week"}, "due_date")
            await ok(session, "set_reminder", {"id": tid, "remind_before_minutes": 60})
            await tool_error(session, "set_reminder", {"id": tid}, "remind_at")
            await ok(session, "clear_reminder", {"id": tid})
            await ok(session, "share_task", {"id": tid, "user_id": "mcp-friend"})
            await tool_error(session, "share_task", {"id": tid}, "user_id")
            await ok(session, "assign_task", {"id": tid, "assignee": "mcp-friend"})
            await ok(session, "unshare_task", {"id": tid, "user": "mcp-friend"})
            await ok(session, "complete_task", {"id": tid})
            await ok(session, "reopen_task", {"id": tid})
            await tool_error(session, "complete_task", {"id": tid, "extra": 1}, "extra")
            await ok(session, "get_task_history", {"id": tid})
            await ok(session, "get_audit_trail", {"limit": 10})
            await ok(session, "list_notifications", {"unread": True})
            await tool_error(session, "list_notifications", {"limit": 0}, "limit")
            await tool_error(session, "mark_notification_read", {"id": "none"}, "id")
            await ok(session, "delete_task", {"id": tid})
            missing = await session.call_tool("get_task", {"id": tid})
            check(missing.is_error and missing.structured_content["error"]["code"] == "not_found", "a deleted task is not found")
            called = {"add_task", "quick_add", "get_profile", "set_time_zone", "list_tasks", "get_task", "update_task", "set_reminder", "clear_reminder",
                      "share_task", "assign_task", "unshare_task", "complete_task", "reopen_task",
                      "get_task_history", "get_audit_trail", "list_notifications", "mark_notification_read", "delete_task"}
            check(names <= called, f"every tool was called: not {sorted(names - called)}")
            print(f"MCP SDK client: {len(names)} tools called with valid and invalid arguments", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
