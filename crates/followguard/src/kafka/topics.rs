//! Issue 21: the state topics (the changelog, the link stage's internal topics), their
//! partition counts and configs, created and checked by one function, [`ensure`], which
//! `serve` calls at start and `followguard topics` (the operator's setup) calls for every
//! topic it knows; and the input topic's id ([`topic_id`]), which the changelog's
//! identity records name so that a changelog of a deleted and re-created input topic is
//! refused. docs/state.md, "Topic creation".

use super::{base_config, config_error, reader, replay_config, Reader};
use crate::config::{KafkaConfig, LinksConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long one metadata or admin request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's default retention (7 days): the delete-policy state topics keep at least this.
const MIN_RETENTION_MS: i64 = 7 * 86_400_000;

/// How many partitions a topic gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitions {
    /// This many.
    Fixed(i32),
    /// As many as `topic` has (created with that count). With `strict`, an existing topic
    /// with fewer is refused: its partition *p* holds the state of `topic`'s partition
    /// *p* (the changelog and the input, a links state topic and the links topic).
    Like { topic: String, strict: bool },
}

/// One topic [`ensure`] creates when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// What it is, for messages ("changelog", "links", ...).
    pub role: &'static str,
    pub name: String,
    pub partitions: Partitions,
    /// Topic configs it is created with (an existing topic's are left alone).
    pub configs: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// A topic of `partitions` partitions with the broker's default configs.
    pub fn plain(role: &'static str, name: &str, partitions: i32) -> TopicSpec {
        TopicSpec {
            role,
            name: name.to_string(),
            partitions: Partitions::Fixed(partitions),
            configs: Vec::new(),
        }
    }

    /// Its configs as `key=value, …` (empty: the broker's defaults).
    pub fn configs_text(&self) -> String {
        let kv: Vec<String> = self
            .configs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        kv.join(", ")
    }

    /// [`TopicSpec::plain`], compacted (a table keyed by id: the latest value per key).
    pub fn compacted(role: &'static str, name: &str, partitions: i32) -> TopicSpec {
        TopicSpec {
            configs: vec![("cleanup.policy", "compact".into())],
            ..TopicSpec::plain(role, name, partitions)
        }
    }
}

/// What [`ensure`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It existed, with this many partitions.
    Exists(usize),
    /// Created with this many partitions.
    Created(usize),
    /// Not checked: the topic its partition count follows does not exist (named).
    Skipped(String),
}

/// Retention of the link stage's delete-policy topics: its state expires
/// `2 × lockstep_window_ms` behind each stage's watermark, so older records (and
/// snapshots) describe only expired state; never less than Kafka's 7-day default.
pub fn link_retention_ms(lockstep_window_ms: i64) -> i64 {
    lockstep_window_ms.saturating_mul(2).max(MIN_RETENTION_MS)
}

/// Configs of the link stage's topics (and of the campaigns topic): `cleanup.policy=delete`
/// and [`link_retention_ms`].
pub fn link_topic_configs(lockstep_window_ms: i64) -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "delete".to_string()),
        (
            "retention.ms",
            link_retention_ms(lockstep_window_ms).to_string(),
        ),
    ]
}

/// The state topics of a service on `input_topic`, in creation order: the changelog
/// (compacted, as many partitions as the input: the latest value per key is the state)
/// and the link stage's internal topics — links (as many partitions as the input),
/// `-pairs` (one), and their `-state` snapshot topics (as many as the topic they
/// snapshot) — with `cleanup.policy=delete` and [`link_retention_ms`]: a link stage's
/// records and snapshots are not keyed state (snapshot keys carry their sequence number,
/// so compaction would keep everything), and what is older than its expiry is dead.
pub fn state_topics(
    input_topic: &str,
    changelog: Option<&str>,
    links: Option<&LinksConfig>,
    lockstep_window_ms: i64,
) -> Vec<TopicSpec> {
    let mut out = Vec::new();
    if let Some(c) = changelog {
        out.push(TopicSpec {
            role: "changelog",
            name: c.to_string(),
            partitions: Partitions::Like {
                topic: input_topic.to_string(),
                strict: true,
            },
            configs: vec![("cleanup.policy", "compact".into())],
        });
    }
    if let Some(l) = links {
        let delete = link_topic_configs(lockstep_window_ms);
        let like = |topic: &str, strict: bool| Partitions::Like {
            topic: topic.to_string(),
            strict,
        };
        for (role, name, partitions) in [
            ("links", l.links_topic.clone(), like(input_topic, false)),
            (
                "links state",
                l.state_topic(false),
                like(&l.links_topic, true),
            ),
            ("pairs", l.pairs_topic.clone(), Partitions::Fixed(1)),
            ("pairs state", l.state_topic(true), Partitions::Fixed(1)),
        ] {
            out.push(TopicSpec {
                role,
                name,
                partitions,
                configs: delete.clone(),
            });
        }
    }
    out
}

