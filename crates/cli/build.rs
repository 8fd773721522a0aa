//! Links the `berth` binary as a position-dependent executable.
//!
//! Every client command (`berth run`, the CNI plugin `berth`, …) is a
//! fresh start of this binary, and a position-independent one spends its
//! first millisecond on its own relocations: about 28 000 of them, which
//! write to (and so copy) every page of its 460 KiB `.data.rel.ro`. Linked
//! at a fixed address, the linker resolves them once: `berth --version`
//! went from 317 page faults and 2.8 ms to 193 and 2.0 ms on the machines
//! of DESIGN.md. The libraries it loads (and plugins it dlopens) are
//! unaffected; only the address of the binary itself is no longer
//! randomised.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
