//! The route table: one list that dispatch, the 405 `Allow` header and the
//! OpenAPI check all read.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    OpenApi,
    ListTasks,
    CreateTask,
    QuickAdd,
    GetMe,
    UpdateMe,
    GetTask,
    UpdateTask,
    DeleteTask,
    CompleteTask,
    ReopenTask,
    SetReminder,
    ClearReminder,
    ShareTask,
    UnshareTask,
    AssignTask,
    TaskHistory,
    AuditTrail,
    ListNotifications,
    ReadNotification,
    SyncPoll,
    EventStream,
    Mcp,
}

pub struct Route {
    pub method: &'static str,
    /// `{name}` matches one path segment.
    pub path: &'static str,
    pub endpoint: Endpoint,
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healthz",
        endpoint: Endpoint::Healthz,
    },
    Route {
        method: "GET",
        path: "/api/openapi.json",
        endpoint: Endpoint::OpenApi,
    },
    Route {
        method: "GET",
        path: "/api/tasks",
        endpoint: Endpoint::ListTasks,
    },
    Route {
        method: "POST",
        path: "/api/tasks",
        endpoint: Endpoint::CreateTask,
    },
    // Before `/api/tasks/{id}`, which would take `quick` for an id.
    Route {
        method: "POST",
        path: "/api/tasks/quick",
        endpoint: Endpoint::QuickAdd,
    },
    Route {
        method: "GET",
        path: "/api/tasks/{id}",
        endpoint: Endpoint::GetTask,
    },
    Route {
        method: "PATCH",
        path: "/api/tasks/{id}",
        endpoint: Endpoint::UpdateTask,
    },
    Route {
        method: "DELETE",
        path: "/api/tasks/{id}",
        endpoint: Endpoint::DeleteTask,
    },
    Route {
        method: "POST",
        path: "/api/tasks/{id}/complete",
        endpoint: Endpoint::CompleteTask,
    },
    Route {
        method: "POST",
        path: "/api/tasks/{id}/reopen",
        endpoint: Endpoint::ReopenTask,
    },
    Route {
        method: "PUT",
        path: "/api/tasks/{id}/reminder",
        endpoint: Endpoint::SetReminder,
    },
    Route {
        method: "DELETE",
        path: "/api/tasks/{id}/reminder",
        endpoint: Endpoint::ClearReminder,
    },
    Route {
        method: "POST",
        path: "/api/tasks/{id}/share",
        endpoint: Endpoint::ShareTask,
    },
    Route {
        method: "DELETE",
        path: "/api/tasks/{id}/share/{user}",
        endpoint: Endpoint::UnshareTask,
    },
    Route {
        method: "PUT",
        path: "/api/tasks/{id}/assignee",
        endpoint: Endpoint::AssignTask,
    },
    Route {
        method: "GET",
        path: "/api/tasks/{id}/history",
        endpoint: Endpoint::TaskHistory,
    },
    Route {
        method: "GET",
        path: "/api/me",
        endpoint: Endpoint::GetMe,
    },
    Route {
        method: "PUT",
        path: "/api/me",
        endpoint: Endpoint::UpdateMe,
    },
    Route {
        method: "GET",
        path: "/api/audit",
        endpoint: Endpoint::AuditTrail,
    },
    Route {
        method: "GET",
        path: "/api/notifications",
        endpoint: Endpoint::ListNotifications,
    },
    Route {
        method: "POST",
        path: "/api/notifications/{id}/read",
        endpoint: Endpoint::ReadNotification,
    },
    Route {
        method: "GET",
        path: "/api/sync",
        endpoint: Endpoint::SyncPoll,
    },
    Route {
        method: "GET",
        path: "/api/events",
        endpoint: Endpoint::EventStream,
    },
    Route {
        method: "POST",
        path: "/mcp",
        endpoint: Endpoint::Mcp,
    },
];

#[derive(Debug, PartialEq)]
pub enum Match {
    /// `params` are the `{…}` segments, in order.
    Found {
        endpoint: Endpoint,
        params: Vec<String>,
    },
    MethodNotAllowed {
        allow: Vec<&'static str>,
    },
    NotFound,
}

/// Matches `path` against the pattern; returns the `{…}` segments.
fn match_path(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(segment)) if p.starts_with('{') && !segment.is_empty() => {
                params.push(percent_decode(segment));
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn route(method: &str, path: &str) -> Match {
    // One trailing slash is forgiven: `/api/tasks/` is `/api/tasks`.
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    // A literal segment beats a `{…}` one: `/api/tasks/quick` is Quick Add,
    // never a task with the id `quick`, for dispatch and for `Allow` alike.
    let matching: Vec<(&Route, Vec<String>)> = ROUTES
        .iter()
        .filter_map(|r| match_path(r.path, path).map(|params| (r, params)))
        .collect();
    let literals = |r: &Route| r.path.split('/').filter(|s| !s.starts_with('{')).count();
    let best = matching.iter().map(|(r, _)| literals(r)).max().unwrap_or(0);
    let mut allow = Vec::new();
    for (route, params) in matching.into_iter().filter(|(r, _)| literals(r) == best) {
        if route.method.eq_ignore_ascii_case(method) {
            return Match::Found {
                endpoint: route.endpoint,
                params,
            };
        }
        allow.push(route.method);
    }
    if allow.is_empty() {
        Match::NotFound
    } else {
        Match::MethodNotAllowed { allow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ids_methods_and_trailing_slashes() {
        assert_eq!(
            route("GET", "/api/tasks/abc-1"),
            Match::Found {
                endpoint: Endpoint::GetTask,
                params: vec!["abc-1".into()]
            }
        );
        assert_eq!(
            route("get", "/api/tasks/"),
            Match::Found {
                endpoint: Endpoint::ListTasks,
                params: vec![]
            }
        );
        assert_eq!(
            route("PUT", "/api/tasks/x"),
            Match::MethodNotAllowed {
                allow: vec!["GET", "PATCH", "DELETE"]
            }
        );
        assert_eq!(route("GET", "/api/tasks/x/y"), Match::NotFound);
        assert_eq!(
            route("DELETE", "/api/tasks/t1/share/bob"),
            Match::Found {
                endpoint: Endpoint::UnshareTask,
                params: vec!["t1".into(), "bob".into()]
            }
        );
        assert_eq!(route("GET", "/api/tasks//complete"), Match::NotFound);
        // The literal route wins over `{id}`, in `Allow` too.
        assert_eq!(
            route("OPTIONS", "/api/tasks/quick"),
            Match::MethodNotAllowed {
                allow: vec!["POST"]
            }
        );
        assert_eq!(
            route("POST", "/api/tasks/quick"),
            Match::Found {
                endpoint: Endpoint::QuickAdd,
                params: vec![]
            }
        );
        assert_eq!(
            route("POST", "/api/tasks/a%20b/complete"),
            Match::Found {
                endpoint: Endpoint::CompleteTask,
                params: vec!["a b".into()]
            }
        );
    }
}
