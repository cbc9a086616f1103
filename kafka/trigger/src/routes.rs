//! Spin's HTTP route matching: exact routes (`/healthz`), parameters
//! (`/users/:id`) and trailing wildcards (`/api/...`, `/...`). The most
//! specific route wins: exact before parameterised before wildcard, longer
//! before shorter.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub raw: String,
    pub component: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// A matched route and what Spin tells the component about it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'a> {
    pub component: &'a str,
    /// The route as written in the manifest.
    pub raw: &'a str,
    /// The route without a trailing `/...` (Spin's `component-route`).
    pub prefix: String,
    /// What the wildcard matched (`spin-path-info`), e.g. `/tasks/1`.
    pub path_info: String,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(entries: &[(String, String)]) -> Result<Router> {
        let mut routes = Vec::new();
        for (raw, component) in entries {
            let trimmed = raw.trim_end_matches('/');
            let (body, wildcard) = match trimmed.strip_suffix("/...") {
                Some(b) => (b, true),
                None if trimmed == "..." => ("", true),
                None => (trimmed, false),
            };
            if !raw.starts_with('/') {
                bail!("route `{raw}` must start with `/`");
            }
            let segments = body
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| match s.strip_prefix(':') {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                })
                .collect();
            if routes.iter().any(|r: &Route| r.raw == *raw) {
                bail!("route `{raw}` is declared twice");
            }
            routes.push(Route {
                raw: raw.clone(),
                component: component.clone(),
                segments,
                wildcard,
            });
        }
        // Most specific first.
        routes.sort_by_key(|r| {
            let params = r
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Param(_)))
                .count();
            (r.wildcard, std::cmp::Reverse(r.segments.len()), params)
        });
        Ok(Router { routes })
    }

    pub fn find(&self, path: &str) -> Option<RouteMatch<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        'routes: for route in &self.routes {
            if parts.len() < route.segments.len()
                || (!route.wildcard && parts.len() != route.segments.len())
            {
                continue;
            }
            let mut params = Vec::new();
            for (segment, part) in route.segments.iter().zip(&parts) {
                match segment {
                    Segment::Literal(l) if l == part => {}
                    Segment::Param(name) => params.push((name.clone(), part.to_string())),
                    _ => continue 'routes,
                }
            }
            let rest = &parts[route.segments.len()..];
            let path_info = if route.wildcard && !rest.is_empty() {
                let mut info = format!("/{}", rest.join("/"));
                if path.ends_with('/') {
                    info.push('/');
                }
                info
            } else {
                String::new()
            };
            let prefix = route
                .raw
                .trim_end_matches("/...")
                .trim_end_matches("...")
                .to_owned();
            return Some(RouteMatch {
                component: &route.component,
                raw: &route.raw,
                prefix: if prefix.is_empty() {
                    "/".into()
                } else {
                    prefix
                },
                path_info,
                params,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(
            &routes
                .iter()
                .map(|(r, c)| (r.to_string(), c.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            ("/...", "catchall"),
            ("/api/...", "api"),
            ("/api/health", "health"),
            ("/users/:id", "user"),
        ]);
        assert_eq!(r.find("/api/health").unwrap().component, "health");
        let m = r.find("/api/tasks/1").unwrap();
        assert_eq!(
            (m.component, m.path_info.as_str(), m.prefix.as_str()),
            ("api", "/tasks/1", "/api")
        );
        let m = r.find("/users/42").unwrap();
        assert_eq!(
            (m.component, m.params.clone()),
            ("user", vec![("id".to_owned(), "42".to_owned())])
        );
        assert_eq!(r.find("/users/42/x").unwrap().component, "catchall");
        let m = r.find("/").unwrap();
        assert_eq!((m.component, m.path_info.as_str()), ("catchall", ""));
        assert_eq!(r.find("/healthz").unwrap().path_info, "/healthz");
    }

    #[test]
    fn no_match_without_a_wildcard() {
        let r = router(&[("/exact", "a")]);
        assert!(r.find("/other").is_none());
        assert!(r.find("/exact/more").is_none());
        assert!(Router::new(&[("nope".into(), "a".into())]).is_err());
    }
}
