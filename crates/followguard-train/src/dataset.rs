//! Labelled account tables → owned profiles: CSVs (cresci format and flat `label`
//! format) and JSON-lines dumps of v1.1 user objects or follow events.
//!
//! Owns the tolerant reading of research dumps: booleans `1`/empty, the literal `NULL`
//! for missing strings, a crawl-time column (`crawled_at` / `updated`) used as "now" for
//! account age, and a label / group either from columns or given for the whole file.
//! Rows that cannot be used (no creation date, unreadable counts) are skipped and
//! counted, never guessed.

use anyhow::{bail, Context};
use followguard_core::event::Profile;
use followguard_core::time::{epoch_number_ms, parse_time_ms};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One labelled account.
#[derive(Debug, Clone)]
pub struct Row {
    pub profile: Profile<'static>,
    /// Crawl time of the row in epoch milliseconds: the "now" for account age.
    pub now_ms: i64,
    /// true = bot / bought follower.
    pub label: bool,
    /// Group name (e.g. `E13`, `FSF`), for per-group evaluation and splits.
    pub group: String,
}

/// Column names; the defaults fit the cresci-2015 / cresci-2017 dumps.
#[derive(Debug, Clone)]
pub struct Columns {
    /// Label columns tried in order (1 = bot).
    pub label: Vec<String>,
    /// Group columns tried in order.
    pub group: Vec<String>,
    /// Crawl-time columns tried in order; the first non-empty parseable value wins.
    pub crawl_time: Vec<String>,
    /// When the crawl time a row was snapshotted at is known only from outside the
    /// file (a dump without such a column): rows with no crawl-time value use this.
    pub as_of_ms: Option<i64>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            label: vec!["label_fake".into(), "label".into()],
            group: vec!["dataset".into(), "group".into()],
            crawl_time: vec![
                "crawled_at".into(),
                "updated".into(),
                "probe_timestamp".into(),
            ],
            as_of_ms: None,
        }
    }
}

/// A data argument: `PATH`, or `GROUP:LABEL:PATH` to name the group and give every row
/// the label (for files such as cresci-2017's, which carry no label column), or
/// `GROUP:human:PATH` / `GROUP:bot:PATH` to name the group and keep only the rows whose
/// own label is that (one side of a hand-labelled file holding both).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataSpec {
    pub path: PathBuf,
    pub group: Option<String>,
    pub label: Option<bool>,
    /// Keep only rows whose label (from the file) is this.
    pub keep: Option<bool>,
}

impl std::str::FromStr for DataSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        if let (Some(g), Some(l), Some(p)) = (parts.next(), parts.next(), parts.next()) {
            if !g.is_empty() && (l == "0" || l == "1") && !p.is_empty() {
                return Ok(DataSpec {
                    path: PathBuf::from(p),
                    group: Some(g.to_string()),
                    label: Some(l == "1"),
                    keep: None,
                });
            }
            if !g.is_empty() && (l == "human" || l == "bot") && !p.is_empty() {
                return Ok(DataSpec {
                    path: PathBuf::from(p),
                    group: Some(g.to_string()),
                    label: None,
                    keep: Some(l == "bot"),
                });
            }
        }
        if s.is_empty() {
            return Err("empty data path".into());
        }
        Ok(DataSpec {
            path: PathBuf::from(s),
            group: None,
            label: None,
            keep: None,
        })
    }
}

/// What a load did, for the progress line and the model's training summary.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub rows: usize,
    /// Skip reasons → count.
    pub skipped: BTreeMap<String, usize>,
}

/// Reads one CSV file.
pub fn load(spec: &DataSpec, cols: &Columns) -> anyhow::Result<(Vec<Row>, LoadReport)> {
    let file = std::fs::File::open(&spec.path)
        .with_context(|| format!("cannot open data file {}", spec.path.display()))?;
    let ext = spec.path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (mut rows, mut report) = if matches!(ext, "jsonl" | "ndjson") {
        read_jsonl(std::io::BufReader::new(file), spec, cols)
    } else if ext == "json" {
        read_json_array(std::io::BufReader::new(file), spec, cols)
    } else {
        read(file, spec, cols)
    }
    .with_context(|| format!("reading {}", spec.path.display()))?;
    if let Some(keep) = spec.keep {
        let before = rows.len();
        rows.retain(|r| r.label == keep);
        let other = before - rows.len();
        if other > 0 {
            report.skipped.insert("other_label".into(), other);
        }
        report.rows = rows.len();
    }
    Ok((rows, report))
}

