//! followguard-bench: the benchmark harnesses behind `followguard bench-…` (BENCHMARKS.md,
//! DETECTION.md): [`detect`] (campaign-level precision / recall / time to detect on a
//! generated stream), [`pipeline`] (in-process events/s and per-event latency),
//! [`memory`] (RSS per tracked followee and per cached score) and [`e2e`] (through a
//! broker: plain consumer vs `serve`, event → alert latency). The criterion benches are
//! in `benches/`.

pub mod detect;
pub mod e2e;
pub mod memory;
pub mod pipeline;
