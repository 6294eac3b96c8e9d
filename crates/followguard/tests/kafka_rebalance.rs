//! Issue 21, rebalance behaviour on a real broker (tansu): `serve --changelog-topic`
//! instances in one consumer group hand revoked partitions' state over (logged and
//! acknowledged, offsets committed) before releasing them, and restore assigned ones from
//! the changelog before processing their input.
//!
//! - Three instances under cooperative-sticky with rolling restarts (a kill -9 and two
//!   SIGTERMs, each instance restarted) and a fourth member joining and leaving, all while
//!   the input is produced, end with the outcome of one undisturbed instance on the same
//!   input: the same alert ids, no id opened twice, the same alerts resolved, the same
//!   followers moderated.
//! - Static membership (`group.instance.id`), under an eager strategy (range) and under
//!   cooperative-sticky (the shipped deploy settings): a member stopped and restarted
//!   with its instance id gets its partitions back and restores their state. What tansu
//!   cannot show (a departed static member's partitions taken over by the survivors, a
//!   restart without any rebalance) is listed in docs/state.md, "Rebalance behaviour".

mod kafka_support;

use followguard::changelog;
use followguard::config::KafkaConfig;
use followguard::kafka;
use followguard::metrics::Metrics;
use followguard_core::detector::state::FolloweeState;
use followguard_core::model::Model;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run wrote, compared between a group and one instance. Campaign ids are
/// collected too (issue 21's link stage makes them comparable; reported until then).
#[derive(Debug, Default)]
struct Outcome {
    opened: BTreeSet<String>,
    duplicate_opens: usize,
    resolved: BTreeSet<String>,
    campaigns: BTreeSet<String>,
    moderated: BTreeSet<String>,
    /// Every alert record as read (topic partition, offset, record): what a failure
    /// report shows of a differing alert.
    alerts: Vec<(i32, i64, serde_json::Value)>,
}

impl Outcome {
    /// Asserts a group's outcome is one instance's: no id opened twice, the same alert
    /// ids opened and resolved, the same followers moderated.
    fn assert_as(&self, one: &Outcome) {
        assert_eq!(self.duplicate_opens, 0, "an alert id was opened twice");
        assert_eq!(
            self.opened, one.opened,
            "alert ids differ from one instance"
        );
        assert_eq!(
            self.resolved, one.resolved,
            "alerts resolved differ from one instance"
        );
        assert_eq!(
            self.moderated, one.moderated,
            "moderated followers differ from one instance"
        );
    }
}

fn outcome(env: &Env, t: &Topics) -> Outcome {
    let read = |topic: &str| {
        read_topic(
            &env.brokers,
            topic,
            1,
            Duration::from_secs(2),
            Duration::from_secs(30),
        )
    };
    let alerts = read(&t.alerts);
    let (opened, duplicate_opens) = opened(&alerts);
    let mut o = Outcome {
        opened: opened.into_keys().collect(),
        duplicate_opens,
        ..Outcome::default()
    };
    for r in &alerts {
        let a = r.json();
        o.alerts.push((r.partition, r.offset, a.clone()));
        if a["status"] == "resolved" {
            o.resolved
                .insert(a["alert_id"].as_str().unwrap_or_default().to_string());
        }
        if let Some(c) = a["campaign_id"].as_str() {
            o.campaigns.insert(c.to_string());
        }
    }
    o.moderated = read(&t.moderation)
        .iter()
        .map(Rec::json)
        .filter_map(|m| m["follower_id"].as_str().map(str::to_string))
        .collect();
    o
}

/// `followguard produce` of `events` at `rate` events/s, in the background.
fn produce_at(env: &Env, events: &Path, topic: &str, rate: u32) -> Child {
    Command::new(&env.bin)
        .arg("produce")
        .args([
            "--brokers",
            &env.brokers,
            "--topic",
            topic,
            "--rate",
            &rate.to_string(),
        ])
        .arg("--input")
        .arg(events)
        .stdout(Stdio::null())
        .spawn()
        .expect("produce")
}

/// The per-followee detector state a changelog ends with, as a restore into a fresh
/// pipeline reads it. Campaign fields are blanked: campaign links are instance-local until
/// the link stage (the ids are compared through [`Outcome::campaigns`] instead).
fn final_state(env: &Env, topic: &str) -> BTreeMap<String, FolloweeState> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let model = Model::from_bytes(&std::fs::read(model_path()).expect("model"), "model")
        .expect("model loads");
    let mut pipeline = Pipeline::new(Arc::new(model), PipelineConfig::default());
    let kafka_cfg = KafkaConfig {
        brokers: env.brokers.clone(),
        options: Vec::new(),
    };
    let reader = {
        let _rt = rt.enter();
        Arc::new(
            kafka::reader(&kafka::replay_config(&kafka_cfg, &unique("final"))).expect("reader"),
        )
    };
    let metrics = Metrics::new(prometheus::Registry::new(), "m", "s");
    let parts: Vec<i32> = (0..PARTITIONS).collect();
    let r = rt
        .block_on(changelog::restore(
            reader,
            topic,
            &parts,
            &mut pipeline,
            &metrics,
            || {},
        ))
        .expect("restore");
    assert_eq!(r.corrupt, 0, "{r:?}");
    pipeline
        .export_state()
        .followees
        .into_iter()
        .map(|mut f| {
            if let Some(o) = f.open.as_mut() {
                o.campaign_id = None;
                o.campaign_followees = 0;
                o.campaign_reported = 0;
            }
            (f.followee_id.clone(), f)
        })
        .collect()
}

