//! Kafka client settings from `[application.trigger.kafka]` in spin.toml.
//! Values may be `{{ variable }}` templates over application variables, so
//! brokers and credentials come from Spin variables (and so from the
//! environment, or Kubernetes Secrets) rather than from the manifest.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::variables::Resolver;

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub client_id: String,
    /// librdkafka settings for security and any passthrough keys.
    extra: BTreeMap<String, String>,
    pub outbox_poll_interval: Duration,
    pub outbox_batch_size: usize,
    /// How long published outbox rows are kept before pruning.
    pub outbox_retention: Duration,
    /// Databases whose outbox is relayed; `None` means every database the
    /// app's components use.
    pub outbox_databases: Option<Vec<String>>,
    /// Set when the outboxes live in Postgres (`outbox_store = "postgres"`).
    pub outbox_postgres: Option<OutboxPostgres>,
}

/// Where the outboxes are when they live in Postgres.
#[derive(Debug, Clone)]
pub struct OutboxPostgres {
    pub url: String,
    /// How the operator names it: the variable the setting renders, or the
    /// setting itself.
    pub named: String,
}

/// `[application.trigger.kafka]` as written. Every value is a template over
/// application variables (`"{{ kafka_brokers }}"`); numbers and booleans
/// may be written bare.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    brokers: Option<Template>,
    client_id: Option<Template>,
    security_protocol: Option<Template>,
    sasl_mechanism: Option<Template>,
    sasl_username: Option<Template>,
    sasl_password: Option<Template>,
    ssl_ca_location: Option<Template>,
    outbox_poll_interval_ms: Option<Template>,
    outbox_batch_size: Option<Template>,
    outbox_databases: Option<Vec<String>>,
    outbox_retention_secs: Option<Template>,
    /// `sqlite` (the default) or `postgres`.
    outbox_store: Option<Template>,
    outbox_postgres_url: Option<Template>,
    /// librdkafka settings passed through as they are.
    #[serde(default)]
    librdkafka: BTreeMap<String, Template>,
}

/// A setting's text before its variables are rendered.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Template {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Template {
    fn text(&self) -> String {
        match self {
            Template::Text(s) => s.clone(),
            Template::Number(n) => n.to_string(),
            Template::Bool(b) => b.to_string(),
        }
    }
}

/// The variable a setting is, when it is exactly one (`"{{ postgres_url }}"`).
fn variable_of(template: &str) -> Option<String> {
    let inner = template
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim();
    (!inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| inner.to_owned())
}

