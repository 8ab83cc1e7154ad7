//! Ctrl-C during training: the binary installs a handler that only sets a flag; the training
//! loops check it after every step, write a checkpoint of exactly where they are (mid-epoch
//! included) and stop with [`ExperimentError::Interrupted`](crate::experiments::common::ExperimentError::Interrupted),
//! so `--resume` continues from that batch and nothing computed is lost.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the running training loop to checkpoint and stop (what the Ctrl-C handler calls).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// True once an interruption was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Installs the Ctrl-C / SIGTERM handler (a second Ctrl-C exits at once).
pub fn install_handler() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        if requested() {
            std::process::exit(130);
        }
        request();
        crate::note!(
            "\ninterrupt: stopping after the current step (training runs write a checkpoint); Ctrl-C again to quit now"
        );
    })
}