fn lines(events: &Path) -> usize {
    std::fs::read(events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// Waits until the group has committed the end of every input partition.
fn wait_committed(env: &Env, group: &str, t: &Topics, n: usize, members: &[&Svc]) {
    let ends = end_offsets(&env.read_all(&t.input, n));
    let start = Instant::now();
    while committed(&env.brokers, group, &t.input) != ends {
        if start.elapsed() > Duration::from_secs(120) {
            let logs: Vec<String> = members.iter().map(|m| m.log_text()).collect();
            panic!(
                "the group did not commit the whole input: {:?} of {ends:?}\n{}",
                committed(&env.brokers, group, &t.input),
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn sleep_until(t0: Instant, at: Duration) {
    if let Some(d) = at.checked_sub(t0.elapsed()) {
        std::thread::sleep(d);
    }
}

fn stop(svc: &mut Svc) {
    svc.sigterm();
    let exit = svc.wait_exit(Duration::from_secs(30));
    assert!(
        exit.as_ref().is_some_and(Exit::success),
        "member did not stop cleanly ({exit:?}):\n{}",
        svc.log_text()
    );
}

/// Sum of a metric over the given members' current processes.
fn total(members: &[&Svc], name: &str) -> f64 {
    members.iter().map(|m| metric_sum(&m.metrics(), name)).sum()
}

/// Flags of a group member logging to `changelog` under cooperative-sticky: state from
/// the changelog (the input rebuild capped at 10 records), no LeaveGroup at a stop.
fn member_flags(changelog: &str) -> Vec<String> {
    [
        "--changelog-topic",
        changelog,
        "--rebuild-max-records",
        "10",
        "--kafka-option",
        "partition.assignment.strategy=cooperative-sticky",
        "--kafka-option",
        "heartbeat.interval.ms=500",
        // A stopped member does not send LeaveGroup (as the shipped static members
        // never do): on tansu, a LeaveGroup from the group's leader while a rebalance is
        // in progress wedges the group for good (docs/state.md, "Rebalance behaviour").
        "--leave-group-on-shutdown",
        "false",
    ]
    .map(String::from)
    .to_vec()
}

/// Ignored in CI for a while (issue 21): the group sometimes stalled after the restarts.
/// Cause: tansu keeps a member that sent LeaveGroup during a rebalance as the group's
/// leader, so no later round completes; the members here stop without leaving
/// (`--leave-group-on-shutdown false`, as the shipped static members do), see
/// [`a_leader_stopped_mid_rebalance_without_leaving_lets_the_survivor_take_over`] and
/// docs/state.md, "Rebalance behaviour".
#[test]
fn three_instances_with_rolling_restarts_and_a_member_joining_and_leaving_match_one() {
    rolling(false);
}

/// The same with the link stage (`--links-topic`): the alert -> campaign map the link
/// stages announce equals one instance's. Each `serve` is two members of the group here
/// (the input consumer and the link stage's), so a stop is two departures at once: the
/// stall above was more frequent (3 of 5 runs) before members stopped without leaving.
#[test]
fn three_instances_with_the_link_stage_match_one_instance_campaigns_included() {
    rolling(true);
}

/// The two rolling-restart tests run one after the other (each runs up to five `serve`
/// processes at once, on a 2-core CI machine); the lighter tests of this file run
/// alongside.
static ROLLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rolling(links: bool) {
    let Some(env) = env() else { return };
    let _one_at_a_time = ROLLING.lock().unwrap_or_else(|e| e.into_inner());
    // Four days of 2,000 followees (~79k events), re-sold cohorts (campaigns link across
    // followees), produced at 2,000 events/s: the members are busy when partitions move,
    // so a revoke finds records in hand.
    let (events, _) = env.generate(
        "rolling",
        &Stream {
            seed: 31,
            followees: 2000,
            days: 4,
            humans: 100_000,
            viral: 4,
            campaigns: 10,
            min_campaign: 300,
            max_campaign: 800,
            camouflage: false,
            resell: Some(0.5),
        },
    );
    let n = lines(&events);
    let one_t = Topics::new("rolling-one");
    env.create_topics(&one_t);
    let group_t = one_t.with_new_outputs("rolling-group");
    env.create_topics(&group_t);
    let changelog = unique("rolling-changelog");
    let group = unique("grolling");
    // State must come from the changelog: the input rebuild is capped at 10 records.
    // Campaigns come from the link stage (`--links-topic`), whose ids do not depend on
    // which instance owns which followee.
    let mut flags = member_flags(&changelog);
    if links {
        flags.extend(links_args(&group_t));
    }
    // The single instance logs its state too, to compare the group's final state with.
    let one_changelog = unique("rolling-one-changelog");
    let one_group = unique("gone");
    let mut one_flags = vec!["--changelog-topic".to_string(), one_changelog.clone()];
    if links {
        one_flags.extend(links_args(&one_t));
    }
    let one_flags: Vec<&str> = one_flags.iter().map(String::as_str).collect();
    let mut one = env.serve(&one_t, &one_group, &one_flags);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let start_member = || env.serve(&group_t, &group, &flags);
    let (mut a, mut b, mut c) = (start_member(), start_member(), start_member());
    for s in [&mut one, &mut a, &mut b, &mut c] {
        s.wait_ready(Duration::from_secs(60));
    }

    // ~40 s of input. Meanwhile a fourth member joins the settled group and, once it owns
    // partitions (taken from busy running members: revokes they hand over), leaves again;
    // then each of the three is killed or stopped and restarted in turn, 6 s apart.
    let mut producer = produce_at(&env, &events, &one_t.input, 2000);
    let t0 = Instant::now();
    // Members replaced so far (their logs are read at the end), and the revoke-flush
    // count each had reached when it was stopped.
    let mut past: Vec<(&str, Svc)> = Vec::new();
    let mut past_flushes = 0.0;
    // What the test did to the members, at what UTC time (a kill -9 leaves no log line):
    // a failure report interleaves it with the members' log lines.
    let mut timeline: Vec<(String, String)> = vec![(utc_now(), "A, B, C ready".into())];
    let mut did = |what: &str| timeline.push((utc_now(), what.to_string()));
    let flushes =
        |s: &Svc| metric(&s.metrics(), "followguard_revoke_flush_seconds_count").unwrap_or(0.0);
    sleep_until(t0, Duration::from_secs(2));
    let mut d = start_member();
    did("D started (joins)");
    let joined = Instant::now();
    while metric(&d.metrics(), "followguard_assigned_partitions").unwrap_or(0.0) < 1.0 {
        assert!(
            joined.elapsed() < Duration::from_secs(60),
            "the joining member got no partitions:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let d_owned_s = joined.elapsed().as_secs_f64();
    d.wait_ready(Duration::from_secs(60));
    past_flushes += flushes(&a) + flushes(&b) + flushes(&c);
    did("D owns partitions and is ready: SIGTERM");
    stop(&mut d);
    past.push(("D", d));
    let t1 = Instant::now();
    sleep_until(t1, Duration::from_secs(3));
    past_flushes += flushes(&a);
    did("A killed (-9), A' started");
    a.kill9();
    past.push(("A", std::mem::replace(&mut a, start_member())));
    sleep_until(t1, Duration::from_secs(9));
    past_flushes += flushes(&b);
    did("B stopped (SIGTERM)");
    stop(&mut b);
    did("B' started");
    past.push(("B", std::mem::replace(&mut b, start_member())));
    sleep_until(t1, Duration::from_secs(15));
    past_flushes += flushes(&c);
    did("C stopped (SIGTERM)");
    stop(&mut c);
    did("C' started");
    past.push(("C", std::mem::replace(&mut c, start_member())));
    assert!(producer.wait().expect("produce").success());
    let produced_s = t0.elapsed().as_secs_f64();

    wait_committed(&env, &group, &one_t, n, &[&a, &b, &c]);
    one.wait_events(n as f64, Duration::from_secs(120));
    let settled_s = t0.elapsed().as_secs_f64();
    did("the group committed the whole input");
    let members = [&a, &b, &c];
    // Revokes handed over by a running member (not its own shutdown), in every process,
    // labelled by member (A' is A's replacement).
    let labelled: Vec<(&str, String)> = past
        .iter()
        .map(|(l, s)| (*l, s))
        .chain([("A'", &a), ("B'", &b), ("C'", &c)])
        .map(|(l, s)| (l, strip_ansi(&s.log_text())))
        .collect();
    let logs: Vec<String> = labelled.iter().map(|(_, l)| l.clone()).collect();
    let count = |what: &str| -> usize { logs.iter().map(|l| l.matches(what).count()).sum() };
    let handed_over = count("revoked partitions handed over and released");
    let incomplete = count("complete=false");
    eprintln!(
        "rolling: {handed_over} revokes handed over by running members ({incomplete} incomplete), \
         {} assignments; the joining member owned partitions {d_owned_s:.1}s after it started",
        count("partitions assigned")
    );
    assert!(
        handed_over >= 1,
        "partitions were revoked from running members"
    );
    // Counted by the metric too (a member may be replaced before its count is read, so
    // at least once, not exactly).
    assert!(
        past_flushes + total(&members, "followguard_revoke_flush_seconds_count") >= 1.0,
        "followguard_revoke_flush_seconds moved"
    );
    assert!(
        total(&members, "followguard_rebalance_partitions_total") >= 4.0,
        "the restarted members were assigned partitions: {:?}\n{}",
        members
            .iter()
            .map(|m| metric_sum(&m.metrics(), "followguard_rebalance_partitions_total"))
            .collect::<Vec<_>>(),
        c.log_text()
    );
    let restored = total(&members, "followguard_restore_records_total");
    assert!(
        restored > 0.0,
        "state restored from the changelog:\n{}",
        a.log_text()
    );
    assert_eq!(
        total(&members, "followguard_changelog_corrupt_total"),
        0.0,
        "corrupt changelog records"
    );

    let want = outcome(&env, &one_t);
    let got = outcome(&env, &group_t);
    // Alert id -> campaign id, as the link stages announced them.
    let (want_campaigns, got_campaigns) = if links {
        (
            campaign_of(&settle_links(&env, &one_t, &one_group, &[&one])),
            campaign_of(&settle_links(&env, &group_t, &group, &members)),
        )
    } else {
        (BTreeMap::new(), BTreeMap::new())
    };
    // The followee state the group's changelog ends with, against the single instance's:
    // reported, not asserted. Identical in most runs here; in some, the followees of a
    // partition whose owner was killed (-9) or whose restore was interrupted by a stop
    // differ in window history / baseline: docs/state.md, "Rebalance behaviour", open
    // findings.
    let (ours, theirs) = (
        final_state(&env, &changelog),
        final_state(&env, &one_changelog),
    );
    let differing: Vec<&String> = theirs
        .iter()
        .filter(|(id, f)| ours.get(*id) != Some(*f))
        .map(|(id, _)| id)
        .chain(ours.keys().filter(|id| !theirs.contains_key(*id)))
        .collect();
    let partitions_differing: BTreeSet<Option<i32>> = differing
        .iter()
        .map(|id| theirs.get(*id).and_then(|f| f.partition))
        .collect();
    eprintln!(
        "rolling: final followee state: {} of {} differ from one instance's (partitions {:?})",
        differing.len(),
        theirs.len(),
        partitions_differing
    );
    // Anything that differs is reported in full on stderr before the checks below fail
    // (or, for the followee state, instead of failing), so a CI log alone says which
    // followee and alert differ and what happened to its partition.
    let campaigns_differ: BTreeSet<&String> = want_campaigns
        .keys()
        .chain(got_campaigns.keys())
        .filter(|id| want_campaigns.get(*id) != got_campaigns.get(*id))
        .collect();
    if got.opened != want.opened
        || got.resolved != want.resolved
        || got.moderated != want.moderated
        || got.duplicate_opens > 0
        || !campaigns_differ.is_empty()
        || !differing.is_empty()
    {
        let report = Report {
            want: &want,
            got: &got,
            campaigns_differ: &campaigns_differ,
            theirs: &theirs,
            ours: &ours,
            differing: &differing,
            logs: &labelled,
            timeline: &timeline,
        };
        let changelog = read_topic(
            &env.brokers,
            &changelog,
            1,
            Duration::from_secs(2),
            Duration::from_secs(60),
        );
        eprintln!("{}", report.render(&changelog));
    }
    if links {
        assert!(
            !want_campaigns.is_empty(),
            "the re-sold cohorts make campaigns"
        );
        assert_eq!(
            got_campaigns, want_campaigns,
            "campaigns (alert id -> campaign id) differ from one instance"
        );
    }
    assert!(!want.opened.is_empty(), "the stream opens alerts");
    assert_eq!(want.duplicate_opens, 0);
    got.assert_as(&want);
    assert!(!theirs.is_empty());
    eprintln!(
        "rolling: {n} events produced in {produced_s:.1}s, group settled at {settled_s:.1}s; \
         {} alerts ({} resolved, {} still open in both), {restored} changelog records restored, {} moderated followers; \
         campaign ids: group {} vs one {} (equal: {}); link-stage campaigns: {} alerts in {} campaigns",
        got.opened.len(),
        got.resolved.len(),
        want.opened.difference(&want.resolved).count(),
        got.moderated.len(),
        got.campaigns.len(),
        want.campaigns.len(),
        got.campaigns == want.campaigns,
        got_campaigns.len(),
        got_campaigns.values().collect::<BTreeSet<_>>().len(),
    );
    for s in [&mut one, &mut a, &mut b, &mut c] {
        s.sigterm();
        s.wait_exit(Duration::from_secs(20));
    }
}

/// The time now as the members' log lines print it (RFC 3339 UTC, µs): sorts with them.
fn utc_now() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// At most this many followees are described in full by a failure report.
const REPORT_FOLLOWEES: usize = 6;

/// What a rolling-restart run found different from one instance, for stderr: the alerts
/// and followers that differ, and per followee concerned (first [`REPORT_FOLLOWEES`]):
/// its alert records in both runs, its final state field by field, every version of its
/// key in the group's changelog (with the snapshots around them), and its input
/// partition's history: the members' log lines about that partition interleaved with
/// what the test did to them (kills leave no line of their own).
struct Report<'a> {
    want: &'a Outcome,
    got: &'a Outcome,
    campaigns_differ: &'a BTreeSet<&'a String>,
    theirs: &'a BTreeMap<String, FolloweeState>,
    ours: &'a BTreeMap<String, FolloweeState>,
    differing: &'a [&'a String],
    /// (member, its log without colour codes); A' is A's replacement.
    logs: &'a [(&'a str, String)],
    /// (UTC time, what the test did).
    timeline: &'a [(String, String)],
}

impl Report<'_> {
    /// The report; `changelog`: the group's changelog topic as read.
    fn render(&self, changelog: &[Rec]) -> String {
        use std::fmt::Write;
        let mut out = String::from("rolling: MISMATCH REPORT (the group against one instance)\n");
        let sets = [
            ("alerts opened", &self.want.opened, &self.got.opened),
            ("alerts resolved", &self.want.resolved, &self.got.resolved),
            (
                "followers moderated",
                &self.want.moderated,
                &self.got.moderated,
            ),
        ];
        let mut alerts: BTreeSet<&str> = BTreeSet::new();
        for (i, (what, w, g)) in sets.iter().enumerate() {
            let only_one: Vec<&String> = w.difference(g).collect();
            let only_group: Vec<&String> = g.difference(w).collect();
            if !only_one.is_empty() || !only_group.is_empty() {
                let _ = writeln!(
                    out,
                    "  {what}: only by one instance {only_one:?}; only by the group {only_group:?}"
                );
            }
            if i < 2 {
                alerts.extend(only_one.iter().chain(&only_group).map(|s| s.as_str()));
            }
        }
        if self.got.duplicate_opens > 0 {
            let _ = writeln!(
                out,
                "  the group opened {} ids twice",
                self.got.duplicate_opens
            );
        }
        if !self.campaigns_differ.is_empty() {
            let _ = writeln!(
                out,
                "  alerts whose campaign differs: {:?}",
                self.campaigns_differ.iter().take(20).collect::<Vec<_>>()
            );
            alerts.extend(self.campaigns_differ.iter().map(|s| s.as_str()));
        }
        // The followees concerned: those of differing alerts first, then those whose
        // final state differs.
        let mut followees: Vec<String> = Vec::new();
        for id in alerts {
            let f = self
                .want
                .alerts
                .iter()
                .chain(&self.got.alerts)
                .find(|(_, _, a)| a["alert_id"] == id)
                .and_then(|(_, _, a)| a["followee_id"].as_str());
            if let Some(f) = f.filter(|f| !followees.iter().any(|x| x == f)) {
                followees.push(f.to_string());
            }
        }
        for f in self.differing {
            if !followees.contains(f) {
                followees.push((*f).clone());
            }
        }
        let _ = writeln!(
            out,
            "  {} followees concerned ({} with a different final state); the first {} described:",
            followees.len(),
            self.differing.len(),
            followees.len().min(REPORT_FOLLOWEES)
        );
        let mut partitions = BTreeSet::new();
        for f in followees.iter().take(REPORT_FOLLOWEES) {
            let partition = self
                .theirs
                .get(f)
                .or_else(|| self.ours.get(f))
                .and_then(|s| s.partition);
            partitions.extend(partition);
            let _ = writeln!(out, "  followee {f} (input partition {partition:?})");
            for (who, o) in [("one", self.want), ("group", self.got)] {
                for (tp, offset, a) in o.alerts.iter().filter(|(_, _, a)| a["followee_id"] == *f) {
                    let _ = writeln!(
                        out,
                        "    {who:5} {} {} at {} (alerts {tp}@{offset})",
                        a["alert_id"].as_str().unwrap_or("?"),
                        a["status"].as_str().unwrap_or("?"),
                        a["event_time"].as_str().unwrap_or("?"),
                    );
                }
            }
            match (self.theirs.get(f), self.ours.get(f)) {
                (Some(t), Some(o)) if t == o => {
                    let _ = writeln!(out, "    final state: equal");
                }
                (Some(t), Some(o)) => {
                    let _ = writeln!(
                        out,
                        "    final state (one | group): {}",
                        fields_differing(t, o)
                    );
                }
                (t, o) => {
                    let _ = writeln!(
                        out,
                        "    final state: one {}, group {}",
                        if t.is_some() { "holds it" } else { "none" },
                        if o.is_some() { "holds it" } else { "none" }
                    );
                }
            }
            if let Some(p) = partition {
                out.push_str(&changelog_versions(changelog, p, f));
            }
        }
        for p in partitions {
            let _ = writeln!(
                out,
                "  input partition {p}: the members' lines about it, and what the test did"
            );
            for line in partition_history(self.logs, self.timeline, p) {
                let _ = writeln!(out, "    {line}");
            }
        }
        out
    }
}

/// The fields of two states that differ, as `path: one | group` (window rings by index).
fn fields_differing(one: &FolloweeState, group: &FolloweeState) -> String {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    flatten(&format!("{prefix}{k}."), v, out);
                }
            }
            serde_json::Value::Array(a) if a.iter().all(|x| !x.is_object()) => {
                out.insert(prefix.trim_end_matches('.').to_string(), v.to_string());
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    flatten(&format!("{prefix}{i}."), v, out);
                }
            }
            _ => {
                out.insert(prefix.trim_end_matches('.').to_string(), v.to_string());
            }
        }
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &serde_json::to_value(one).unwrap_or_default(), &mut a);
    flatten("", &serde_json::to_value(group).unwrap_or_default(), &mut b);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let none = "-".to_string();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} | {}",
                a.get(k).unwrap_or(&none),
                b.get(k).unwrap_or(&none)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every version of followee `f`'s key in changelog partition `p` (offset, window history,
