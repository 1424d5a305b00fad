//! Progress bars and spinners on stderr (indicatif hides them when stderr is not a terminal;
//! the one-line notes are printed either way).
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn bar(len: u64, msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:32} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .expect("constant template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.into());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
            .expect("constant template"),
    );
    pb.set_message(msg.into());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A line on stderr that stays (section starts, results as they come).
pub fn note(msg: impl AsRef<str>) {
    eprintln!("{}", msg.as_ref());
}
