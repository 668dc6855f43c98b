//! Relay (TURN) and STUN servers, as a user or a meeting's host names them:
//! `turn:HOST[:PORT][?transport=udp|tcp]`, `turns:HOST[:PORT]` (TURN over
//! TLS) and `stun:HOST[:PORT]` (RFC 7064/7065), with the credentials a TURN
//! server wants. Nothing here contacts anything: parsing only.

use std::fmt;

/// How we reach a TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayTransport {
    /// TURN over UDP (`turn:`, the default).
    Udp,
    /// TURN over TCP (`turn:…?transport=tcp`).
    Tcp,
    /// TURN over TLS (`turns:`).
    Tls,
}

impl fmt::Display for RelayTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelayTransport::Udp => "UDP",
            RelayTransport::Tcp => "TCP",
            RelayTransport::Tls => "TLS",
        })
    }
}

/// One server of an ICE server list.
#[derive(Clone, PartialEq, Eq)]
pub enum IceServer {
    /// A relay.
    Turn {
        /// Host name or address literal (IPv6 without brackets).
        host: String,
        /// Port (3478 for `turn:`, 5349 for `turns:` unless given).
        port: u16,
        /// How it is reached.
        transport: RelayTransport,
        /// The TURN user.
        username: String,
        /// The TURN password (a secret: never logged).
        password: String,
    },
    /// A STUN server, which tells us our address as others see it.
    Stun {
        /// Host name or address literal.
        host: String,
        /// Port (3478 unless given).
        port: u16,
    },
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IceServer::Turn {
                host,
                port,
                transport,
                username,
                ..
            } => write!(
                f,
                "TURN over {transport} at {host}:{port} as {username:?} (password withheld)"
            ),
            IceServer::Stun { host, port } => write!(f, "STUN at {host}:{port}"),
        }
    }
}

/// Why an ICE server URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceServerError {
    /// Not `turn:`, `turns:` or `stun:`.
    #[error("“{0}” is not a turn:, turns: or stun: address")]
    Scheme(String),
    /// No host, or a port that is not a number from 1 to 65535.
    #[error("“{0}” has no usable host and port")]
    Address(String),
    /// A `transport=` other than `udp` or `tcp`, or one on `turns:`.
    #[error("“{0}” asks for a transport that is not udp or tcp")]
    Transport(String),
    /// A TURN server without a user name and password.
    #[error("the relay “{0}” needs a user name and a password")]
    Credentials(String),
}

impl IceServer {
    /// Parses one URL; `username` and `password` are needed for TURN and
    /// ignored for STUN.
    pub fn parse(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<IceServer, IceServerError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| IceServerError::Scheme(url.to_owned()))?;
        let scheme = scheme.to_ascii_lowercase();
        let (address, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        // `turn://host` is common in the wild; RFC 7065 has no slashes.
        let address = address.trim_start_matches("//");
        let default_port = if scheme == "turns" { 5349 } else { 3478 };
        let (host, port) = split_host_port(address, default_port)
            .ok_or_else(|| IceServerError::Address(url.to_owned()))?;
        let transport_asked = match query {
            None => None,
            Some(q) => {
                let mut found = None;
                for pair in q.split('&') {
                    match pair.split_once('=') {
                        Some((k, v)) if k.eq_ignore_ascii_case("transport") => {
                            found = Some(v.to_ascii_lowercase());
                        }
                        _ => return Err(IceServerError::Transport(url.to_owned())),
                    }
                }
                found
            }
        };
        match scheme.as_str() {
            "stun" | "stuns" if transport_asked.is_none() => Ok(IceServer::Stun { host, port }),
            "turn" | "turns" => {
                let transport = match (scheme.as_str(), transport_asked.as_deref()) {
                    ("turn", None | Some("udp")) => RelayTransport::Udp,
                    ("turn", Some("tcp")) | ("turns", None | Some("tcp")) => {
                        if scheme == "turns" {
                            RelayTransport::Tls
                        } else {
                            RelayTransport::Tcp
                        }
                    }
                    _ => return Err(IceServerError::Transport(url.to_owned())),
                };
                match (username, password) {
                    (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok(IceServer::Turn {
                        host,
                        port,
                        transport,
                        username: u.to_owned(),
                        password: p.to_owned(),
                    }),
                    _ => Err(IceServerError::Credentials(format!("{scheme}:{address}"))),
                }
            }
            "stun" | "stuns" => Err(IceServerError::Transport(url.to_owned())),
            _ => Err(IceServerError::Scheme(url.to_owned())),
        }
    }
}

/// How a meeting may reach the others: the relays and STUN servers the user
/// or the meeting's host named (never any other), and whether only relayed
/// paths may be offered.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// Relays and STUN servers, in the order they were given.
    pub ice_servers: Vec<IceServer>,
    /// Offer only relayed candidates: our addresses stay hidden from the
    /// server and the others (needs at least one relay that answers).
    pub relay_only: bool,
    /// For `turns:` relays without a certificate from a public authority:
    /// the SHA-256 fingerprint their certificate must have.
    pub relay_fingerprint: Option<String>,
}