/// last seen, frozen, open alert), and the snapshot begin markers of the partition
/// (offset and writer's order `seq`): which writer's snapshot a version follows.
fn changelog_versions(changelog: &[Rec], p: i32, f: &str) -> String {
    use std::fmt::Write;
    let key = changelog::followee_key(f);
    let mut out = String::new();
    let in_p = || changelog.iter().filter(|r| r.partition == p);
    let begins: Vec<String> = in_p()
        .filter(|r| r.key.starts_with(b"s/"))
        .filter_map(|r| {
            let m: serde_json::Value = serde_json::from_slice(&r.payload).ok()?;
            (m["snapshot"] == "begin").then(|| format!("{}(seq {})", r.offset, m["seq"]))
        })
        .collect();
    let last = in_p().map(|r| r.offset).max().unwrap_or(-1);
    let _ = writeln!(
        out,
        "    group changelog partition {p} (last offset {last}): snapshots begin at {begins:?}"
    );
    for r in in_p().filter(|r| r.key == key.as_bytes()) {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
        let w = &v["window"];
        let _ = writeln!(
            out,
            "    {key}@{}: {}",
            r.offset,
            if r.payload.is_empty() {
                "tombstone".to_string()
            } else {
                format!(
                    "history {} last_seen_s {} frozen {} open {} last_burst {}",
                    w["history"],
                    w["last_seen_s"],
                    w["frozen"],
                    v["open"]["alert_id"],
                    v["last_burst"]
                )
            }
        );
    }
    out
}

