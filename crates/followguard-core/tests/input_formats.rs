//! Issue 24: every input format, from samples built per the platform's published schema,
//! scores an account exactly as its canonical form does (the fields that exist), and
//! missing counts are missing values (not zeros) all the way to the score.

mod support;

use followguard_core::adapt::{self, Adapted, InputFormat, Item};
use followguard_core::event::{self, EventType};
use followguard_core::model::{score_time, Model, Score};
use followguard_core::profiles::{self, ProfileTable, Resolved};

/// A v1.1 user object as the X API returns it (Account Activity `source`).
const X_USER: &str = r#"{"id": 3001, "id_str": "3001", "name": "Jenny Bloggs", "screen_name": "jenny38471920",
 "location": "", "url": null, "description": "", "protected": false, "verified": false,
 "followers_count": 2, "friends_count": 1450, "listed_count": 0, "favourites_count": 0,
 "statuses_count": 1, "created_at": "Mon Sep 01 00:00:00 +0000 2026", "utc_offset": null,
 "time_zone": null, "geo_enabled": false, "lang": null, "profile_background_color": "F5F8FA",
 "profile_use_background_image": true, "default_profile": true, "default_profile_image": true}"#;

const T_MS: i64 = 1_795_860_900_123;

fn canonical(follower: &str) -> Vec<u8> {
    format!(
        r#"{{"event_id":"e","type":"follow","ts":{T_MS},"followee_id":"783214","follower":{follower}}}"#
    )
    .into_bytes()
}

fn score(model: &Model, bytes: &[u8]) -> (Score, EventType, String) {
    let e =
        event::parse(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)));
    let ts = e.ts_ms.unwrap_or(T_MS);
    (
        model.score(&e.follower, score_time(ts)),
        e.kind,
        e.followee_id.into_owned(),
    )
}

fn events(a: Adapted) -> Vec<Vec<u8>> {
    match a {
        Adapted::Items(items) => items
            .into_iter()
            .map(|i| match i {
                Item::Event(b) => b,
                Item::Bare(f) => panic!("bare follow {f:?}"),
            })
            .collect(),
        Adapted::Ignored(why) => panic!("ignored: {why}"),
    }
}

#[test]
fn x_account_activity_follow_events_score_like_canonical() {
    let model = support::shipped_model();
    let human = X_USER
        .replace("jenny38471920", "tom_h")
        .replace(
            r#""id": 3001, "id_str": "3001""#,
            r#""id": 3002, "id_str": "3002""#,
        )
        .replace(r#""followers_count": 2"#, r#""followers_count": 250"#)
        .replace(r#""statuses_count": 1"#, r#""statuses_count": 3000"#)
        .replace(
            r#""description": """#,
            r#""description": "coffee and cats""#,
        );
    let target = r#"{"id": 783214, "id_str": "783214", "screen_name": "brand", "name": "Brand",
      "followers_count": 10, "friends_count": 1, "statuses_count": 1, "favourites_count": 0,
      "listed_count": 0, "created_at": "Tue Jun 11 11:20:35 +0000 2013"}"#;
    let payload = format!(
        r#"{{"for_user_id": "783214", "follow_events": [
          {{"type": "follow", "created_timestamp": "{T_MS}", "target": {target}, "source": {X_USER}}},
          {{"type": "unfollow", "created_timestamp": "{T_MS}", "target": {target}, "source": {human}}}]}}"#
    );
    let got = events(adapt::adapt(InputFormat::XActivity, payload.as_bytes()).unwrap());
    assert_eq!(got.len(), 2, "one canonical event per follow event");
    for (bytes, user, kind) in [
        (&got[0], X_USER.to_string(), EventType::Follow),
        (&got[1], human.clone(), EventType::Unfollow),
    ] {
        let (s, k, followee) = score(&model, bytes);
        assert_eq!((k, followee.as_str()), (kind, "783214"));
        let (want, _, _) = score(&model, &canonical(&user));
        assert_eq!(s, want, "same user object, same score");
    }
    assert!(score(&model, &got[0]).0.prob >= model.threshold());
    assert!(score(&model, &got[1]).0.prob < model.threshold());
    // Other Account Activity payloads (likes, DMs…) hold no follow: ignored, counted.
    let like = br#"{"for_user_id": "1", "favorite_events": [{"id": "x"}]}"#;
    assert_eq!(
        adapt::adapt(InputFormat::XActivity, like),
        Ok(Adapted::Ignored("no_follow_events"))
    );
}