/// The refusal of a `strict` topic with fewer partitions than the topic it follows, as
/// a message saying what to do (deploy/README.md, "The input gained partitions").
pub fn too_few_partitions(
    role: &str,
    name: &str,
    have: usize,
    like: &str,
    want: usize,
) -> Option<String> {
    (have < want).then(|| {
        format!(
            "{role} topic {name} has {have} partitions, fewer than the {want} of {like}: \
             {like} gained partitions (or {name} was made by hand). Its state cannot be \
             moved to the new partition layout: create a {role} topic with {want} \
             partitions under a new name (`followguard topics`) and point the service at \
             it; the state is then rebuilt from the input (deploy/README.md, \"The input \
             gained partitions\")"
        )
    })
}

/// Partitions of `topic` (0: it does not exist or the broker did not answer).
pub async fn partition_count(reader: &Arc<Reader>, topic: &str) -> usize {
    let (r, t) = (reader.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        r.fetch_metadata(Some(&t), TIMEOUT)
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|mt| mt.name() == t && mt.error().is_none())
                    .map(|mt| mt.partitions().len())
            })
            .unwrap_or(0)
    })
    .await
    .unwrap_or(0)
}

/// A group-less reader for metadata look-ups.
pub fn metadata_reader(kafka: &KafkaConfig) -> anyhow::Result<Arc<Reader>> {
    Ok(Arc::new(reader(&replay_config(
        kafka,
        "followguard.topic-setup",
    ))?))
}

/// Creates each topic of `specs` that does not exist yet (in order, so a spec can follow
/// the count of one created before it) and checks the ones that do: a `strict` topic
/// with fewer partitions than the topic it follows is an error ([`too_few_partitions`]).
/// A spec whose reference topic does not exist is skipped (logged). Returns each topic's
/// [`Status`]; an existing topic's configs are not changed.
pub async fn ensure(
    kafka: &KafkaConfig,
    specs: &[TopicSpec],
) -> anyhow::Result<Vec<(String, Status)>> {
    let reader = metadata_reader(kafka)?;
    let admin: AdminClient<DefaultClientContext> = base_config(kafka)
        .create()
        .map_err(|e| config_error("admin client", e))?;
    let mut known: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for spec in specs {
        // The count it is created with, and the topic it may not have fewer than.
        let (want, floor) = match &spec.partitions {
            Partitions::Fixed(n) => (usize::try_from(*n).unwrap_or(1), None),
            Partitions::Like { topic, strict } => {
                let n = match known.get(topic) {
                    Some(&n) => n,
                    None => partition_count(&reader, topic).await,
                };
                if n == 0 {
                    tracing::warn!(
                        topic = %spec.name,
                        follows = %topic,
                        "{} topic not checked: {topic} does not exist",
                        spec.role
                    );
                    out.push((spec.name.clone(), Status::Skipped(topic.clone())));
                    continue;
                }
                (n, strict.then_some(topic.as_str()))
            }
        };
        let have = partition_count(&reader, &spec.name).await;
        if have > 0 {
            if let Some(why) =
                floor.and_then(|like| too_few_partitions(spec.role, &spec.name, have, like, want))
            {
                anyhow::bail!("{why}");
            }
            known.insert(spec.name.clone(), have);
            out.push((spec.name.clone(), Status::Exists(have)));
            continue;
        }
        let partitions = i32::try_from(want).unwrap_or(i32::MAX);
        let mut new = NewTopic::new(&spec.name, partitions, TopicReplication::Fixed(1));
        for (k, v) in &spec.configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let mut status = Status::Created(want);
        for r in admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| anyhow::anyhow!("creating {} topic {}: {e}", spec.role, spec.name))?
        {
            match r {
                Ok(_) => {}
                // Created meanwhile by another instance.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => status = Status::Exists(want),
                Err((name, code)) => anyhow::bail!("creating {} topic {name}: {code}", spec.role),
            }
        }
        if status == Status::Created(want) {
            tracing::info!(
                topic = %spec.name,
                partitions,
                configs = %spec.configs_text(),
                "{} topic created",
                spec.role
            );
        }
        known.insert(spec.name.clone(), want);
        out.push((spec.name.clone(), status));
    }
    Ok(out)
}

