//! The small web side of the server, on the WebSocket port: `GET /j/<id>`
//! answers with a page that offers "Open in Conclave" (a `conclave://` link
//! to the meeting on this server). A link's secrets sit in its fragment
//! (`#pwd=…&key=…`), which browsers never send: the page's script carries
//! the fragment over to the app's link inside the browser.
//!
//! Must not: serve files, reflect anything but a validated meeting ID and
//! host, or keep what it is asked.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The most an HTTP request head may take.
const MAX_HEAD: usize = 16 * 1024;

/// Reads an HTTP request head (up to the blank line) from `stream`.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the request ended",
            ));
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
}

/// The value of header `name` in `head`, if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether the request asks for a WebSocket.
pub(crate) fn is_websocket_upgrade(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    header(&text, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The answer to a plain HTTP request: the join page for `GET /j/<id>`,
/// otherwise 404 (or 405 for other methods).
pub(crate) fn respond(head: &[u8], secure: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut request_line = text.split("\r\n").next().unwrap_or_default().split(' ');
    let (method, target) = (
        request_line.next().unwrap_or_default(),
        request_line.next().unwrap_or_default(),
    );
    if method != "GET" && method != "HEAD" {
        return plain(405, "Method Not Allowed", "Only GET is served here.\n");
    }
    let room = target
        .strip_prefix("/j/")
        .map(|r| r.split(['?', '#']).next().unwrap_or_default())
        .filter(|r| (6..=16).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit()));
    let host = header(&text, "host").filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    match (room, host) {
        (Some(room), Some(host)) => {
            let scheme = if secure { "wss" } else { "ws" };
            let body = join_page(room, &format!("{scheme}://{host}"));
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n\
                 Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            if method == "GET" {
                out.extend_from_slice(body.as_bytes());
            }
            out
        }
        _ => plain(
            404,
            "Not Found",
            "No such page. Meeting pages are at /j/<meeting ID>.\n",
        ),
    }
}

fn plain(code: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Percent-encodes `text` for a URL query value.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The join page of meeting `room` on the server at `server_url`.
pub fn join_page(room: &str, server_url: &str) -> String {
    let grouped: String = room
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i > 0 && i % 3 == 0).then_some(' ').into_iter().chain([c]))
        .collect();
    let link = format!("conclave://join/{room}?server={}", query_escape(server_url));
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Meeting {grouped} · Conclave</title>
<style>
  body {{ margin: 0; min-height: 100vh; display: grid; place-items: center; background: #0f1218; color: #e8ebf1;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }}
  main {{ background: #171b24; border: 1px solid #2a3140; border-radius: 16px; padding: 32px 36px; max-width: 420px; text-align: center; }}
  h1 {{ font-size: 22px; margin: 0 0 4px; }}
  p {{ color: #9aa3b5; margin: 8px 0; }}
  a.open {{ display: inline-block; margin-top: 16px; padding: 12px 22px; border-radius: 10px; background: #3b82f6; color: white;
           text-decoration: none; font-weight: 600; }}
  code {{ color: #c9d1e0; }}
</style>
</head>
<body>
<main>
  <h1>Meeting {grouped}</h1>
  <p>Open this meeting in the Conclave app.</p>
  <a class="open" id="open" href="{link}">Open in Conclave</a>
  <p>Don't have it? Install Conclave, then open this page again.<br>Joining from the browser is not available yet.</p>
</main>
<script>
  // The password and chat key stay in the fragment, which never reached
  // this server; they go to the app with the link.
  if (location.hash.length > 1) {{
    document.getElementById("open").href += location.hash;
  }}
</script>
</body>
</html>
"#
    )
}

/// A stream that first yields bytes already read from `inner`.
pub(crate) struct Rewind<S> {
    prefix: Vec<u8>,
    position: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// Yields `prefix`, then `inner`'s bytes.
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.position < self.prefix.len() {
            let rest = self.prefix.get(self.position..).unwrap_or_default();
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            self.position += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &[u8]) -> (String, String) {
        let text = String::from_utf8_lossy(response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (head.to_owned(), body.to_owned())
    }

    #[test]
    fn the_join_page_offers_the_app_link_to_this_server() {
        let (head, page) = body(&respond(
            b"GET /j/123456789 HTTP/1.1\r\nHost: meet.example.org:8443\r\n\r\n",
            true,
        ));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Security-Policy: default-src 'none'"));
        assert!(page.contains("Meeting 123 456 789"));
        assert!(
            page.contains("conclave://join/123456789?server=wss%3A%2F%2Fmeet.example.org%3A8443")
        );
    }

    #[test]
    fn other_paths_ids_hosts_and_methods_are_refused() {
        for (request, code) in [
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "404"),
            ("GET /j/12ab56789 HTTP/1.1\r\nHost: h\r\n\r\n", "404"),
            ("GET /j/123 HTTP/1.1\r\nHost: h\r\n\r\n", "404"),
            ("GET /j/123456789 HTTP/1.1\r\nHost: <script>\r\n\r\n", "404"),
            ("GET /j/123456789 HTTP/1.1\r\n\r\n", "404"),
            ("POST /j/123456789 HTTP/1.1\r\nHost: h\r\n\r\n", "405"),
        ] {
            let (head, _) = body(&respond(request.as_bytes(), false));
            assert!(
                head.starts_with(&format!("HTTP/1.1 {code}")),
                "{request:?}: {head}"
            );
        }
    }

    #[test]
    fn websocket_requests_are_told_apart() {
        assert!(is_websocket_upgrade(
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        ));
        assert!(!is_websocket_upgrade(
            b"GET /j/1 HTTP/1.1\r\nHost: h\r\n\r\n"
        ));
    }

    #[tokio::test]
    async fn a_rewound_stream_yields_the_head_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\nrest")
            .await
            .expect("write");
        drop(client);
        let mut server = server;
        let head = read_head(&mut server).await.expect("head");
        let mut all = Vec::new();
        Rewind::new(head, server)
            .read_to_end(&mut all)
            .await
            .expect("read");
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\nrest");
    }
}
