//! Progress bars on stderr for the long phases of a sync, a clear or a first open (push, pull,
//! snapshot), through the library's [`Progress`] trait.
//!
//! A bar appears only when stderr is a terminal, `-q` is not given, and the phase has already
//! taken a moment: a quick sync prints nothing but its summary.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sharecache::Progress;

/// Show a phase's bar once it has run this long.
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// Whether bars are drawn at all.
#[derive(Debug, Clone, Copy)]
pub struct Bars {
    enabled: bool,
}

impl Bars {
    /// Bars on stderr, unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Bars {
        Bars {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A [`Progress`] drawing one bar per phase.
    pub fn progress(self) -> Bar {
        Bar {
            enabled: self.enabled,
            current: Mutex::new(None),
        }
    }

    /// A spinner with `message` for a step that reports no progress (e.g. the first open,
    /// which copies the remote); cleared when dropped.
    pub fn spinner(self, message: &str) -> Spinner {
        let bar = ProgressBar::with_draw_target(None, self.target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        if self.enabled {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Spinner(bar)
    }

    fn target(self) -> ProgressDrawTarget {
        if self.enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}

/// A spinner, cleared when dropped.
pub struct Spinner(ProgressBar);

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The phase being drawn.
struct Phase {
    name: String,
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

/// An indicatif bar per phase, implementing [`Progress`].
pub struct Bar {
    enabled: bool,
    current: Mutex<Option<Phase>>,
}

fn style(phase: &str, total: u64) -> ProgressStyle {
    let template = match (phase, total) {
        ("snapshot", _) => {
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)"
        }
        (_, 0) => "{prefix:>8} {spinner} {pos} rows ({per_sec})",
        _ => "{prefix:>8} [{bar:30}] {pos}/{len} rows ({eta} left)",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn label(phase: &str) -> &str {
    match phase {
        "push" => "pushing",
        "pull" => "pulling",
        "snapshot" => "copying",
        other => other,
    }
}

impl Progress for Bar {
    fn step(&self, phase: &str, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|p| p.name != phase) {
            if let Some(old) = current.take() {
                old.bar.finish_and_clear();
            }
            let bar = ProgressBar::with_draw_target(
                (total > 0).then_some(total),
                ProgressDrawTarget::hidden(),
            );
            bar.set_style(style(phase, total));
            bar.set_prefix(label(phase).to_string());
            *current = Some(Phase {
                name: phase.to_string(),
                bar,
                started: Instant::now(),
                shown: false,
            });
        }
        let Some(p) = current.as_mut() else { return };
        if total > 0 {
            p.bar.set_length(total);
        }
        p.bar.set_position(done);
        let finished = total > 0 && done >= total;
        if !p.shown && !finished && p.started.elapsed() >= SHOW_AFTER {
            p.bar.set_draw_target(ProgressDrawTarget::stderr());
            p.shown = true;
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(p) = self.current.get_mut().ok().and_then(Option::take) {
            p.bar.finish_and_clear();
        }
    }
}