impl KafkaSettings {
    pub fn from_app(
        settings: &serde_json::Map<String, Json>,
        resolver: &Resolver,
    ) -> Result<KafkaSettings> {
        let table: Table = serde_json::from_value(Json::Object(settings.clone()))
            .context("[application.trigger.kafka]")?;
        // A setting that renders to "" is unset: variables default to "".
        let get = |key: &str, template: &Option<Template>| -> Result<Option<String>> {
            match template {
                Some(template) => {
                    let value = resolver
                        .render(&template.text())
                        .with_context(|| format!("[application.trigger.kafka] {key}"))?;
                    Ok((!value.trim().is_empty()).then(|| value.trim().to_owned()))
                }
                None => Ok(None),
            }
        };
        let mut extra = BTreeMap::new();
        if let Some(protocol) = get("security_protocol", &table.security_protocol)? {
            let protocol = protocol.to_ascii_lowercase();
            if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
                bail!("security_protocol `{protocol}` must be plaintext, ssl, sasl_plaintext or sasl_ssl");
            }
            extra.insert("security.protocol".into(), protocol);
        }
        if let Some(mechanism) = get("sasl_mechanism", &table.sasl_mechanism)? {
            let mechanism = mechanism.to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                bail!("sasl_mechanism `{mechanism}` must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
            }
            extra.insert("sasl.mechanisms".into(), mechanism);
        }
        for (key, template, librdkafka) in [
            ("sasl_username", &table.sasl_username, "sasl.username"),
            ("sasl_password", &table.sasl_password, "sasl.password"),
            ("ssl_ca_location", &table.ssl_ca_location, "ssl.ca.location"),
        ] {
            if let Some(value) = get(key, template)? {
                extra.insert(librdkafka.into(), value);
            }
        }
        for (key, template) in &table.librdkafka {
            extra.insert(key.clone(), resolver.render(&template.text())?);
        }
        let number = |key: &str, template: &Option<Template>, default: u64| -> Result<u64> {
            get(key, template)?.map_or(Ok(default), |v| {
                v.parse().with_context(|| format!("{key} must be a number"))
            })
        };
        Ok(KafkaSettings {
            brokers: get("brokers", &table.brokers)?
                .context("[application.trigger.kafka] needs `brokers`")?,
            client_id: get("client_id", &table.client_id)?
                .unwrap_or_else(|| "trigger-kafka".into()),
            extra,
            outbox_poll_interval: Duration::from_millis(number(
                "outbox_poll_interval_ms",
                &table.outbox_poll_interval_ms,
                100,
            )?),
            outbox_batch_size: number("outbox_batch_size", &table.outbox_batch_size, 500)? as usize,
            outbox_retention: Duration::from_secs(number(
                "outbox_retention_secs",
                &table.outbox_retention_secs,
                86_400,
            )?),
            outbox_databases: table.outbox_databases,
            outbox_postgres: match get("outbox_store", &table.outbox_store)?.as_deref() {
                None | Some("sqlite") => None,
                Some("postgres") => {
                    let named = table
                        .outbox_postgres_url
                        .as_ref()
                        .and_then(|t| variable_of(&t.text()))
                        .map_or_else(
                            || "[application.trigger.kafka] outbox_postgres_url".to_owned(),
                            |name| format!("variable `{name}`"),
                        );
                    let url = get("outbox_postgres_url", &table.outbox_postgres_url)?
                        .with_context(|| {
                            format!("outbox_store is `postgres` but {named} is empty")
                        })?;
                    Some(OutboxPostgres { url, named })
                }
                Some(other) => {
                    bail!("[application.trigger.kafka] outbox_store `{other}` must be sqlite or postgres")
                }
            },
        })
    }

    /// The common client configuration (brokers, identity, security).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("client.id", &self.client_id);
        for (k, v) in &self.extra {
            config.set(k, v);
        }
        config
    }

    /// An idempotent producer: retries never duplicate or reorder within a
    /// partition, and delivery waits out a broker outage rather than failing.
    pub fn producer(&self) -> Result<FutureProducer> {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "2");
        Ok(config.create()?)
    }
}

/// A record to produce: the relay's events, dead letters and replays all
/// go out through this, headers in the order given.
pub fn record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: &[(&str, &[u8])],
) -> FutureRecord<'a, [u8], [u8]> {
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (key, value) in headers {
        owned = owned.insert(Header {
            key,
            value: Some(*value),
        });
    }
    let mut record = FutureRecord::to(topic).headers(owned);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{App, AppVariable};
    use serde_json::json;

    fn resolver() -> Resolver {
        let mut app = App::default();
        app.variables.insert(
            "brokers".into(),
            AppVariable {
                default: Some("b:9092".into()),
                secret: false,
            },
        );
        app.variables.insert(
            "password".into(),
            AppVariable {
                default: Some("".into()),
                secret: true,
            },
        );
        Resolver::new(&app, |k| {
            (k == "SPIN_VARIABLE_PASSWORD").then(|| "pw".to_owned())
        })
    }

    #[test]
    fn renders_templates_and_maps_security_settings() {
        let settings = json!({
            "brokers": "{{ brokers }}",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "scram-sha-512",
            "sasl_username": "user",
            "sasl_password": "{{ password }}",
            "librdkafka": {"socket.keepalive.enable": "true"}
        });
        let s = KafkaSettings::from_app(settings.as_object().unwrap(), &resolver()).unwrap();
        assert_eq!(s.brokers, "b:9092");
        let config = s.client_config();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.password"), Some("pw"));
        assert_eq!(config.get("socket.keepalive.enable"), Some("true"));
    }

    #[test]
    fn rejects_unknown_and_bad_settings() {
        for bad in [
            json!({"brokers": "b", "typo": 1}),
            json!({"brokers": "b", "sasl_mechanism": "GSSAPI"}),
            json!({}),
        ] {
            assert!(
                KafkaSettings::from_app(bad.as_object().unwrap(), &resolver()).is_err(),
                "{bad}"
            );
        }
    }
}
