//! JSON Schemas for MCP tools, derived from the OpenAPI document (the
//! contract Schemathesis checks the server against): a tool's input is the
//! operation's path and query parameters plus its JSON body's fields, its
//! output the success response's schema, every `$ref` inlined.

use std::sync::OnceLock;

use serde_json::{json, Map, Value as Json};

/// Where an operation's parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Body,
}

fn document() -> &'static Json {
    static DOC: OnceLock<Json> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(crate::OPENAPI).expect("openapi.json is valid JSON"))
}

/// A named schema of `components.schemas`, with its references inlined.
pub fn component(name: &str) -> Json {
    inline(&document()["components"]["schemas"][name])
}

/// Replaces every local `$ref` by what it points at.
fn inline(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            if let Some(Json::String(target)) = map.get("$ref") {
                // ~600 zone names would cost a model's context in every
                // tool that takes one; the server names the field if wrong.
                if target == "#/components/schemas/TimeZone" {
                    return json!({
                        "type": "string",
                        "description": "An IANA time zone name, e.g. Europe/Berlin, America/New_York or UTC.",
                    });
                }
                let pointer = target.trim_start_matches('#');
                let resolved = document()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("openapi.json: dangling $ref {target}"));
                return inline(resolved);
            }
            Json::Object(map.iter().map(|(k, v)| (k.clone(), inline(v))).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(inline).collect()),
        other => other.clone(),
    }
}

/// The OpenAPI operation with this `operationId`: method, path, operation
/// object and the path item's shared parameters.
pub fn operation(id: &str) -> Option<(String, String, &'static Json, Vec<Json>)> {
    let paths = document()["paths"].as_object()?;
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            if op.get("operationId").and_then(Json::as_str) == Some(id) {
                let shared = item
                    .get("parameters")
                    .and_then(Json::as_array)
                    .map(|p| p.iter().map(inline).collect())
                    .unwrap_or_default();
                return Some((method.to_uppercase(), path.clone(), op, shared));
            }
        }
    }
    None
}

/// The path and query parameters of an operation, resolved.
fn parameters(id: &str) -> Vec<Json> {
    let Some((_, _, op, mut params)) = operation(id) else {
        return Vec::new();
    };
    if let Some(own) = op.get("parameters").and_then(Json::as_array) {
        params.extend(own.iter().map(inline));
    }
    params
        .into_iter()
        .filter(|p| matches!(p["in"].as_str(), Some("path" | "query")))
        .collect()
}

/// The JSON body's schema, if the operation takes one.
pub fn body_schema(id: &str) -> Option<Json> {
    let (_, _, op, _) = operation(id)?;
    let schema = op.pointer("/requestBody/content/application~1json/schema")?;
    Some(inline(schema))
}

/// Where each named argument of a tool goes.
pub fn locations(id: &str) -> Vec<(String, Location)> {
    let mut out: Vec<(String, Location)> = parameters(id)
        .iter()
        .map(|p| {
            let location = if p["in"] == "path" {
                Location::Path
            } else {
                Location::Query
            };
            (p["name"].as_str().unwrap_or_default().to_owned(), location)
        })
        .collect();
    if let Some(body) = body_schema(id) {
        if let Some(props) = body["properties"].as_object() {
            out.extend(props.keys().map(|k| (k.clone(), Location::Body)));
        }
    }
    out
}

/// A query parameter's schema as a JSON argument: the "empty value means
/// absent" alternative is a query-string matter, not a JSON one.
fn argument_schema(schema: &Json) -> Json {
    if let Some(items) = schema.get("items") {
        let mut array = schema.clone();
        array["items"] = argument_schema(items);
        return array;
    }
    let Some(options) = schema.get("anyOf").and_then(Json::as_array) else {
        return schema.clone();
    };
    let kept: Vec<Json> = options
        .iter()
        .filter(|o| o.get("maxLength") != Some(&json!(0)))
        .cloned()
        .collect();
    match kept.as_slice() {
        [one] => one.clone(),
        _ => json!({ "anyOf": kept }),
    }
}

/// The tool's input schema: one object of path parameters (required),
/// query parameters and body fields, with the body's own constraints.
pub fn tool_input(id: &str) -> Json {
    let mut properties = Map::new();
    let mut required: Vec<Json> = Vec::new();
    for p in parameters(id) {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        let mut schema = argument_schema(&p["schema"]);
        if let (Some(description), Json::Object(map)) = (p.get("description"), &mut schema) {
            map.entry("description").or_insert(description.clone());
        }
        if p["required"] == json!(true) {
            required.push(json!(name));
        }
        properties.insert(name, schema);
    }
    let mut tool = Map::new();
    tool.insert("type".into(), json!("object"));
    if let Some(Json::Object(body)) = body_schema(id) {
        if let Some(Json::Object(props)) = body.get("properties") {
            properties.extend(props.clone());
        }
        if let Some(Json::Array(names)) = body.get("required") {
            required.extend(names.iter().cloned());
        }
        for key in ["allOf", "anyOf", "oneOf", "not", "description"] {
            if let Some(v) = body.get(key) {
                tool.insert(key.into(), v.clone());
            }
        }
    }
    tool.insert("properties".into(), Json::Object(properties));
    tool.insert("required".into(), Json::Array(required));
    tool.insert("additionalProperties".into(), json!(false));
    Json::Object(tool)
}

/// The success response's schema (200 or 201), if it has a JSON body.
pub fn success_output(id: &str) -> Option<Json> {
    let (_, _, op, _) = operation(id)?;
    ["200", "201"].iter().find_map(|status| {
        op.pointer(&format!(
            "/responses/{status}/content/application~1json/schema"
        ))
        .map(inline)
    })
}