/// Reads a JSON-lines account dump (`.jsonl` / `.ndjson`): one v1.1 user object per
/// line, as the platform's API returns it, a crawl record holding it under `user`, or
/// one follow event (its `follower` is the account and its `ts` the capture time). Label, group and crawl time come from the
/// same-named fields the CSV columns use (`label_fake`/`label`, `dataset`/`group`,
/// `crawled_at`/`updated`/`probe_timestamp`, strings or numbers), the file spec, or
/// `--as-of`. Unusable lines are skipped and counted by their parse error's kind.
pub fn read_jsonl<R: std::io::BufRead>(
    reader: R,
    spec: &DataSpec,
    cols: &Columns,
) -> anyhow::Result<(Vec<Row>, LoadReport)> {
    let mut records = Vec::new();
    for line in reader.split(b'\n') {
        let line = line.context("read error")?;
        let line = line.trim_ascii();
        if !line.is_empty() {
            // Not JSON (or not UTF-8): kept as a non-object, skipped as invalid_json.
            records.push(serde_json::from_slice(line).unwrap_or(Value::Null));
        }
    }
    read_records(&records, spec, cols)
}

/// Reads a `.json` account dump: one JSON array whose elements are what a JSON-lines
/// dump has per line (see [`read_jsonl`]).
pub fn read_json_array<R: std::io::Read>(
    reader: R,
    spec: &DataSpec,
    cols: &Columns,
) -> anyhow::Result<(Vec<Row>, LoadReport)> {
    let records: Vec<Value> = serde_json::from_reader(reader).context(
        "a .json account file must hold one JSON array of accounts (use .jsonl for one per line)",
    )?;
    read_records(&records, spec, cols)
}

/// The shared body of the JSON readers: one parsed account record per item.
fn read_records(
    records: &[Value],
    spec: &DataSpec,
    cols: &Columns,
) -> anyhow::Result<(Vec<Row>, LoadReport)> {
    let default_group = default_group(spec);
    let mut rows = Vec::new();
    let mut report = LoadReport::default();
    let mut skip = |why: &str| *report.skipped.entry(why.to_string()).or_insert(0) += 1;
    let text = |v: &Value| match v {
        Value::String(s) => clean(s).to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        _ => String::new(),
    };
    for record in records {
        let Value::Object(obj) = record else {
            skip("invalid_json");
            continue;
        };
        let field = |names: &[String]| {
            names
                .iter()
                .filter_map(|n| obj.get(n).map(text))
                .find(|s| !s.is_empty())
        };
        // A follow event, a crawl record that wraps the account
        // (`{"user": {…}, "probe_timestamp": …}`), or the account itself.
        let parsed = if obj.contains_key("follower") {
            followguard_core::event::parse_value(record).map(|e| (e.follower, e.ts_ms))
        } else {
            let account = match obj.get("user") {
                Some(user @ Value::Object(_)) if !obj.contains_key("id") => user,
                _ => record,
            };
            followguard_core::event::parse_profile(account).map(|p| (p, None))
        };
        let (profile, event_ts) = match parsed {
            // A labelled table row needs every count (issue 24 made absent counts missing
            // values in events): an unknown count is skipped, never read as zero.
            Ok((p, _)) if !complete(&p) => {
                skip("missing_field");
                continue;
            }
            Ok((p, ts)) => (p.into_owned(), ts),
            Err(e) => {
                skip(e.kind());
                continue;
            }
        };
        let crawl = field(&cols.crawl_time).and_then(|t| table_time_ms(&t));
        let Some(now_ms) = crawl.or(event_ts).or(cols.as_of_ms) else {
            skip("bad_crawl_time");
            continue;
        };
        let label = match spec.label {
            Some(l) => l,
            None => match field(&cols.label).as_deref().and_then(parse_label) {
                Some(l) => l,
                None => {
                    skip("bad_label");
                    continue;
                }
            },
        };
        let group = spec
            .group
            .clone()
            .or_else(|| field(&cols.group))
            .unwrap_or_else(|| default_group.clone());
        rows.push(Row {
            profile,
            now_ms,
            label,
            group,
        });
    }
    if rows.is_empty() {
        let n = |k: &str| report.skipped.get(k).copied().unwrap_or(0);
        if n("bad_label") > 0 {
            bail!(
                "no line has a label (tried fields {:?}); name the file as GROUP:LABEL:PATH, \
                 e.g. genuine:0:{}",
                cols.label,
                spec.path.display()
            );
        }
        if n("bad_crawl_time") > 0 {
            bail!(
                "no line has a crawl time (tried fields {:?}) or a `ts`; give the capture \
                 time with --as-of (e.g. --as-of 2019-06-01T00:00:00Z)",
                cols.crawl_time
            );
        }
    }
    report.rows = rows.len();
    Ok((rows, report))
}