/// A Mastodon `Account` entity (docs.joinmastodon.org/entities/Account).
const MASTODON: &str = r#"{"id": "109302", "username": "marta", "acct": "marta@social.example",
  "display_name": "Marta R.", "locked": false, "bot": false, "discoverable": true,
  "group": false, "created_at": "2013-06-11T00:00:00.000Z",
  "note": "<p>Teacher &amp; hiker.<br />Views my own</p>",
  "url": "https://social.example/@marta", "uri": "https://social.example/users/marta",
  "avatar": "https://files.social.example/accounts/avatars/1.png",
  "avatar_static": "https://files.social.example/accounts/avatars/1.png",
  "header": "https://social.example/headers/original/missing.png",
  "header_static": "https://social.example/headers/original/missing.png",
  "followers_count": 420, "following_count": 380, "statuses_count": 5120,
  "last_status_at": "2026-11-27", "emojis": [],
  "fields": [{"name": "Pronouns", "value": "she/her", "verified_at": null},
             {"name": "Blog", "value": "<a href=\"https://marta.example\" rel=\"me nofollow noopener\" target=\"_blank\"><span class=\"invisible\">https://</span><span class=\"\">marta.example</span><span class=\"invisible\"></span></a>", "verified_at": "2024-01-01T00:00:00.000+00:00"}]}"#;

/// Marta as a canonical profile: the fields Mastodon has, the others missing.
const MASTODON_AS_CANONICAL: &str = r#"{"id": "109302", "screen_name": "marta", "name": "Marta R.",
  "description": "Teacher & hiker. Views my own", "url": "https://marta.example",
  "created_at": "2013-06-11T00:00:00Z", "followers_count": 420, "friends_count": 380,
  "statuses_count": 5120, "favourites_count": null, "default_profile": true,
  "default_profile_image": false, "protected": false, "missing": ["location"]}"#;

#[test]
fn mastodon_account_in_the_canonical_envelope_scores_like_canonical() {
    let model = support::shipped_model();
    let envelope = canonical(MASTODON);
    let got = events(adapt::adapt(InputFormat::Mastodon, &envelope).unwrap());
    let e = event::parse(&got[0]).unwrap();
    assert_eq!(e.follower.screen_name, "marta");
    assert_eq!(e.follower.description, "Teacher & hiker. Views my own");
    assert_eq!(e.follower.url.as_deref(), Some("https://marta.example"));
    assert_eq!(e.follower.friends_count, Some(380));
    assert_eq!(
        (e.follower.favourites_count, e.follower.listed_count),
        (None, None)
    );
    assert!(e.follower.lacks(event::Profile::UNKNOWN_LOCATION));
    let (s, _, _) = score(&model, &got[0]);
    let (want, _, _) = score(&model, &canonical(MASTODON_AS_CANONICAL));
    assert_eq!(s, want);
    // Missing is not zero: the same account with zero favourites and listed scores
    // otherwise (the model does not read a missing count as "never liked anything").
    let zeros = MASTODON_AS_CANONICAL
        .replace(
            r#""favourites_count": null"#,
            r#""favourites_count": 0, "listed_count": 0"#,
        )
        .replace(r#", "missing": ["location"]"#, "");
    assert_ne!(score(&model, &canonical(&zeros)).0.prob, s.prob);
}

/// A Bluesky `app.bsky.actor.defs#profileViewDetailed` (getProfile).
const BSKY_PROFILE: &str = r#"{"did": "did:plc:z72i7hdynmk6r22z27h6tvur", "handle": "kdjw83920183.bsky.social",
  "displayName": "", "description": "", "followersCount": 2, "followsCount": 1450,
  "postsCount": 0, "indexedAt": "2026-09-01T00:00:00.000Z", "createdAt": "2026-09-01T00:00:00.000Z",
  "associated": {"lists": 0, "feedgens": 0, "starterPacks": 0, "labeler": false}, "labels": []}"#;

