//! Spin variables: application variables resolved from the environment
//! (`SPIN_VARIABLE_<NAME>`, Spin's environment provider) or their defaults,
//! and component variables rendered from `{{ name }}` templates over them.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::app::App;

/// Application variables with their resolved values.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    values: BTreeMap<String, Option<String>>,
}

impl Resolver {
    /// Resolves every application variable; `lookup` reads the environment.
    pub fn new(app: &App, lookup: impl Fn(&str) -> Option<String>) -> Resolver {
        let values = app
            .variables
            .iter()
            .map(|(name, variable)| {
                let from_env = lookup(&env_name(name));
                (name.clone(), from_env.or_else(|| variable.default.clone()))
            })
            .collect();
        Resolver { values }
    }

    pub fn from_env(app: &App) -> Resolver {
        Self::new(app, |k| std::env::var(k).ok())
    }

    /// The value of an application variable.
    pub fn get(&self, name: &str) -> Result<String> {
        match self.values.get(name) {
            Some(Some(v)) => Ok(v.clone()),
            Some(None) => bail!(
                "variable `{name}` is required and has no value; set {}",
                env_name(name)
            ),
            None => bail!("no application variable `{name}`"),
        }
    }

    /// Renders a template: `{{ name }}` is replaced by the variable's value.
    pub fn render(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("unclosed `{{{{` in `{template}`"))?;
            let name = after[..end].trim();
            check_name(name)?;
            out.push_str(&self.get(name)?);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Names of required variables with no value.
    pub fn missing(&self) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Spin's environment provider: `SPIN_VARIABLE_` + the name in upper case.
pub fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Spin variable names: lower-case letters, digits and underscores,
/// starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("`{name}` is not a valid variable name");
    }
    Ok(())
}

/// A component's own variables, rendered once at startup.
pub fn component_values(
    resolver: &Resolver,
    templates: &BTreeMap<String, String>,
) -> BTreeMap<String, Result<String, String>> {
    templates
        .iter()
        .map(|(name, template)| {
            (
                name.clone(),
                resolver.render(template).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppVariable;

    fn app() -> App {
        let mut app = App::default();
        app.variables.insert(
            "greeting".into(),
            AppVariable {
                default: Some("hello".into()),
                secret: false,
            },
        );
        app.variables.insert(
            "secret".into(),
            AppVariable {
                default: None,
                secret: true,
            },
        );
        app
    }

    #[test]
    fn env_overrides_defaults_and_templates_render() {
        let r = Resolver::new(&app(), |k| {
            (k == "SPIN_VARIABLE_SECRET").then(|| "s3".to_owned())
        });
        assert_eq!(
            r.render("{{ greeting }}, {{secret}}!").unwrap(),
            "hello, s3!"
        );
        assert_eq!(r.render("plain").unwrap(), "plain");
    }

    #[test]
    fn missing_and_unknown_variables_are_errors() {
        let r = Resolver::new(&app(), |_| None);
        assert_eq!(r.missing(), vec!["secret"]);
        assert!(r.render("{{ secret }}").is_err());
        assert!(r.render("{{ nope }}").is_err());
        assert!(r.render("{{ Bad-Name }}").is_err());
        assert!(r.render("{{ greeting").is_err());
    }
}