/// A label cell: `1`/`true`/`bot`/`fake` or `0`/`false`/`human`/`genuine`.
fn parse_label(s: &str) -> Option<bool> {
    match s {
        "1" | "true" | "True" | "bot" | "fake" => Some(true),
        "0" | "false" | "False" | "human" | "genuine" => Some(false),
        _ => None,
    }
}

/// Group of rows without a group column or spec: the file's stem.
fn default_group(spec: &DataSpec) -> String {
    spec.group.clone().unwrap_or_else(|| {
        spec.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into())
    })
}

/// Reads a CSV from any reader (tests use in-memory strings).
pub fn read<R: std::io::Read>(
    reader: R,
    spec: &DataSpec,
    cols: &Columns,
) -> anyhow::Result<(Vec<Row>, LoadReport)> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = rdr.headers().context("missing CSV header")?.clone();
    let idx = |name: &str| headers.iter().position(|h| h == name);
    let first = |names: &[String]| names.iter().find_map(|n| idx(n));
    let required = |name: &'static str| -> anyhow::Result<usize> {
        idx(name).with_context(|| format!("CSV has no `{name}` column"))
    };
    let c_id = required("id")?;
    let c_created = required("created_at")?;
    let counts = [
        required("followers_count")?,
        required("friends_count")?,
        required("statuses_count")?,
        required("favourites_count")?,
        required("listed_count")?,
    ];
    let c_label = first(&cols.label);
    let c_group = first(&cols.group);
    let crawl: Vec<usize> = cols.crawl_time.iter().filter_map(|n| idx(n)).collect();
    if spec.label.is_none() && c_label.is_none() {
        bail!(
            "no label column (tried {:?}); name the file as GROUP:LABEL:PATH, e.g. genuine:0:{}",
            cols.label,
            spec.path.display()
        );
    }
    if crawl.is_empty() && cols.as_of_ms.is_none() {
        bail!(
            "{}: no crawl-time column (tried {:?}); account age must be measured when the \
             profile was captured: name the column with --crawl-time-column, or give that \
             time with --as-of (e.g. --as-of 2019-06-01T00:00:00Z)",
            spec.path.display(),
            cols.crawl_time
        );
    }
    let opt = |name: &str| idx(name);
    let (c_sn, c_name, c_desc, c_url, c_loc) = (
        opt("screen_name"),
        opt("name"),
        opt("description"),
        opt("url"),
        opt("location"),
    );
    let (c_dp, c_dpi, c_bg, c_prot) = (
        opt("default_profile"),
        opt("default_profile_image"),
        opt("profile_use_background_image"),
        opt("protected"),
    );
    let default_group = default_group(spec);

    let mut rows = Vec::new();
    let mut report = LoadReport::default();
    let mut skip = |why: &str| *report.skipped.entry(why.to_string()).or_insert(0) += 1;
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(_) => {
                skip("unreadable_csv_record");
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(clean).unwrap_or("");
        let id = get(Some(c_id));
        if id.is_empty() {
            skip("missing_id");
            continue;
        }
        let Some(created_ms) = table_time_ms(get(Some(c_created))) else {
            skip("bad_created_at");
            continue;
        };
        let Some(now_ms) = crawl
            .iter()
            .find_map(|&c| table_time_ms(get(Some(c))))
            .or(cols.as_of_ms)
        else {
            skip("bad_crawl_time");
            continue;
        };
        let mut n = [0u64; 5];
        let mut ok = true;
        for (v, &c) in n.iter_mut().zip(&counts) {
            match parse_count(get(Some(c))) {
                Some(x) => *v = x,
                None => ok = false,
            }
        }
        if !ok {
            skip("bad_count");
            continue;
        }
        let label = match spec.label.or_else(|| parse_label(get(c_label))) {
            Some(l) => l,
            None => {
                skip("bad_label");
                continue;
            }
        };
        let group = match (&spec.group, get(c_group)) {
            (Some(g), _) => g.clone(),
            (None, "") => default_group.clone(),
            (None, g) => g.to_string(),
        };
        let owned = |c: Option<usize>| Cow::Owned(get(c).to_string());
        let url = get(c_url);
        let profile = Profile {
            id: Cow::Owned(id.to_string()),
            screen_name: owned(c_sn),
            name: owned(c_name),
            description: owned(c_desc),
            url: (!url.is_empty()).then(|| Cow::Owned(url.to_string())),
            location: owned(c_loc),
            created_at_s: created_ms.div_euclid(1000),
            followers_count: Some(n[0]),
            friends_count: Some(n[1]),
            statuses_count: Some(n[2]),
            favourites_count: Some(n[3]),
            listed_count: Some(n[4]),
            default_profile: parse_bool(get(c_dp)),
            default_profile_image: parse_bool(get(c_dpi)),
            // Absent column: the platform default (true), as for an event without it.
            profile_use_background_image: c_bg.is_none_or(|_| parse_bool(get(c_bg))),
            protected: parse_bool(get(c_prot)),
            unknown: 0,
        };
        rows.push(Row {
            profile,
            now_ms,
            label,
            group,
        });
    }
    report.rows = rows.len();
    Ok((rows, report))
}

