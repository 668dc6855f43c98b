//! Meeting links, meeting IDs and invitation text.
//!
//! The grammar is documented with examples in `docs/links.md`. In short:
//!
//! ```text
//! conclave://join/<id>[?server=<url>][#<secrets>]
//! https://<host>[:<port>]/j/<id>[?server=<url>][#<secrets>]     (http:// on a LAN)
//! <secrets> = pwd=<password>&key=<chat key>&fp=<certificate SHA-256>
//! ```
//!
//! Everything secret rides in the fragment, which browsers and HTTP clients
//! never send to any server. Bare IDs are 9–12 digits, optionally grouped with
//! spaces or dashes (`123 456 789`, `123-456-789`).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest bare meeting ID, in digits.
pub const MIN_BARE_ID_DIGITS: usize = 9;
/// Longest bare meeting ID, in digits.
pub const MAX_BARE_ID_DIGITS: usize = 12;
/// Longest input the parser looks at (a pasted invitation, say).
pub const MAX_INPUT_LEN: usize = 16 * 1024;
/// Length of a chat key in bytes.
pub const CHAT_KEY_LEN: usize = 32;

/// Why a text is not a meeting link or ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Nothing was given.
    #[error("enter a meeting link or ID")]
    Empty,
    /// The input is longer than [`MAX_INPUT_LEN`].
    #[error("the text is too long to be a meeting link")]
    TooLong,
    /// Neither a link nor an ID was found.
    #[error("not a meeting link or ID")]
    NotAMeeting,
    /// A link with an unsupported scheme or path.
    #[error("unsupported link: expected conclave://join/<id> or https://<host>/j/<id>")]
    UnsupportedLink,
    /// The meeting ID is malformed.
    #[error("a meeting ID is {MIN_BARE_ID_DIGITS} to {MAX_BARE_ID_DIGITS} digits")]
    BadId,
    /// The server URL in the link is not a ws://, wss://, http:// or https:// URL.
    #[error("the server address in the link is not valid")]
    BadServer,
    /// The chat key is not 32 bytes of base64url.
    #[error("the chat key in the link is damaged")]
    BadChatKey,
    /// The certificate fingerprint is not 32 bytes of hex.
    #[error("the certificate fingerprint in the link is damaged")]
    BadFingerprint,
    /// The relay (`turn=`, `turn_user=`, `turn_pass=`) is not usable.
    #[error("the relay in the link is not a turn:, turns: or stun: address")]
    BadRelay,
    /// A percent-escape in the link is broken.
    #[error("the link contains a broken %-escape")]
    BadEscape,
}

/// A meeting (room) number. Displayed in groups of three digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MeetingId(pub u64);

impl MeetingId {
    /// Parses a bare ID: 9–12 digits, groups separated by one space or dash.
    pub fn parse_bare(text: &str) -> Result<Self, LinkError> {
        let text = text.trim();
        let mut digits = String::new();
        let mut last_sep = true;
        for c in text.chars() {
            match c {
                '0'..='9' => {
                    digits.push(c);
                    last_sep = false;
                }
                ' ' | '-' if !last_sep => last_sep = true,
                _ => return Err(LinkError::BadId),
            }
        }
        if last_sep || !(MIN_BARE_ID_DIGITS..=MAX_BARE_ID_DIGITS).contains(&digits.len()) {
            return Err(LinkError::BadId);
        }
        Self::from_digits(&digits)
    }

    /// Parses the ID part of a link: 1–20 digits, not zero.
    fn parse_in_link(text: &str) -> Result<Self, LinkError> {
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LinkError::BadId);
        }
        Self::from_digits(text)
    }

    fn from_digits(digits: &str) -> Result<Self, LinkError> {
        match digits.parse::<u64>() {
            Ok(0) | Err(_) => Err(LinkError::BadId),
            Ok(n) => Ok(MeetingId(n)),
        }
    }
}

impl fmt::Display for MeetingId {
    /// `123456789` is shown as `123 456 789`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let first = match digits.len() % 3 {
            0 => 3,
            n => n,
        };
        f.write_str(&digits[..first.min(digits.len())])?;
        let mut i = first;
        while i < digits.len() {
            write!(f, " {}", &digits[i..i + 3])?;
            i += 3;
        }
        Ok(())
    }
}

