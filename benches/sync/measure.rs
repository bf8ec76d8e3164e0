//! Timing, share-operation counting and the report's tables.
//!
//! Every comparison runs its two sides alternately in the same process, several times; a figure
//! is the median of the per-repetition ratios, shown beside the median time of each side. The
//! slowfs operation counts per operation are printed too: unlike times, they do not depend on how
//! busy the machine was.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use slowfs::{Control, Stats};

/// `after - before`, field by field.
pub fn diff(before: &Stats, after: &Stats) -> Stats {
    macro_rules! d {
        ($($f:ident),*) => { Stats { $($f: after.$f - before.$f),* } };
    }
    d!(
        total,
        lookup,
        getattr,
        setattr,
        open,
        create,
        read,
        write,
        fsync,
        flush,
        release,
        unlink,
        rename,
        readdir,
        other,
        bytes_read,
        bytes_written,
        failed,
        errors
    )
}

/// `a + b`, field by field.
pub fn add(a: &Stats, b: &Stats) -> Stats {
    macro_rules! s {
        ($($f:ident),*) => { Stats { $($f: a.$f + b.$f),* } };
    }
    s!(
        total,
        lookup,
        getattr,
        setattr,
        open,
        create,
        read,
        write,
        fsync,
        flush,
        release,
        unlink,
        rename,
        readdir,
        other,
        bytes_read,
        bytes_written,
        failed,
        errors
    )
}

/// Runs `f`, returning its result, the wall time and the share operations it caused.
pub fn timed<T>(ctl: &Control, f: impl FnOnce() -> T) -> (T, Duration, Stats) {
    let before = ctl.stats();
    let t0 = Instant::now();
    let out = f();
    let took = t0.elapsed();
    (out, took, diff(&before, &ctl.stats()))
}

/// The median (upper median for an even count). Panics on an empty slice.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One side of a comparison, accumulated over repetitions.
#[derive(Debug, Default, Clone)]
pub struct Side {
    /// Seconds per operation, one entry per repetition.
    pub per_op: Vec<f64>,
    /// Share operations summed over all repetitions.
    pub ops: Stats,
    /// Operations summed over all repetitions.
    pub n: u64,
}

impl Side {
    /// Records one repetition of `n` operations.
    pub fn add(&mut self, n: u64, took: Duration, ops: &Stats) {
        self.per_op.push(took.as_secs_f64() / n as f64);
        self.ops = add(&self.ops, ops);
        self.n += n;
    }

    pub fn median(&self) -> f64 {
        median(&self.per_op)
    }
}

/// Which way a ratio is taken.
#[derive(Debug, Clone, Copy)]
pub enum Ratio {
    /// baseline / ours: "× faster".
    Speedup,
    /// ours / baseline: "× the cost".
    Cost,
}

/// A goal on a figure's value.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
    None,
}

impl Goal {
    pub fn met(self, v: f64) -> Option<bool> {
        match self {
            Goal::AtLeast(g) => Some(v >= g),
            Goal::AtMost(g) => Some(v <= g),
            Goal::None => None,
        }
    }
}

/// One row of the main table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub latency: Option<u64>,
    pub ours: String,
    pub baseline: String,
    pub value: String,
    pub goal: String,
    pub met: Option<bool>,
}

/// One row of the share-operations table: per operation, one side.
#[derive(Debug, Clone)]
pub struct OpsRow {
    pub figure: String,
    pub latency: Option<u64>,
    pub side: String,
    pub ops: Stats,
    pub n: u64,
}

/// One row of the phase table.
#[derive(Debug, Clone)]
pub struct PhaseRow {
    pub figure: String,
    pub latency: Option<u64>,
    pub phase: String,
    pub time: Duration,
    pub ops: Stats,
}