/// Missing values appear as empty cells and as the literal string `NULL`.
fn clean(s: &str) -> &str {
    let t = s.trim();
    if t == "NULL" {
        ""
    } else {
        t
    }
}

/// Booleans are `1` or empty (empty = false); `true`/`True` also accepted.
fn parse_bool(s: &str) -> bool {
    matches!(s, "1" | "true" | "True" | "TRUE")
}

/// Counts are integers; some exports write `12.0`. Empty means the count is unknown,
/// which is a skip, not a zero: a zero would be a strong (false) bot signal.
fn parse_count(s: &str) -> Option<u64> {
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    (f >= 0.0 && f.fract() == 0.0 && f < 9.0e15).then_some(f as u64)
}

/// A time cell of an account table: Twitter's `created_at` format, RFC 3339, or the
/// zone-less forms that database and spreadsheet exports write — `2015-02-14 10:54:49`
/// (with or without fractional seconds) and `2015-02-14 10:54` (seconds dropped by a
/// spreadsheet round trip) — read as UTC; an ISO offset written without its colon
/// (`+0000`); and epoch numbers, 9–10 digits as seconds and 12–13 digits as milliseconds
/// (1973–2286 either way, so the two cannot be confused). `NULL` and empty cells are
/// `None`.
pub fn table_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s == "NULL" {
        return None;
    }
    if s.bytes().all(|c| c.is_ascii_digit()) {
        // Other lengths are not epoch numbers (`20070406` is a date).
        return matches!(s.len(), 9 | 10 | 12 | 13)
            .then(|| s.parse().ok().map(epoch_number_ms))
            .flatten();
    }
    parse_time_ms(s).or_else(|| {
        let b = s.as_bytes();
        let n = b.len();
        if n > 19
            && matches!(b[n - 5], b'+' | b'-')
            && b[n - 4..].iter().all(u8::is_ascii_digit)
            && matches!(b[10], b'T' | b' ')
        {
            return parse_time_ms(&format!("{}:{}", &s[..n - 2], &s[n - 2..]));
        }
        if b.len() == 19 || (b.len() > 19 && b[19] == b'.') {
            parse_time_ms(&format!("{s}Z"))
        } else if b.len() == 16 {
            parse_time_ms(&format!("{s}:00Z"))
        } else {
            None
        }
    })
}

