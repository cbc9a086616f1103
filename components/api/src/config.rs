//! The component's settings, read from Spin variables.

/// Variables the API reads (declared in `spin.toml`).
pub const JWT_SECRET: &str = "jwt_secret";
pub const DEV_AUTH: &str = "dev_auth";
pub const MCP_ALLOWED_ORIGINS: &str = "mcp_allowed_origins";

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// HS256 key for bearer tokens; `None` when unset or empty.
    pub jwt_secret: Option<String>,
    /// Development only: trust an `X-User-Id` header.
    pub dev_auth: bool,
    /// Browser origins allowed to call `/mcp`; `*` allows any.
    pub mcp_allowed_origins: Vec<String>,
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        Config {
            jwt_secret: get(JWT_SECRET).filter(|s| !s.is_empty()),
            dev_auth: get(DEV_AUTH).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            mcp_allowed_origins: get(MCP_ALLOWED_ORIGINS)
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}