/// The members' log lines that name input partition `p` (and their warnings, errors and
/// stops), with the test's own steps, in time order, each tagged with its member.
fn partition_history(
    logs: &[(&str, String)],
    timeline: &[(String, String)],
    p: i32,
) -> Vec<String> {
    let mut lines: Vec<(String, String)> = timeline
        .iter()
        .map(|(t, what)| (t.clone(), format!("{t} [test] {what}")))
        .collect();
    for (member, log) in logs {
        for l in log.lines() {
            let named = partitions_named(l);
            let about_p = named.as_ref().is_some_and(|ps| ps.contains(&p));
            let general = named.is_none()
                && (l.contains(" WARN ")
                    || l.contains(" ERROR ")
                    || l.contains("shutdown requested")
                    || l.contains("shutdown complete"));
            if about_p || general {
                let t = l.split(' ').next().unwrap_or_default().to_string();
                let text: String = l.chars().take(260).collect();
                lines.push((t, format!("[{member}] {text}")));
            }
        }
    }
    lines.sort();
    lines.into_iter().map(|(_, l)| l).collect()
}

/// The input partitions a log line names (`partitions=[0, 3]`, `partition=2`), `None`
/// when it names none (the link stage's partitions are another topic's: not counted).
fn partitions_named(line: &str) -> Option<BTreeSet<i32>> {
    if line.contains("serve::links") {
        return None;
    }
    if let Some(list) = line.split("partitions=[").nth(1) {
        let list = list.split(']').next().unwrap_or_default();
        return Some(
            list.split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect(),
        );
    }
    let one = line.split(" partition=").nth(1)?;
    let n: String = one.chars().take_while(char::is_ascii_digit).collect();
    n.parse().ok().map(|n| BTreeSet::from([n]))
}

