//! The Conclave desktop app: a thin Tauri shell. It owns windows, commands,
//! events, settings and logging; every meeting decision is the engine's.
//!
//! Must not: hold meeting logic, log chat text, passwords, keys or clipboard
//! content, or store chat anywhere but in a file the user exports.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[cfg(test)]
mod bindings;
mod commands;
mod history;
mod logging;
mod settings;

fn main() {
    let _log_guard = logging::init();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_dialog::init())
        .manage(commands::AppState::default())
        .invoke_handler(tauri::generate_handler![
            commands::parse_link,
            commands::launch_link,
            commands::get_settings,
            commands::save_settings,
            commands::join,
            commands::host_meeting,
            commands::leave,
            commands::send_chat,
            commands::copy_invitation,
            commands::export_chat,
            commands::video_url,
            commands::set_muted,
            commands::set_camera_on,
            commands::list_devices,
            commands::switch_microphone,
            commands::switch_speaker,
            commands::switch_camera,
            commands::list_share_sources,
            commands::start_share,
            commands::stop_share,
            commands::screenshot_tile,
            commands::save_screenshot,
            commands::check_clipboard,
            commands::accept_clipboard_offer,
            commands::list_history,
            commands::delete_history,
            commands::clear_history,
            commands::start_preview,
            commands::stop_preview,
            commands::test_speaker,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!(error = %e, "the app stopped with an error");
        eprintln!("conclave: {e}");
        std::process::exit(1);
    }
}
