//! The `vinit` binary: captures the inherited signal state and hardens the
//! process (not dumpable, core limit 0) before anything else runs, then
//! hands over to [`vinit::run`]. It also names the global allocator.
//!
//! There is no Rust runtime entry point (`#![no_main]`): std's would set
//! SIGPIPE to "ignored" before `main`, and since `execve` keeps ignored
//! signals, every app would inherit that. vinit must hand on exactly the
//! dispositions it was started with.
#![no_main]

use std::ffi::{c_char, c_int};

/// rlsf's TLSF allocator instead of musl's mallocng, which maps and unmaps
/// pages as allocations come and go: that was more than half of vinit's own
/// share of a start with secrets (Cargo.toml, README "Decisions"). The child
/// between clone and exec allocates nothing, so sharing it is safe.
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

/// The C entry point.
///
/// # Safety
/// Called only by the C runtime, with `argv` holding `argc` valid C strings.
// SAFETY: `main` is the one C entry symbol of this binary, with the C
// signature the C runtime calls it with; nothing else defines it.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let inherited = match vinit::sys::block_all_signals() {
        Ok(inherited) => inherited,
        Err(err) => {
            eprintln!("vinit: cannot block signals: {err}");
            return 71;
        }
    };
    // Before anything reads a credential: no core, no ptrace, no /proc/1/mem.
    let inherited = match vinit::sys::harden(inherited) {
        Ok(inherited) => inherited,
        Err(err) => {
            eprintln!("vinit: cannot harden itself (dumpable, core limit): {err}");
            return 71;
        }
    };
    // SAFETY: argc and argv are exactly what the C runtime passed to main.
    #[allow(unsafe_code)]
    let args = unsafe { vinit::sys::args_from_c_main(argc, argv) };
    vinit::run(args, inherited)
}
