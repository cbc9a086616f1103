//! The Spin HTTP component: adapts Spin's request, variables and SQLite.

use spin_sdk::http::{Request as SpinRequest, Response as SpinResponse};
use todo_domain::spin::SpinDb;

use crate::config::Config;
use crate::http::{ApiError, Request};
use crate::Context;

#[spin_sdk::http_component]
fn handle(request: SpinRequest) -> SpinResponse {
    let request = Request {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        query: request.query().to_owned(),
        headers: request
            .headers()
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    value.as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        body: request.into_body(),
    };
    let config = Config::from_lookup(|name| spin_sdk::variables::get(name).ok());
    let response = match SpinDb::open("default") {
        Ok(db) => {
            let ctx = Context {
                db: &db,
                config: &config,
                now: todo_domain::time::now(),
            };
            crate::handle(&ctx, &request)
        }
        Err(e) => ApiError::new(503, "storage_unavailable", e.message).into_response(),
    };
    let mut builder = SpinResponse::builder();
    builder.status(response.status);
    for (name, value) in response.headers {
        builder.header(name, value);
    }
    builder.body(response.body).build()
}
