//! A stop button that keeps your work.
//!
//! JupyterLab's stop button (Kernel → Interrupt) sends SIGINT to the kernel's
//! process group when the kernelspec says `"interrupt_mode": "signal"`, as
//! the course's "Rust (sslab)" kernel does. Its launcher (`kernel/launch`)
//! starts evcxr with SIGINT ignored and `SSLAB_INTERRUPT=graceful`, so the
//! kernel itself survives the signal, and the process that runs the cells
//! (evcxr's subprocess, which holds every variable) installs the handler of
//! this module the first time the crate is used ([`install`], called by
//! [`crate::device::device`] and every training call):
//!
//! * during a crate call that watches for it (every `train_for`, the
//!   label-efficiency sweep, the benchmark), the first interrupt is a
//!   **request**: the call stops at its next step boundary and returns, and
//!   every variable of the session survives;
//! * a second interrupt before that call has stopped, or an interrupt while
//!   no such call runs (a plain loop in a cell), ends the process as before:
//!   evcxr reports the subprocess terminated and the session's variables are
//!   gone.
//!
//! Elsewhere (the command-line tool, tests, `SSLAB_INTERRUPT` unset) nothing
//! is installed and Ctrl-C keeps its usual meaning.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The process-wide state the handler reads: how many calls watch for a stop
/// request now (nested calls count), and whether one was requested.
struct Flags {
    watching: AtomicUsize,
    requested: AtomicBool,
}

impl Flags {
    const fn new() -> Self {
        Self { watching: AtomicUsize::new(0), requested: AtomicBool::new(false) }
    }

    /// What one interrupt does: `true` when it becomes a stop request,
    /// `false` when the process must end (no call watching, or a request
    /// already pending).
    fn on_interrupt(&self) -> bool {
        self.watching.load(Ordering::SeqCst) > 0 && !self.requested.swap(true, Ordering::SeqCst)
    }

    /// A call starts watching; a new outermost call starts with no request.
    fn enter(&self) {
        if self.watching.fetch_add(1, Ordering::SeqCst) == 0 {
            self.requested.store(false, Ordering::SeqCst);
        }
    }

    /// A call stops watching; the last one clears the request.
    fn leave(&self) {
        if self.watching.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.requested.store(false, Ordering::SeqCst);
        }
    }

    fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

static FLAGS: Flags = Flags::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn handler(_: libc::c_int) {
    if !FLAGS.on_interrupt() {
        // async-signal-safe: ends the process at once, like the signal's default action
        unsafe { libc::_exit(130) }
    }
}

/// Whether this process was started by the course kernel's launcher, which
/// asks for the graceful stop (`SSLAB_INTERRUPT=graceful`).
pub fn wanted() -> bool {
    std::env::var("SSLAB_INTERRUPT").is_ok_and(|v| v == "graceful")
}

/// Installs the SIGINT handler when [`wanted`] (a no-op otherwise, and on
/// platforms without POSIX signals). Returns whether it is installed.
///
/// Every [`Watch::start`] installs it again: evcxr may link a copy of the
/// crate into more than one cell's library, each with its own statics, and
/// the handler must be the one whose state the running call updates.
pub fn install() -> bool {
    wanted() && install_now()
}

/// Whether the handler has been installed in this process (by this copy of the crate).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

#[cfg(unix)]
fn install_now() -> bool {
    // SAFETY: the handler only touches atomics and calls _exit, both
    // async-signal-safe; the sigaction struct is zeroed and then filled.
    let ok = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) == 0
    };
    if ok {
        INSTALLED.store(true, Ordering::SeqCst);
    }
    ok
}

#[cfg(not(unix))]
fn install_now() -> bool {
    false
}

/// A running call that stops at a step boundary when asked: while it lives,
/// the first interrupt sets [`requested`](Watch::requested) instead of ending
/// the process. Dropping the last one clears the request.
#[derive(Debug)]
pub struct Watch {
    _private: (),
}

impl Watch {
    /// Starts watching (and [`install`]s the handler when wanted). A new
    /// outermost call starts with no request pending.
    pub fn start() -> Self {
        install();
        FLAGS.enter();
        Self { _private: () }
    }

    /// Whether a stop was requested since the outermost call began.
    pub fn requested(&self) -> bool {
        FLAGS.requested()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        FLAGS.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // On a state of its own: the crate's other tests train (and watch) in parallel.
    #[test]
    fn first_interrupt_is_a_request_second_one_or_none_watching_ends_the_process() {
        let f = Flags::new();
        assert!(!f.on_interrupt(), "no call watching: an interrupt must end the process");
        f.enter();
        assert!(!f.requested());
        f.enter(); // a nested call
        assert!(f.on_interrupt(), "the first interrupt during a call is a request");
        assert!(f.requested());
        assert!(!f.on_interrupt(), "a second one, before the call stopped, ends the process");
        f.leave();
        assert!(f.requested(), "the outer call still sees the request");
        f.leave();
        assert!(!f.requested(), "the outermost call ended: the request is cleared");
        f.enter();
        assert!(!f.requested(), "the next call starts clean");
        f.leave();
        // without SSLAB_INTERRUPT=graceful nothing is installed
        if !wanted() {
            assert!(!install());
        }
    }
}
