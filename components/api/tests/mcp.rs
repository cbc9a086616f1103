//! MCP over Streamable HTTP, driven as an agent would drive it.

mod common;

use common::*;
use serde_json::{json, Value as Json};

fn rpc(app: &App, user: &str, message: Json) -> (u16, Json) {
    let response = app.request(request(
        "POST",
        "/mcp",
        vec![
            auth(user),
            ("content-type".into(), "application/json".into()),
            (
                "accept".into(),
                "application/json, text/event-stream".into(),
            ),
        ],
        serde_json::to_vec(&message).unwrap(),
    ));
    (response.status, response.json_body())
}

fn call(app: &App, user: &str, tool: &str, arguments: Json) -> Json {
    let (status, reply) = rpc(
        app,
        user,
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["id"], 7, "{reply}");
    assert!(reply.get("error").is_none(), "{reply}");
    reply["result"].clone()
}

/// A successful tool call's structured result.
fn ok(result: Json) -> Json {
    assert_eq!(result["isError"], false, "{result}");
    let text: Json = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        text, result["structuredContent"],
        "text and structured content agree"
    );
    result["structuredContent"].clone()
}

#[test]
fn initialize_negotiates_the_protocol_version() {
    let app = App::new();
    for (asked, answered) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let (status, reply) = rpc(
            &app,
            "alice",
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}),
        );
        assert_eq!(status, 200);
        assert_eq!(reply["result"]["protocolVersion"], answered);
        assert_eq!(
            reply["result"]["capabilities"]["tools"]["listChanged"],
            false
        );
        assert_eq!(reply["result"]["serverInfo"]["name"], "todo-chatbot");
    }
    let (status, reply) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!((status, reply), (202, Json::Null));
    let (_, reply) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}),
    );
    assert_eq!(reply, json!({"jsonrpc": "2.0", "id": "p", "result": {}}));
}

/// Every tool, following `nextCursor` page by page.
fn all_tools(app: &App) -> (Vec<Json>, usize) {
    let (mut tools, mut pages, mut cursor) = (Vec::new(), 0, Json::Null);
    loop {
        let (_, reply) = rpc(
            app,
            "alice",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": cursor}}),
        );
        tools.extend(reply["result"]["tools"].as_array().unwrap().iter().cloned());
        pages += 1;
        cursor = reply["result"]["nextCursor"].clone();
        if cursor.is_null() {
            return (tools, pages);
        }
    }
}

#[test]
fn tools_list_describes_every_tool_with_schemas_in_one_page() {
    let app = App::new();
    let (tools, pages) = all_tools(&app);
    // Clients that read only the first page must see every tool.
    assert_eq!(pages, 1, "every tool in the first page");
    let names: Vec<_> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "add_task",
            "quick_add",
            "list_tasks",
            "get_task",
            "update_task",
            "complete_task",
            "reopen_task",
            "delete_task",
            "set_reminder",
            "clear_reminder",
            "share_task",
            "unshare_task",
            "assign_task",
            "get_task_history",
            "get_audit_trail",
            "list_notifications",
            "mark_notification_read",
            "get_profile",
            "set_time_zone",
        ]
    );
    for tool in &tools {
        let name = &tool["name"];
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
        assert!(
            !tool.to_string().contains("$ref"),
            "{name}: schemas are inlined"
        );
        assert!(tool["title"].as_str().unwrap().len() > 3, "{name}");
        assert!(tool["description"].as_str().unwrap().len() > 10, "{name}");
        for hint in ["readOnlyHint", "destructiveHint", "idempotentHint"] {
            assert!(tool["annotations"][hint].is_boolean(), "{name} {hint}");
        }
    }
    assert_eq!(tools[0]["inputSchema"]["required"], json!(["title"]));
    assert_eq!(tools[4]["inputSchema"]["required"], json!(["id"]));
    // Pagination stays supported: a cursor is the index of the first tool.
    let (_, rest) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "8"}}),
    );
    assert_eq!(rest["result"]["tools"][0]["name"], "set_reminder");
    assert_eq!(rest["result"]["tools"].as_array().unwrap().len(), 11);
    assert!(rest["result"].get("nextCursor").is_none());
    let (_, bad) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "zz"}}),
    );
    assert_eq!(bad["error"]["code"], -32602);
}

