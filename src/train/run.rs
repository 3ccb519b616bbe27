//! The training loop's policy, apart from how it is shown: when to checkpoint and validate, which checkpoint is
//! the best (validation Dice), what a non-finite loss does (stop, leaving the last good checkpoint), and what a
//! signal does (finish the step, save, stop; [`Interrupt`]). The caller observes each step and validation (the
//! CLI prints them and writes loss.csv).

use std::path::Path;

use super::Trainer;
use crate::metrics::Scores;
use crate::{Error, Result};

/// What the loop reports, and whether it should stop.
pub trait Observer {
    /// After each optimisation step: its number (1-based: the step just done), loss and learning rate.
    fn step(&mut self, step: u64, loss: f32, lr: f32) -> Result<()>;
    /// After a validation: its scores, and whether they are the best so far (then `best` was just written).
    fn validated(&mut self, step: u64, scores: &Scores, best: bool);
    /// Whether a stop was asked for (a signal); checked after each step.
    fn stop_requested(&self) -> bool;
    /// Just before the checkpoint of a stopped run is written.
    fn stopping(&mut self) {}
}

/// How [`Trainer::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All steps done; `last` holds the final weights.
    Finished,
    /// Stopped after `step` on request; `last` holds that step.
    Stopped { step: u64 },
}

impl Trainer {
    /// Train to `cfg.steps`: a checkpoint to `last` every `checkpoint_every` steps and at the end; validation
    /// every `val_every` steps and at the end (not after a stop request: a scheduler's grace period is for the
    /// checkpoint), each new best Dice saved to `best` (and `last`). A non-finite loss is an error naming the
    /// step and `last`, which keeps the last good weights.
    pub fn run(&mut self, last: &Path, best: &Path, obs: &mut impl Observer) -> Result<Outcome> {
        let first = self.step;
        while self.step < self.cfg.steps {
            let lr = self.lr_schedule().at(self.step);
            let loss = self.train_step()?;
            let s = self.step;
            if !loss.is_finite() {
                return Err(Error::Config(format!(
                    "loss became {loss} at step {s}; stopping. The last good checkpoint is {} (try a lower --lr)",
                    last.display()
                )));
            }
            obs.step(s, loss, lr)?;
            // (the last step's checkpoint before its validation: a failed or killed validation loses nothing)
            if s.is_multiple_of(self.cfg.checkpoint_every.max(1)) || s == self.cfg.steps {
                self.save(last)?;
            }
            let due = self.cfg.val_every > 0 && (s.is_multiple_of(self.cfg.val_every) || s == self.cfg.steps);
            if due && !obs.stop_requested() {
                if let Some(sc) = self.validate()? {
                    let better = self.best_dice.is_none_or(|b| sc.dice > b);
                    if better {
                        self.best_dice = Some(sc.dice);
                        self.save(best)?;
                        self.save(last)?;
                    }
                    obs.validated(s, &sc, better);
                }
            }
            if obs.stop_requested() {
                obs.stopping();
                self.save(last)?;
                return Ok(Outcome::Stopped { step: s });
            }
        }
        if self.step == first {
            self.save(last)?; // nothing ran (resumed at the end): `last` still says where the run is
        }
        Ok(Outcome::Finished)
    }
}

/// How a training run reacts to SIGINT (Ctrl-C), SIGTERM (what Slurm and most schedulers send before SIGKILL)
/// and SIGHUP: the first asks the loop to stop after the step in flight, save a checkpoint and exit; a second
/// one, while that save is running, exits at once. Checkpoints are written to a temp file and renamed
/// ([`crate::model::weights::write_atomic`]), so an exit mid-save leaves the previous checkpoint whole.
pub struct Interrupt {
    requested: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The exit status after an interrupted run (128 + SIGINT, as shells report Ctrl-C).
pub const INTERRUPTED_EXIT: i32 = 130;

impl Interrupt {
    /// Install the process's signal handler (once per process). `second` runs on the second signal, just
    /// before the process exits with [`INTERRUPTED_EXIT`]: it says what is left on disk.
    pub fn install(second: impl Fn() + Send + 'static) -> Result<Interrupt> {
        use std::sync::atomic::Ordering;
        let requested = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = requested.clone();
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                second();
                std::process::exit(INTERRUPTED_EXIT);
            }
            eprintln!("signal received: stopping after the step in flight (a second signal exits at once)");
        })
        .map_err(|e| Error::Config(format!("cannot install the SIGINT/SIGTERM handler: {e}")))?;
        Ok(Interrupt { requested })
    }

    /// Whether a signal has asked the run to stop.
    pub fn requested(&self) -> bool {
        self.requested.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// From now on the first signal exits at once (the loop is over: nothing would look at the request).
    pub fn exit_on_signal(&self) {
        self.requested.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Before the interrupted run's save: wait `MEDSEGDIFF_INTERRUPT_SAVE_DELAY_MS` (a test hook, unset in use),
    /// so a test's second signal provably lands while the save is pending.
    pub fn test_delay(&self) {
        if let Some(ms) = std::env::var("MEDSEGDIFF_INTERRUPT_SAVE_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}