/// The broker's id of `topic` (KIP-516, Metadata v10+; through librdkafka's
/// DescribeTopics) as base64, or `None` when the topic does not exist, the broker gives no
/// id (all zeros) or does not answer within `timeout`. A topic deleted and re-created
/// under the same name gets a new id.
pub fn topic_id<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Option<String> {
    use rdkafka::bindings as rd;
    use std::ffi::{CStr, CString};
    let name = CString::new(topic).ok()?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = client.native_ptr();
    // SAFETY: every pointer passed to librdkafka below is either `rk` (the live client
    // `client` borrows), `name` (alive until the end of this function), or an object
    // created here and destroyed exactly once at the end (queue, collection, options,
    // event). The descriptions and the id read from the result event belong to the
    // event and are copied into a `String` before it is destroyed.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let mut names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        rd::rd_kafka_DescribeTopics(rk, topics, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1000));
        let mut id = None;
        if !event.is_null()
            && rd::rd_kafka_event_type(event) == rd::RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT
            && rd::rd_kafka_event_error(event)
                == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            let result = rd::rd_kafka_event_DescribeTopics_result(event);
            let mut n = 0usize;
            let descs = rd::rd_kafka_DescribeTopics_result_topics(result, &mut n);
            for i in 0..n {
                let d = *descs.add(i);
                let error = rd::rd_kafka_TopicDescription_error(d);
                if !error.is_null()
                    && rd::rd_kafka_error_code(error)
                        != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    continue;
                }
                let uuid = rd::rd_kafka_TopicDescription_topic_id(d);
                if uuid.is_null()
                    || (rd::rd_kafka_Uuid_most_significant_bits(uuid) == 0
                        && rd::rd_kafka_Uuid_least_significant_bits(uuid) == 0)
                {
                    continue;
                }
                let s = rd::rd_kafka_Uuid_base64str(uuid);
                if !s.is_null() {
                    id = Some(CStr::from_ptr(s).to_string_lossy().into_owned());
                }
            }
        }
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(topics);
        rd::rd_kafka_queue_destroy(queue);
        id
    }
}

/// [`topic_id`] of `topic` through `reader`, off the async threads.
pub async fn topic_id_of(reader: &Arc<Reader>, topic: &str) -> Option<String> {
    let (r, t) = (reader.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || topic_id(r.client(), &t, TIMEOUT))
        .await
        .ok()
        .flatten()
}

/// How often `serve` looks at its input topic ([`watch_input`]).
pub const INPUT_WATCH_EVERY: Duration = Duration::from_secs(2);

/// What one look at the input topic found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSeen {
    /// It exists, with this id (`None`: the broker gives none).
    Present(Option<String>),
    /// The broker says it does not exist.
    Absent,
    /// No answer (broker down, timeout): nothing can be concluded.
    Unknown,
}

/// Issue 21: the judgement of [`watch_input`], pure. `known` is the input's id since it
/// was first seen (`Some(None)`: seen, no id). A topic absent after it was seen was
/// deleted; one present with another id was deleted and re-created. Returns the message
/// `serve` stops with. A topic not seen yet is waited for (`serve` may start first).
pub fn judge_input(
    known: &mut Option<Option<String>>,
    seen: InputSeen,
    topic: &str,
) -> Option<String> {
    const WHAT: &str = "The group's committed offsets (and a changelog's state) belong to the \
                        deleted topic: start serve again with a new --group-id and, with \
                        --changelog-topic, a new changelog topic (or delete the group and the \
                        changelog first); docs/state.md, \"The input topic deleted\"";
    match (seen, known.as_mut()) {
        (InputSeen::Unknown, _) => None,
        (InputSeen::Present(id), None) => {
            *known = Some(id);
            None
        }
        (InputSeen::Present(Some(id)), Some(Some(was))) if id != *was => Some(format!(
            "input topic {topic} was deleted and re-created while serve read it (topic id \
             {was}, now {id}): its offsets are not the ones this group read; stopping. {WHAT}"
        )),
        (InputSeen::Present(id), Some(k)) => {
            if k.is_none() {
                *k = id;
            }
            None
        }
        (InputSeen::Absent, Some(_)) => Some(format!(
            "input topic {topic} was deleted while serve read it; stopping. Re-create it \
             (or point --input-topic at the right one). {WHAT}"
        )),
        (InputSeen::Absent, None) => None,
    }
}

/// One look at `topic` through `reader` (blocking: a Metadata request, then DescribeTopics
/// for the id).
fn look_at_input(reader: &Reader, topic: &str) -> InputSeen {
    let Ok(md) = reader.fetch_metadata(Some(topic), TIMEOUT) else {
        return InputSeen::Unknown;
    };
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) => match t.error().map(RDKafkaErrorCode::from) {
            None if !t.partitions().is_empty() => {
                InputSeen::Present(topic_id(reader.client(), topic, TIMEOUT))
            }
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                InputSeen::Absent
            }
            _ => InputSeen::Unknown,
        },
        None => InputSeen::Unknown,
    }
}

