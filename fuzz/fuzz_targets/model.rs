//! The model-file loader: any bytes either fail with a `ModelError` or give a model that
//! scores a profile without panicking (a validated model's trees, calibration and
//! reasons are safe to walk).
#![no_main]

use followguard_core::event::parse;
use followguard_core::model::Model;
use libfuzzer_sys::fuzz_target;

const EVENT: &[u8] = br#"{"event_id":"e","type":"follow","ts":1795860000000,"followee_id":"1","follower":{"id":"2","screen_name":"kdjw83920183","name":"kdjw","description":"","created_at":"2026-09-01T00:00:00Z","followers_count":2,"friends_count":1450,"statuses_count":0,"favourites_count":0,"listed_count":0,"default_profile":true,"default_profile_image":true}}"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Model::from_bytes(data, "fuzz") {
        let e = parse(EVENT).expect("the fixed event parses");
        let s = m.score(&e.follower, 1_795_860_000_000);
        let _ = (s.prob, m.threshold(), m.version());
    }
});
