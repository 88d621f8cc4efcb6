//! Progress on stderr: one line per table (phase, records, rate), hidden when stderr is
//! not a terminal or with `--quiet`, so logs and piped output stay clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    pub fn task(&self, name: &str) -> Task {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<40} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(name.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Task {
            bar,
            started: Instant::now(),
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