/// Issue 21: watches `topic`, `serve`'s input, every [`INPUT_WATCH_EVERY`] on a reader of
/// its own until `stop`; once it was seen, its deletion (or re-creation under the same
/// name: another topic id) sets the returned message, which the consume loop stops with.
/// A deletion is also what librdkafka 2.12.1 crashed on (`leader_guard`).
pub fn watch_input(
    kafka: &KafkaConfig,
    group_id: &str,
    topic: &str,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Arc<std::sync::OnceLock<String>>> {
    let reader = Arc::new(reader(&replay_config(
        kafka,
        &format!("{group_id}.input-watch"),
    ))?);
    let gone = Arc::new(std::sync::OnceLock::new());
    let (set, topic) = (gone.clone(), topic.to_string());
    tokio::spawn(async move {
        let mut known = None;
        loop {
            let (r, t) = (reader.clone(), topic.clone());
            let seen = tokio::task::spawn_blocking(move || look_at_input(&r, &t))
                .await
                .unwrap_or(InputSeen::Unknown);
            if let Some(why) = judge_input(&mut known, seen, &topic) {
                tracing::error!("{why}");
                let _ = set.set(why);
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(INPUT_WATCH_EVERY) => {}
            }
        }
    });
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_deleted_or_re_created_after_it_was_seen_is_reported() {
        let mut known = None;
        let t = "follows";
        let id = |s: &str| InputSeen::Present(Some(s.to_string()));
        // Not created yet: waited for; a broker not answering concludes nothing.
        assert_eq!(judge_input(&mut known, InputSeen::Absent, t), None);
        assert_eq!(judge_input(&mut known, InputSeen::Unknown, t), None);
        assert_eq!(judge_input(&mut known, id("A"), t), None);
        assert_eq!(judge_input(&mut known, id("A"), t), None);
        assert_eq!(judge_input(&mut known, InputSeen::Unknown, t), None);
        let recreated = judge_input(&mut known.clone(), id("B"), t).unwrap();
        assert!(
            recreated.contains("input topic follows was deleted and re-created")
                && recreated.contains("topic id A, now B")
                && recreated.contains("new --group-id"),
            "{recreated}"
        );
        let deleted = judge_input(&mut known, InputSeen::Absent, t).unwrap();
        assert!(
            deleted.contains("input topic follows was deleted while serve read it")
                && deleted.contains("new --group-id"),
            "{deleted}"
        );
        // A broker without ids: a deletion is still seen, a re-creation cannot be.
        let mut known = None;
        assert_eq!(judge_input(&mut known, InputSeen::Present(None), t), None);
        assert_eq!(judge_input(&mut known, InputSeen::Present(None), t), None);
        assert!(judge_input(&mut known, InputSeen::Absent, t).is_some());
    }

    #[test]
    fn state_topics_follow_the_input_and_carry_their_policies() {
        let links = LinksConfig::new("follows-links", "campaigns", 1 << 20, 100);
        let specs = state_topics("follows", Some("cl"), Some(&links), 2 * 86_400_000);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cl",
                "follows-links",
                "follows-links-state",
                "follows-links-pairs",
                "follows-links-pairs-state"
            ]
        );
        assert_eq!(
            specs[0].partitions,
            Partitions::Like {
                topic: "follows".into(),
                strict: true
            }
        );
        assert_eq!(
            specs[0].configs,
            [("cleanup.policy", "compact".to_string())]
        );
        // The links state topic follows the links topic, not the input.
        assert_eq!(
            specs[2].partitions,
            Partitions::Like {
                topic: "follows-links".into(),
                strict: true
            }
        );
        assert_eq!(specs[3].partitions, Partitions::Fixed(1));
        for s in &specs[1..] {
            assert!(s
                .configs
                .contains(&("retention.ms", "604800000".to_string())));
            assert!(s
                .configs
                .contains(&("cleanup.policy", "delete".to_string())));
        }
        // A window longer than half the default retention raises it.
        assert_eq!(link_retention_ms(5 * 86_400_000), 10 * 86_400_000);
        assert!(state_topics("follows", None, None, 1).is_empty());
    }

    #[test]
    fn fewer_partitions_than_the_followed_topic_is_refused_with_the_procedure() {
        assert_eq!(too_few_partitions("changelog", "cl", 4, "in", 4), None);
        assert_eq!(too_few_partitions("changelog", "cl", 6, "in", 4), None);
        let why = too_few_partitions("changelog", "cl", 2, "in", 4).unwrap_or_default();
        assert!(
            why.starts_with("changelog topic cl has 2 partitions, fewer than the 4 of in"),
            "{why}"
        );
        assert!(
            why.contains("create a changelog topic with 4 partitions"),
            "{why}"
        );
    }
}