/// A meeting password. Its `Debug` form never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The symmetric key that end-to-end encrypts a meeting's chat. Its `Debug`
/// form never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ChatKey(pub [u8; CHAT_KEY_LEN]);

impl ChatKey {
    /// Parses the base64url (unpadded) form used in links.
    pub fn from_base64(text: &str) -> Result<Self, LinkError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| LinkError::BadChatKey)?;
        let key: [u8; CHAT_KEY_LEN] = bytes.try_into().map_err(|_| LinkError::BadChatKey)?;
        Ok(ChatKey(key))
    }

    /// The base64url (unpadded) form used in links.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for ChatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChatKey(<redacted>)")
    }
}

impl Serialize for ChatKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for ChatKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ChatKey::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// Everything needed to join a meeting, as parsed from a link, an ID or an
/// invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    /// Signaling URL (`ws://` or `wss://`), when the link names one.
    pub server: Option<String>,
    /// The meeting ID.
    pub room: MeetingId,
    /// The meeting password, if the link carries it.
    pub password: Option<Password>,
    /// The chat key, if the link carries it; chat is then end-to-end encrypted.
    pub chat_key: Option<ChatKey>,
    /// SHA-256 of the server's TLS certificate (lowercase hex), to pin a
    /// self-signed certificate.
    pub cert_fingerprint: Option<String>,
    /// A relay the meeting's host named for those whose network needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<LinkRelay>,
}

/// A relay (TURN) or STUN server carried in a link's fragment, with its
/// credentials: `turn=<URL>&turn_user=<user>&turn_pass=<password>`, each
/// percent-encoded. The URL is checked here only for its scheme and
/// characters; the engine parses it fully when joining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRelay {
    /// `turn:HOST[:PORT][?transport=tcp]`, `turns:HOST[:PORT]` or
    /// `stun:HOST[:PORT]`.
    pub url: String,
    /// The TURN user name.
    pub username: Option<String>,
    /// The TURN password (a secret, like the meeting's).
    pub password: Option<Password>,
}

/// Longest relay URL or user name a link may carry.
const MAX_RELAY_FIELD: usize = 256;

