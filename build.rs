//! Build script of the vinit package: links the `vinit` binary (only it)
//! with link/startup-order.ld, which puts the code a start runs in one place
//! so that it costs a few page faults instead of ~20 (bench/startup-order
//! writes the file; README "Decisions"). `VINIT_LINK_MAP=FILE` also writes
//! the linker's map there, which bench/startup-order reads.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/startup-order.ld");
    println!("cargo:rerun-if-env-changed=VINIT_LINK_MAP");
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = Path::new(&dir).join("link").join("startup-order.ld");
    if script.is_file() {
        println!("cargo:rustc-link-arg-bin=vinit=-Wl,-T,{}", script.display());
    }
    if let Some(map) = env::var_os("VINIT_LINK_MAP") {
        println!(
            "cargo:rustc-link-arg-bin=vinit=-Wl,-Map={}",
            Path::new(&map).display()
        );
    }
}