/// Everything the run found.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub ops: Vec<OpsRow>,
    pub phases: Vec<PhaseRow>,
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a two-sided figure: its row, and an operations row per side.
    #[allow(clippy::too_many_arguments)]
    pub fn pair(
        &mut self,
        figure: &str,
        latency: Option<u64>,
        ours: (&str, &Side),
        baseline: (&str, &Side),
        ratio: Ratio,
        goal: Goal,
        goal_text: &str,
    ) {
        let (a, b) = (ours.1, baseline.1);
        let ratios: Vec<f64> = a
            .per_op
            .iter()
            .zip(&b.per_op)
            .map(|(x, y)| match ratio {
                Ratio::Speedup => y / x,
                Ratio::Cost => x / y,
            })
            .collect();
        let r = median(&ratios);
        let value = match ratio {
            Ratio::Speedup => format!("**{}× faster**", fmt_ratio(r)),
            Ratio::Cost => format!("**{}×**", fmt_ratio(r)),
        };
        let spread = if ratios.len() > 1 {
            let mut v = ratios.clone();
            v.sort_by(f64::total_cmp);
            format!(
                " ({}–{}, n={})",
                fmt_ratio(v[0]),
                fmt_ratio(v[v.len() - 1]),
                v.len()
            )
        } else {
            " (n=1)".to_string()
        };
        self.rows.push(Row {
            figure: figure.to_string(),
            latency,
            ours: format!("{}: {}", ours.0, fmt_dur(a.median())),
            baseline: format!("{}: {}", baseline.0, fmt_dur(b.median())),
            value: value + &spread,
            goal: goal_text.to_string(),
            met: goal.met(r),
        });
        for (label, side) in [ours, baseline] {
            self.ops.push(OpsRow {
                figure: figure.to_string(),
                latency,
                side: label.to_string(),
                ops: side.ops.clone(),
                n: side.n,
            });
        }
    }

    pub fn single(
        &mut self,
        figure: &str,
        latency: Option<u64>,
        ours: String,
        value: String,
        goal: (Goal, f64, &str),
    ) {
        self.rows.push(Row {
            figure: figure.to_string(),
            latency,
            ours,
            baseline: "—".into(),
            value,
            goal: goal.2.to_string(),
            met: goal.0.met(goal.1),
        });
    }

    pub fn phase(
        &mut self,
        figure: &str,
        latency: Option<u64>,
        phase: &str,
        time: Duration,
        ops: Stats,
    ) {
        self.phases.push(PhaseRow {
            figure: figure.to_string(),
            latency,
            phase: phase.to_string(),
            time,
            ops,
        });
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let lat = |l: Option<u64>| l.map_or("—".to_string(), |l| format!("{l} ms"));
        let mut s = String::new();
        s.push_str(
            "| figure | share latency | sharecache (median) | compared with (median) | result | goal | met |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.figure,
                lat(r.latency),
                r.ours,
                r.baseline,
                r.value,
                r.goal,
                met
            );
        }
        s.push_str(
            "\nShare operations (slowfs requests) **per operation**, by kind: L lookup, G getattr, \
             S setattr, O open, C create, R read, W write, F fsync, Fl flush, Rl release, U unlink, \
             X other (mostly directory fsync).\n\n\
             | figure | share latency | side | total | by kind | KiB read | KiB written |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for o in &self.ops {
            let n = o.n.max(1) as f64;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                o.figure,
                lat(o.latency),
                o.side,
                fmt_count(o.ops.total as f64 / n),
                kinds(&o.ops, n),
                fmt_count(o.ops.bytes_read as f64 / n / 1024.0),
                fmt_count(o.ops.bytes_written as f64 / n / 1024.0),
            );
        }
        if !self.phases.is_empty() {
            s.push_str(
                "\nWhere the time goes (one representative repetition; share operations per phase, \
                 by kind as above).\n\n\
                 | figure | share latency | phase | time | share ops | by kind |\n\
                 | --- | --- | --- | --- | --- | --- |\n",
            );
            for p in &self.phases {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    p.figure,
                    lat(p.latency),
                    p.phase,
                    fmt_dur(p.time.as_secs_f64()),
                    p.ops.total,
                    kinds(&p.ops, 1.0)
                );
            }
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

/// The nonzero operation kinds, divided by `n`.
pub fn kinds(o: &Stats, n: f64) -> String {
    let parts = [
        ("L", o.lookup),
        ("G", o.getattr),
        ("S", o.setattr),
        ("O", o.open),
        ("C", o.create),
        ("R", o.read),
        ("W", o.write),
        ("F", o.fsync),
        ("Fl", o.flush),
        ("Rl", o.release),
        ("U", o.unlink),
        ("X", o.other + o.rename + o.readdir),
    ];
    let v: Vec<String> = parts
        .iter()
        .filter(|(_, c)| *c > 0)
        .map(|(k, c)| format!("{k}{}", fmt_count(*c as f64 / n)))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// A count per operation: integers plainly, fractions with up to two decimals.
pub fn fmt_count(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A ratio with three significant digits.
pub fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

/// A duration in seconds, in a readable unit.
pub fn fmt_dur(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.1} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}
