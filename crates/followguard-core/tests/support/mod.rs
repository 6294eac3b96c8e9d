//! Shared by the core's integration tests.

use followguard_core::model::Model;

/// The shipped `models/default.json`, compiled in (the core reads no files).
pub fn shipped_model() -> Model {
    let bytes = include_bytes!("../../../../models/default.json");
    Model::from_bytes(bytes, "models/default.json").expect("the shipped model loads")
}

/// The profile members (after `"id"`) of a bought-looking follower (young, no tweets,
/// many friends) or of a human-looking one.
#[allow(dead_code)] // not every test file that includes this module uses it
pub fn profile_fields(bot: bool) -> &'static str {
    if bot {
        r#""screen_name": "kdjw83920183", "name": "kdjw", "description": "", "created_at": "2026-09-01T00:00:00Z",
           "followers_count": 2, "friends_count": 1450, "statuses_count": 0, "favourites_count": 0, "listed_count": 0,
           "default_profile": true, "default_profile_image": true"#
    } else {
        r#""screen_name": "marta_rossi", "name": "Marta Rossi", "description": "Teacher, runner, coffee.", "location": "Roma",
           "created_at": "Tue Jun 11 11:20:35 +0000 2013", "followers_count": 420, "friends_count": 380,
           "statuses_count": 5120, "favourites_count": 2210, "listed_count": 7, "default_profile": false"#
    }
}
