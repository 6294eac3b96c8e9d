//! Follower-classifier throughput on realistic follow events (~0.8 KB, v1.1-shaped
//! profiles, built here; no data files): scoring alone, parse + features + score with a
//! cold cache, and with a warm cache.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use followguard_core::event;
use followguard_core::model::ScoreCache;
use std::hint::black_box;
use std::path::Path;

/// xorshift: reproducible variety without a data file.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

const FIRST: [&str; 8] = [
    "Giulia", "Marco", "Tasuku", "Ana", "John", "Fatima", "Lukas", "Mei",
];
const LAST: [&str; 8] = [
    "Rossi", "Hayakawa", "Silva", "Smith", "Khan", "Müller", "Chen", "Bianchi",
];
const BIOS: [&str; 4] = [
    "",
    "Coffee, code and cycling. Opinions are my own.",
    "Fotografa e viaggiatrice 📷 | Roma → Tokyo",
    "Follow back 100% #teamfollowback #followme",
];

/// One follow event with a varied but plausible profile, about 0.8 KB (the fields a
/// follow event carries plus the usual v1.1 extras a producer forwards unfiltered).
fn event(i: u64, rng: &mut Rng) -> String {
    let bot = rng.next(3) == 0;
    let (fo, fr, st) = if bot {
        (rng.next(30), 300 + rng.next(1500), rng.next(60))
    } else {
        (
            50 + rng.next(3000),
            50 + rng.next(900),
            100 + rng.next(30_000),
        )
    };
    let first = FIRST[rng.next(8) as usize];
    let last = LAST[rng.next(8) as usize];
    let sn = if bot {
        format!("{first}{}", rng.next(99_999))
    } else {
        format!("{}_{}", first.to_lowercase(), last.to_lowercase())
    };
    let id = 100_000_000 + i * 7919;
    format!(
        concat!(
            r#"{{"event_id":"f-{i:09}","type":"follow","ts":"2026-11-28T10:{m:02}:{s:02}.{ms:03}Z","followee_id":"{followee}","#,
            r#""follower":{{"id":"{id}","screen_name":"{sn}","name":"{first} {last}","description":"{bio}","#,
            r#""url":{url},"location":"{loc}","created_at":"{dow} {mon} {day:02} {h:02}:{m:02}:{s:02} +0000 {year}","#,
            r#""followers_count":{fo},"friends_count":{fr},"statuses_count":{st},"favourites_count":{fav},"listed_count":{li},"#,
            r#""default_profile":{dp},"default_profile_image":false,"profile_use_background_image":true,"verified":false,"protected":false,"#,
            r#""lang":null,"time_zone":null,"utc_offset":null,"geo_enabled":{geo},"#,
            r#""profile_background_color":"C0DEED","profile_link_color":"1DA1F2","#,
            r#""profile_image_url_https":"https://pbs.twimg.com/profile_images/{id}/{sn}_normal.jpg","#,
            r#""profile_banner_url":"https://pbs.twimg.com/profile_banners/{id}/1412518148"}}}}"#
        ),
        i = i,
        m = rng.next(60),
        s = rng.next(60),
        ms = rng.next(1000),
        followee = 783_214 + rng.next(50),
        id = id,
        sn = sn,
        first = first,
        last = last,
        bio = BIOS[rng.next(4) as usize],
        url = if rng.next(3) == 0 {
            r#""https://t.co/abc123""#
        } else {
            "null"
        },
        loc = if rng.next(3) == 0 { "" } else { "Tokyo, Japan" },
        dow = "Tue",
        mon = ["Jan", "Mar", "Jun", "Sep", "Nov"][rng.next(5) as usize],
        day = 1 + rng.next(28),
        h = rng.next(24),
        year = 2009 + rng.next(16),
        fo = fo,
        fr = fr,
        st = st,
        fav = if bot { rng.next(5) } else { rng.next(20_000) },
        li = if bot { 0 } else { rng.next(40) },
        dp = bot || rng.next(4) == 0,
        geo = rng.next(2) == 0,
    )
}

/// CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`). The build machine is
/// shared: wall time there also counts other processes' turns on the core, thread CPU
/// time counts only ours, which is what "per core" throughput means.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; no other memory is touched.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (d, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e3, "µs cpu")
        } else {
            (1e6, "ms cpu")
        };
        for v in values {
            *v /= d;
        }
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        for v in values {
            *v = n * 1e9 / *v / 1e3;
        }
        "Kelem/s cpu"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench(c: &mut Criterion) {
    run(c, "model");
}

fn bench_cpu(c: &mut Criterion<CpuTime>) {
    run(c, "model_cpu");
}

fn run<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    // FOLLOWGUARD_BENCH_MODEL: another model file, to compare two models in one session.
    let path = std::env::var_os("FOLLOWGUARD_BENCH_MODEL").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json"),
        Into::into,
    );
    let model = followguard_train::model_file::load(&path).expect("the benchmarked model");
    eprintln!("model: {} ({})", model.version(), path.display());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events: Vec<String> = (0..100_000).map(|i| event(i, &mut rng)).collect();
    let mean_len = events.iter().map(String::len).sum::<usize>() / events.len();
    eprintln!("events: {} distinct, mean {mean_len} bytes", events.len());
    let parsed: Vec<_> = events
        .iter()
        .take(4096)
        .map(|e| event::parse(e.as_bytes()).expect("bench events are valid"))
        .collect();

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    g.bench_function("score", |b| {
        b.iter(|| {
            let e = &parsed[i % parsed.len()];
            i += 1;
            black_box(model.score(black_box(&e.follower), e.ts_ms.unwrap_or(0)))
        })
    });

    let mut fi = 0usize;
    g.bench_function("features_only", |b| {
        b.iter(|| {
            let e = &parsed[fi % parsed.len()];
            fi += 1;
            black_box(model.features(black_box(&e.follower), e.ts_ms.unwrap_or(0)))
        })
    });
    let xs: Vec<_> = parsed
        .iter()
        .map(|e| model.features(&e.follower, e.ts_ms.unwrap_or(0)))
        .collect();
    let mut ri = 0usize;
    g.bench_function("forest_and_linear_only", |b| {
        b.iter(|| {
            let x = &xs[ri % xs.len()];
            ri += 1;
            black_box(model.raw(black_box(x)))
        })
    });

    // Cold: 100k distinct followers cycled through a 4096-entry cache: every lookup misses.
    let mut cold = ScoreCache::new(4096);
    let mut j = 0usize;
    g.bench_function("parse_features_score_cold_cache", |b| {
        b.iter(|| {
            let raw = events[j % events.len()].as_bytes();
            j += 1;
            let e = event::parse(black_box(raw)).expect("valid");
            black_box(cold.get_or_score(&model, &e.follower, e.ts_ms.unwrap_or(0)))
        })
    });
    eprintln!("cold cache: hits {} misses {}", cold.hits(), cold.misses());

    // Warm: 1024 followers (bought followers follow many accounts) in a 16384-entry cache.
    let mut warm = ScoreCache::new(16_384);
    let mut k = 0usize;
    g.bench_function("parse_features_score_warm_cache", |b| {
        b.iter(|| {
            let raw = events[k % 1024].as_bytes();
            k += 1;
            let e = event::parse(black_box(raw)).expect("valid");
            black_box(warm.get_or_score(&model, &e.follower, e.ts_ms.unwrap_or(0)))
        })
    });
    eprintln!(
        "warm cache: hits {} misses {} len {} memory {} bytes",
        warm.hits(),
        warm.misses(),
        warm.len(),
        warm.memory_bytes()
    );

    let mut p = 0usize;
    g.bench_function("parse_only", |b| {
        b.iter(|| {
            let raw = events[p % events.len()].as_bytes();
            p += 1;
            black_box(event::parse(black_box(raw)).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_group! {
    name = benches_cpu;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_cpu
}
criterion_main!(benches, benches_cpu);