/// Whether `url` looks like a relay or STUN address a link may carry.
fn is_relay_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["turn:", "turns:", "stun:"]
        .iter()
        .any(|s| lower.starts_with(s) && lower.len() > s.len())
        && url.len() <= MAX_RELAY_FIELD
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl MeetingInfo {
    /// A meeting with only an ID.
    pub fn new(room: MeetingId) -> Self {
        MeetingInfo {
            server: None,
            room,
            password: None,
            chat_key: None,
            cert_fingerprint: None,
            relay: None,
        }
    }

    /// Parses what a user typed or pasted: a link, a bare ID, or invitation
    /// text containing either.
    pub fn parse(text: &str) -> Result<Self, LinkError> {
        if text.len() > MAX_INPUT_LEN {
            return Err(LinkError::TooLong);
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(LinkError::Empty);
        }
        if looks_like_link(trimmed) && !trimmed.contains(char::is_whitespace) {
            return parse_link(trimmed);
        }
        if let Ok(id) = MeetingId::parse_bare(trimmed) {
            return Ok(MeetingInfo::new(id));
        }
        find_in_text(trimmed).ok_or(LinkError::NotAMeeting)
    }

    /// The `conclave://` link for this meeting, secrets in the fragment.
    pub fn to_app_link(&self) -> String {
        let mut link = format!("conclave://join/{}", self.room.0);
        if let Some(server) = &self.server {
            link.push_str("?server=");
            link.push_str(&percent_encode(server));
        }
        self.push_fragment(&mut link);
        link
    }

    /// The `https://<host>/j/<id>` link for this meeting.
    pub fn to_web_link(&self, host: &str) -> String {
        let mut link = format!("https://{host}/j/{}", self.room.0);
        self.push_fragment(&mut link);
        link
    }

    /// The link of the meeting's page on its server (`http(s)://<host>/j/<id>`,
    /// which conclave-server serves), when the server is at the host's root
    /// or at `/janus` (what a `/j/` link means, see docs/links.md). The
    /// secrets stay in the fragment, which browsers never send.
    pub fn to_page_link(&self) -> Option<String> {
        let server = self.server.as_deref()?;
        let (scheme, rest) = if let Some(rest) = server.strip_prefix("wss://") {
            ("https", rest)
        } else {
            ("http", server.strip_prefix("ws://")?)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let host = rest.strip_suffix("/janus").unwrap_or(rest);
        if host.is_empty() || host.contains('/') {
            return None;
        }
        let mut link = format!("{scheme}://{host}/j/{}", self.room.0);
        self.push_fragment(&mut link);
        Some(link)
    }

    fn push_fragment(&self, link: &mut String) {
        let mut parts = Vec::new();
        if let Some(p) = &self.password {
            parts.push(format!("pwd={}", percent_encode(&p.0)));
        }
        if let Some(k) = &self.chat_key {
            parts.push(format!("key={}", k.to_base64()));
        }
        if let Some(fp) = &self.cert_fingerprint {
            parts.push(format!("fp={fp}"));
        }
        if let Some(relay) = &self.relay {
            parts.push(format!("turn={}", percent_encode(&relay.url)));
            if let Some(user) = &relay.username {
                parts.push(format!("turn_user={}", percent_encode(user)));
            }
            if let Some(pass) = &relay.password {
                parts.push(format!("turn_pass={}", percent_encode(&pass.0)));
            }
        }
        if !parts.is_empty() {
            link.push('#');
            link.push_str(&parts.join("&"));
        }
    }

    /// The PIN sent to the server for this meeting's password.
    ///
    /// The password itself never travels: the server only ever sees a
    /// SHA-256 derivation bound to the meeting ID. Rooms are created with
    /// the same derivation.
    pub fn room_pin(&self) -> Option<String> {
        self.password
            .as_ref()
            .map(|p| derive_room_pin(self.room, &p.0))
    }
}

/// The server-side PIN for a meeting password (see [`MeetingInfo::room_pin`]).
pub fn derive_room_pin(room: MeetingId, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"conclave-room-pin-v1\0");
    h.update(room.0.to_string().as_bytes());
    h.update(b"\0");
    h.update(password.as_bytes());
    let digest = h.finalize();
    URL_SAFE_NO_PAD.encode(&digest[..18])
}

fn looks_like_link(text: &str) -> bool {
    let lower = text.get(..12).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("conclave://")
        || lower.starts_with("https://")
        || lower.starts_with("http://")
}

/// Parses a `conclave://`, `https://` or `http://` meeting link.
pub fn parse_link(link: &str) -> Result<MeetingInfo, LinkError> {
    let (scheme, rest) = link.split_once("://").ok_or(LinkError::UnsupportedLink)?;
    let scheme = scheme.to_ascii_lowercase();
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (before_fragment, None),
    };
    let (room, default_server) = match scheme.as_str() {
        "conclave" => {
            let id = path
                .strip_prefix("join/")
                .ok_or(LinkError::UnsupportedLink)?
                .trim_end_matches('/');
            (MeetingId::parse_in_link(id)?, None)
        }
        "https" | "http" => {
            let (host, path) = path.split_once('/').ok_or(LinkError::UnsupportedLink)?;
            if host.is_empty() || !host.chars().all(is_host_char) {
                return Err(LinkError::UnsupportedLink);
            }
            let id = path
                .strip_prefix("j/")
                .ok_or(LinkError::UnsupportedLink)?
                .trim_end_matches('/');
            let ws = if scheme == "https" { "wss" } else { "ws" };
            (
                MeetingId::parse_in_link(id)?,
                Some(format!("{ws}://{host}/janus")),
            )
        }
        _ => return Err(LinkError::UnsupportedLink),
    };
    let mut info = MeetingInfo::new(room);
    info.server = default_server;
    for (k, v) in pairs(query.unwrap_or_default()) {
        if k == "server" {
            let server = percent_decode(v)?;
            info.server = Some(normalise_server(&server).ok_or(LinkError::BadServer)?);
        }
    }
    let (mut relay_url, mut relay_user, mut relay_pass) = (None, None, None);
    for (k, v) in pairs(fragment.unwrap_or_default()) {
        match k {
            "pwd" => {
                let pwd = percent_decode(v)?;
                if !pwd.is_empty() {
                    info.password = Some(Password(pwd));
                }
            }
            "key" => info.chat_key = Some(ChatKey::from_base64(v)?),
            "fp" => info.cert_fingerprint = Some(parse_fingerprint(v)?),
            "turn" => relay_url = Some(percent_decode(v)?),
            "turn_user" => relay_user = Some(percent_decode(v)?),
            "turn_pass" => relay_pass = Some(percent_decode(v)?),
            _ => {}
        }
    }
    match relay_url {
        Some(url) if is_relay_url(&url) => {
            if relay_user
                .as_ref()
                .is_some_and(|u| u.len() > MAX_RELAY_FIELD)
            {
                return Err(LinkError::BadRelay);
            }
            info.relay = Some(LinkRelay {
                url,
                username: relay_user.filter(|u| !u.is_empty()),
                password: relay_pass.filter(|p| !p.is_empty()).map(Password),
            });
        }
        Some(_) => return Err(LinkError::BadRelay),
        // Credentials without a relay mean nothing; they are dropped.
        None => {}
    }
    Ok(info)
}

