//! Declares the app's commands so that capabilities can grant them one by one.

fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "parse_link",
            "launch_link",
            "get_settings",
            "save_settings",
            "join",
            "host_meeting",
            "leave",
            "send_chat",
            "copy_invitation",
            "export_chat",
            "video_url",
            "set_muted",
            "set_camera_on",
            "list_devices",
            "switch_microphone",
            "switch_speaker",
            "switch_camera",
            "list_share_sources",
            "start_share",
            "stop_share",
            "screenshot_tile",
            "save_screenshot",
            "check_clipboard",
            "accept_clipboard_offer",
            "list_history",
            "delete_history",
            "clear_history",
            "start_preview",
            "stop_preview",
            "test_speaker",
            "forget_password",
            "delete_all_local_data",
            "diagnostics_preview",
            "save_diagnostics",
        ]),
    ))
    .expect("tauri build configuration");
}
