//! Conformance of `drover_scheduler_engine::schedule` with Chronos, against the shared corpus
//! `../shared/conformance/iso8601/cases.tsv` (read in place, never copied; see its
//! `SOURCES.md` for the columns and placeholders). When the corpus is absent the test
//! says it skipped and passes.
//!
//! Every row is classified as matched, deliberately different (with the reason, listed
//! per row in [`DELIBERATE`]) or not applicable (with the reason); anything else fails.
//! Run with `--nocapture` to see the per-row verdicts and the counts.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, Months, Utc};
use drover_api::job::IsoDuration;
use drover_scheduler_engine::schedule::Schedule;

/// The instant `{now}` stands for. Fixed, so the run is reproducible.
const NOW: &str = "2026-11-27T08:15:42.123Z";

/// Rows (by schedule text as written in the corpus, and op) where Drover deliberately
/// differs from Chronos, and why.
const DELIBERATE: &[(&str, &str, &str)] = &[
    (
        "R5/2012-01-01T00:00:00.000Z/P1D",
        "jobs_to_run",
        "Chronos runs a job whose stored start is in the past at once, even when all its runs are long gone; \
         in Drover R5 from 2012-01-01 has no run left, and catching up a missed run within epsilon is the \
         scheduler's decision, not the schedule's",
    ),
    (
        "R5/2012-02-01T00:00:00.000Z/P1D",
        "nanos_until_next",
        "same as above: Chronos treats the past start as due now (0 ns); Drover's schedule has no run left",
    ),
    (
        "R0/{now-1d}/PT0S",
        "skip_forward",
        "Chronos's skip-forward decrements the count unconditionally, turning R0 into R-1 (forever); in Drover \
         R0 never runs",
    ),
    (
        "R3/{now}/P1D",
        "skip_forward",
        "Chronos keeps the start at {now} but still decrements R3 to R2, losing a run; Drover counts the run at \
         {now} as not after now, so 2 runs remain from {now+1d}",
    ),
];

fn conformance_dir() -> Option<PathBuf> {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("[workspace]")) {
            let shared = dir.join("../shared/conformance");
            return shared.is_dir().then_some(shared);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// `{now}`, `{now-1d}`, `{now+1y}`, `{now-1d+1y}`, `{today}` as Joda printed them.
fn placeholder(name: &str) -> Option<DateTime<Utc>> {
    if name == "today" {
        return now().date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc());
    }
    let mut t = now();
    let mut rest = name.strip_prefix("now")?;
    while !rest.is_empty() {
        let sign = if rest.starts_with('+') {
            1
        } else if rest.starts_with('-') {
            -1
        } else {
            return None;
        };
        let end = rest[1..].find(['+', '-']).map_or(rest.len(), |i| i + 1);
        let (n, unit) = rest[1..end].split_at(end - 2);
        let n: i64 = n.parse().ok()?;
        t = match unit {
            "h" => t + Duration::hours(sign * n),
            "d" => t + Duration::days(sign * n),
            "y" if sign > 0 => t.checked_add_months(Months::new(12 * n as u32))?,
            "y" => t.checked_sub_months(Months::new(12 * n as u32))?,
            _ => return None,
        };
        rest = &rest[end..];
    }
    Some(t)
}

