//! The TypeScript bindings of the commands and events the UI uses, generated
//! from the Rust types into `ui/src/lib/bindings.ts`.
//!
//! `cargo test -p conclave-app bindings` fails when the file is out of date;
//! `CONCLAVE_WRITE_BINDINGS=1` with the same command rewrites it.

use conclave_engine::{
    ChatMessage, ConnectionPath, ConnectionQuality, EffectsStats, EngineEvent, MediaStats,
    NetworkStats, Participant, RecordingState, RemoteMediaStats, SendingStats,
};
use ts_rs::TS;

use crate::backgrounds::{BackgroundImage, PREVIEW_EFFECTS_EVENT};
use crate::commands::{
    ClipboardOffer, DeviceOption, JoinRequest, LinkSummary, ShareSource, ENGINE_EVENT,
    PREVIEW_LEVEL_EVENT,
};
use crate::history::HistoryEntry;
use crate::privacy::DiagnosticsFile;
use crate::recording::{RecordingEnded, RepairOutcome, RECORDING_ENDED_EVENT};
use crate::settings::{RelaySetting, Settings};

/// Renders a TypeScript type.
type TypeScript = fn() -> String;

/// One command as the UI calls it.
struct CommandSignature {
    /// The Rust (and IPC) name.
    name: &'static str,
    /// Argument names and their TypeScript types.
    args: &'static [(&'static str, TypeScript)],
    /// The TypeScript type of the resolved value.
    returns: TypeScript,
}

fn ts<T: TS>() -> String {
    T::name()
}

fn void() -> String {
    "void".into()
}

fn number() -> String {
    "number".into()
}

/// Every command the app registers, in the order of `generate_handler!`.
const COMMANDS: &[CommandSignature] = &[
    CommandSignature {
        name: "parse_link",
        args: &[("text", ts::<String>)],
        returns: ts::<LinkSummary>,
    },
    CommandSignature {
        name: "launch_link",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "get_settings",
        args: &[],
        returns: ts::<Settings>,
    },
    CommandSignature {
        name: "save_settings",
        args: &[("settings", ts::<Settings>)],
        returns: void,
    },
    CommandSignature {
        name: "add_relay",
        args: &[
            ("url", ts::<String>),
            ("username", ts::<String>),
            ("password", ts::<String>),
        ],
        returns: ts::<Settings>,
    },
    CommandSignature {
        name: "remove_relay",
        args: &[("url", ts::<String>), ("username", ts::<String>)],
        returns: ts::<Settings>,
    },
    CommandSignature {
        name: "join",
        args: &[("request", ts::<JoinRequest>)],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "host_meeting",
        args: &[
            ("nickname", ts::<String>),
            ("topic", ts::<Option<String>>),
            ("allowRecording", ts::<bool>),
            ("severalPresenters", ts::<bool>),
        ],
        returns: ts::<String>,
    },
    CommandSignature {
        name: "leave",
        args: &[],
        returns: void,
    },
    CommandSignature {
        name: "send_chat",
        args: &[("to", ts::<Option<String>>), ("text", ts::<String>)],
        returns: void,
    },
    CommandSignature {
        name: "copy_invitation",
        args: &[],
        returns: ts::<String>,
    },
    CommandSignature {
        name: "export_chat",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "video_url",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "set_muted",
        args: &[("muted", ts::<bool>)],
        returns: void,
    },
    CommandSignature {
        name: "set_camera_on",
        args: &[("on", ts::<bool>)],
        returns: void,
    },
    CommandSignature {
        name: "list_devices",
        args: &[],
        returns: ts::<Vec<DeviceOption>>,
    },
    CommandSignature {
        name: "switch_microphone",
        args: &[("device", ts::<Option<String>>)],
        returns: void,
    },
    CommandSignature {
        name: "switch_speaker",
        args: &[("device", ts::<Option<String>>)],
        returns: void,
    },
    CommandSignature {
        name: "switch_camera",
        args: &[("device", ts::<String>)],
        returns: void,
    },
    CommandSignature {
        name: "list_share_sources",
        args: &[],
        returns: ts::<Vec<ShareSource>>,
    },
    CommandSignature {
        name: "start_share",
        args: &[("source", ts::<String>), ("audio", ts::<bool>)],
        returns: void,
    },
    CommandSignature {
        name: "stop_share",
        args: &[],
        returns: void,
    },
    CommandSignature {
        name: "screenshot_tile",
        args: &[("tile", ts::<String>)],
        returns: ts::<String>,
    },
    CommandSignature {
        name: "save_screenshot",
        args: &[("png", ts::<String>), ("choose", ts::<bool>)],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "check_clipboard",
        args: &[],
        returns: ts::<Option<ClipboardOffer>>,
    },
    CommandSignature {
        name: "accept_clipboard_offer",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "list_history",
        args: &[("search", ts::<String>)],
        returns: ts::<Vec<HistoryEntry>>,
    },
    CommandSignature {
        name: "delete_history",
        args: &[("id", number)],
        returns: void,
    },
    CommandSignature {
        name: "clear_history",
        args: &[],
        returns: void,
    },
    CommandSignature {
        name: "start_preview",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "stop_preview",
        args: &[],
        returns: void,
    },
    CommandSignature {
        name: "test_speaker",
        args: &[("device", ts::<Option<String>>)],
        returns: void,
    },
    CommandSignature {
        name: "forget_password",
        args: &[("link", ts::<String>)],
        returns: void,
    },
    CommandSignature {
        name: "delete_all_local_data",
        args: &[],
        returns: ts::<Vec<String>>,
    },
    CommandSignature {
        name: "diagnostics_preview",
        args: &[],
        returns: ts::<Vec<DiagnosticsFile>>,
    },
    CommandSignature {
        name: "save_diagnostics",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "recording_folder",
        args: &[],
        returns: ts::<String>,
    },
    CommandSignature {
        name: "choose_recording_folder",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "start_recording",
        args: &[("consent", ts::<bool>), ("localTime", ts::<String>)],
        returns: ts::<String>,
    },
    CommandSignature {
        name: "pause_recording",
        args: &[("paused", ts::<bool>)],
        returns: void,
    },
    CommandSignature {
        name: "stop_recording",
        args: &[],
        returns: ts::<Option<String>>,
    },
    CommandSignature {
        name: "unfinished_recordings",
        args: &[],
        returns: ts::<Vec<String>>,
    },
    CommandSignature {
        name: "repair_recordings",
        args: &[("paths", ts::<Vec<String>>)],
        returns: ts::<Vec<RepairOutcome>>,
    },
    CommandSignature {
        name: "list_backgrounds",
        args: &[],
        returns: ts::<Vec<BackgroundImage>>,
    },
    CommandSignature {
        name: "add_background",
        args: &[("path", ts::<Option<String>>)],
        returns: ts::<Option<BackgroundImage>>,
    },
    CommandSignature {
        name: "remove_background",
        args: &[("id", ts::<String>)],
        returns: void,
    },
    CommandSignature {
        name: "set_video_effects",
        args: &[
            ("background", ts::<String>),
            ("enabled", ts::<bool>),
            ("touchUp", ts::<bool>),
        ],
        returns: void,
    },
];