#[test]
fn an_agent_manages_a_list_through_tools() {
    let app = App::new();
    let added = ok(call(
        &app,
        "alice",
        "add_task",
        json!({"title": "Water plants", "due_date": "2026-11-30T08:00:00Z", "recurrence_pattern": "every monday and thursday", "tags": ["home"]}),
    ));
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(added["series_id"], json!(id));
    ok(call(
        &app,
        "alice",
        "add_task",
        json!({"title": "File taxes", "priority": "urgent"}),
    ));

    let listed = ok(call(
        &app,
        "alice",
        "list_tasks",
        json!({"tag": ["home"], "status": ["pending"]}),
    ));
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(listed["next_cursor"], Json::Null);
    let searched = ok(call(
        &app,
        "alice",
        "list_tasks",
        json!({"q": "taxes", "limit": 5}),
    ));
    assert_eq!(searched["tasks"][0]["title"], "File taxes");

    let got = ok(call(&app, "alice", "get_task", json!({"id": id})));
    assert_eq!(got["title"], "Water plants");
    let updated = ok(call(
        &app,
        "alice",
        "update_task",
        json!({"id": id, "priority": "high"}),
    ));
    assert_eq!(updated["priority"], "high");
    let reminded = ok(call(
        &app,
        "alice",
        "set_reminder",
        json!({"id": id, "remind_before_minutes": 10, "notification_type": "push"}),
    ));
    assert_eq!(reminded["remind_at"], "2026-11-30T07:50:00Z");
    let done = ok(call(&app, "alice", "complete_task", json!({"id": id})));
    assert_eq!(done["status"], "completed");
    let deleted = ok(call(&app, "alice", "delete_task", json!({"id": id})));
    assert_eq!(
        deleted,
        json!({"deleted": true, "id": id, "title": "Water plants"})
    );
    // The same operations landed in the outbox as events.
    assert!(app.count("outbox") >= 10);
}

#[test]
fn tool_failures_are_tool_errors_a_model_can_act_on() {
    let app = App::new();
    let cases = [
        (
            "add_task",
            json!({"title": "x", "due_date": "next week"}),
            "due_date",
        ),
        (
            "add_task",
            json!({"title": "x", "colour": "blue"}),
            "colour",
        ),
        ("get_task", json!({}), "id"),
        ("update_task", json!({"id": "x", "title": ""}), "title"),
        ("complete_task", json!({"id": "x", "force": true}), "force"),
        ("get_task", json!({"id": 5}), "id"),
        ("set_reminder", json!({"id": "x"}), "remind_at"),
        ("list_tasks", json!({"sort": "title"}), "sort"),
    ];
    for (tool, arguments, field) in cases {
        let result = call(&app, "alice", tool, arguments.clone());
        assert_eq!(result["isError"], true, "{tool} {arguments}");
        assert_eq!(
            result["structuredContent"]["error"]["field"], field,
            "{tool} {arguments}"
        );
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("Error (") && text.contains(field),
            "{text}"
        );
    }
    let other = ok(call(&app, "bob", "add_task", json!({"title": "bob's"})));
    let result = call(&app, "alice", "complete_task", json!({"id": other["id"]}));
    assert_eq!(result["structuredContent"]["error"]["code"], "not_found");
}

#[test]
fn protocol_errors_are_json_rpc_errors() {
    let app = App::new();
    let (_, reply) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "launch_rockets"}}),
    );
    assert_eq!(reply["error"]["code"], -32602);
    let (_, reply) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/list"}),
    );
    assert_eq!(reply["error"]["code"], -32601);
    let (status, reply) = rpc(
        &app,
        "alice",
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
    );
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!(-32600))
    );
    // An id past 64 bits is outside the documented schema: a 400.
    let huge = app.request(request(
        "POST",
        "/mcp",
        vec![
            auth("alice"),
            ("content-type".into(), "application/json".into()),
        ],
        br#"{"jsonrpc": "2.0", "id": -3526686572177338460478111744, "method": "ping"}"#.to_vec(),
    ));
    assert_eq!(huge.status, 400);
    let (_, reply) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "2.0", "id": u64::MAX, "method": "ping"}),
    );
    assert_eq!(reply["id"], json!(u64::MAX));
    let (status, reply) = rpc(
        &app,
        "alice",
        json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
    );
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!(-32600))
    );
    let garbage = app.request(request(
        "POST",
        "/mcp",
        vec![auth("alice")],
        b"{nope".to_vec(),
    ));
    assert_eq!(
        (garbage.status, garbage.json_body()["error"]["code"].clone()),
        (400, json!(-32700))
    );
}