/// Turns a user-given server address into a signaling URL: `ws(s)://` is kept,
/// `http(s)://` becomes `ws(s)://`. Returns `None` for anything else.
pub fn normalise_server(server: &str) -> Option<String> {
    let server = server.trim();
    let (scheme, rest) = server.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return None,
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty()
        || !host.chars().all(is_host_char)
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(format!("{scheme}://{rest}"))
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_')
}

fn parse_fingerprint(text: &str) -> Result<String, LinkError> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(LinkError::BadFingerprint)
    }
}

fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space); the result must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, LinkError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(LinkError::BadEscape)?;
                let hex = std::str::from_utf8(hex).map_err(|_| LinkError::BadEscape)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| LinkError::BadEscape)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| LinkError::BadEscape)
}

/// Finds meeting info inside free text such as a pasted invitation.
///
/// A link anywhere in the text wins. Otherwise an ID is only taken from a
/// line labelled as one ("Meeting ID:", "会议号："), so that ordinary numbers
/// in ordinary text are not mistaken for meetings; a "Password:"/"密码：" line
/// supplies the password.
pub fn find_in_text(text: &str) -> Option<MeetingInfo> {
    if text.len() > MAX_INPUT_LEN {
        return None;
    }
    for token in text.split(|c: char| c.is_whitespace() || "<>\"'()[]「」，。".contains(c)) {
        let token = token.trim_end_matches(['.', ',', ';', ')']);
        if looks_like_link(token) {
            if let Ok(info) = parse_link(token) {
                return Some(info);
            }
        }
    }
    let mut info: Option<MeetingInfo> = None;
    let mut password = None;
    for line in text.lines() {
        let Some((label, value)) = line.split_once([':', '：']) else {
            continue;
        };
        let label = label.trim().to_lowercase();
        let value = value.trim();
        if info.is_none() && is_id_label(&label) {
            // The ID is the run of digits (grouped by spaces or dashes) the
            // line starts with; words after it are ignored.
            let end = value
                .find(|c: char| !(c.is_ascii_digit() || c == ' ' || c == '-'))
                .unwrap_or(value.len());
            if let Ok(id) = MeetingId::parse_bare(value[..end].trim()) {
                info = Some(MeetingInfo::new(id));
            }
        } else if password.is_none() && is_password_label(&label) {
            let first = value.split_whitespace().next().unwrap_or_default();
            if !first.is_empty() && first.len() <= 128 {
                password = Some(Password(first.to_owned()));
            }
        }
    }
    let mut info = info?;
    info.password = password;
    Some(info)
}

fn is_id_label(label: &str) -> bool {
    [
        "meeting id",
        "meeting number",
        "conference id",
        "会议号",
        "会议 id",
        "会议id",
    ]
    .iter()
    .any(|l| label.ends_with(l))
}

fn is_password_label(label: &str) -> bool {
    ["password", "passcode", "pin", "密码", "会议密码"]
        .iter()
        .any(|l| label.ends_with(l))
}

/// The text a user copies to invite others (J6).
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    /// The meeting.
    pub info: &'a MeetingInfo,
    /// The inviter's nickname.
    pub inviter: &'a str,
    /// The meeting topic, if any.
    pub topic: Option<&'a str>,
}

