//! The Todo Chatbot's HTTP API: REST under `/api`, MCP tools at `/mcp`.
//!
//! [`handle`] is plain Rust over the domain's SQL interface, so tests run it
//! natively against rusqlite; the Spin entry point (Wasm only) adapts Spin's
//! request, variables and SQLite to it.

pub mod auth;
pub mod config;
pub mod http;
pub mod mcp;
pub mod operations;
pub mod request_parts;
pub mod rest;
pub mod router;
pub mod schemas;
pub mod services;
pub mod streams;

#[cfg(target_arch = "wasm32")]
mod spin_entry;

use serde_json::json;
use todo_domain::store::sql::Sql;
use todo_domain::time::Timestamp;

use crate::config::Config;
use crate::http::{ApiError, Request, Response};
use crate::router::{Endpoint, Match};

/// The OpenAPI document of the REST API, kept in the repository.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Opens the other services' databases (`reminders`, `audit`, `sync`).
pub trait Databases {
    fn open(&self, label: &str) -> Result<Box<dyn Sql>, todo_domain::store::sql::DbError>;
}

pub struct Context<'a> {
    /// The `default` database: tasks and the outbox.
    pub db: &'a dyn Sql,
    pub databases: &'a dyn Databases,
    pub config: &'a Config,
    pub now: Timestamp,
}

/// Serves one request.
pub fn handle(ctx: &Context<'_>, request: &Request) -> Response {
    match admit(ctx, request).and_then(|admitted| dispatch(ctx, request, admitted)) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// A request past the gate: answered already, or a caller and a route.
pub enum Admitted {
    /// Served without a caller (`/healthz`, the OpenAPI document).
    Answered(Response),
    Caller {
        endpoint: Endpoint,
        params: Vec<String>,
        user: String,
    },
}

/// The one gate every route goes through, streams included: routing, the
/// body limit, the development-mode Host check, MCP's Origin and version
/// checks, authentication and migrations.
pub fn admit(ctx: &Context<'_>, request: &Request) -> Result<Admitted, ApiError> {
    let (endpoint, params) = match router::route(&request.method, &request.path) {
        Match::Found { endpoint, params } => (endpoint, params),
        Match::MethodNotAllowed { allow } => {
            let allow = allow.join(", ");
            return Err(ApiError::new(
                405,
                "method_not_allowed",
                format!(
                    "{} is not allowed on {}; use {allow}",
                    request.method, request.path
                ),
            )
            .with_header("allow", allow));
        }
        Match::NotFound => {
            return Err(ApiError::new(
                404,
                "not_found",
                format!("no route for {}", request.path),
            ))
        }
    };
    if request.body.len() > request_parts::MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "the request body is larger than {} bytes",
                request_parts::MAX_BODY_BYTES
            ),
        ));
    }
    match endpoint {
        Endpoint::Healthz => {
            ctx.db.execute("SELECT 1", &[])?;
            return Ok(Admitted::Answered(Response::json(
                200,
                &json!({"status": "ok"}),
            )));
        }
        Endpoint::OpenApi => {
            let mut response = Response::json(200, &json!(null));
            response.body = OPENAPI.as_bytes().to_vec();
            return Ok(Admitted::Answered(response));
        }
        _ => {}
    }
    auth::check_host(request, ctx.config)?;
    if endpoint == Endpoint::Mcp {
        mcp::check_origin(request, &ctx.config.mcp_allowed_origins)?;
        mcp::check_protocol_header(request)?;
    }
    let user = auth::authenticate(request, ctx.config, ctx.now.timestamp())?;
    // Migrations run in their own transaction, so before any operation's.
    todo_domain::TaskStore::open(ctx.db)?;
    Ok(Admitted::Caller {
        endpoint,
        params,
        user,
    })
}

/// Serves an admitted request (an event stream as the frames available now;
/// the Spin entry point streams it instead).
pub fn dispatch(
    ctx: &Context<'_>,
    request: &Request,
    admitted: Admitted,
) -> Result<Response, ApiError> {
    // The events a request writes continue its trace.
    todo_domain::events::trace::with(request.header("traceparent"), || {
        serve(ctx, request, admitted)
    })
}

fn serve(ctx: &Context<'_>, request: &Request, admitted: Admitted) -> Result<Response, ApiError> {
    match admitted {
        Admitted::Answered(response) => Ok(response),
        Admitted::Caller {
            endpoint: Endpoint::Mcp,
            user,
            ..
        } => Ok(mcp::handle(ctx, request, &user)),
        Admitted::Caller {
            endpoint,
            params,
            user,
        } => rest::handle(ctx, endpoint, &params, request, &user),
    }
}