#[test]
fn transport_rules_origin_version_header_and_auth() {
    let app = App::new();
    let ping = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
    let send = |headers: Vec<(&str, &str)>| {
        let mut all: Vec<(String, String)> = vec![auth("alice")];
        all.extend(
            headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        app.request(request("POST", "/mcp", all, ping.clone()))
    };
    assert_eq!(send(vec![("origin", "https://chat.example")]).status, 200);
    assert_error(
        &send(vec![("origin", "https://evil.example")]),
        403,
        "origin_not_allowed",
    );
    assert_eq!(
        send(vec![("mcp-protocol-version", "2025-06-18")]).status,
        200
    );
    assert_error(
        &send(vec![("mcp-protocol-version", "1900-01-01")]),
        400,
        "unsupported_protocol_version",
    );
    let anonymous = app.request(request("POST", "/mcp", vec![], ping.clone()));
    assert_error(&anonymous, 401, "unauthorized");
    let get = app.request(request("GET", "/mcp", vec![auth("alice")], vec![]));
    assert_error(&get, 405, "method_not_allowed");
    assert_eq!(get.header("allow"), Some("POST"));
}

#[test]
fn an_agent_shares_tasks_and_reads_notifications_and_history() {
    let app = App::new();
    let added = ok(call(
        &app,
        "alice",
        "add_task",
        json!({"title": "Plan trip"}),
    ));
    let id = added["id"].as_str().unwrap().to_owned();
    let shared = ok(call(
        &app,
        "alice",
        "share_task",
        json!({"id": id, "user_id": "bob"}),
    ));
    assert_eq!(shared["shared_with"], json!(["bob"]));
    assert_eq!(
        ok(call(&app, "bob", "get_task", json!({"id": id})))["title"],
        "Plan trip"
    );
    let refused = call(
        &app,
        "bob",
        "share_task",
        json!({"id": id, "user_id": "eve"}),
    );
    assert_eq!(refused["structuredContent"]["error"]["code"], "forbidden");
    let missing = call(&app, "alice", "share_task", json!({"id": id}));
    assert_eq!(missing["structuredContent"]["error"]["field"], "user_id");
    let notes = ok(call(
        &app,
        "alice",
        "list_notifications",
        json!({"unread": true, "limit": 5}),
    ));
    assert_eq!(notes["notifications"], json!([]));
    let bad = call(&app, "alice", "list_notifications", json!({"limit": 500}));
    assert_eq!(bad["structuredContent"]["error"]["field"], "limit");
    let history = ok(call(&app, "alice", "get_task_history", json!({"id": id})));
    assert_eq!(history["task_id"], json!(id));
    let hidden = call(&app, "carol", "get_task_history", json!({"id": id}));
    assert_eq!(hidden["structuredContent"]["error"]["code"], "not_found");
}

/// A tool's arguments are typed JSON, a REST query is text; both decode
/// into the same input, so the same filters give the same page, and the
/// same mistakes name the same field.
#[test]
fn tool_arguments_and_query_strings_decode_into_one_input() {
    let app = App::new();
    for (title, priority) in [("a", "high"), ("b", "low"), ("c", "high"), ("d", "medium")] {
        let r = app.call(
            "ann",
            "POST",
            "/api/tasks",
            Some(json!({"title": title, "priority": priority, "tags": ["x"]})),
        );
        assert_eq!(r.status, 201);
    }
    let rest = app.call(
        "ann",
        "GET",
        "/api/tasks?priority=high,medium&tag=x&limit=2&overdue=false&sort=priority",
        None,
    );
    assert_eq!(rest.status, 200);
    let tool = ok(call(
        &app,
        "ann",
        "list_tasks",
        json!({"priority": ["high", "medium"], "tag": ["x"], "limit": 2, "overdue": false, "sort": "priority"}),
    ));
    assert_eq!(rest.json_body(), tool);
    assert_eq!(tool["tasks"].as_array().unwrap().len(), 2);
    // A whole number written 2.0 is still 2 (JSON Schema's `integer`).
    let same = ok(call(
        &app,
        "ann",
        "list_tasks",
        json!({"priority": ["high", "medium"], "tag": ["x"], "limit": 2.0, "overdue": false, "sort": "priority"}),
    ));
    assert_eq!(same, tool);
    for (query, arguments, field) in [
        ("limit=0", json!({"limit": 0}), "limit"),
        ("limit=two", json!({"limit": "two"}), "limit"),
        ("overdue=maybe", json!({"overdue": "maybe"}), "overdue"),
        ("colour=red", json!({"colour": "red"}), "colour"),
    ] {
        let rest = app.call("ann", "GET", &format!("/api/tasks?{query}"), None);
        assert!((400..500).contains(&rest.status), "{query}");
        let tool = call(&app, "ann", "list_tasks", arguments.clone());
        assert_eq!(tool["isError"], true, "{arguments}");
        assert_eq!(rest.json_body()["error"]["field"], field, "{query}");
        assert_eq!(
            tool["structuredContent"]["error"]["field"], field,
            "{arguments}"
        );
        assert_eq!(
            rest.json_body()["error"]["code"],
            tool["structuredContent"]["error"]["code"],
            "{query}"
        );
    }
}