/// The partitions a member owns now (`owned_partitions`: assignments and revokes
/// replayed in order); None before its first assignment.
fn last_assignment(svc: &Svc) -> Option<BTreeSet<i32>> {
    let log = svc.log_text();
    log.contains("partitions assigned")
        .then(|| owned_partitions(&log))
}

/// Under cooperative-sticky the log lines are incremental: a member that got [0, 1, 2, 3]
/// alone, gave up [1, 3] to a joiner and then took part in a rebalance that moved nothing
/// (an empty assignment) still owns [0, 2]. (CI once failed on reading only the last
/// line, which was the empty one.)
#[test]
fn owned_partitions_replays_incremental_assignments_and_revokes() {
    let log = "\
        2026-12-07T13:26:45.0Z  INFO followguard::kafka: partitions assigned partitions=[3, 1, 0, 2]
        2026-12-07T13:26:47.0Z  INFO followguard::kafka: partitions revoked partitions=[1, 3] deferred=false
        2026-12-07T13:26:47.1Z  INFO followguard::serve::links: link stage: partitions revoked partitions=[0]
        2026-12-07T13:26:49.0Z  INFO followguard::kafka: partitions assigned partitions=[]
        ";
    assert_eq!(owned_partitions(log), BTreeSet::from([0, 2]));
    let eager = "\
        x INFO followguard::kafka: partitions assigned partitions=[0, 1]
        x INFO followguard::kafka: partitions revoked partitions=[0, 1] deferred=false
        x INFO followguard::kafka: partitions assigned partitions=[1]
        ";
    assert_eq!(owned_partitions(eager), BTreeSet::from([1]));
    assert_eq!(owned_partitions(""), BTreeSet::new());
}

#[test]
fn a_static_member_restarted_gets_its_partitions_back_and_restores_them() {
    static_member_restart("range");
}

/// The shipped deploy settings (deploy/k8s, deploy/compose.yaml): static membership with
/// cooperative-sticky. A stop and a restart with the same instance id works on tansu
/// (what tansu gets wrong is a departed static member's partitions, which it never gives
/// to the survivors: not tested here).
#[test]
fn a_static_member_restarted_gets_its_partitions_back_under_cooperative_sticky() {
    static_member_restart("cooperative-sticky");
}

