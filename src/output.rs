//! Printing that never panics. `println!` panics when standard output is full or closed (a
//! full disk behind `> file`, a closed terminal); the commands print through [`outln!`] and
//! [`outp!`] instead, which return a [`StdoutError`] that the command reports as its error.
//! Diagnostics on standard error go through [`note!`], which drops what cannot be written: a
//! lost progress line is no reason to stop a run.

/// Standard output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Writes `text` to standard output (no newline added).
pub fn write_stdout(text: &str) -> Result<(), StdoutError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes `text` and a newline to standard error, ignoring a failure.
pub fn write_stderr(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// `println!` returning `Result<(), StdoutError>` instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` returning `Result<(), StdoutError>` instead of panicking.
#[macro_export]
macro_rules! outp {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!($($arg)*))
    };
}

/// `eprintln!` that ignores a failed write instead of panicking.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(&format!($($arg)*))
    };
}
