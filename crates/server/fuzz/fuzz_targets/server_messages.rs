//! Feeds the server a sequence of signaling texts (one per input line) on one
//! connection, with time passing. `$S` and `$H` in a line become the last
//! session and handle ids the server handed out, so inputs reach plugins.
//! The server must answer everything without panicking.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_server::{Config, ConnId, Input, Output, Server};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let media: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let remote: SocketAddr = ([127, 0, 0, 1], 50000).into();
    let mut server = Server::new(Config::default(), vec![media], start);
    let conn = ConnId(1);
    server.handle_input(start, Input::Connected { conn, remote });
    let mut now = start;
    let (mut session, mut handle) = (0u64, 0u64);
    for (i, line) in String::from_utf8_lossy(data).split('\n').enumerate() {
        let text = line
            .replace("$S", &session.to_string())
            .replace("$H", &handle.to_string());
        server.handle_input(now, Input::Text { conn, text: &text });
        while let Some(output) = server.poll_output() {
            if let Output::Send { text, .. } = output {
                let value: serde_json::Value =
                    serde_json::from_str(&text).expect("the server sends JSON");
                if let Some(id) = value["data"]["id"].as_u64() {
                    if value["session_id"].is_u64() {
                        handle = id;
                    } else {
                        session = id;
                    }
                }
            }
        }
        if i % 4 == 3 {
            now += Duration::from_secs(13);
            server.handle_input(now, Input::Timeout);
            while server.poll_output().is_some() {}
        }
    }
});
