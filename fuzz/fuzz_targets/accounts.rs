//! The account-table readers of followguard-train: the same bytes as a CSV, as JSON
//! lines and as one JSON array, with and without a file spec's label and `--as-of`.
//! Nothing may panic; errors are fine.
#![no_main]

use followguard_train::dataset::{self, Columns, DataSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = DataSpec {
        path: "fuzz.csv".into(),
        group: None,
        label: None,
    };
    let labelled = DataSpec {
        group: Some("g".into()),
        label: Some(true),
        ..plain.clone()
    };
    let as_of = Columns {
        as_of_ms: Some(1_560_000_000_000),
        ..Columns::default()
    };
    for (spec, cols) in [(&plain, &Columns::default()), (&labelled, &as_of)] {
        let _ = dataset::read(data, spec, cols);
        let _ = dataset::read_jsonl(data, spec, cols);
        let _ = dataset::read_json_array(data, spec, cols);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = dataset::table_time_ms(s);
    }
});