const BSKY_AS_CANONICAL: &str = r#"{"id": "did:plc:z72i7hdynmk6r22z27h6tvur", "screen_name": "kdjw83920183",
  "name": "", "description": "", "created_at": "2026-09-01T00:00:00Z", "followers_count": 2,
  "friends_count": 1450, "statuses_count": 0, "default_profile": true,
  "default_profile_image": true, "missing": ["location", "url"]}"#;

#[test]
fn bluesky_jetstream_follow_joined_with_the_profile_table_scores_like_canonical() {
    let model = support::shipped_model();
    let mut table = ProfileTable::new(1 << 20);
    table.apply(None, Some(BSKY_PROFILE.as_bytes())).unwrap();
    let time_us = T_MS * 1000 + 456;
    let commit = format!(
        r#"{{"did": "did:plc:z72i7hdynmk6r22z27h6tvur", "time_us": {time_us}, "kind": "commit",
          "commit": {{"rev": "3l3qo2vutsw2b", "operation": "create", "collection": "app.bsky.graph.follow",
            "rkey": "3l3qo2vuowo2b", "record": {{"$type": "app.bsky.graph.follow",
              "createdAt": "2024-09-09T19:46:02.102Z", "subject": "did:plc:brand"}},
            "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}}}}"#
    );
    let Resolved::Events(got) =
        profiles::resolve(InputFormat::Jetstream, commit.as_bytes(), &table).unwrap()
    else {
        panic!("no events");
    };
    let e = event::parse(&got[0]).unwrap();
    assert_eq!(e.followee_id, "did:plc:brand");
    assert_eq!(
        e.ts_ms,
        Some(T_MS),
        "relay time, not the client's createdAt"
    );
    assert_eq!(
        e.event_id,
        "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.graph.follow/3l3qo2vuowo2b"
    );
    let (s, _, _) = score(&model, &got[0]);
    let (want, _, _) = score(&model, &canonical(BSKY_AS_CANONICAL));
    assert_eq!(s, want);
    assert!(
        s.prob >= model.threshold(),
        "the same bot profile is still flagged"
    );
    // A delete names no subject: ignored and counted; other collections and kinds too.
    let delete = br#"{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit",
      "commit": {"rev": "x", "operation": "delete", "collection": "app.bsky.graph.follow", "rkey": "3l3"}}"#;
    let like = br#"{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit",
      "commit": {"rev": "x", "operation": "create", "collection": "app.bsky.feed.like", "rkey": "3l3", "record": {}}}"#;
    let identity = br#"{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "identity",
      "identity": {"did": "did:plc:a", "handle": "a.bsky.social", "seq": 1, "time": "2024-09-09T19:46:02.102Z"}}"#;
    for (bytes, why) in [
        (&delete[..], "bluesky_delete"),
        (&like[..], "other_collection"),
        (&identity[..], "not_a_follow"),
    ] {
        assert_eq!(
            profiles::resolve(InputFormat::Jetstream, bytes, &table),
            Ok(Resolved::Ignored(why))
        );
    }
    // A follower the table does not know is refused with its own kind.
    let stranger = commit.replace(r#""did": "did:plc:z72"#, r#""did": "did:plc:q72"#);
    let err = profiles::resolve(InputFormat::Jetstream, stranger.as_bytes(), &table).unwrap_err();
    assert_eq!(err.kind(), "unknown_profile");
}