impl Invitation<'_> {
    /// Renders the invitation. [`find_in_text`] recognises its output.
    pub fn to_text(&self) -> String {
        let mut text = format!("{} invites you to a Conclave meeting", self.inviter);
        if let Some(topic) = self.topic.filter(|t| !t.is_empty()) {
            text.push_str(&format!(": {topic}"));
        }
        text.push_str(".\n\n");
        text.push_str(&format!("Join: {}\n", self.info.to_app_link()));
        text.push_str(&format!("Meeting ID: {}\n", self.info.room));
        if let Some(p) = &self.info.password {
            text.push_str(&format!("Password: {}\n", p.0));
        }
        if self.info.chat_key.is_some() {
            text.push_str("Chat is end-to-end encrypted; the key is in the link.\n");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> ChatKey {
        ChatKey([7u8; CHAT_KEY_LEN])
    }

    #[test]
    fn page_links_point_at_the_server_root_and_parse_back() {
        let mut info = MeetingInfo::parse(
            "conclave://join/123456789?server=ws%3A%2F%2F192.168.1.20%3A40123#pwd=a%20b",
        )
        .expect("link");
        let page = info.to_page_link().expect("page link");
        assert_eq!(page, "http://192.168.1.20:40123/j/123456789#pwd=a%20b");
        let back = MeetingInfo::parse(&page).expect("parses back");
        // (conclave-server takes WebSockets on any path.)
        assert_eq!(
            back.server.as_deref(),
            Some("ws://192.168.1.20:40123/janus")
        );
        assert_eq!(back.password, info.password);
        info.server = Some("wss://meet.example.org/janus".into());
        assert_eq!(
            info.to_page_link().as_deref(),
            Some("https://meet.example.org/j/123456789#pwd=a%20b")
        );
        info.server = Some("wss://meet.example.org/other/ws".into());
        assert_eq!(info.to_page_link(), None, "not at the server's root");
        info.server = None;
        assert_eq!(info.to_page_link(), None);
    }

    #[test]
    fn bare_ids() {
        for ok in [
            "123456789",
            "123 456 789",
            "123-456-789",
            " 1234 5678 9012 ",
        ] {
            assert!(MeetingId::parse_bare(ok).is_ok(), "{ok}");
        }
        for bad in [
            "12345678",
            "1234567890123",
            "123  456 789",
            "123 456 789-",
            "-123456789",
            "abc",
            "000000000",
            "12345678x",
        ] {
            assert_eq!(MeetingId::parse_bare(bad), Err(LinkError::BadId), "{bad}");
        }
        assert_eq!(MeetingId(123456789).to_string(), "123 456 789");
        assert_eq!(MeetingId(1234567890).to_string(), "1 234 567 890");
        assert_eq!(MeetingId(12).to_string(), "12");
    }

    #[test]
    fn app_link() {
        let info = MeetingInfo::parse(
            "conclave://join/123456789?server=ws%3A%2F%2F127.0.0.1%3A8188#pwd=s%20cret&key=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
        )
        .expect("valid");
        assert_eq!(info.room, MeetingId(123456789));
        assert_eq!(info.server.as_deref(), Some("ws://127.0.0.1:8188"));
        assert_eq!(info.password, Some(Password("s cret".into())));
        assert_eq!(info.chat_key, Some(key()));
    }

    #[test]
    fn web_link() {
        let fp = "ab".repeat(32);
        let info = MeetingInfo::parse(&format!(
            "https://meet.example.org:8443/j/987654321#fp={fp}"
        ))
        .expect("valid");
        assert_eq!(
            info.server.as_deref(),
            Some("wss://meet.example.org:8443/janus")
        );
        assert_eq!(info.cert_fingerprint, Some(fp));
        assert_eq!(info.password, None);
    }

    #[test]
    fn bad_links() {
        assert_eq!(MeetingInfo::parse("  "), Err(LinkError::Empty));
        assert_eq!(
            MeetingInfo::parse("ftp://x/j/123456789"),
            Err(LinkError::NotAMeeting)
        );
        assert_eq!(
            parse_link("ftp://x/j/123456789"),
            Err(LinkError::UnsupportedLink)
        );
        assert_eq!(
            MeetingInfo::parse("conclave://join/abc"),
            Err(LinkError::BadId)
        );
        assert_eq!(
            MeetingInfo::parse("conclave://join/123#key=short"),
            Err(LinkError::BadChatKey)
        );
        assert_eq!(
            MeetingInfo::parse("conclave://join/123#pwd=%zz"),
            Err(LinkError::BadEscape)
        );
        assert_eq!(
            MeetingInfo::parse("conclave://join/123?server=file%3A%2F%2Fx"),
            Err(LinkError::BadServer)
        );
        assert_eq!(
            MeetingInfo::parse("https://example.org/other/123"),
            Err(LinkError::UnsupportedLink)
        );
        assert_eq!(
            MeetingInfo::parse("hello world"),
            Err(LinkError::NotAMeeting)
        );
    }

    #[test]
    fn clipboard_corpus_offers_meetings_and_nothing_else() {
        let meetings = [
            ("conclave://join/123456789", 123_456_789),
            ("Meeting ID: 123 456 789\nPassword: hunter2", 123_456_789),
            ("Meeting ID: 123-456-789", 123_456_789),
            (
                "Join my meeting\n\nhttps://meet.example.org/j/987654321#pwd=abc\n\nSee you!",
                987_654_321,
            ),
            (
                "Ada invites you to a Conclave meeting.\r\nMeeting ID: 555 000 111\r\n",
                555_000_111,
            ),
            (
                "张三邀请您参加会议\n会议号：123 456 789\n会议密码：8899",
                123_456_789,
            ),
            ("会议主题：周会\n会议 ID：222-333-444", 222_333_444),
            (
                "Reunión semanal — Meeting ID: 333444555 (Zoom-like text)",
                333_444_555,
            ),
            ("   conclave://join/444555666   ", 444_555_666),
        ];
        for (text, room) in meetings {
            let info = MeetingInfo::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(info.room.0, room, "{text:?}");
        }
        let not_meetings = [
            "",
            "hello world",
            "Call me at 123 456 789",
            "Invoice 2026-11-23, total 1234.56",
            "https://example.org/docs/123456789",
            "今天天气很好，温度 23 度",
            "password: hunter2",
        ];
        for text in not_meetings {
            assert!(
                MeetingInfo::parse(text).is_err(),
                "{text:?} is not a meeting"
            );
        }
    }

    #[test]
    fn invitation_text_round_trip() {
        let mut info = MeetingInfo::new(MeetingId(123456789));
        info.password = Some(Password("pa ss".into()));
        info.chat_key = Some(key());
        info.server = Some("wss://h:1/janus".into());
        let text = Invitation {
            info: &info,
            inviter: "Ann",
            topic: Some("Weekly"),
        }
        .to_text();
        assert_eq!(MeetingInfo::parse(&text), Ok(info));
    }

    #[test]
    fn labelled_id_and_password_in_text() {
        let text = "Hi all,\nMeeting ID: 123 456 789\nPassword: hunter2\nsee you";
        let info = MeetingInfo::parse(text).expect("found");
        assert_eq!(info.room, MeetingId(123456789));
        assert_eq!(info.password, Some(Password("hunter2".into())));
        let zh = "会议号：987-654-321\n会议密码：abc";
        let info = MeetingInfo::parse(zh).expect("found");
        assert_eq!(info.room, MeetingId(987654321));
        assert_eq!(info.password, Some(Password("abc".into())));
        // Numbers without a label are not meetings.
        assert!(MeetingInfo::parse("call me at 123 456 789 tomorrow").is_err());
    }

    #[test]
    fn pin_is_derived_and_bound_to_room() {
        let a = derive_room_pin(MeetingId(1), "pw");
        assert_ne!(a, "pw");
        assert_eq!(a, derive_room_pin(MeetingId(1), "pw"));
        assert_ne!(a, derive_room_pin(MeetingId(2), "pw"));
        assert_eq!(a.len(), 24);
    }

    #[test]
    fn a_relay_rides_in_the_fragment() {
        let info = MeetingInfo::parse(
            "conclave://join/123456789#pwd=x&turn=turn%3Arelay.example.org%3A3478%3Ftransport%3Dtcp&turn_user=1700000000%3Aa&turn_pass=p%26w",
        )
        .expect("valid in this test");
        let relay = info.relay.clone().expect("valid in this test");
        assert_eq!(relay.url, "turn:relay.example.org:3478?transport=tcp");
        assert_eq!(relay.username.as_deref(), Some("1700000000:a"));
        assert_eq!(relay.password, Some(Password("p&w".into())));
        let link = info.to_app_link();
        let (_, fragment) = link.split_once('#').expect("valid in this test");
        assert!(fragment.contains("turn_pass=p%26w"), "{link}");
        assert_eq!(MeetingInfo::parse(&link).expect("valid in this test"), info);
        assert!(!format!("{info:?}").contains("p&w"));
    }

    #[test]
    fn a_relay_that_is_not_one_is_refused() {
        for bad in ["http%3A%2F%2Fx", "turn%3A", "turn%3Aa%20b", ""] {
            let link = format!("conclave://join/123456789#turn={bad}&turn_user=u&turn_pass=p");
            assert_eq!(MeetingInfo::parse(&link), Err(LinkError::BadRelay), "{bad}");
        }
        // Credentials alone are ignored.
        let info = MeetingInfo::parse("conclave://join/123456789#turn_user=u&turn_pass=p")
            .expect("valid in this test");
        assert_eq!(info.relay, None);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut info = MeetingInfo::new(MeetingId(123456789));
        info.password = Some(Password("topsecret".into()));
        info.chat_key = Some(key());
        let dbg = format!("{info:?}");
        assert!(!dbg.contains("topsecret"));
        assert!(!dbg.contains(&key().to_base64()));
    }

    fn arb_info() -> impl Strategy<Value = MeetingInfo> {
        (
            1u64..=u64::MAX,
            proptest::option::of("\\PC{0,40}"),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of("[0-9a-f]{64}"),
            proptest::option::of(("(ws|wss)", "[a-z0-9.-]{1,20}", 1u16..)),
            proptest::option::of((
                "(turn|turns|stun):[a-z0-9.-]{1,20}(:[0-9]{1,5})?(\\?transport=tcp)?",
                proptest::option::of("\\PC{1,30}"),
                proptest::option::of("\\PC{1,30}"),
            )),
        )
            .prop_map(|(room, pwd, key, fp, server, relay)| MeetingInfo {
                server: server.map(|(s, h, p)| format!("{s}://{h}:{p}/janus")),
                room: MeetingId(room),
                password: pwd.filter(|p| !p.is_empty()).map(Password),
                chat_key: key.map(ChatKey),
                cert_fingerprint: fp,
                relay: relay.map(|(url, username, password)| LinkRelay {
                    url,
                    username,
                    password: password.map(Password),
                }),
            })
    }

    proptest! {
        #[test]
        fn app_link_round_trips(info in arb_info()) {
            prop_assert_eq!(MeetingInfo::parse(&info.to_app_link()), Ok(info));
        }

        #[test]
        fn web_link_round_trips(info in arb_info(), host in "[a-z0-9-]{1,20}(\\.[a-z]{2,5})?(:[0-9]{1,5})?") {
            let parsed = MeetingInfo::parse(&info.to_web_link(&host)).expect("valid");
            prop_assert_eq!(parsed.room, info.room);
            prop_assert_eq!(parsed.password, info.password);
            prop_assert_eq!(parsed.chat_key, info.chat_key);
            prop_assert_eq!(parsed.server, Some(format!("wss://{host}/janus")));
        }

        #[test]
        fn bare_id_round_trips(n in 100_000_000u64..1_000_000_000_000) {
            let id = MeetingId(n);
            prop_assert_eq!(MeetingId::parse_bare(&id.to_string()), Ok(id));
            prop_assert_eq!(MeetingId::parse_bare(&id.to_string().replace(' ', "-")), Ok(id));
            prop_assert_eq!(MeetingId::parse_bare(&n.to_string()), Ok(id));
        }

        #[test]
        fn percent_round_trips(s in "\\PC*") {
            prop_assert_eq!(percent_decode(&percent_encode(&s)), Ok(s));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = MeetingInfo::parse(&s);
        }
    }
}