fn camel_case(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Renders the whole bindings file.
fn render() -> String {
    let mut out = String::from(
        "// Generated from the Rust types by `CONCLAVE_WRITE_BINDINGS=1 cargo test -p conclave-app bindings`.\n\
         // Do not edit: CI fails when this file differs from what the Rust code generates.\n\n\
         import { invoke } from \"@tauri-apps/api/core\";\n\
         import { listen, type UnlistenFn } from \"@tauri-apps/api/event\";\n\n",
    );
    for decl in [
        Participant::decl(),
        ChatMessage::decl(),
        RemoteMediaStats::decl(),
        ConnectionPath::decl(),
        ConnectionQuality::decl(),
        NetworkStats::decl(),
        EffectsStats::decl(),
        SendingStats::decl(),
        MediaStats::decl(),
        RecordingState::decl(),
        EngineEvent::decl(),
        LinkSummary::decl(),
        JoinRequest::decl(),
        DeviceOption::decl(),
        ShareSource::decl(),
        ClipboardOffer::decl(),
        HistoryEntry::decl(),
        DiagnosticsFile::decl(),
        RecordingEnded::decl(),
        RepairOutcome::decl(),
        BackgroundImage::decl(),
        RelaySetting::decl(),
        Settings::decl(),
    ] {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str("/** The commands of the app, as an interface so tests and demos can supply their own. */\n");
    out.push_str("export interface Commands {\n");
    for c in COMMANDS {
        let args: Vec<String> = c
            .args
            .iter()
            .map(|(n, t)| format!("{n}: {}", t()))
            .collect();
        out.push_str(&format!(
            "  {}({}): Promise<{}>;\n",
            camel_case(c.name),
            args.join(", "),
            (c.returns)()
        ));
    }
    out.push_str("}\n\n/** The commands, invoked over Tauri IPC. */\nexport const tauriCommands: Commands = {\n");
    for c in COMMANDS {
        let params: Vec<String> = c
            .args
            .iter()
            .map(|(n, t)| format!("{n}: {}", t()))
            .collect();
        let names: Vec<&str> = c.args.iter().map(|(n, _)| *n).collect();
        let call_args = if names.is_empty() {
            String::new()
        } else {
            format!(", {{ {} }}", names.join(", "))
        };
        out.push_str(&format!(
            "  {}: ({}) => invoke<{}>(\"{}\"{}),\n",
            camel_case(c.name),
            params.join(", "),
            (c.returns)(),
            c.name,
            call_args
        ));
    }
    out.push_str(&format!(
        "}};\n\n/** The name of the event that carries every [`EngineEvent`]. */\n\
         export const ENGINE_EVENT = \"{ENGINE_EVENT}\";\n\n\
         /** Subscribes to engine events over Tauri IPC. */\n\
         export function listenEngineEvents(handler: (event: EngineEvent) => void): Promise<UnlistenFn> {{\n  \
         return listen<EngineEvent>(ENGINE_EVENT, (e) => handler(e.payload));\n}}\n\n\
         /** The name of the event that carries the previewed microphone's level (-dBov). */\n\
         export const PREVIEW_LEVEL_EVENT = \"{PREVIEW_LEVEL_EVENT}\";\n\n\
         /** Subscribes to the device preview's microphone level over Tauri IPC. */\n\
         export function listenPreviewLevel(handler: (level: number) => void): Promise<UnlistenFn> {{\n  \
         return listen<number>(PREVIEW_LEVEL_EVENT, (e) => handler(e.payload));\n}}\n\n\
         /** The name of the event that says a recording ended without being stopped. */\n\
         export const RECORDING_ENDED_EVENT = \"{RECORDING_ENDED_EVENT}\";\n\n\
         /** Subscribes to recordings that end by themselves over Tauri IPC. */\n\
         export function listenRecordingEnded(handler: (ended: RecordingEnded) => void): Promise<UnlistenFn> {{\n  \
         return listen<RecordingEnded>(RECORDING_ENDED_EVENT, (e) => handler(e.payload));\n}}\n\n\
         /** The name of the event that carries what the preview's camera effects cost. */\n\
         export const PREVIEW_EFFECTS_EVENT = \"{PREVIEW_EFFECTS_EVENT}\";\n\n\
         /** Subscribes to the preview's effects cost over Tauri IPC. */\n\
         export function listenPreviewEffects(handler: (cost: EffectsStats | null) => void): Promise<UnlistenFn> {{\n  \
         return listen<EffectsStats | null>(PREVIEW_EFFECTS_EVENT, (e) => handler(e.payload));\n}}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ui/src/lib/bindings.ts of the checkout the tests run in (read at run
    /// time: a test binary built in another clone sharing the target
    /// directory would otherwise look in that clone).
    fn bindings_path() -> std::path::PathBuf {
        let manifest = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
        std::path::Path::new(&manifest).join("../ui/src/lib/bindings.ts")
    }

    #[test]
    fn bindings_are_up_to_date() {
        let generated = render();
        let path = bindings_path();
        if std::env::var_os("CONCLAVE_WRITE_BINDINGS").is_some() {
            std::fs::write(&path, &generated).expect("write bindings");
            return;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == generated,
            "ui/src/lib/bindings.ts is out of date: run \
             `CONCLAVE_WRITE_BINDINGS=1 cargo test -p conclave-app bindings`"
        );
    }

    #[test]
    fn bindings_cover_every_granted_command() {
        let build = include_str!("../build.rs");
        let capability = include_str!("../capabilities/main.json");
        let main = include_str!("main.rs");
        for c in COMMANDS {
            assert!(
                build.contains(&format!("\"{}\"", c.name)),
                "{} missing in build.rs",
                c.name
            );
            assert!(
                capability.contains(&format!("\"allow-{}\"", c.name.replace('_', "-"))),
                "{} not granted",
                c.name
            );
            assert!(
                main.contains(&format!("commands::{},", c.name))
                    || main.contains(&format!("recording::{},", c.name))
                    || main.contains(&format!("backgrounds::{},", c.name)),
                "{} not registered",
                c.name
            );
        }
        assert_eq!(
            build.matches("\",").count(),
            COMMANDS.len(),
            "build.rs lists other commands"
        );
    }
}
