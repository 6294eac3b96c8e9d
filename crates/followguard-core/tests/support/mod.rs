//! Shared by the core's integration tests.

use followguard_core::model::Model;

/// The shipped `models/default.json`, compiled in (the core reads no files).
pub fn shipped_model() -> Model {
    let bytes = include_bytes!("../../../../models/default.json");
    Model::from_bytes(bytes, "models/default.json").expect("the shipped model loads")
}
