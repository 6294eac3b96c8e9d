//! Escaping for the pages: account-controlled text, file names and URL query values.

/// Escapes `s` for HTML text and double- or single-quoted attributes. Bidirectional
/// overrides/isolates and other control characters are replaced by a visible `[U+XXXX]`
/// so an account name cannot reorder the text around it or hide characters.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_invisible_control(c) => out.push_str(&format!("[U+{:04X}]", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn is_invisible_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// An account-controlled string as inline HTML: escaped and bidi-isolated.
pub(super) fn acct(s: &str) -> String {
    format!("<bdi>{}</bdi>", esc(s))
}

/// Characters safe in a file name / URL path segment; anything else is replaced.
pub(super) fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Percent-encodes a query value.
pub(super) fn url_q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_neutralises_markup_quotes_and_bidi_controls() {
        let hostile = "<script>alert('x')</script>\"&\u{202E}gnp.exe\u{2066}\u{0007}";
        let e = esc(hostile);
        assert_eq!(
            e,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;[U+202E]gnp.exe[U+2066][U+0007]"
        );
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(esc("ordinary ünïcode 名前"), "ordinary ünïcode 名前");
    }
}
