//! The charts of an alert page, as inline SVG (no scripts, no external assets): the
//! "follower factory" (follow order against account creation date), new-follower rate
//! against the baseline, and the creation-date histogram.

use super::escape::esc;
use super::render::{date, datetime, AGE_BIN_LABELS};
use followguard_core::age::AGE_BINS;
use followguard_core::evidence::AlertEvidence;

const W: f64 = 960.0;
const ML: f64 = 86.0;
const MR: f64 = 16.0;
const MT: f64 = 16.0;
const MB: f64 = 40.0;

/// Value at quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[i64], q: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Follow order (x) against account creation date (y); flagged followers red, the
/// flagged followers' creation-date core (10th–90th percentile) shaded as the batch.
pub(super) fn factory_svg(e: &AlertEvidence) -> String {
    let h = 380.0;
    let (pw, ph) = (W - ML - MR, h - MT - MB);
    let pts = &e.followers;
    let n = pts.len();
    let mut flagged_created: Vec<i64> = pts
        .iter()
        .filter(|p| p.flagged)
        .map(|p| p.created_at_s)
        .collect();
    flagged_created.sort_unstable();
    let (mut lo, mut hi) = pts.iter().fold((i64::MAX, i64::MIN), |(l, u), p| {
        (l.min(p.created_at_s), u.max(p.created_at_s))
    });
    if n == 0 {
        (lo, hi) = (0, 1);
    }
    // f64 and saturating arithmetic: creation dates come from input and may be extreme.
    let span = (hi.saturating_sub(lo)).max(2 * 86_400);
    let pad = span / 25;
    let (lo, hi) = (lo.saturating_sub(pad), hi.saturating_add(pad));
    let yr = (hi as f64 - lo as f64).max(1.0);
    let y = |c: i64| MT + ph * (1.0 - (c as f64 - lo as f64) / yr);
    let x = |i: usize| ML + pw * (i as f64 + 0.5) / (n.max(1) as f64);
    let mut s = format!(
        r#"<svg id="factory" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" data-points="{n}" data-flagged="{}" data-y-span-days="{:.0}" role="img" aria-label="follower factory chart">"#,
        flagged_created.len(),
        yr / 86_400.0
    );
    // Y ticks: creation dates.
    for k in 0..=5 {
        let c = (lo as f64 + yr * f64::from(k) / 5.0) as i64;
        let yy = y(c);
        s.push_str(&format!(
            r##"<line x1="{ML}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e6ec"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6575">{}</text>"##,
            ML + pw,
            ML - 6.0,
            yy + 4.0,
            date(c)
        ));
    }
    if flagged_created.len() >= 5 {
        let (b0, b1) = (
            quantile(&flagged_created, 0.1),
            quantile(&flagged_created, 0.9),
        );
        let (y0, y1) = (y(b1), y(b0));
        s.push_str(&format!(
            r##"<rect class="batch-band" x="{ML}" y="{y0:.1}" width="{pw:.1}" height="{:.1}" fill="#d62728" fill-opacity="0.10" data-from="{}" data-to="{}" data-span-days="{:.0}"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="#a51111" stroke="#fff" stroke-width="3" paint-order="stroke">bought batch: {} flagged accounts created {} … {}</text>"##,
            (y1 - y0).max(1.0),
            date(b0),
            date(b1),
            (b1 as f64 - b0 as f64) / 86_400.0,
            ML + pw - 6.0,
            (y0 - 5.0).max(MT + 12.0),
            flagged_created.len(),
            date(b0),
            date(b1)
        ));
    }
    let oi = e.open_index();
    if oi < n {
        let xo = ML + pw * oi as f64 / n as f64;
        s.push_str(&format!(
            r##"<line id="opened-at" x1="{xo:.1}" x2="{xo:.1}" y1="{MT}" y2="{:.1}" stroke="#1d2330" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#1d2330">alert opened</text>"##,
            MT + ph,
            xo + 4.0,
            MT + 11.0
        ));
    }
    // Organic first, flagged on top.
    for pass in [false, true] {
        for (i, p) in pts.iter().enumerate().filter(|(_, p)| p.flagged == pass) {
            let (class, fill, r) = if pass {
                ("flagged", "#d62728", 2.6)
            } else {
                ("organic", "#7d8799", 2.2)
            };
            s.push_str(&format!(
                r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}" fill-opacity="0.75"><title>{} · created {} · score {:.2}</title></circle>"#,
                x(i),
                y(p.created_at_s),
                if p.flagged {
                    esc(p.screen_name())
                } else {
                    "organic follower".to_string()
                },
                date(p.created_at_s),
                p.score
            ));
        }
    }
    s.push_str(&format!(
        r##"<line x1="{ML}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#1d2330"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#1d2330">followers in follow order →  (account creation date ↑)</text></svg>"##,
        ML + pw,
        MT + ph,
        MT + ph,
        ML + pw / 2.0,
        h - 10.0
    ));
    s
}

