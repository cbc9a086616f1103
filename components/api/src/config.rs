//! The component's settings, read from Spin variables.

/// Variables the API reads (declared in `spin.toml`).
pub const JWT_SECRET: &str = "jwt_secret";
pub const DEV_AUTH: &str = "dev_auth";
pub const MCP_ALLOWED_ORIGINS: &str = "mcp_allowed_origins";
pub const JWT_AUDIENCE: &str = "jwt_audience";
pub const JWT_ISSUER: &str = "jwt_issuer";
pub const ALLOWED_HOSTS: &str = "allowed_hosts";
pub const MAX_TASKS_PER_USER: &str = "max_tasks_per_user";
pub const MAX_SHARES_PER_TASK: &str = "max_shares_per_task";

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// HS256 key for bearer tokens; `None` when unset or empty.
    pub jwt_secret: Option<String>,
    /// Development only: trust an `X-User-Id` header. Never while a
    /// `jwt_secret` is set (see [`Config::header_identity`]).
    pub dev_auth: bool,
    /// Browser origins allowed to call `/mcp`; `*` allows any.
    pub mcp_allowed_origins: Vec<String>,
    /// When set, a token's `aud` must contain this.
    pub jwt_audience: Option<String>,
    /// When set, a token's `iss` must equal this.
    pub jwt_issuer: Option<String>,
    /// Host names (besides localhost) development mode answers; `*` for any.
    pub allowed_hosts: Vec<String>,
    pub limits: todo_domain::Limits,
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let defaults = todo_domain::Limits::default();
        let number = |name: &str, default: u32| {
            get(name)
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Config {
            jwt_secret: get(JWT_SECRET).filter(|s| !s.is_empty()),
            dev_auth: get(DEV_AUTH).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            mcp_allowed_origins: list(get(MCP_ALLOWED_ORIGINS)),
            jwt_audience: get(JWT_AUDIENCE).filter(|s| !s.trim().is_empty()),
            jwt_issuer: get(JWT_ISSUER).filter(|s| !s.trim().is_empty()),
            allowed_hosts: list(get(ALLOWED_HOSTS)),
            limits: todo_domain::Limits {
                tasks_per_user: number(MAX_TASKS_PER_USER, defaults.tasks_per_user),
                shares_per_task: number(MAX_SHARES_PER_TASK, defaults.shares_per_task),
            },
        }
    }

    /// Whether an `X-User-Id` header is trusted: only in development mode
    /// and only while no token key is configured, so a server that checks
    /// tokens can never be talked past them with a header.
    pub fn header_identity(&self) -> bool {
        self.dev_auth && self.jwt_secret.is_none()
    }
}
