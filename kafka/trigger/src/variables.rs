//! Spin variables: application variables resolved through Spin's provider
//! chain, and component variables rendered from `{{ name }}` templates over
//! them. The chain is Spin's: `--variable` values first, then each
//! `[[variables_provider]]` of the runtime config in order, then the
//! environment provider (`SPIN_VARIABLE_<NAME>`, falling back to a `.env`
//! file in the working directory), then the variable's default.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::app::App;

/// One source of variable values.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Fixed values: `--variable` or a runtime config `type = "static"`.
    Static(HashMap<String, String>),
    /// The environment under `<PREFIX>_<NAME>`, then a dotenv file.
    Env {
        prefix: String,
        dotenv: Option<PathBuf>,
    },
}

impl Provider {
    /// Spin's default environment provider.
    pub fn default_env() -> Provider {
        Provider::Env {
            prefix: DEFAULT_ENV_PREFIX.to_owned(),
            dotenv: Some(PathBuf::from(".env")),
        }
    }

    fn lookup(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
        dotenv_cache: &mut HashMap<PathBuf, HashMap<String, String>>,
    ) -> Result<Option<String>> {
        match self {
            Provider::Static(values) => Ok(values.get(name).cloned()),
            Provider::Env { prefix, dotenv } => {
                let key = format!("{prefix}_{}", name.to_ascii_uppercase());
                if let Some(value) = env(&key) {
                    return Ok(Some(value));
                }
                let Some(path) = dotenv else {
                    return Ok(None);
                };
                if !dotenv_cache.contains_key(path) {
                    let values = load_dotenv(path)?;
                    dotenv_cache.insert(path.clone(), values);
                }
                Ok(dotenv_cache[path].get(&key).cloned())
            }
        }
    }
}

const DEFAULT_ENV_PREFIX: &str = "SPIN_VARIABLE";

/// A dotenv file's values; a missing file has none, as in Spin.
fn load_dotenv(path: &std::path::Path) -> Result<HashMap<String, String>> {
    match dotenvy::from_path_iter(path) {
        Ok(iter) => iter
            .collect::<Result<HashMap<_, _>, _>>()
            .with_context(|| format!("cannot parse {}", path.display())),
        Err(e) if e.not_found() => Ok(HashMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Application variables with their resolved values.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    values: BTreeMap<String, Option<String>>,
}

impl Resolver {
    /// Resolves every application variable through `providers` in order;
    /// `env` reads the process environment.
    pub fn resolve(
        app: &App,
        providers: &[Provider],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Resolver> {
        let mut dotenv_cache = HashMap::new();
        let mut values = BTreeMap::new();
        for (name, variable) in &app.variables {
            let mut value = None;
            for provider in providers {
                value = provider
                    .lookup(name, &env, &mut dotenv_cache)
                    .with_context(|| format!("resolving variable `{name}`"))?;
                if value.is_some() {
                    break;
                }
            }
            values.insert(name.clone(), value.or_else(|| variable.default.clone()));
        }
        Ok(Resolver { values })
    }

    /// Only Spin's default environment provider, reading `lookup`.
    #[cfg(test)]
    pub fn new(app: &App, lookup: impl Fn(&str) -> Option<String>) -> Resolver {
        let providers = [Provider::Env {
            prefix: DEFAULT_ENV_PREFIX.to_owned(),
            dotenv: None,
        }];
        Self::resolve(app, &providers, lookup).expect("no files to read")
    }

    /// The default chain over the process environment and `./.env`.
    pub fn from_env(app: &App) -> Result<Resolver> {
        Self::resolve(app, &[Provider::default_env()], |k| std::env::var(k).ok())
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

/// Spin's rule for variable names (`spin_expressions::Key`), with Spin's
/// wording: a component that passes a bad name gets the same message from
/// either host.
pub fn name_error(key: &str) -> Option<String> {
    let reason = if key.is_empty() {
        "must not be empty".to_owned()
    } else if let Some(invalid) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!("invalid character {invalid:?}. Variable names may contain only lower-case letters, numbers, and underscores.")
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        "must start with a lowercase ASCII letter".to_owned()
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        "must end with a lowercase ASCII letter or digit".to_owned()
    } else if key.contains("__") {
        "must not contain multiple consecutive underscores".to_owned()
    } else {
        return None;
    };
    Some(format!("{key:?}: {reason}"))
}

pub fn check_name(name: &str) -> Result<()> {
    match name_error(name) {
        Some(error) => bail!("invalid variable name {error}"),
        None => Ok(()),
    }
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
    fn providers_are_asked_in_order_then_the_default() {
        let dir = std::env::temp_dir().join(format!("tk-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dotenv = dir.join(".env");
        std::fs::write(&dotenv, "SPIN_VARIABLE_SECRET=from-dotenv\n").unwrap();
        let env_provider = Provider::Env {
            prefix: "SPIN_VARIABLE".into(),
            dotenv: Some(dotenv.clone()),
        };
        let cli = Provider::Static([("greeting".to_owned(), "hi".to_owned())].into());
        let r = Resolver::resolve(&app(), &[cli, env_provider.clone()], |_| None).unwrap();
        assert_eq!(r.get("greeting").unwrap(), "hi", "--variable wins");
        assert_eq!(r.get("secret").unwrap(), "from-dotenv");
        let r = Resolver::resolve(&app(), &[env_provider], |k| {
            (k == "SPIN_VARIABLE_SECRET").then(|| "from-env".to_owned())
        })
        .unwrap();
        assert_eq!(
            r.get("secret").unwrap(),
            "from-env",
            "the environment beats .env"
        );
        assert_eq!(r.get("greeting").unwrap(), "hello", "then the default");
        let prefixed = Provider::Env {
            prefix: "MY".into(),
            dotenv: None,
        };
        let r = Resolver::resolve(&app(), &[prefixed], |k| {
            (k == "MY_SECRET").then(|| "p".to_owned())
        })
        .unwrap();
        assert_eq!(r.get("secret").unwrap(), "p");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_and_unknown_variables_are_errors() {
        let r = Resolver::new(&app(), |_| None);
        assert_eq!(r.missing(), vec!["secret"]);
        assert!(r.render("{{ secret }}").is_err());
        assert!(r.render("{{ nope }}").is_err());
        assert!(r.render("{{ Bad-Name }}").is_err());
        assert!(r.render("{{ trailing_ }}").is_err());
        assert!(r.render("{{ two__parts }}").is_err());
        assert_eq!(
            name_error("9lives").as_deref(),
            Some("\"9lives\": must start with a lowercase ASCII letter")
        );
        assert!(r.render("{{ greeting").is_err());
    }
}
