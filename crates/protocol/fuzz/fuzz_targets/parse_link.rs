//! Meeting links, IDs and pasted text: parsing never panics, and what parses
//! survives a round trip through its own link.
#![no_main]

use conclave_protocol::MeetingInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = MeetingInfo::parse(text) {
        let again = MeetingInfo::parse(&info.to_app_link()).expect("own link parses");
        assert_eq!(again.room, info.room);
        assert_eq!(again.password, info.password);
        assert_eq!(again.chat_key, info.chat_key);
    }
});
