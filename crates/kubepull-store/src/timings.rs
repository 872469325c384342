//! Phase timings of a pull, for profiling: with `KUBEPULL_PULL_TIMINGS=1` in the environment,
//! [`mark`] prints `timing <ms since the first mark> <what>` to standard error; without it,
//! nothing is printed and a mark costs one atomic load.

use std::sync::OnceLock;
use std::time::Instant;

fn origin() -> Option<&'static Instant> {
    static ORIGIN: OnceLock<Option<Instant>> = OnceLock::new();
    ORIGIN
        .get_or_init(|| {
            std::env::var_os("KUBEPULL_PULL_TIMINGS")
                .filter(|v| !v.is_empty() && v != "0")
                .map(|_| Instant::now())
        })
        .as_ref()
}

/// Whether timings are printed.
pub fn enabled() -> bool {
    origin().is_some()
}

/// Prints one timing line when enabled (`what` is only built then).
pub fn mark(what: impl FnOnce() -> String) {
    if let Some(o) = origin() {
        eprintln!(
            "timing {:9.3} ms {}",
            o.elapsed().as_secs_f64() * 1e3,
            what()
        );
    }
}