fn substitute(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        out.push_str(&rest[..open]);
        match placeholder(name) {
            Some(t) if name == "today" => out.push_str(&t.format("%Y-%m-%d").to_string()),
            Some(t) => out.push_str(&t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

enum Verdict {
    Matched(String),
    Different(String),
    NotApplicable(String),
    Mismatch(String),
}

struct Row<'a> {
    schedule: &'a str,
    now: &'a str,
    expected_next: &'a str,
    valid: &'a str,
    tz: &'a str,
    op: &'a str,
    dialect: &'a str,
    expected: &'a str,
}

fn evaluate(row: &Row) -> Verdict {
    let text = substitute(row.schedule);
    let zone = (!row.tz.is_empty()).then_some(row.tz);
    let now = if row.now.is_empty() {
        now()
    } else {
        instant(&substitute(row.now)).unwrap_or_else(now)
    };
    let parsed = Schedule::parse(&text, zone, now);

    if row.dialect.starts_with("TZ-") {
        return match parsed {
            Err(e) => Verdict::NotApplicable(format!(
                "2014 dialect with the zone in the string; refused like Chronos HEAD ({e})"
            )),
            Ok(_) => Verdict::Mismatch(
                "a 2014 TZ dialect string that Chronos HEAD refuses was accepted".into(),
            ),
        };
    }
    if row.valid == "unknown" {
        let what = match &parsed {
            Ok(s) => format!("accepted as {s}"),
            Err(e) => format!("refused: {e}"),
        };
        return Verdict::NotApplicable(format!("Chronos's answer is unknown; Drover {what}"));
    }
    if row.valid == "no" {
        return match parsed {
            Err(e) => Verdict::Matched(format!("refused: {e}")),
            Ok(s) => Verdict::Mismatch(format!("Chronos refuses it, Drover accepted {s}")),
        };
    }
    let schedule = match parsed {
        Ok(s) => s,
        Err(e) => return Verdict::Mismatch(format!("Chronos accepts it, Drover refused: {e}")),
    };
    let expected = substitute(row.expected);
    let expected_next = substitute(row.expected_next);
    match row.op {
        "parse" => check_parse(&schedule, &expected, now),
        "iterate" => check_iterate(&schedule, &expected_next, &expected, zone, now),
        "scheduler_next" => compare_next("next run after now", schedule.next_after(now), &expected_next),
        "register+iteration" => {
            let verdict = compare_next("next run after now", schedule.next_after(now), &expected_next);
            if let Verdict::Matched(_) = verdict
                && let Some(successor) = expected.split("new schedule ").nth(1)
            {
                return check_successor(&schedule, now, successor.split_whitespace().next().unwrap_or(""), zone);
            }
            verdict
        }
        "scheduler_iteration" => Verdict::NotApplicable(
            "depends on the pre-2016 stream scheduler's look-ahead horizon, which Drover does not have (schedule accepted)"
                .into(),
        ),
        "jobs_to_run" | "nanos_until_next" => {
            if expected_next.is_empty() {
                return Verdict::NotApplicable(format!("about the job, not the schedule: {}", row.expected));
            }
            compare_next("first run at or after now", schedule.first_at_or_after(now), &expected_next)
        }
        "skip_forward" => check_skip_forward(&schedule, now, &expected_next, &expected),
        other => Verdict::NotApplicable(format!("unknown op {other}")),
    }
}

fn compare_next(what: &str, got: Option<DateTime<Utc>>, expected: &str) -> Verdict {
    let want = if expected == "none" {
        None
    } else {
        instant(expected)
    };
    if want.is_none() && expected != "none" {
        return Verdict::NotApplicable(format!("expected value {expected:?} is not an instant"));
    }
    if got == want {
        Verdict::Matched(format!(
            "{what}: {}",
            got.map_or("none".into(), |t| t.to_rfc3339())
        ))
    } else {
        Verdict::Mismatch(format!("{what}: expected {expected}, got {got:?}"))
    }
}

fn check_parse(schedule: &Schedule, expected: &str, now: DateTime<Utc>) -> Verdict {
    let mut checked = Vec::new();
    for item in expected.split(';').map(str::trim) {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let token = value.split_whitespace().next().unwrap_or("");
        match key.trim() {
            "repetitions" => {
                let want = if token == "-1" {
                    None
                } else {
                    token.parse::<u64>().ok()
                };
                if schedule.repetitions() != want {
                    return Verdict::Mismatch(format!(
                        "repetitions: expected {token}, got {:?}",
                        schedule.repetitions()
                    ));
                }
                checked.push("repetitions");
            }
            "start" if value.starts_with("within 60 s of") => {
                if (schedule.start() - now).num_seconds().abs() > 60 {
                    return Verdict::Mismatch(format!(
                        "start {} is not within 60 s of now",
                        schedule.start()
                    ));
                }
                checked.push("start");
            }
            "start" => match instant(token) {
                Some(want) if want == schedule.start() => checked.push("start"),
                Some(want) => {
                    return Verdict::Mismatch(format!(
                        "start: expected {want}, got {}",
                        schedule.start()
                    ));
                }
                None => {
                    return Verdict::NotApplicable(format!("cannot read expected start {token:?}"));
                }
            },
            "period" if token == "zero" => {
                if !schedule.period().is_zero() {
                    return Verdict::Mismatch(format!(
                        "period: expected zero, got {}",
                        schedule.period()
                    ));
                }
                checked.push("period");
            }
            "period" => match IsoDuration::parse(token) {
                Ok(want) if want == *schedule.period() => checked.push("period"),
                _ => {
                    return Verdict::Mismatch(format!(
                        "period: expected {token}, got {}",
                        schedule.period()
                    ));
                }
            },
            _ => {}
        }
    }
    Verdict::Matched(format!(
        "accepted as {schedule}; checked {}",
        if checked.is_empty() {
            "acceptance".into()
        } else {
            checked.join(", ")
        }
    ))
}

/// `successors: R2/..., R1/...`: each successor is the schedule after one more run.
/// `invocations: 2012-02-29, ...; offsets 1,2,3`: run k's date.
fn check_iterate(
    schedule: &Schedule,
    expected_next: &str,
    expected: &str,
    zone: Option<&str>,
    now: DateTime<Utc>,
) -> Verdict {
    if let Verdict::Mismatch(m) = compare_next(
        "run after the start",
        schedule.next_after(schedule.start()),
        expected_next,
    ) {
        return Verdict::Mismatch(m);
    }
    let mut checks = 1;
    if let Some(list) = expected.strip_prefix("successors: ") {
        let mut previous = schedule.start();
        for (k, successor) in list.split(", ").enumerate() {
            let text = successor
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches(',');
            let Ok(next) = Schedule::parse(text, zone, now) else {
                continue;
            };
            let remaining = schedule.remaining(previous);
            if next.repetitions().is_some() && remaining != next.repetitions() {
                return Verdict::Mismatch(format!(
                    "after run {k}: expected {text}, {remaining:?} runs remain"
                ));
            }
            if next.repetitions() != Some(0) && schedule.nth(k as u64 + 1) != Some(next.start()) {
                return Verdict::Mismatch(format!(
                    "run {}: expected {}, got {:?}",
                    k + 1,
                    next.start(),
                    schedule.nth(k as u64 + 1)
                ));
            }
            previous = next.start();
            checks += 1;
        }
    }
    if let Some(list) = expected.strip_prefix("invocations: ") {
        let dates: Vec<&str> = list
            .split([',', ' '])
            .filter(|t| t.len() == 10 && t.as_bytes()[4] == b'-')
            .collect();
        for (i, date) in dates.iter().enumerate() {
            let got = schedule
                .nth(i as u64 + 1)
                .map(|t| t.format("%Y-%m-%d").to_string());
            if got.as_deref() != Some(*date) {
                return Verdict::Mismatch(format!("run {}: expected {date}, got {got:?}", i + 1));
            }
            checks += 1;
        }
    }
    Verdict::Matched(format!("{checks} run(s) checked"))
}

/// `new schedule R2/2012-01-04T00:00:00.000Z/P1D`: what remains after `now`.
fn check_successor(
    schedule: &Schedule,
    now: DateTime<Utc>,
    successor: &str,
    zone: Option<&str>,
) -> Verdict {
    let Ok(next) = Schedule::parse(successor, zone, now) else {
        return Verdict::NotApplicable(format!("cannot read successor {successor:?}"));
    };
    if schedule.remaining(now) != next.repetitions()
        || schedule.next_after(now) != Some(next.start())
    {
        return Verdict::Mismatch(format!(
            "expected {successor}; Drover has {:?} runs left from {:?}",
            schedule.remaining(now),
            schedule.next_after(now)
        ));
    }
    Verdict::Matched(format!("remaining after now = {successor}"))
}

/// Chronos's skip-forward gives a new start (the first run after now) and count.
fn check_skip_forward(
    schedule: &Schedule,
    now: DateTime<Utc>,
    expected_next: &str,
    expected: &str,
) -> Verdict {
    let next = schedule.next_after(now);
    let remaining = schedule.remaining(now);
    let want_reps = expected
        .split("repetitions after skip = ")
        .nth(1)
        .and_then(|t| t.split([' ', ';', ',']).next())
        .and_then(|t| t.parse::<i64>().ok())
        .or_else(|| expected.contains("repetitions stay -1").then_some(-1));
    if let Some(want) = want_reps {
        let got = remaining.map_or(-1, |n| n as i64);
        if got != want {
            return Verdict::Mismatch(format!("runs left after now: expected {want}, got {got}"));
        }
        if want == 0 && next.is_none() {
            return Verdict::Matched("no run left after now, as Chronos's count 0 says".into());
        }
    }
    let Some(next) = next else {
        return Verdict::Mismatch(format!(
            "expected {expected_next}, Drover has no run after now"
        ));
    };
    if let Some(date) = expected_next.strip_prefix("date=") {
        let want = &date[..10.min(date.len())];
        let got = next.format("%Y-%m-%d").to_string();
        return if got == want {
            Verdict::Matched(format!("next run {next} on {want}"))
        } else {
            Verdict::Mismatch(format!("next run {next}: expected date {want}"))
        };
    }
    if expected_next.starts_with('>') && expected_next.contains("day-of-month=1") {
        return if next > now && next.day() == 1 {
            Verdict::Matched(format!("next run {next}: after now, on the 1st"))
        } else {
            Verdict::Mismatch(format!("next run {next}: expected after now on the 1st"))
        };
    }
    Verdict::NotApplicable(format!("cannot read expected {expected_next:?}"))
}

#[test]
fn chronos_iso8601_cases() {
    let Some(dir) = conformance_dir() else {
        println!("skipped: ../shared/conformance not found next to the workspace");
        return;
    };
    let path = dir.join("iso8601/cases.tsv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} not readable", path.display());
        return;
    };
    let (mut matched, mut different, mut not_applicable, mut accepted, mut refused) =
        (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for (line_no, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("").trim();
        let row = Row {
            schedule: col(0),
            now: col(1),
            expected_next: col(2),
            valid: col(3),
            tz: col(5),
            op: col(6),
            dialect: col(7),
            expected: col(8),
        };
        let zone = (!row.tz.is_empty()).then_some(row.tz);
        if Schedule::parse(&substitute(row.schedule), zone, now()).is_ok() {
            accepted += 1;
        } else {
            refused += 1;
        }
        let deliberate = DELIBERATE
            .iter()
            .find(|(s, op, _)| *s == row.schedule && *op == row.op);
        let verdict = match (evaluate(&row), deliberate) {
            (Verdict::Mismatch(m), Some((_, _, why))) => Verdict::Different(format!("{why} [{m}]")),
            (Verdict::Matched(m), Some(_)) => Verdict::Mismatch(format!(
                "listed as deliberately different but matches ({m}): drop it from DELIBERATE"
            )),
            (v, _) => v,
        };
        let (tag, detail) = match &verdict {
            Verdict::Matched(d) => {
                matched += 1;
                ("matched", d)
            }
            Verdict::Different(d) => {
                different += 1;
                ("DIFFERENT (deliberate)", d)
            }
            Verdict::NotApplicable(d) => {
                not_applicable += 1;
                ("n/a", d)
            }
            Verdict::Mismatch(d) => {
                failures.push(format!(
                    "line {}: {} [{}]: {d}",
                    line_no + 1,
                    row.schedule,
                    row.op
                ));
                ("MISMATCH", d)
            }
        };
        println!(
            "line {:>2} {:<45} {:<20} {tag}: {detail}",
            line_no + 1,
            row.schedule,
            row.op
        );
    }
    println!(
        "iso8601 cases: {} rows; Drover accepted {accepted}, refused {refused}; matched {matched}, deliberately different {different}, not applicable {not_applicable}, mismatched {}",
        matched + different + not_applicable + failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "rows where Drover disagrees with Chronos without a documented reason:\n{}",
        failures.join("\n")
    );
}

#[test]
fn chronos_valid_job_schedules_parse() {
    let Some(dir) = conformance_dir() else {
        println!("skipped: ../shared/conformance not found next to the workspace");
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir.join("chronos/valid")) else {
        println!("skipped: chronos/valid not readable");
        return;
    };
    let mut parsed = 0;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (job, _) = drover_api::job::parse_job(&value)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(schedule) = &job.schedule {
            let s = Schedule::parse(schedule, job.schedule_time_zone.as_deref(), now())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            println!(
                "{:<45} {schedule} -> next after {NOW}: {:?}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                s.next_after(now())
            );
            parsed += 1;
        }
    }
    println!("chronos/valid: {parsed} job schedules parsed by the scheduler");
}
