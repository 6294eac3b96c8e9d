//! Input formats at the file edges (issue 24): the `--input-format` flag shared by
//! `serve`, `replay`, `score` and `produce`, and `--profiles FILE` (the profile table of
//! the formats without an embedded profile, read from files by `replay` and `score`).
//! The adapters and the table themselves are the core's (`adapt`, `profiles`).

use anyhow::Context;
use followguard_core::adapt::InputFormat;
use followguard_core::profiles::{self, Decoded, ProfileTable};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

fn parse_format(s: &str) -> Result<InputFormat, String> {
    s.parse()
}

/// `--input-format`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Input")]
pub struct FormatArgs {
    /// Payload format of the input: `canonical` (followguard's event, README), `x-activity`
    /// (X Account Activity `follow_events`), `activitypub` (`Follow` / `Undo{Follow}`),
    /// `jetstream` (Bluesky Jetstream `app.bsky.graph.follow` commits) or `mastodon` (the
    /// canonical envelope with a Mastodon `Account` as the follower). `activitypub` and
    /// `jetstream` carry no profile: give the profile table (`--profiles`, or
    /// `--profile-topic` on `serve`).
    #[arg(long, env = "FOLLOWGUARD_INPUT_FORMAT", default_value = "canonical", value_parser = parse_format)]
    pub input_format: InputFormat,
}

/// `--profiles` for the file commands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProfileFileArgs {
    /// Profile table for `--input-format activitypub` / `jetstream`: JSON-lines files of
    /// profiles (v1.1 user objects, Mastodon `Account` entities keyed by their `uri`,
    /// Bluesky profile views keyed by `did`); a later line for the same account replaces
    /// an earlier one. Read in full before the first event, so a follow whose follower
    /// is not in them is refused at once (`unknown_profile`).
    #[arg(long, env = "FOLLOWGUARD_PROFILES", num_args = 1..)]
    pub profiles: Vec<PathBuf>,
    /// Byte budget of the profile table (the updated-longest-ago entries go first).
    #[arg(long, env = "FOLLOWGUARD_PROFILE_TABLE_BYTES", default_value_t = profiles::DEFAULT_MAX_BYTES)]
    pub profile_table_bytes: usize,
}

/// The decoder of one input: its format and its profile table.
pub struct Decoder {
    pub format: InputFormat,
    pub table: ProfileTable,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            format: InputFormat::Canonical,
            table: ProfileTable::new(0),
        }
    }
}

impl Decoder {
    /// The decoder of `format` with the profiles of `files` (refused for a format that
    /// needs them when none are given).
    pub fn open(format: InputFormat, files: &ProfileFileArgs) -> anyhow::Result<Decoder> {
        let mut table = ProfileTable::new(files.profile_table_bytes);
        let mut bad: BTreeMap<&'static str, u64> = BTreeMap::new();
        for path in &files.profiles {
            load_profiles(path, &mut table, &mut bad)?;
        }
        if format.needs_profiles() && files.profiles.is_empty() {
            return Err(followguard_core::ConfigError(format!(
                "--input-format {} carries no profiles: give them with --profiles FILE",
                format.name()
            ))
            .into());
        }
        if !bad.is_empty() {
            eprintln!("profiles: skipped {bad:?}");
        }
        Ok(Decoder { format, table })
    }

    pub fn decode<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Result<Decoded<'a>, followguard_core::event::EventError> {
        profiles::decode(self.format, bytes, &self.table)
    }
}

/// Reads a JSON-lines profile file into `table`, counting unusable lines by kind.
pub fn load_profiles(
    path: &Path,
    table: &mut ProfileTable,
    bad: &mut BTreeMap<&'static str, u64>,
) -> anyhow::Result<()> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("opening profiles {}", path.display()))?;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Err(e) = table.apply(None, Some(&line)) {
            *bad.entry(e.kind()).or_default() += 1;
        }
    }
    Ok(())
}

/// The v1.1 fields a platform's profiles lack (issue 24), for `eval --mask-platform`:
/// what quality the model keeps on that platform's field set, measured on labelled v1.1
/// tables with those fields turned into missing values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlatformMask {
    /// X: every field (no mask).
    #[default]
    X,
    /// Mastodon (and ActivityPub follows joined with Mastodon profiles): no favourites
    /// or listed count, no location.
    Mastodon,
    /// Bluesky: no favourites or listed count, no location, no website.
    Bluesky,
}

impl PlatformMask {
    pub fn apply(self, p: &mut followguard_core::event::Profile<'_>) {
        use followguard_core::event::Profile;
        match self {
            PlatformMask::X => {}
            PlatformMask::Mastodon => {
                p.favourites_count = None;
                p.listed_count = None;
                p.unknown |= Profile::UNKNOWN_LOCATION;
            }
            PlatformMask::Bluesky => {
                p.favourites_count = None;
                p.listed_count = None;
                p.unknown |= Profile::UNKNOWN_LOCATION | Profile::UNKNOWN_URL;
            }
        }
    }
}