/// Follows per hour in time buckets (flagged share in red) against the baseline.
pub(super) fn rate_svg(e: &AlertEvidence) -> String {
    let h = 240.0;
    let (pw, ph) = (W - ML - MR, h - MT - MB);
    let pts = &e.followers;
    let (t0, t1) = pts.iter().fold((i64::MAX, i64::MIN), |(l, u), p| {
        (l.min(p.event_time_ms), u.max(p.event_time_ms))
    });
    if pts.is_empty() {
        return r#"<p class="note" id="rate">No follows kept for this alert.</p>"#.to_string();
    }
    const BUCKETS_MS: [i64; 11] = [
        60_000,
        300_000,
        600_000,
        900_000,
        1_800_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
    ];
    let span = t1.saturating_sub(t0).max(1);
    let bucket = BUCKETS_MS
        .iter()
        .copied()
        .find(|b| span / b < 60)
        .unwrap_or(604_800_000);
    let start = t0.saturating_sub(t0.rem_euclid(bucket));
    let nb = usize::try_from(t1.saturating_sub(start) / bucket + 1)
        .unwrap_or(1)
        .clamp(1, 200);
    let mut total = vec![0f64; nb];
    let mut flagged = vec![0f64; nb];
    for p in pts {
        let i = usize::try_from(p.event_time_ms.saturating_sub(start) / bucket)
            .unwrap_or(0)
            .min(nb - 1);
        total[i] += f64::from(p.weight);
        if p.flagged {
            flagged[i] += f64::from(p.weight);
        }
    }
    let per_hour = 3_600_000.0 / bucket as f64;
    let baseline = e
        .records
        .first()
        .map_or(e.alert.baseline_rate_per_hour, |r| r.baseline_rate_per_hour);
    let baseline = f64::from(baseline);
    let ymax = total
        .iter()
        .map(|c| c * per_hour)
        .fold(baseline, f64::max)
        .max(1.0)
        * 1.15;
    let y = |v: f64| MT + ph * (1.0 - v / ymax);
    let bw = pw / nb as f64;
    let mut s = format!(
        r#"<svg id="rate" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" data-bucket-ms="{bucket}" data-baseline="{baseline:.2}" role="img" aria-label="new-follower rate against baseline">"#
    );
    for k in 0..=4 {
        let v = ymax * f64::from(k) / 4.0;
        s.push_str(&format!(
            r##"<line x1="{ML}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e3e6ec"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6575">{v:.0}/h</text>"##,
            ML + pw,
            y(v),
            y(v),
            ML - 6.0,
            y(v) + 4.0
        ));
    }
    for i in 0..nb {
        let xx = ML + bw * i as f64;
        let (tv, fv) = (total[i] * per_hour, flagged[i] * per_hour);
        if tv > 0.0 {
            s.push_str(&format!(
                r##"<rect x="{xx:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#9aa4b5"><title>{}: {tv:.0} follows/h, {fv:.0} flagged</title></rect>"##,
                y(tv),
                (bw - 1.0).max(0.5),
                MT + ph - y(tv),
                datetime(start.saturating_add(bucket.saturating_mul(i as i64)))
            ));
        }
        if fv > 0.0 {
            s.push_str(&format!(
                r##"<rect class="flagged-rate" x="{xx:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#d62728"/>"##,
                y(fv),
                (bw - 1.0).max(0.5),
                MT + ph - y(fv)
            ));
        }
    }
    let yb = y(baseline);
    s.push_str(&format!(
        r##"<line class="baseline" x1="{ML}" x2="{:.1}" y1="{yb:.1}" y2="{yb:.1}" stroke="#1f5fbf" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#1f5fbf" stroke="#fff" stroke-width="3" paint-order="stroke">baseline {baseline:.1}/h</text>"##,
        ML + pw,
        ML + pw - 4.0,
        yb - 4.0
    ));
    s.push_str(&format!(
        r##"<text x="{ML}" y="{:.1}" font-size="11" fill="#5b6575">{}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6575">{} UTC · bars of {} min (grey all follows, red flagged)</text></svg>"##,
        h - 10.0,
        datetime(start),
        ML + pw,
        h - 10.0,
        datetime(start.saturating_add(bucket.saturating_mul(nb as i64))),
        bucket / 60_000
    ));
    s
}

/// Bars of the creation-date histogram (account age at follow time).
pub(super) fn histogram_svg(hist: &[u16; AGE_BINS]) -> String {
    let h = 200.0;
    let (pw, ph) = (W - ML - MR, h - MT - MB);
    let max = f64::from(hist.iter().copied().max().unwrap_or(0).max(1));
    let bw = pw / AGE_BINS as f64;
    let mut s = format!(
        r#"<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="creation-date histogram">"#
    );
    for (i, (&c, label)) in hist.iter().zip(AGE_BIN_LABELS).enumerate() {
        let bh = ph * f64::from(c) / max;
        let xx = ML + bw * i as f64;
        s.push_str(&format!(
            r##"<rect class="bin" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#5f7ea8" data-count="{c}"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#1d2330">{c}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#5b6575">{label}</text>"##,
            xx + 3.0,
            MT + ph - bh,
            bw - 6.0,
            xx + bw / 2.0,
            (MT + ph - bh - 3.0).max(MT + 9.0),
            xx + bw / 2.0,
            h - 22.0
        ));
    }
    s.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#1d2330">account age at follow time</text></svg>"##,
        ML + pw / 2.0,
        h - 4.0
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 0.0), 1);
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 0.5), 3);
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 1.0), 5);
    }
}
