//! The operation table, the REST routes, the MCP tools and the OpenAPI
//! document agree: one entry each, the same method and path, and tool
//! schemas that take exactly what the REST operation takes.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use todo_api::operations::OPERATIONS;
use todo_api::router::{Endpoint, ROUTES};
use todo_api::{mcp, schemas, OPENAPI};

/// Routes that are not operations of the API: probes, the document itself,
/// the MCP endpoint and the event stream (a stream, served by the entry).
const NOT_OPERATIONS: &[Endpoint] = &[
    Endpoint::Healthz,
    Endpoint::OpenApi,
    Endpoint::Mcp,
    Endpoint::EventStream,
];

#[test]
fn every_route_is_one_operation_with_the_openapi_method_and_path() {
    for route in ROUTES {
        let ops: Vec<_> = OPERATIONS
            .iter()
            .filter(|op| op.endpoint == route.endpoint)
            .collect();
        if NOT_OPERATIONS.contains(&route.endpoint) {
            assert!(ops.is_empty(), "{:?}", route.endpoint);
            continue;
        }
        assert_eq!(ops.len(), 1, "{} {}", route.method, route.path);
        let (method, path, _, _) = schemas::operation(ops[0].id)
            .unwrap_or_else(|| panic!("{} is not in openapi.json", ops[0].id));
        assert_eq!((method.as_str(), path.as_str()), (route.method, route.path));
    }
}

#[test]
fn every_openapi_operation_is_routed() {
    let doc: Json = serde_json::from_str(OPENAPI).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            let id = op["operationId"].as_str().unwrap();
            let routed = ROUTES
                .iter()
                .any(|r| r.method.eq_ignore_ascii_case(method) && r.path == path);
            assert!(routed, "{id}: {method} {path} has no route");
        }
    }
    let routed: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn tools_take_exactly_what_the_rest_operation_takes() {
    let tools = mcp::tools();
    for op in OPERATIONS {
        assert_eq!(
            op.takes_body,
            schemas::body_schema(op.id).is_some(),
            "{}: takes_body and the OpenAPI requestBody agree",
            op.id
        );
        // The input type REST and MCP both decode into takes exactly the
        // operation's parameters and body fields.
        let expected: BTreeSet<String> = schemas::locations(op.id)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let fields: BTreeSet<String> = (op.call.fields)().iter().map(|f| f.to_string()).collect();
        assert_eq!(fields, expected, "{}: input type vs OpenAPI", op.id);
        let has_query = schemas::locations(op.id)
            .iter()
            .any(|(_, l)| *l == schemas::Location::Query);
        assert_eq!(op.takes_query, has_query, "{}: takes_query", op.id);
        let Some(tool) = &op.tool else {
            assert_eq!(
                op.endpoint,
                Endpoint::SyncPoll,
                "only the long-poll is not a tool"
            );
            continue;
        };
        let listed = tools.iter().find(|t| t["name"] == tool.name).unwrap();
        let input = &listed["inputSchema"];
        let properties: BTreeSet<String> = input["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(properties, expected, "{}", tool.name);
        // The body's schema is the tool's, field for field.
        if let Some(body) = schemas::body_schema(op.id) {
            for (name, schema) in body["properties"].as_object().unwrap() {
                assert_eq!(&input["properties"][name], schema, "{}.{name}", tool.name);
            }
            for required in body["required"].as_array().into_iter().flatten() {
                assert!(
                    input["required"].as_array().unwrap().contains(required),
                    "{} requires {required}",
                    tool.name
                );
            }
        }
        // Path parameters are required arguments.
        let (_, path, _, _) = schemas::operation(op.id).unwrap();
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            assert!(
                input["required"]
                    .as_array()
                    .unwrap()
                    .contains(&Json::from(name)),
                "{} requires {name}",
                tool.name
            );
        }
        // The output is the REST success body's schema unless REST has none.
        if tool.output.is_none() {
            assert_eq!(
                Some(&listed["outputSchema"]),
                schemas::success_output(op.id).as_ref(),
                "{}",
                tool.name
            );
        }
    }
}

#[test]
fn the_time_zone_enum_is_the_servers_zone_list() {
    let doc: Json = serde_json::from_str(OPENAPI).unwrap();
    let documented: Vec<&str> = doc["components"]["schemas"]["TimeZone"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(documented, todo_domain::quick_add::zone_names());
}

/// An empty query value means the parameter is absent (`?sort=`), so every
/// optional query parameter's schema admits the empty string: otherwise a
/// contract fuzzer rightly reports the server accepting what the schema
/// forbids.
#[test]
fn every_optional_query_parameter_admits_an_empty_value() {
    fn admits_empty(schema: &Json) -> bool {
        if let Some(options) = schema["anyOf"].as_array() {
            return options.iter().any(admits_empty);
        }
        if schema["type"] == "array" {
            return true;
        }
        schema["type"] == "string"
            && schema.get("enum").is_none()
            && schema.get("pattern").is_none()
            && schema["minLength"].as_u64().unwrap_or(0) == 0
            || schema["maxLength"] == 0
            || schema["pattern"]
                .as_str()
                .is_some_and(|p| p.ends_with(")?$") && p.starts_with("^("))
    }
    let doc: Json = serde_json::from_str(OPENAPI).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" && p["required"] != true {
                    assert!(
                        admits_empty(&p["schema"]),
                        "{method} {path} ?{}=",
                        p["name"]
                    );
                }
            }
        }
    }
}
