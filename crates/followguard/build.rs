//! Links the librdkafka guard in `src/kafka/leader_guard.rs` in place of
//! `rd_kafka_metadata_update_op` (GNU ld / lld `--wrap`), in every binary, test and bench
//! of this package and of followguard-bench (whose Cargo.toml names this script). Linux
//! only: other linkers have no `--wrap` (the crash it guards against remains there).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        const F: &str = "rd_kafka_metadata_update_op";
        println!("cargo:rustc-link-arg=-Wl,--wrap={F}");
        // Pulls the guard out of this crate's rlib even though only librdkafka, later
        // on the link line, refers to it.
        println!("cargo:rustc-link-arg=-Wl,--undefined=__wrap_{F}");
        println!("cargo:rustc-cfg=leader_guard");
    }
    println!("cargo:rustc-check-cfg=cfg(leader_guard)");
}
