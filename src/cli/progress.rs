//! A one-line progress report on standard error for runs that take a while.
//!
//! Shown only when standard error is a terminal, and only once a run has
//! lasted a second (`INFERGATE_PROGRESS_AFTER_MS` changes the delay; the
//! tests set it to 0), so short runs, pipes and CI logs never see it. The
//! line names the current step and the time so far, is redrawn in place and
//! erased before the report is printed.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DEFAULT_DELAY: Duration = Duration::from_secs(1);
const REDRAW_EVERY: Duration = Duration::from_millis(200);

struct State {
    step: String,
    done: bool,
}

pub struct Progress {
    shared: Option<Arc<(Mutex<State>, Condvar)>>,
    painter: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the clock; draws nothing unless standard error is a terminal.
    pub fn start(step: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                shared: None,
                painter: None,
            };
        }
        let delay = std::env::var("INFERGATE_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|value| value.parse().ok())
            .map_or(DEFAULT_DELAY, Duration::from_millis);
        let shared = Arc::new((
            Mutex::new(State {
                step: step.to_string(),
                done: false,
            }),
            Condvar::new(),
        ));
        let painter_state = Arc::clone(&shared);
        let painter = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || paint(&painter_state, delay))
            .ok();
        Self {
            shared: Some(shared),
            painter,
        }
    }

    /// Names the step now running ("checking 30,000 objects").
    pub fn step(&self, step: impl Into<String>) {
        if let Some(shared) = &self.shared {
            if let Ok(mut state) = shared.0.lock() {
                state.step = step.into();
            }
        }
    }

    /// Erases the line (if one was drawn) and stops; the report follows.
    pub fn finish(&mut self) {
        if let Some(shared) = self.shared.take() {
            if let Ok(mut state) = shared.0.lock() {
                state.done = true;
            }
            shared.1.notify_all();
        }
        if let Some(painter) = self.painter.take() {
            let _ = painter.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn paint(shared: &(Mutex<State>, Condvar), delay: Duration) {
    let started = Instant::now();
    let (lock, wake) = shared;
    let Ok(mut state) = lock.lock() else { return };
    let mut drawn = false;
    let mut wait = delay;
    loop {
        let Ok((next, _)) = wake.wait_timeout_while(state, wait, |state| !state.done) else {
            return;
        };
        state = next;
        let mut stderr = std::io::stderr().lock();
        if state.done {
            if drawn {
                // Carriage return and "erase to end of line".
                let _ = write!(stderr, "\r\x1b[K");
                let _ = stderr.flush();
            }
            return;
        }
        let _ = write!(
            stderr,
            "\r\x1b[Kinfergate: {} ({:.1} s)",
            state.step,
            started.elapsed().as_secs_f64()
        );
        let _ = stderr.flush();
        drawn = true;
        wait = REDRAW_EVERY;
    }
}
