//! Server messages: decoding never panics, whatever the bytes.
#![no_main]

use conclave_protocol::janus::{Request, ServerMessage};
use conclave_protocol::textroom::{TextRoomEvent, TextRoomRequest};
use conclave_protocol::videoroom::{VideoRoomEvent, VideoRoomRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = ServerMessage::from_json(text) {
        let _ = ServerMessage::from_json(&m.to_json());
        if let ServerMessage::Event { plugindata, .. } = &m {
            let _ = VideoRoomEvent::from_data(&plugindata.data);
        }
    }
    let _ = Request::from_json(text);
    let _ = TextRoomEvent::from_json(text);
    let _ = TextRoomRequest::from_json(text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = VideoRoomEvent::from_data(&v);
        let _ = VideoRoomRequest::from_body(&v);
    }
});
