//! `trigger-kafka dlq list|replay`: the operator's side of dead letters.
//!
//! `list` shows what is in a dead-letter topic and why. `replay`
//! republishes dead letters to the topic they came from, with their
//! original key and headers (the `dlq-*` ones removed) plus
//! `dlq-replayed: <dlq topic>/<partition>/<offset>`, once per dead letter
//! even if it is interrupted:
//!
//! - progress is a state file (`<state dir>/<dlq topic>.json`, written
//!   atomically): the dead letters already replayed, and the one being sent;
//! - the intent is recorded (with the time) before a send and the result
//!   after the broker acknowledged it; if a run stops between the two, the
//!   next run looks for the `dlq-replayed` header in the original topic from
//!   that time on and sends only if it is not there.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// The header a replayed record carries: where its dead letter was.
pub const REPLAYED_HEADER: &str = "dlq-replayed";
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// One record of a dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// `<dlq topic>/<partition>/<offset>`: the dead letter's identity.
    pub fn id(&self, dlq_topic: &str) -> String {
        format!("{dlq_topic}/{}/{}", self.partition, self.offset)
    }

    pub fn origin_topic(&self) -> Option<String> {
        self.header("dlq-original-topic")
    }

    fn failed_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = self.header("dlq-failed-at")?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    pub fn key_text(&self) -> String {
        self.key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_else(|| "-".into())
    }
}

/// The dead-letter topic for a name given on the command line: the name
/// itself when it is one, else its `.dlq` twin.
pub fn dlq_topic(name: &str) -> String {
    if name.ends_with(".dlq") {
        name.to_owned()
    } else {
        format!("{name}.dlq")
    }
}

