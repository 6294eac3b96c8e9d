//! The fast path of `parse`: a scanner for this one schema. Profiles showed serde_json's
//! generic machinery (field matching through visitors, per-string UTF-8 validation and
//! escape scanning, skipping the unknown fields producers forward) at ~55% of a cold
//! event's instructions. This scanner works on the bytes directly. Contract: when it
//! returns `Some`, serde_json would have produced an equal `RawEvent` from the same
//! bytes; when in doubt it returns `None` and serde_json decides (including every error).

use super::{RawCount, RawEvent, RawFlag, RawProfile, RawTime};
use std::borrow::Cow;

/// Nesting allowed inside skipped values before handing over to serde_json (whose
/// own limit is 128).
const MAX_DEPTH: u32 = 64;

/// Field names of the follower object, in the order producers write them.
/// `missing` (issue 24, platforms without some fields) is left to serde_json.
const PROFILE_FIELDS: [&[u8]; 17] = [
    b"id",
    b"screen_name",
    b"name",
    b"description",
    b"url",
    b"location",
    b"created_at",
    b"followers_count",
    b"friends_count",
    b"statuses_count",
    b"favourites_count",
    b"listed_count",
    b"default_profile",
    b"default_profile_image",
    b"profile_use_background_image",
    b"protected",
    b"missing",
];
/// Field names of the event object, in the order producers write them.
const EVENT_FIELDS: [&[u8]; 5] = [b"event_id", b"type", b"ts", b"followee_id", b"follower"];

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Offset of the first `"`, `\` or control character in `s` (8 bytes at a time),
/// and whether every byte before it is ASCII (then it is valid UTF-8 as it stands).
#[inline(always)]
fn find_special(s: &[u8]) -> Option<(usize, bool)> {
    let mut i = 0;
    let mut seen = 0u64;
    while let Some(chunk) = s.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let q = w ^ (ONES * u64::from(b'"'));
        let bs = w ^ (ONES * u64::from(b'\\'));
        // The lowest flagged byte of each "has zero byte" mask is exact.
        let m = (q.wrapping_sub(ONES) & !q)
            | (bs.wrapping_sub(ONES) & !bs)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let m = m & HIGHS;
        if m != 0 {
            let at = m.trailing_zeros() / 8;
            // Bytes of this chunk before the special one.
            let before = if at == 0 {
                0
            } else {
                w & (u64::MAX >> (64 - 8 * at))
            };
            return Some((i + at as usize, (seen | before) & HIGHS == 0));
        }
        seen |= w;
        i += 8;
    }
    let p = s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let ascii = seen & HIGHS == 0 && s[i..i + p].is_ascii();
    Some((i + p, ascii))
}

/// Byte equality for keys (≤ 28 bytes), 8 at a time and inlined: a call to the
/// C library's `memcmp` per key was 13% of parsing.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        u64::from_ne_bytes(w)
    };
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if word(x) != word(y) {
            return false;
        }
    }
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .all(|(x, y)| x == y)
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                return Some(c);
            }
        }
        None
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    #[inline(always)]
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.i + lit.len();
        (self.b.get(self.i..end)? == lit).then(|| self.i = end)
    }

    /// The raw bytes of a string with no escape (not yet UTF-8 checked) and whether
    /// they are all ASCII. `None` for anything else.
    #[inline(always)]
    fn plain_bytes(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let rest = self.b.get(start..)?;
        let (len, ascii) = find_special(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some((&rest[..len], ascii))
    }

    /// A string with no escape: borrowed, UTF-8 checked. `None` for anything else.
    #[inline]
    fn plain_str(&mut self) -> Option<&'a str> {
        let (b, _) = self.plain_bytes()?;
        std::str::from_utf8(b).ok()
    }

    /// Index of the next object key in `names`, `Some(None)` for another key, `None`
    /// to decline. Producers write fields in a fixed order, so the key after the
    /// previous one (`hint`) is tried first with one comparison; otherwise the key
    /// is scanned and looked up.
    #[inline(always)]
    fn key_index(&mut self, names: &[&[u8]], hint: usize) -> Option<Option<usize>> {
        if self.peek()? != b'"' {
            return None;
        }
        if let Some(name) = names.get(hint) {
            let end = self.i + 1 + name.len();
            if let Some(k) = self.b.get(self.i + 1..end) {
                if same(k, name) && self.b.get(end) == Some(&b'"') {
                    self.i = end + 1;
                    return Some(Some(hint));
                }
            }
        }
        let key = self.key()?;
        Some(names.iter().position(|n| same(n, key)))
    }

    /// An object key, as bytes: the schema's names are ASCII, and any other key
    /// must still be valid UTF-8 for serde_json to accept it.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a [u8]> {
        let (b, ascii) = self.plain_bytes()?;
        if !ascii {
            std::str::from_utf8(b).ok()?;
        }
        Some(b)
    }

    /// Any valid string (escapes allowed), discarded.
    fn skip_str(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        loop {
            let rest = self.b.get(self.i..)?;
            let (len, ascii) = find_special(rest)?;
            if !ascii {
                std::str::from_utf8(&rest[..len]).ok()?;
            }
            self.i += len;
            match rest[len] {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    let esc = *self.b.get(self.i + 1)?;
                    match esc {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            let mut v = 0u32;
                            for &h in hex {
                                v = v * 16 + char::from(h).to_digit(16)?;
                            }
                            // Surrogates: leave pairing rules to serde_json.
                            if (0xD800..0xE000).contains(&v) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // control character
            }
        }
    }

    /// `0|[1-9][0-9]*` fitting u64, not followed by a fraction or exponent.
    #[inline(always)]
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c) = self.b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            return None;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(v)
    }

    /// Any valid JSON number, discarded.
    fn skip_number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = |s: &mut Self| {
            let start = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            s.i - start
        };
        let first = *self.b.get(self.i)?;
        let n = digits(self);
        if n == 0 || (first == b'0' && n > 1) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Any valid JSON value, discarded (the fields the schema ignores).
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_str(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            b'{' => {
                self.i += 1;
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.key()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    if self.next_member()? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// After an object member: `,` → `Some(false)` (more), `}` → `Some(true)` (end).
    #[inline(always)]
    fn next_member(&mut self) -> Option<bool> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            b',' => Some(false),
            b'}' => Some(true),
            _ => None,
        }
    }

    /// `null` → `Some(true)`.
    #[inline(always)]
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    /// An id: a string (borrowed) or an unsigned integer (its digits), as `opt_id`.
    fn id(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        if self.peek()? == b'"' {
            return Some(Some(Cow::Borrowed(self.plain_str()?)));
        }
        Some(Some(Cow::Owned(self.unsigned()?.to_string())))
    }

    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.plain_str()?)))
    }

    /// `type`: the two valid values as static strings (no UTF-8 check needed).
    fn kind(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        let (b, _) = self.plain_bytes()?;
        Some(Some(match b {
            b"follow" => Cow::Borrowed("follow"),
            b"unfollow" => Cow::Borrowed("unfollow"),
            _ => Cow::Borrowed(std::str::from_utf8(b).ok()?),
        }))
    }

    fn time(&mut self) -> Option<Option<RawTime<'a>>> {
        if self.null()? {
            return Some(None);
        }
        if self.peek()? == b'"' {
            return Some(Some(RawTime::Text(Cow::Borrowed(self.plain_str()?))));
        }
        let v = i64::try_from(self.unsigned()?).ok()?;
        Some(Some(RawTime::Millis(v)))
    }

    fn count(&mut self) -> Option<Option<RawCount>> {
        if self.null()? {
            return Some(None);
        }
        Some(Some(RawCount::Ok(self.unsigned()?)))
    }

    /// JSON literals only; any other encoding of a flag is left to the serde path.
    fn flag(&mut self) -> Option<Option<RawFlag>> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| Some(RawFlag::Ok(true))),
            b'f' => self.literal(b"false").map(|()| Some(RawFlag::Ok(false))),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    fn profile(&mut self) -> Option<Option<RawProfile<'a>>> {
        if self.null()? {
            return Some(None);
        }
        self.eat(b'{')?;
        let mut p = RawProfile {
            id: None,
            screen_name: None,
            name: None,
            description: None,
            url: None,
            location: None,
            created_at: None,
            followers_count: None,
            friends_count: None,
            statuses_count: None,
            favourites_count: None,
            listed_count: None,
            default_profile: None,
            default_profile_image: None,
            profile_use_background_image: None,
            protected: None,
            missing: None,
        };
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(Some(p));
        }
        let mut seen = 0u32;
        let mut hint = 0;
        loop {
            let idx = self.key_index(&PROFILE_FIELDS, hint)?;
            self.eat(b':')?;
            let bit = match idx {
                Some(0) => {
                    p.id = self.id()?;
                    0
                }
                Some(1) => {
                    p.screen_name = self.opt_str()?;
                    1
                }
                Some(2) => {
                    p.name = self.opt_str()?;
                    2
                }
                Some(3) => {
                    p.description = self.opt_str()?;
                    3
                }
                Some(4) => {
                    p.url = self.opt_str()?;
                    4
                }
                Some(5) => {
                    p.location = self.opt_str()?;
                    5
                }
                Some(6) => {
                    p.created_at = self.time()?;
                    6
                }
                Some(7) => {
                    p.followers_count = self.count()?;
                    7
                }
                Some(8) => {
                    p.friends_count = self.count()?;
                    8
                }
                Some(9) => {
                    p.statuses_count = self.count()?;
                    9
                }
                Some(10) => {
                    p.favourites_count = self.count()?;
                    10
                }
                Some(11) => {
                    p.listed_count = self.count()?;
                    11
                }
                Some(12) => {
                    p.default_profile = self.flag()?;
                    12
                }
                Some(13) => {
                    p.default_profile_image = self.flag()?;
                    13
                }
                Some(14) => {
                    p.profile_use_background_image = self.flag()?;
                    14
                }
                Some(15) => {
                    p.protected = self.flag()?;
                    15
                }
                Some(16) => return None,
                _ => {
                    self.skip(1)?;
                    if self.next_member()? {
                        return Some(Some(p));
                    }
                    continue;
                }
            };
            // serde's derive rejects a repeated field; let it.
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
            hint = bit + 1;
            if self.next_member()? {
                return Some(Some(p));
            }
        }
    }
}

/// The raw event, or `None` to let serde_json decide.
pub(super) fn raw_event(b: &[u8]) -> Option<RawEvent<'_>> {
    let mut s = Scan { b, i: 0 };
    s.eat(b'{')?;
    let mut ev = RawEvent {
        event_id: None,
        kind: None,
        ts: None,
        followee_id: None,
        follower: None,
    };
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        let mut seen = 0u32;
        let mut hint = 0;
        loop {
            let idx = s.key_index(&EVENT_FIELDS, hint)?;
            s.eat(b':')?;
            let bit = match idx {
                Some(0) => {
                    ev.event_id = s.id()?;
                    0
                }
                Some(1) => {
                    ev.kind = s.kind()?;
                    1
                }
                Some(2) => {
                    ev.ts = s.time()?;
                    2
                }
                Some(3) => {
                    ev.followee_id = s.id()?;
                    3
                }
                Some(4) => {
                    ev.follower = s.profile()?;
                    4
                }
                _ => {
                    s.skip(1)?;
                    if s.next_member()? {
                        break;
                    }
                    continue;
                }
            };
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
            hint = bit + 1;
            if s.next_member()? {
                break;
            }
        }
    }
    // Only whitespace may follow the object.
    (s.peek().is_none()).then_some(ev)
}