#[test]
fn activitypub_follow_and_undo_joined_with_a_mastodon_profile() {
    let model = support::shipped_model();
    let mut table = ProfileTable::new(1 << 20);
    // Keyed by the actor URI (the Account's `uri`), as follows name the actor.
    table.apply(None, Some(MASTODON.as_bytes())).unwrap();
    let follow = r#"{"@context": "https://www.w3.org/ns/activitystreams",
      "id": "https://social.example/users/marta#follows/77", "type": "Follow",
      "actor": "https://social.example/users/marta", "object": "https://brand.example/users/brand",
      "published": "2026-11-28T10:15:00.123Z"}"#;
    let Resolved::Events(got) =
        profiles::resolve(InputFormat::ActivityPub, follow.as_bytes(), &table).unwrap()
    else {
        panic!("no events");
    };
    let e = event::parse(&got[0]).unwrap();
    assert_eq!(
        (e.kind, e.ts_ms, &*e.followee_id, &*e.follower.id),
        (
            EventType::Follow,
            Some(T_MS),
            "https://brand.example/users/brand",
            "https://social.example/users/marta"
        )
    );
    let (want, _, _) = score(&model, &canonical(MASTODON_AS_CANONICAL));
    assert_eq!(score(&model, &got[0]).0, want);
    // Undo{Follow} with embedded actor objects and no `published`: an unfollow whose
    // time is the record timestamp's (left to the source).
    let undo = r#"{"@context": "https://www.w3.org/ns/activitystreams", "id": "https://social.example/u/1",
      "type": "Undo", "actor": {"id": "https://social.example/users/marta", "type": "Person"},
      "object": {"id": "https://social.example/users/marta#follows/77", "type": "Follow",
        "actor": {"id": "https://social.example/users/marta", "type": "Person"},
        "object": "https://brand.example/users/brand"}}"#;
    let Resolved::Events(got) =
        profiles::resolve(InputFormat::ActivityPub, undo.as_bytes(), &table).unwrap()
    else {
        panic!("no events");
    };
    let e = event::parse(&got[0]).unwrap();
    assert_eq!((e.kind, e.ts_ms), (EventType::Unfollow, None));
    let like = br#"{"type": "Like", "actor": "https://a/u", "object": "https://b/n/1"}"#;
    assert_eq!(
        adapt::adapt(InputFormat::ActivityPub, like),
        Ok(Adapted::Ignored("not_a_follow"))
    );
}

#[test]
fn malformed_payloads_of_every_format_are_typed_errors_never_panics() {
    let table = ProfileTable::new(1 << 20);
    let samples: [(InputFormat, &[u8]); 4] = [
        (
            InputFormat::XActivity,
            br#"{"follow_events": [{"type": "follow", "created_timestamp": "1517588749178", "source": {"id_str": "1"}, "target": {"id_str": "2"}}]}"#,
        ),
        (
            InputFormat::ActivityPub,
            br#"{"type": "Follow", "actor": "https://a/u", "object": "https://b/u", "published": "2026-11-28T10:15:00Z"}"#,
        ),
        (
            InputFormat::Jetstream,
            br#"{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit", "commit": {"operation": "create", "collection": "app.bsky.graph.follow", "rkey": "k", "record": {"subject": "did:plc:b"}}}"#,
        ),
        (InputFormat::Mastodon, &canonical(MASTODON)),
    ];
    for (format, sample) in samples {
        for cut in 0..sample.len() {
            let r = profiles::resolve(format, &sample[..cut], &table);
            if let Err(e) = r {
                assert!(event::EventError::KINDS.contains(&e.kind()), "{e}");
            }
        }
        // Wrong types in every position a value can take.
        let text = String::from_utf8_lossy(sample).into_owned();
        for (from, to) in [("\"", "1"), (":", ":[],\"z\":"), ("{", "{\"type\":7,")] {
            let mutated = text.replacen(from, to, 3);
            let _ = profiles::resolve(format, mutated.as_bytes(), &table);
        }
    }
    let bad_ts = br#"{"follow_events": [{"type": "follow", "created_timestamp": "soon", "source": {}, "target": {"id_str": "2"}}]}"#;
    assert_eq!(
        adapt::adapt(InputFormat::XActivity, bad_ts)
            .unwrap_err()
            .kind(),
        "bad_timestamp"
    );
}