fn headers_of(message: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads every record of `topic` from `start` (per partition) to the end
/// as it stands now, without a consumer group.
fn read_topic(
    config: &ClientConfig,
    topic: &str,
    start: impl Fn(i32, i64) -> i64,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<()> {
    let mut config = config.clone();
    config
        .set("group.id", "trigger-kafka-dlq-tool")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().context("cannot create a Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the metadata of `{topic}`"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        bail!("topic `{topic}` does not exist");
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
        let from = start(p, low).max(low);
        if from < high {
            assignment.add_partition_offset(topic, p, Offset::Offset(from))?;
            ends.insert(p, high);
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            bail!("reading `{topic}` took longer than a minute");
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                let p = message.partition();
                each(&message);
                if ends.get(&p).is_some_and(|end| message.offset() + 1 >= *end) {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => bail!("reading `{topic}`: {e}"),
            None => {}
        }
    }
    Ok(())
}

/// Every dead letter of `dlq_topic`, by partition and offset.
pub fn read(config: &ClientConfig, dlq_topic: &str) -> Result<Vec<DeadLetter>> {
    let mut letters = Vec::new();
    read_topic(
        config,
        dlq_topic,
        |_, low| low,
        |m| {
            letters.push(DeadLetter {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: headers_of(m),
            })
        },
    )?;
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

/// `dlq list`: one line per dead letter.
pub fn list(config: &ClientConfig, name: &str) -> Result<()> {
    let topic = dlq_topic(name);
    let letters = read(config, &topic)?;
    let now = chrono::Utc::now();
    println!(
        "{:<12} {:<10} {:<8} {:<28} {:>9}  {:<16} REASON",
        "DEAD LETTER", "KIND", "ATTEMPTS", "ORIGIN", "AGE", "KEY"
    );
    for l in &letters {
        let origin = format!(
            "{}/{}/{}",
            l.origin_topic().unwrap_or_else(|| "?".into()),
            l.header("dlq-original-partition").unwrap_or_default(),
            l.header("dlq-original-offset").unwrap_or_default()
        );
        let age = l
            .failed_at()
            .map(|t| humanize(now - t))
            .unwrap_or_else(|| "?".into());
        println!(
            "{:<12} {:<10} {:<8} {:<28} {:>9}  {:<16} {}",
            format!("{}/{}", l.partition, l.offset),
            l.header("dlq-error-kind").unwrap_or_default(),
            l.header("dlq-attempts").unwrap_or_default(),
            origin,
            age,
            l.key_text(),
            l.header("dlq-reason")
                .unwrap_or_default()
                .replace('\n', " "),
        );
    }
    println!("{} dead letters in {topic}", letters.len());
    Ok(())
}

fn humanize(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Replay progress, kept beside the app.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// Dead letters already republished (`<dlq>/<partition>/<offset>`).
    replayed: BTreeSet<String>,
    /// The one being sent, and when the send began (Unix ms): it may or may
    /// not have reached the broker.
    sending: Option<(String, i64)>,
}

impl Progress {
    fn load(path: &Path) -> Result<Progress> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a replay state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Written to a temporary file, synced, then renamed over the old one:
    /// a crash leaves the old state or the new, never half of one.
    fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// What `dlq replay` selects.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only dead letters that failed at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only dead letters with this key.
    pub key: Option<String>,
    /// Only the dead letter with this id (`<dlq>/<partition>/<offset>`).
    pub id: Option<String>,
}

impl ReplayFilter {
    fn selects(&self, letter: &DeadLetter) -> bool {
        let key_ok = self
            .key
            .as_ref()
            .is_none_or(|k| letter.key.as_deref() == Some(k.as_bytes()));
        let since_ok = match self.since {
            None => true,
            Some(since) => letter.failed_at().is_some_and(|t| t >= since),
        };
        key_ok && since_ok
    }
}

/// The ids of the dead letters of `dlq` already replayed from `state_dir`.
pub fn replayed_ids(state_dir: &Path, dlq: &str) -> Result<BTreeSet<String>> {
    Ok(Progress::load(&state_dir.join(format!("{dlq}.json")))?.replayed)
}

/// Whether a record with `dlq-replayed: id` reached `topic` since `since_ms`.
fn already_replayed(config: &ClientConfig, topic: &str, id: &str, since_ms: i64) -> Result<bool> {
    let mut config = config.clone();
    config.set("group.id", "trigger-kafka-dlq-tool");
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    // Where each partition stood shortly before the send began.
    let mut times = TopicPartitionList::new();
    for p in &partitions {
        times.add_partition_offset(topic, *p, Offset::Offset(since_ms - 5_000))?;
    }
    let starts = consumer.offsets_for_times(times, METADATA_TIMEOUT)?;
    let start_of: HashMap<i32, i64> = starts
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect();
    let mut found = false;
    read_topic(
        &config,
        topic,
        // A partition with nothing since then has nothing to look at.
        |p, _| start_of.get(&p).copied().unwrap_or(i64::MAX),
        |m| {
            let hit = m.headers().is_some_and(|h| {
                h.iter()
                    .any(|h| h.key == REPLAYED_HEADER && h.value == Some(id.as_bytes()))
            });
            found |= hit;
        },
    )?;
    Ok(found)
}

/// What a replay did.
#[derive(Debug, Default, PartialEq)]
pub struct Replayed {
    pub sent: usize,
    /// Already replayed by an earlier run (including one found in the
    /// original topic after an interrupted send).
    pub skipped: usize,
    /// Not selected by `--since` / `--key`.
    pub filtered: usize,
}

/// `dlq replay`: republishes the selected dead letters once each.
pub async fn replay(
    config: &ClientConfig,
    name: &str,
    filter: &ReplayFilter,
    state_dir: &Path,
    dry_run: bool,
) -> Result<Replayed> {
    let dlq = dlq_topic(name);
    let letters = read(config, &dlq)?;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let state: PathBuf = state_dir.join(format!("{dlq}.json"));
    let mut progress = Progress::load(&state)?;
    // A send that may or may not have landed: look before sending again.
    if let Some((id, since_ms)) = progress.sending.clone() {
        let letter = letters.iter().find(|l| l.id(&dlq) == id);
        let origin = letter.and_then(DeadLetter::origin_topic);
        let landed = match origin {
            Some(topic) => already_replayed(config, &topic, &id, since_ms)?,
            None => false,
        };
        if landed && !dry_run {
            progress.replayed.insert(id.clone());
        }
        if !dry_run {
            progress.sending = None;
            progress.save(&state)?;
        }
        tracing::info!(dead_letter = %id, landed, "resolved an interrupted send");
    }
    let producer: FutureProducer = {
        let mut config = config.clone();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000");
        config.create().context("cannot create a Kafka producer")?
    };
    let crash_after: Option<usize> = std::env::var("TRIGGER_KAFKA_TEST_DLQ_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut outcome = Replayed::default();
    for letter in &letters {
        let id = letter.id(&dlq);
        if progress.replayed.contains(&id) {
            outcome.skipped += 1;
            continue;
        }
        if !filter.selects(letter) || filter.id.as_ref().is_some_and(|want| *want != id) {
            outcome.filtered += 1;
            continue;
        }
        let Some(topic) = letter.origin_topic() else {
            bail!("dead letter {id} has no dlq-original-topic header; it was not written by trigger-kafka");
        };
        if dry_run {
            println!("would replay {id} to {topic} (key {})", letter.key_text());
            outcome.sent += 1;
            continue;
        }
        progress.sending = Some((id.clone(), chrono::Utc::now().timestamp_millis()));
        progress.save(&state)?;
        let headers: Vec<(&str, &[u8])> = letter
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("dlq-"))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .chain([(REPLAYED_HEADER, id.as_bytes())])
            .collect();
        let record = crate::kafka_client::record(
            &topic,
            letter.key.as_deref(),
            letter.value.as_deref(),
            &headers,
        );
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("cannot republish {id} to {topic}: {e}"))?;
        outcome.sent += 1;
        // Test hook: stop where it hurts most, sent but not yet recorded.
        if crash_after == Some(outcome.sent) {
            std::process::exit(3);
        }
        progress.replayed.insert(id.clone());
        progress.sending = None;
        progress.save(&state)?;
        println!("replayed {id} to {topic}");
    }
    println!(
        "{} {}, {} already replayed, {} not selected",
        if dry_run { "would replay" } else { "replayed" },
        outcome.sent,
        outcome.skipped,
        outcome.filtered
    );
    Ok(outcome)
}
