//! The event parser and the whole pipeline behind it (parse, features, score with the
//! shipped model, timeguard, detector, records): every line of the input is one Kafka
//! record, processed by one long-lived pipeline so state carries across inputs. Nothing
//! may panic; an accepted event's records stay within the record budget.
#![no_main]

use followguard_core::pipeline::{Pipeline, PipelineConfig};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static PIPELINE: RefCell<Pipeline> = RefCell::new({
        let bytes = include_bytes!("../../models/default.json");
        let model = followguard_core::model::Model::from_bytes(bytes, "default.json")
            .expect("the shipped model loads");
        Pipeline::new(Arc::new(model), PipelineConfig::default())
    });
}

fuzz_target!(|data: &[u8]| {
    let _ = followguard_core::event::parse(data);
    PIPELINE.with(|p| {
        let mut p = p.borrow_mut();
        let max = p.detector_config().max_record_bytes;
        for (i, line) in data.split(|b| *b == b'\n').enumerate() {
            let fallback = (i % 2 == 0).then_some(1_795_860_000_000 + i as i64);
            if let Ok(o) = p.process(line, fallback, (i % 3) as i32) {
                for a in &o.alerts {
                    assert!(serde_json::to_vec(a).unwrap().len() <= max);
                }
                for m in &o.moderation {
                    assert!(serde_json::to_vec(m).unwrap().len() <= max);
                }
            }
        }
    });
});
