//! Progress on stderr: one line per table (phase, records, rate), hidden when stderr is
//! not a terminal or with `--quiet`, so logs and piped output stay clean.
//!
//! One ticker thread animates every line, however many tables there are (indicatif's own
//! steady tick would start a thread per line: thousands of tables would exhaust a
//! container's pids limit), and none runs when progress is hidden.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the spinners turn.
const TICK: Duration = Duration::from_millis(120);

#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    /// The lines the ticker turns; `None` when hidden.
    ticking: Option<Arc<Mutex<Vec<ProgressBar>>>>,
    started: Arc<std::sync::Once>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            ticking: visible.then(|| Arc::new(Mutex::new(Vec::new()))),
            started: Arc::new(std::sync::Once::new()),
        }
    }

    pub fn task(&self, name: &str) -> Task {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<40} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(name.to_owned());
        if let Some(ticking) = &self.ticking {
            if let Ok(mut bars) = ticking.lock() {
                bars.push(bar.clone());
            }
            let weak = Arc::downgrade(ticking);
            self.started.call_once(|| {
                // Without a ticker thread the lines still update on every change.
                let _ = std::thread::Builder::new()
                    .name("progress".to_owned())
                    .spawn(move || tick_until_dropped(&weak));
            });
        }
        Task {
            bar,
            started: Instant::now(),
        }
    }
}

/// Turns every unfinished line until the last [`Progress`] is gone.
fn tick_until_dropped(ticking: &Weak<Mutex<Vec<ProgressBar>>>) {
    loop {
        std::thread::sleep(TICK);
        let Some(ticking) = ticking.upgrade() else {
            return;
        };
        let Ok(mut bars) = ticking.lock() else {
            return;
        };
        bars.retain(|bar| !bar.is_finished());
        for bar in bars.iter() {
            bar.tick();
        }
    }
}

pub struct Task {
    bar: ProgressBar,
    started: Instant,
}

impl Task {
    pub fn phase(&self, message: &str) {
        self.bar.set_message(message.to_owned());
    }

    pub fn finish(&self, records: u64) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = u32::try_from(records).map_or(f64::MAX, f64::from) / seconds;
        self.bar
            .finish_with_message(format!("{records} records in {seconds:.1} s ({rate:.0}/s)"));
    }

    pub fn fail(&self, message: &str) {
        self.bar.abandon_with_message(format!("failed: {message}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_progress_starts_no_thread_for_any_number_of_tasks() {
        let progress = Progress::new(true);
        let tasks: Vec<Task> = (0..20_000)
            .map(|i| progress.task(&format!("t{i}")))
            .collect();
        assert!(progress.ticking.is_none());
        for task in &tasks {
            task.finish(1);
        }
    }
}