/// Loads several specs, printing one progress line per file to stderr.
pub fn load_all(specs: &[DataSpec], cols: &Columns) -> anyhow::Result<Vec<Row>> {
    let mut all = Vec::new();
    for spec in specs {
        let (rows, report) = load(spec, cols)?;
        eprintln!(
            "loaded {} rows from {} (skipped: {:?})",
            report.rows,
            spec.path.display(),
            report.skipped
        );
        all.extend(rows);
    }
    if all.is_empty() {
        bail!("no usable rows in the data files");
    }
    Ok(all)
}

/// Deterministic holdout membership of an account id (same id, seed and fraction ⇒ same
/// answer on every run and machine): a 64-bit FNV-1a hash of seed and id, scaled to [0, 1).
pub fn in_holdout(id: &str, seed: u64, frac: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(id.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Final avalanche so nearby ids spread evenly.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    ((h >> 11) as f64 / (1u64 << 53) as f64) < frac
}

/// Default data directory: `$FOLLOWGUARD_DATA_DIR`, else `<checkout>/../shared/data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("FOLLOWGUARD_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// Whether every count of a profile is known (a training row needs them all).
pub fn complete(p: &Profile<'_>) -> bool {
    [
        p.followers_count,
        p.friends_count,
        p.statuses_count,
        p.favourites_count,
        p.listed_count,
    ]
    .iter()
    .all(Option::is_some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "id,name,screen_name,statuses_count,followers_count,friends_count,favourites_count,listed_count,created_at,url,location,default_profile,default_profile_image,description,crawled_at,updated,label,dataset\n";

    fn read_str(body: &str, spec: &str) -> (Vec<Row>, LoadReport) {
        let data = format!("{HEADER}{body}");
        read(data.as_bytes(), &spec.parse().unwrap(), &Columns::default()).unwrap()
    }

    #[test]
    fn null_strings_and_empty_booleans() {
        let (rows, rep) = read_str(
            "7,NULL,bob,10,2,300,NULL,0,Fri Apr 06 10:58:22 +0000 2007,NULL,NULL,,1,NULL,,2015-02-14 10:54:49,1,X\n",
            "x.csv",
        );
        // An unknown count is not a zero: the row is skipped, and says why.
        assert!(rows.is_empty());
        assert_eq!(rep.skipped["bad_count"], 1);
        let (rows, rep) = read_str(
            "7,NULL,bob,10,2,300,0,0,Fri Apr 06 10:58:22 +0000 2007,NULL,NULL,,1,NULL,,2015-02-14 10:54:49,1,X\n",
            "x.csv",
        );
        assert!(rep.skipped.is_empty());
        let r = &rows[0];
        assert_eq!(r.profile.name, "");
        assert_eq!(r.profile.url, None);
        assert_eq!(r.profile.location, "");
        assert!(!r.profile.default_profile, "empty boolean is false");
        assert!(r.profile.default_profile_image);
        assert_eq!(r.profile.description, "");
        assert!(r.label);
        assert_eq!(r.group, "X");
        // Empty crawled_at falls back to `updated`, read as UTC.
        assert_eq!(r.now_ms, parse_time_ms("2015-02-14T10:54:49Z").unwrap());
        assert_eq!(r.profile.created_at_s, 1_175_857_102);
    }

    #[test]
    fn unusable_rows_are_skipped_and_counted() {
        let (rows, rep) = read_str(
            concat!(
                "1,a,a,1,1,1,1,1,not a date,,,,,,,2015-02-14 10:54:49,0,H\n",
                "2,a,a,1,NULL,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,,2015-02-14 10:54:49,0,H\n",
                "3,a,a,1,1,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,,,0,H\n",
                "4,a,a,1,1,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,,2015-02-14 10:54:49,maybe,H\n",
                "5,a,a,1,1,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,2014-01-01 00:00:00,2015-02-14 10:54:49,0,H\n",
                "6,a,a,1,1,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,,2015-02-14 10:26,0,H\n",
            ),
            "x.csv",
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].now_ms,
            parse_time_ms("2014-01-01T00:00:00Z").unwrap(),
            "crawled_at wins"
        );
        assert_eq!(
            rows[1].now_ms,
            parse_time_ms("2015-02-14T10:26:00Z").unwrap(),
            "no seconds"
        );
        assert_eq!(rep.skipped["bad_created_at"], 1);
        assert_eq!(rep.skipped["bad_count"], 1);
        assert_eq!(rep.skipped["bad_crawl_time"], 1);
        assert_eq!(rep.skipped["bad_label"], 1);
    }

    #[test]
    fn created_at_in_export_formats_reads_as_utc() {
        // Twitter's format, RFC 3339 and the zone-less forms of database and spreadsheet
        // exports all give the same instant; a bare date is midnight UTC.
        let read_created = |cell: &str| {
            read_str(
                &format!("1,a,a,1,1,1,1,1,{cell},,,,,,,2015-02-14 10:54:49,0,H\n"),
                "x.csv",
            )
        };
        let twitter = "Fri Apr 06 10:58:22 +0000 2007";
        for (cell, want) in [
            (twitter, 1_175_857_102),
            ("2007-04-06T10:58:22Z", 1_175_857_102),
            ("2007-04-06T12:58:22+02:00", 1_175_857_102),
            ("2007-04-06 10:58:22", 1_175_857_102),
            ("2007-04-06 10:58:22.123", 1_175_857_102),
            ("2007-04-06 10:58", 1_175_857_080),
            ("2007-04-06", 1_175_817_600),
            ("2007-04-06T12:58:22+0200", 1_175_857_102),
            ("2007-04-06T10:58:22.5-0000", 1_175_857_102),
            ("2007-04-06 10:58:22+0000", 1_175_857_102),
            ("1175857102", 1_175_857_102),
            ("1175857102000", 1_175_857_102),
            ("123456789", 123_456_789),
        ] {
            let (rows, rep) = read_created(cell);
            assert!(rep.skipped.is_empty(), "{cell}: {:?}", rep.skipped);
            assert_eq!(rows[0].profile.created_at_s, want, "{cell}");
        }
        for bad in [
            "NULL",
            "2007-04-06 10",
            "06/04/2007",
            "11758571020",
            "20070406",
            "2007-04-06T10:58:22+02",
        ] {
            let (rows, rep) = read_created(bad);
            assert!(rows.is_empty(), "{bad}");
            assert_eq!(rep.skipped["bad_created_at"], 1, "{bad}");
        }
    }

    #[test]
    fn spec_gives_group_and_label() {
        let spec: DataSpec = "genuine:0:/d/genuine_accounts.csv".parse().unwrap();
        assert_eq!(spec.group.as_deref(), Some("genuine"));
        assert_eq!(spec.label, Some(false));
        assert_eq!(spec.path, PathBuf::from("/d/genuine_accounts.csv"));
        let plain: DataSpec = "/d/x.csv".parse().unwrap();
        assert_eq!((plain.group, plain.label), (None, None));
        let side: DataSpec = "gil:human:/d/g.csv".parse().unwrap();
        assert_eq!(
            (side.group.as_deref(), side.label, side.keep),
            (Some("gil"), None, Some(false))
        );
        let (rows, _) = read_str(
            "9,a,a,1,1,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,,2015-02-14 10:54:49,,\n",
            "G:1:x.csv",
        );
        assert!(rows[0].label);
        assert_eq!(rows[0].group, "G");
    }

    #[test]
    fn keep_spec_takes_one_side_of_a_mixed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.csv");
        let row = |id: u32, label: u8| {
            format!("{id},a,a,1,1,1,1,1,Fri Apr 06 10:58:22 +0000 2007,,,,,,,2015-02-14 10:54:49,{label},g\n")
        };
        std::fs::write(
            &path,
            format!("{HEADER}{}{}{}", row(1, 0), row(2, 1), row(3, 0)),
        )
        .unwrap();
        let spec: DataSpec = format!("gh:human:{}", path.display()).parse().unwrap();
        let (rows, rep) = load(&spec, &Columns::default()).unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| &*r.profile.id).collect();
        assert_eq!(ids, ["1", "3"]);
        assert!(rows.iter().all(|r| !r.label && r.group == "gh"));
        assert_eq!((rep.rows, rep.skipped["other_label"]), (2, 1));
    }

    #[test]
    fn missing_label_column_is_a_clear_error() {
        let data = "id,created_at,followers_count,friends_count,statuses_count,favourites_count,listed_count,updated\n";
        let err = read(
            data.as_bytes(),
            &"x.csv".parse().unwrap(),
            &Columns::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GROUP:LABEL:PATH"), "{err}");
    }

    #[test]
    fn json_lines_dumps_of_user_objects_and_events() {
        let user = r#"{"id": 1502026416, "id_str": "1502026416", "screen_name": "a_b", "name": "A B", "created_at": "Tue Jun 11 11:20:35 +0000 2013", "followers_count": 208, "friends_count": 332, "statuses_count": 2177, "favourites_count": 265, "listed_count": 1, "default_profile": false, "verified": false, "lang": "en", "crawled_at": "2019-06-01T00:00:00Z", "label": "human", "group": "g19"}"#;
        let event = r#"{"type": "follow", "ts": 1559347200000, "followee_id": "9", "follower": {"id": "7", "created_at": "2019-05-01T00:00:00Z", "followers_count": 1, "friends_count": 900, "statuses_count": 0, "favourites_count": 0, "listed_count": 0}, "label": 1}"#;
        let no_time = r#"{"id": "8", "created_at": "2019-05-01T00:00:00Z", "followers_count": 1, "friends_count": 2, "statuses_count": 3, "favourites_count": 4, "listed_count": 0, "label": 0}"#;
        let no_count = r#"{"id": "9", "created_at": "2019-05-01T00:00:00Z", "followers_count": 1, "label": 0}"#;
        let text = format!("{user}\r\n\n{event}\n{no_time}\n{no_count}\nnot json\n\u{1}\n");
        let mut text = text.into_bytes();
        text.extend_from_slice(b"{\"id\": \"\xff\"}\n"); // not UTF-8: skipped, not fatal
        let spec: DataSpec = "dump.jsonl".parse().unwrap();
        let (rows, rep) = read_jsonl(&text[..], &spec, &Columns::default()).unwrap();
        assert_eq!(rows.len(), 2, "{:?}", rep.skipped);
        assert_eq!(rows[0].profile.id, "1502026416");
        assert_eq!(rows[0].profile.created_at_s, 1_370_949_635);
        assert_eq!(rows[0].profile.statuses_count, Some(2177));
        assert_eq!((rows[0].now_ms, rows[0].label), (1_559_347_200_000, false));
        assert_eq!(rows[0].group, "g19");
        assert_eq!(
            (rows[1].profile.friends_count, rows[1].label),
            (Some(900), true)
        );
        assert_eq!(
            rows[1].now_ms, 1_559_347_200_000,
            "an event's ts is its capture time"
        );
        assert_eq!(rows[1].group, "dump");
        let want: BTreeMap<String, usize> = [
            ("bad_crawl_time".to_string(), 1),
            ("missing_field".to_string(), 1),
            ("invalid_json".to_string(), 3),
        ]
        .into();
        assert_eq!(rep.skipped, want);
        // The same account as a CSV row and as a user object reads the same.
        let (csv_rows, _) = read_str(
            "7,Bob B,bob_7,10,2,300,5,0,Fri Apr 06 10:58:22 +0000 2007,http://b.co,Rome,1,,hi,,2015-02-14 10:54:49,1,X\n",
            "x.csv",
        );
        let as_json = r#"{"id": 7, "name": "Bob B", "screen_name": "bob_7", "statuses_count": 10, "followers_count": 2, "friends_count": 300, "favourites_count": 5, "listed_count": 0, "created_at": "Fri Apr 06 10:58:22 +0000 2007", "url": "http://b.co", "location": "Rome", "default_profile": true, "default_profile_image": false, "protected": false, "description": "hi", "updated": "2015-02-14 10:54:49", "label": 1, "dataset": "X"}"#;
        let (json_rows, _) = read_jsonl(as_json.as_bytes(), &spec, &Columns::default()).unwrap();
        assert_eq!(json_rows[0].profile, csv_rows[0].profile);
        assert_eq!(
            (json_rows[0].now_ms, json_rows[0].label, &json_rows[0].group),
            (csv_rows[0].now_ms, csv_rows[0].label, &csv_rows[0].group)
        );
        // --as-of fills a missing crawl time.
        let cols = Columns {
            as_of_ms: Some(1_559_347_200_000),
            ..Columns::default()
        };
        let (rows, _) = read_jsonl(no_time.as_bytes(), &spec, &cols).unwrap();
        assert_eq!(rows[0].now_ms, 1_559_347_200_000);
        // A crawl record wrapping the account under `user`.
        let wrapped = format!(
            r#"{{"user": {}, "probe_timestamp": "Sat Jun 01 00:00:00 +0000 2019", "label": "bot"}}"#,
            no_time.replace(r#", "label": 0"#, "")
        );
        let (rows, rep) = read_jsonl(wrapped.as_bytes(), &spec, &Columns::default()).unwrap();
        assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
        assert_eq!(rows[0].profile.id, "8");
        assert_eq!((rows[0].now_ms, rows[0].label), (1_559_347_200_000, true));
        // The same records as one JSON array (`.json`).
        let array = format!("[{user},\n{event}]");
        let (rows, rep) = read_json_array(array.as_bytes(), &spec, &Columns::default()).unwrap();
        assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].profile.id.as_ref(), rows[1].profile.id.as_ref()),
            ("1502026416", "7")
        );
        let err = read_json_array(user.as_bytes(), &spec, &Columns::default()).unwrap_err();
        assert!(format!("{err:#}").contains("one JSON array"), "{err:#}");
        // A dump nobody labelled says how to label it.
        let unlabelled = user.replace(r#", "label": "human""#, "");
        let err = read_jsonl(unlabelled.as_bytes(), &spec, &Columns::default()).unwrap_err();
        assert!(err.to_string().contains("GROUP:LABEL:PATH"), "{err}");
        let (rows, _) = read_jsonl(
            unlabelled.as_bytes(),
            &"h:0:dump.jsonl".parse().unwrap(),
            &Columns::default(),
        )
        .unwrap();
        assert_eq!((rows[0].label, rows[0].group.as_str()), (false, "h"));
    }

    #[test]
    fn a_dump_without_crawl_time_needs_as_of_and_uses_it() {
        let data = "id,created_at,followers_count,friends_count,statuses_count,favourites_count,listed_count\n\
                    7,2019-05-02T00:00:00Z,10,20,30,40,0\n";
        let spec: DataSpec = "g:1:dump.csv".parse().unwrap();
        let err = read(data.as_bytes(), &spec, &Columns::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("dump.csv") && msg.contains("--as-of"), "{msg}");
        let cols = Columns {
            as_of_ms: table_time_ms("2019-06-01T00:00:00Z"),
            ..Columns::default()
        };
        let (rows, rep) = read(data.as_bytes(), &spec, &cols).unwrap();
        assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].now_ms, 1_559_347_200_000);
        // A row's own crawl time still wins over --as-of; `probe_timestamp` is a default name.
        let own = "id,created_at,followers_count,friends_count,statuses_count,favourites_count,listed_count,probe_timestamp\n\
                   7,2019-05-02T00:00:00Z,10,20,30,40,0,2019-05-03 00:00:00\n\
                   8,2019-05-02T00:00:00Z,10,20,30,40,0,\n";
        let (rows, _) = read(own.as_bytes(), &spec, &cols).unwrap();
        assert_eq!(rows[0].now_ms, 1_556_841_600_000);
        assert_eq!(rows[1].now_ms, 1_559_347_200_000);
    }
}