/// Two static members (`group.instance.id`) under `strategy`; A is stopped and
/// restarted with its instance id: it gets the same partitions back, restored from the
/// changelog.
fn static_member_restart(strategy: &str) {
    let Some(env) = env() else { return };
    let (events, _) = env.generate("static", &Stream::small_campaigns(33));
    let n = lines(&events);
    let t = Topics::new("static");
    env.create_topics(&t);
    let changelog = unique("static-changelog");
    let group = unique("gstatic");
    let flags = |id: &str| {
        [
            "--changelog-topic".to_string(),
            changelog.clone(),
            "--rebuild-max-records".to_string(),
            "10".to_string(),
            "--kafka-option".to_string(),
            format!("partition.assignment.strategy={strategy}"),
            "--kafka-option".to_string(),
            format!("group.instance.id={id}"),
        ]
    };
    let member = |id: &str| {
        let f = flags(id);
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        env.serve(&t, &group, &f)
    };
    let (mut a, mut b) = (member("fg-a"), member("fg-b"));
    a.wait_ready(Duration::from_secs(60));
    b.wait_ready(Duration::from_secs(60));
    let start = Instant::now();
    let before = loop {
        let (pa, pb) = (last_assignment(&a), last_assignment(&b));
        if let (Some(pa), Some(pb)) = (&pa, &pb) {
            if !pa.is_empty() && pa.len() + pb.len() == PARTITIONS as usize {
                break pa.clone();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "partitions not split: {pa:?} {pb:?}\nA:\n{}\nB:\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    env.produce(&events, &t.input);
    wait_committed(&env, &group, &t, n, &[&a, &b]);

    stop(&mut a);
    let restart = Instant::now();
    a = member("fg-a");
    a.wait_ready(Duration::from_secs(60));
    let back_s = restart.elapsed().as_secs_f64();
    let after = last_assignment(&a).unwrap_or_default();
    assert_eq!(after, before, "the restarted static member's partitions");
    let m = a.metrics();
    assert!(
        metric(&m, "followguard_restore_records_total").unwrap_or(0.0) > 0.0,
        "its state restored from the changelog:\n{}",
        a.log_text()
    );
    assert_eq!(metric(&m, "followguard_replayed_events_total"), Some(0.0));
    eprintln!(
        "static ({strategy}): partitions {before:?} back to the restarted member, ready {back_s:.1}s \
         after its restart; B revoked {} partitions meanwhile",
        metric(
            &b.metrics(),
            "followguard_rebalance_partitions_total{kind=\"revoke\"}"
        )
        .unwrap_or(0.0)
    );
    for s in [&mut a, &mut b] {
        s.sigterm();
        s.wait_exit(Duration::from_secs(20));
    }
}

/// Waits until `done` holds, for at most `within`; panics with `what` and `svc`'s log.
fn wait_until(within: Duration, what: &str, svc: &Svc, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < within,
            "{what} within {within:?}:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The record cache across an incremental assignment (cooperative-sticky): A's changes
/// since its first flush are only cached (`--changelog-flush-every 1h`, no byte bound)
/// when B is killed (-9) and A is assigned B's partitions. Before their restore, A's
/// cached changes are logged — flushed by the flush forced before every rebalance, or
/// exported and stashed by the restore (`RecordCache::stash`; logged "cached changes of
/// other partitions exported before the restore") — so the restore's clearing of the
/// dirty marks loses none of them. A then processes the rest of the input, every
/// partition's changes cached again, and is killed (-9) too; A' (default flush interval)
/// restores all four partitions and ends with the outcome of one uninterrupted instance,
/// and with its followee state on A's first partitions (the ones whose changes were
/// cached at the assignment) equal to that instance's.
#[test]
fn an_assignment_while_changes_are_only_cached_loses_none_of_them() {
    let Some(env) = env() else { return };
    let _one_at_a_time = ROLLING.lock().unwrap_or_else(|e| e.into_inner());
    let (events, _) = env.generate(
        "cached-assign",
        &Stream {
            resell: Some(0.5),
            ..Stream::small_campaigns(37)
        },
    );
    let all: Vec<Vec<u8>> = std::fs::read(&events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let n = all.len();
    let half = n / 2;
    let first_half = env.write_lines("cached-assign-1.jsonl", &all[..half]);
    let one_t = Topics::new("cached-assign-one");
    env.create_topics(&one_t);
    let group_t = one_t.with_new_outputs("cached-assign-group");
    env.create_topics(&group_t);
    let changelog = unique("cached-assign-changelog");
    let one_changelog = unique("cached-assign-one-changelog");
    let group = unique("gcached");
    let common = member_flags(&changelog);
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let cached: Vec<&str> = common
        .iter()
        .copied()
        .chain([
            "--changelog-flush-every",
            "1h",
            "--changelog-cache-bytes",
            "1000000000",
        ])
        .collect();
    let mut one = env.serve(
        &one_t,
        &unique("gone"),
        &["--changelog-topic", &one_changelog],
    );
    let mut a = env.serve(&group_t, &group, &cached);
    a.wait_ready(Duration::from_secs(60));
    let mut b = env.serve(&group_t, &group, &common);
    b.wait_ready(Duration::from_secs(60));
    one.wait_ready(Duration::from_secs(60));
    wait_until(
        Duration::from_secs(60),
        "partitions split between A and B",
        &a,
        || {
            let pb = last_assignment(&b);
            let owned =
                |s: &Svc| metric(&s.metrics(), "followguard_assigned_partitions").unwrap_or(0.0);
            pb.is_some_and(|p| !p.is_empty())
                && owned(&a) + owned(&b) == f64::from(PARTITIONS)
                && owned(&a) >= 1.0
        },
    );
    // What A owns now: every partition but B's (A's log names what it was assigned at
    // first, before B took its share).
    let b_parts = last_assignment(&b).unwrap_or_default();
    let a_parts: BTreeSet<i32> = (0..PARTITIONS).filter(|p| !b_parts.contains(p)).collect();

    // First half: A's changes after each partition's first flush stay in its cache.
    // (At a rate: many small batches after each partition's first.)
    let mut producer = produce_at(&env, &first_half, &one_t.input, 1000);
    assert!(producer.wait().expect("produce").success());
    let processed = |s: &Svc| metric_sum(&s.metrics(), "followguard_events_total");
    wait_until(
        Duration::from_secs(60),
        "the first half processed",
        &a,
        || processed(&a) + processed(&b) >= half as f64,
    );
    let flushes =
        |s: &Svc| metric(&s.metrics(), "followguard_changelog_flushes_total").unwrap_or(0.0);
    let a_before = flushes(&a);
    let a_done = processed(&a);
    let committed_a: i64 = committed(&env.brokers, &group, &one_t.input)
        .iter()
        .filter(|(p, _)| a_parts.contains(*p))
        .map(|(_, o)| o)
        .sum();
    assert!(
        a_before <= a_parts.len() as f64 && a_done - committed_a as f64 >= 200.0,
        "A's changes only cached: {a_before} flushes, {committed_a} of {a_done} committed"
    );

    // (B's idle flush, due 1 s after its last batch, commits what it processed.)
    std::thread::sleep(Duration::from_millis(1500));
    // B dies: A is assigned B's partitions (incrementally) and restores them.
    b.kill9();
    wait_until(
        Duration::from_secs(60),
        "B's partitions assigned to A and restored",
        &a,
        || {
            metric(&a.metrics(), "followguard_assigned_partitions") == Some(f64::from(PARTITIONS))
                && strip_ansi(&a.log_text()).contains("partition state restored from the changelog")
        },
    );
    let log = strip_ansi(&a.log_text());
    let exported = log.contains("cached changes of other partitions exported before the restore");
    let a_flushes_at_restore = flushes(&a);
    assert!(
        a_flushes_at_restore > a_before || exported,
        "A's cached changes neither flushed nor exported before the restore:\n{log}"
    );
    assert!(metric(&a.metrics(), "followguard_restore_records_total").unwrap_or(0.0) > 0.0);

    // Second half, only the followees on B's partitions (as the first half keyed them):
    // A's first partitions get no input after the assignment, so their followees' state
    // is what A had cached at it (a change lost there is never logged again).
    let first_records = env.read_all(&one_t.input, half);
    let first_ends = end_offsets(&first_records);
    let partition_of: BTreeMap<Vec<u8>, i32> = first_records
        .into_iter()
        .map(|r| (r.key, r.partition))
        .collect();
    let second: Vec<Vec<u8>> = all[half..]
        .iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("event");
            v["followee_id"]
                .as_str()
                .and_then(|f| partition_of.get(f.as_bytes()))
                .is_some_and(|p| b_parts.contains(p))
        })
        .cloned()
        .collect();
    assert!(
        second.len() > 100,
        "{} events of B's followees",
        second.len()
    );
    let n = half + second.len();
    let second_half = env.write_lines("cached-assign-2.jsonl", &second);
    env.produce(&second_half, &one_t.input);
    let a_total = a_done + second.len() as f64;
    wait_until(
        Duration::from_secs(60),
        "the second half processed by A",
        &a,
        || processed(&a) >= a_total,
    );
    // A's first partitions are committed to the end of the first half (the flush that
    // covered them is acknowledged) before A dies: A' does not re-read them, so their
    // state is the one logged.
    wait_until(
        Duration::from_secs(30),
        "A's first partitions committed",
        &a,
        || {
            let c = committed(&env.brokers, &group, &one_t.input);
            a_parts.iter().all(|p| c.get(p) == first_ends.get(p))
        },
    );
    a.kill9();
    let mut a2 = env.serve(&group_t, &group, &common);
    a2.wait_ready(Duration::from_secs(60));
    wait_committed(&env, &group, &one_t, n, &[&a2]);
    one.wait_events(n as f64, Duration::from_secs(60));
    assert_eq!(
        metric(&a2.metrics(), "followguard_replayed_events_total"),
        Some(0.0),
        "A' restored, no input rebuild"
    );

    let (want, got) = (outcome(&env, &one_t), outcome(&env, &group_t));
    assert!(!want.opened.is_empty(), "the stream opens alerts");
    got.assert_as(&want);
    let (ours, theirs) = (
        final_state(&env, &changelog),
        final_state(&env, &one_changelog),
    );
    let on_a: Vec<&String> = theirs
        .iter()
        .filter(|(_, f)| f.partition.is_some_and(|p| a_parts.contains(&p)))
        .map(|(id, _)| id)
        .collect();
    assert!(!on_a.is_empty());
    let differing: Vec<&&String> = on_a
        .iter()
        .filter(|id| ours.get(**id) != theirs.get(**id))
        .collect();
    let elsewhere = theirs
        .iter()
        .filter(|(id, f)| !on_a.contains(id) && ours.get(*id) != Some(*f))
        .count();
    eprintln!(
        "cached assignment: A owned {a_parts:?}, {a_before} flushes before B's kill ({committed_a} of \
         {a_done} processed records committed), {a_flushes_at_restore} once B's partitions were \
         restored; cached changes {}; final followee state on A's partitions: {} of {} differ \
         (elsewhere: {elsewhere})",
        if exported { "exported by the restore (stash)" } else { "flushed before the restore" },
        differing.len(),
        on_a.len()
    );
    assert!(
        differing.is_empty(),
        "followees of A's partitions differ from one instance: {differing:?}"
    );
    for s in [&mut one, &mut a2] {
        s.sigterm();
        s.wait_exit(Duration::from_secs(20));
    }
}

/// Issue 21, the group stall of the rolling-restart tests, reduced to two plain
/// consumers (no service): A owns every partition and leads the group; B joins, which
/// puts tansu's group into a rebalance with A still its leader; A stops right then. Had
/// A left the group (librdkafka's close sends LeaveGroup), tansu would keep the departed
/// A as the leader of every later round, no member would ever get an assignment and B
/// would wait forever (seen in the rolling tests; docs/state.md, "Rebalance behaviour").
/// Closed as `serve --leave-group-on-shutdown false` closes it (no LeaveGroup), A's
/// session times out, tansu elects another leader and B takes every partition.
/// (Mutation-checked: with `leave = true` B got nothing within the 45 s.)
#[test]
fn a_leader_stopped_mid_rebalance_without_leaving_lets_the_survivor_take_over() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let Some(env) = env() else { return };
    let t = Topics::new("wedge");
    env.create_topics(&t);
    let group = unique("gwedge");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let member = || -> StreamConsumer {
            ClientConfig::new()
                .set("bootstrap.servers", &env.brokers)
                .set("group.id", &group)
                .set("partition.assignment.strategy", "cooperative-sticky")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500")
                .create()
                .expect("consumer")
        };
        // Polls `c` (which serves its rebalances) until it owns `n` partitions.
        async fn owns(c: &StreamConsumer, n: usize, within: Duration) -> bool {
            let start = Instant::now();
            while start.elapsed() < within {
                let _ = tokio::time::timeout(Duration::from_millis(100), c.recv()).await;
                if c.assignment().map(|a| a.count()).unwrap_or(0) == n {
                    return true;
                }
            }
            false
        }
        let all = PARTITIONS as usize;
        let a = member();
        a.subscribe(&[&t.input]).expect("subscribe");
        assert!(
            owns(&a, all, Duration::from_secs(30)).await,
            "A alone owns every partition"
        );
        let b = member();
        b.subscribe(&[&t.input]).expect("subscribe");
        // B's first JoinGroup starts the round; A has not rejoined yet.
        let _ = tokio::time::timeout(Duration::from_millis(300), b.recv()).await;
        let stopped = Instant::now();
        tokio::task::spawn_blocking(move || kafka::close_group_consumer(a, false))
            .await
            .expect("close");
        assert!(
            owns(&b, all, Duration::from_secs(45)).await,
            "B took over A's partitions (tansu's group did not wedge)"
        );
        eprintln!(
            "wedge: B owned every partition {:.1}s after A stopped without leaving",
            stopped.elapsed().as_secs_f64()
        );
    });
}