impl NetworkOptions {
    /// Adds the relay a meeting link carries (after the user's own, which
    /// come first); an unusable one is an error for the caller to show.
    pub fn add_link_relay(
        &mut self,
        relay: &conclave_protocol::LinkRelay,
    ) -> Result<(), IceServerError> {
        let server = IceServer::parse(
            &relay.url,
            relay.username.as_deref(),
            relay.password.as_ref().map(|p| p.0.as_str()),
        )?;
        if !self.ice_servers.contains(&server) {
            self.ice_servers.push(server);
        }
        Ok(())
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; `None` when the host is empty
/// or the port is not 1..=65535.
fn split_host_port(address: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host, port)
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port.parse().ok()?),
            Some(_) => return None,
            None => (address, default_port),
        }
    };
    let valid = !host.is_empty()
        && port != 0
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    valid.then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn turn(host: &str, port: u16, transport: RelayTransport) -> IceServer {
        IceServer::Turn {
            host: host.into(),
            port,
            transport,
            username: "u".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn a_link_relay_comes_after_the_users_own_and_only_once() {
        let mut options = NetworkOptions {
            ice_servers: vec![turn("mine.example.org", 3478, RelayTransport::Udp)],
            ..Default::default()
        };
        let relay = conclave_protocol::LinkRelay {
            url: "turns:host.example.org".into(),
            username: Some("u".into()),
            password: Some(conclave_protocol::link::Password("p".into())),
        };
        options.add_link_relay(&relay).expect("a usable relay");
        options.add_link_relay(&relay).expect("a usable relay");
        assert_eq!(
            options.ice_servers,
            vec![
                turn("mine.example.org", 3478, RelayTransport::Udp),
                turn("host.example.org", 5349, RelayTransport::Tls)
            ]
        );
        let no_password = conclave_protocol::LinkRelay {
            password: None,
            ..relay
        };
        assert!(matches!(
            options.add_link_relay(&no_password),
            Err(IceServerError::Credentials(_))
        ));
    }

    #[test]
    fn the_usual_urls_parse() {
        let p = |url| IceServer::parse(url, Some("u"), Some("p"));
        assert_eq!(
            p("turn:relay.example.org"),
            Ok(turn("relay.example.org", 3478, RelayTransport::Udp))
        );
        assert_eq!(
            p("turn:10.0.0.1:3479?transport=tcp"),
            Ok(turn("10.0.0.1", 3479, RelayTransport::Tcp))
        );
        assert_eq!(
            p("turns:relay.example.org"),
            Ok(turn("relay.example.org", 5349, RelayTransport::Tls))
        );
        assert_eq!(
            p("TURNS:relay.example.org:443?transport=tcp"),
            Ok(turn("relay.example.org", 443, RelayTransport::Tls))
        );
        assert_eq!(
            p("turn:[2001:db8::1]:3478"),
            Ok(turn("2001:db8::1", 3478, RelayTransport::Udp))
        );
        assert_eq!(
            IceServer::parse("stun:stun.example.org:19302", None, None),
            Ok(IceServer::Stun {
                host: "stun.example.org".into(),
                port: 19302
            })
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let p = |url| IceServer::parse(url, Some("u"), Some("p"));
        assert!(matches!(p("http://x"), Err(IceServerError::Scheme(_))));
        assert!(matches!(p("turn:"), Err(IceServerError::Address(_))));
        assert!(matches!(p("turn:host:0"), Err(IceServerError::Address(_))));
        assert!(matches!(
            p("turn:host:99999"),
            Err(IceServerError::Address(_))
        ));
        assert!(matches!(p("turn:a b"), Err(IceServerError::Address(_))));
        assert!(matches!(
            p("turn:host?transport=sctp"),
            Err(IceServerError::Transport(_))
        ));
        assert!(matches!(
            p("turns:host?transport=udp"),
            Err(IceServerError::Transport(_))
        ));
        assert!(matches!(
            IceServer::parse("turn:host", None, Some("p")),
            Err(IceServerError::Credentials(_))
        ));
        assert!(matches!(
            IceServer::parse("nothing", None, None),
            Err(IceServerError::Scheme(_))
        ));
    }

    #[test]
    fn the_password_is_never_shown() {
        let s = IceServer::parse("turn:h", Some("user"), Some("sekrit")).expect("parses");
        assert!(!format!("{s:?}").contains("sekrit"));
    }

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_panic(url in ".{0,80}") {
            let _ = IceServer::parse(&url, Some("u"), Some("p"));
        }
    }
}
