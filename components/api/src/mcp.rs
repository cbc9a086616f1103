//! MCP over Streamable HTTP: JSON-RPC 2.0 on `POST /mcp`, answered with a
//! single JSON response (this server never needs to stream). Stateless: no
//! `Mcp-Session-Id`, every request carries its own credentials.

use serde_json::{json, Map, Value as Json};
use todo_domain::store::sql::transaction_for;

use crate::http::{ApiError, Request, Response};
use crate::operations::{Operation, OPERATIONS};
use crate::schemas;
use crate::Context;

/// Protocol revisions this server speaks, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

fn rpc_error(id: &Json, code: i64, message: impl Into<String>) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

fn rpc_result(id: &Json, result: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Browsers send `Origin`; refusing unknown ones stops DNS-rebinding attacks
/// on a local server, as the transport specification requires.
pub fn check_origin(request: &Request, allowed: &[String]) -> Result<(), ApiError> {
    match request.header("origin") {
        None => Ok(()),
        Some(origin)
            if allowed
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) =>
        {
            Ok(())
        }
        Some(origin) => Err(ApiError::new(
            403,
            "origin_not_allowed",
            format!(
                "origin `{origin}` may not call /mcp; add it to the mcp_allowed_origins variable"
            ),
        )),
    }
}

/// The `MCP-Protocol-Version` header, if sent, must name a version we speak.
pub fn check_protocol_header(request: &Request) -> Result<(), ApiError> {
    match request.header("mcp-protocol-version") {
        Some(v) if !SUPPORTED_VERSIONS.contains(&v.trim()) => Err(ApiError::new(
            400,
            "unsupported_protocol_version",
            format!(
                "MCP protocol version `{v}` is not supported; supported: {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// What is wrong with a JSON-RPC 2.0 message's envelope, if anything.
fn check_envelope(message: &Map<String, Json>) -> Result<(), &'static str> {
    if message.get("jsonrpc") != Some(&json!("2.0")) {
        return Err("jsonrpc must be \"2.0\"");
    }
    if message.get("method").is_some_and(|m| !m.is_string()) {
        return Err("method must be a string");
    }
    if message
        .get("id")
        .is_some_and(|id| !(id.is_string() || id.is_i64() || id.is_u64()))
    {
        return Err("id must be a string or an integer");
    }
    if message.get("params").is_some_and(|p| !p.is_object()) {
        return Err("params must be an object");
    }
    if message.get("error").is_some_and(|e| !e.is_object()) {
        return Err("error must be an object");
    }
    Ok(())
}

pub fn handle(ctx: &Context<'_>, request: &Request, user: &str) -> Response {
    let message: Json = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(e) => {
            return Response::json(
                400,
                &rpc_error(&Json::Null, PARSE_ERROR, format!("parse error: {e}")),
            )
        }
    };
    let Json::Object(message) = message else {
        let text = if message.is_array() {
            "JSON-RPC batches are not supported; send one message per request"
        } else {
            "a JSON-RPC message must be an object"
        };
        return Response::json(400, &rpc_error(&Json::Null, INVALID_REQUEST, text));
    };
    // The envelope is checked first, so a malformed message is a 400
    // whatever it is (request, notification or response), as the
    // OpenAPI document's request schema says.
    if let Err(problem) = check_envelope(&message) {
        let id = message
            .get("id")
            .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
            .cloned()
            .unwrap_or(Json::Null);
        return Response::json(400, &rpc_error(&id, INVALID_REQUEST, problem));
    }
    let (Some(id), Some(method)) = (
        message.get("id").cloned(),
        message.get("method").and_then(Json::as_str),
    ) else {
        // A notification or a client's response: acknowledged, nothing to say.
        return Response::empty(202);
    };
    let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
    let reply = match method {
        "initialize" => rpc_result(&id, initialize(&params)),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => list_tools(&id, &params),
        "tools/call" => call_tool(ctx, user, &id, &params),
        other => rpc_error(
            &id,
            METHOD_NOT_FOUND,
            format!("method `{other}` is not supported"),
        ),
    };
    Response::json(200, &reply)
}

fn initialize(params: &Json) -> Json {
    let requested = params
        .get("protocolVersion")
        .and_then(Json::as_str)
        .unwrap_or("");
    // Answer with the client's version when we speak it, else our newest.
    let version = SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .unwrap_or(&SUPPORTED_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "todo-chatbot", "title": "Todo Chatbot", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Manage the user's todo list. Times are RFC 3339 with an offset \
            (e.g. 2026-12-01T09:00:00Z). list_tasks pages with next_cursor. \
            Recurring tasks need a due_date; completing one creates the next occurrence.",
    })
}

/// Tools per `tools/list` page. Larger than the tool count, so every tool
/// comes in the first page: many clients never follow `nextCursor`. A
/// cursor (the index of the first tool wanted) is still honoured.
pub const TOOLS_PAGE: usize = 100;

fn list_tools(id: &Json, params: &Json) -> Json {
    let all = tools();
    let start = match params.get("cursor") {
        None | Some(Json::Null) => 0,
        Some(Json::String(c)) => match c.parse::<usize>() {
            Ok(n) if n < all.len() => n,
            _ => {
                return rpc_error(
                    id,
                    INVALID_PARAMS,
                    format!("cursor `{c}` is not one this server issued"),
                )
            }
        },
        Some(_) => return rpc_error(id, INVALID_PARAMS, "cursor must be a string"),
    };
    let end = (start + TOOLS_PAGE).min(all.len());
    let mut result = json!({ "tools": all[start..end] });
    if end < all.len() {
        result["nextCursor"] = json!(end.to_string());
    }
    rpc_result(id, result)
}

fn call_tool(ctx: &Context<'_>, user: &str, id: &Json, params: &Json) -> Json {
    let Some(name) = params.get("name").and_then(Json::as_str) else {
        return rpc_error(id, INVALID_PARAMS, "tools/call needs params.name");
    };
    let arguments = match params.get("arguments") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(map)) => map.clone(),
        Some(_) => return rpc_error(id, INVALID_PARAMS, "params.arguments must be an object"),
    };
    let Some(operation) = Operation::for_tool(name) else {
        return rpc_error(
            id,
            INVALID_PARAMS,
            format!("unknown tool `{name}`; tools/list names the tools"),
        );
    };
    // The arguments are the input as it is: the operation's type decodes
    // them, whatever the REST route would read from path or query.
    let run = || operation.run(ctx, user, arguments.clone());
    let outcome = if operation.writes {
        operation.owners(ctx, user, &arguments).and_then(|owners| {
            let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
            transaction_for(ctx.db, &owners, run)
        })
    } else {
        run()
    };
    match outcome {
        Ok(reply) => rpc_result(
            id,
            json!({
                "content": [{ "type": "text", "text": reply.body.to_string() }],
                "structuredContent": reply.body,
                "isError": false,
            }),
        ),
        Err(error) if error.status >= 500 => rpc_error(id, INTERNAL_ERROR, error.message),
        // A tool error the model can read and act on, not a transport error.
        Err(error) => {
            let mut text = format!("Error ({}", error.code);
            if let Some(field) = &error.field {
                text.push_str(&format!(", field `{field}`"));
            }
            text.push_str(&format!("): {}", error.message));
            rpc_result(
                id,
                json!({
                    "content": [{ "type": "text", "text": text }],
                    "structuredContent": error.body(),
                    "isError": true,
                }),
            )
        }
    }
}

/// Every tool, in table order, with schemas from the OpenAPI document.
pub fn tools() -> Vec<Json> {
    OPERATIONS
        .iter()
        .filter_map(|op| op.tool.as_ref().map(|tool| (op, tool)))
        .map(|(op, tool)| {
            let output = match tool.output {
                Some(custom) => custom(),
                None => schemas::success_output(op.id)
                    .unwrap_or_else(|| panic!("{} has no success response schema", op.id)),
            };
            json!({
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "inputSchema": schemas::tool_input(op.id),
                "outputSchema": output,
                "annotations": {
                    "title": tool.title,
                    "readOnlyHint": tool.hints.read_only,
                    "destructiveHint": tool.hints.destructive,
                    "idempotentHint": tool.hints.idempotent,
                    "openWorldHint": false,
                },
            })
        })
        .collect()
}