/// The rolling tests' failure report (no broker): a resolve only one instance wrote is
/// traced to its followee, whose final states are compared field by field, whose
/// changelog versions are listed, and whose partition's history interleaves the members'
/// lines about that partition (and no other) with the test's own steps, in time order.
#[test]
fn a_failure_report_names_the_followee_its_state_and_its_partition_history() {
    let alert = |status: &str, at: &str| serde_json::json!({"alert_id": "a1", "status": status, "followee_id": "f1", "event_time": at});
    let want = Outcome {
        opened: BTreeSet::from(["a1".to_string()]),
        resolved: BTreeSet::from(["a1".to_string()]),
        alerts: vec![
            (1, 5, alert("open", "2026-01-01T00:00:00Z")),
            (1, 9, alert("resolved", "2026-01-02T03:00:00Z")),
        ],
        ..Outcome::default()
    };
    let got = Outcome {
        opened: want.opened.clone(),
        alerts: vec![(3, 7, alert("open", "2026-01-01T00:00:00Z"))],
        ..Outcome::default()
    };
    let state = |history: u16, frozen: bool| -> FolloweeState {
        serde_json::from_value(serde_json::json!({
            "v": 1, "followee_id": "f1", "partition": 2,
            "window": {"short_follows": [0, 0], "short_suspicious": [0, 0],
                "long_follows": [3, 1], "long_suspicious": [0, 0], "hist": [0],
                "base_follows_bits": 0, "base_suspicious_bits": 0, "history": history,
                "last_seen_s": 100, "frozen": frozen},
            "open": null, "last_burst": null, "pending": [], "newcomer": null
        }))
        .expect("state")
    };
    let theirs = BTreeMap::from([("f1".to_string(), state(31, false))]);
    let ours = BTreeMap::from([("f1".to_string(), state(25, true))]);
    let id = "f1".to_string();
    let differing = [&id];
    let logs = [
        (
            "A",
            "2026-12-07T09:00:01.000000Z  INFO followguard::kafka: partitions assigned partitions=[0, 2]\n\
             2026-12-07T09:00:01.500000Z  INFO followguard::kafka: partitions assigned partitions=[1]\n"
                .to_string(),
        ),
        (
            "B'",
            "2026-12-07T09:00:05.000000Z  INFO followguard::changelog: restoring partition from its \
             latest complete snapshot topic=\"x\" partition=2 from=10 end=20 skipped=10\n"
                .to_string(),
        ),
    ];
    let timeline = [(
        "2026-12-07T09:00:02.000000Z".to_string(),
        "A killed (-9), A' started".to_string(),
    )];
    let rec = |offset: i64, key: &str, value: serde_json::Value| Rec {
        partition: 2,
        offset,
        key: key.as_bytes().to_vec(),
        payload: if value.is_null() {
            Vec::new()
        } else {
            value.to_string().into_bytes()
        },
        headers: BTreeMap::new(),
    };
    let changelog = [
        rec(
            10,
            "s/2",
            serde_json::json!({"snapshot": "begin", "seq": 7}),
        ),
        rec(
            11,
            &changelog::followee_key("f1"),
            serde_json::to_value(state(30, false)).expect("json"),
        ),
        rec(15, &changelog::followee_key("f1"), serde_json::Value::Null),
    ];
    let campaigns = BTreeSet::new();
    let report = Report {
        want: &want,
        got: &got,
        campaigns_differ: &campaigns,
        theirs: &theirs,
        ours: &ours,
        differing: &differing,
        logs: &logs,
        timeline: &timeline,
    }
    .render(&changelog);
    for part in [
        "alerts resolved: only by one instance [\"a1\"]; only by the group []",
        "1 followees concerned (1 with a different final state)",
        "followee f1 (input partition Some(2))",
        "one   a1 resolved at 2026-01-02T03:00:00Z (alerts 1@9)",
        "group a1 open at 2026-01-01T00:00:00Z (alerts 3@7)",
        "window.frozen: false | true; window.history: 31 | 25",
        "snapshots begin at [\"10(seq 7)\"]",
        "f/f1@11: history 30 last_seen_s 100 frozen false open null",
        "f/f1@15: tombstone",
    ] {
        assert!(report.contains(part), "{part:?} missing from:\n{report}");
    }
    // Partition 2's history: A's assignment of it, the kill, B''s restore, in that
    // order; A's assignment of partition 1 is not part of it.
    let history: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.contains("input partition 2:"))
        .skip(1)
        .collect();
    assert_eq!(history.len(), 3, "{report}");
    assert!(history[0].contains("[A]") && history[0].contains("partitions=[0, 2]"));
    assert!(history[1].contains("[test] A killed (-9)"));
    assert!(history[2].contains("[B'] ") && history[2].contains("partition=2 "));
}
