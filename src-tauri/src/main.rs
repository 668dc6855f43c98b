//! The Conclave desktop app: a thin Tauri shell. It owns windows, commands,
//! events, settings and logging; every meeting decision is the engine's.
//!
//! Must not: hold meeting logic, log chat text, passwords, keys or clipboard
//! content, or store chat anywhere but in a file the user exports.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod backgrounds;
#[cfg(test)]
mod bindings;
mod commands;
mod history;
mod instance;
mod logging;
mod privacy;
mod recording;
mod settings;

/// The event carrying a link that a later start of the app handed over.
const OPEN_LINK_EVENT: &str = "open-link";

fn main() {
    let _log_guard = logging::init();
    // A link opened while the app runs goes to the running app.
    let listener = match instance::claim(commands::launch_link().as_deref()) {
        instance::Start::Forwarded => {
            tracing::info!("handed over to the running app");
            return;
        }
        instance::Start::First(listener) => listener,
    };
    let socket = listener.path();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_deep_link::init())
        .manage(commands::AppState::default())
        .setup(move |app| {
            quit_on_sigterm(app.handle().clone());
            register_link_handler(app);
            let handle = app.handle().clone();
            listener.serve(move |link| {
                use tauri::{Emitter, Manager};
                if let Some(window) = handle.get_webview_window("main") {
                    let _ = window.unminimize();
                    let _ = window.show();
                    let _ = window.set_focus();
                }
                if !link.is_empty() {
                    tracing::info!("a link was opened: showing it on the join screen");
                    let _ = handle.emit(OPEN_LINK_EVENT, link);
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::parse_link,
            commands::launch_link,
            commands::get_settings,
            commands::save_settings,
            commands::add_relay,
            commands::remove_relay,
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
            commands::forget_password,
            commands::delete_all_local_data,
            commands::diagnostics_preview,
            commands::save_diagnostics,
            recording::recording_folder,
            recording::choose_recording_folder,
            recording::start_recording,
            recording::pause_recording,
            recording::stop_recording,
            recording::unfinished_recordings,
            recording::repair_recordings,
            backgrounds::list_backgrounds,
            backgrounds::add_background,
            backgrounds::remove_background,
            backgrounds::set_video_effects,
        ])
        .build(tauri::generate_context!());
    match result {
        Ok(app) => app.run(move |app, event| {
            // Before Exit: on Exit the clipboard plugin has already let go.
            if let tauri::RunEvent::ExitRequested { .. } = event {
                clear_our_clipboard(app);
            }
            if let tauri::RunEvent::Exit = event {
                instance::Listener::remove_socket(&socket);
            }
        }),
        Err(e) => {
            tracing::error!(error = %e, "the app stopped with an error");
            eprintln!("conclave: {e}");
            std::process::exit(1);
        }
    }
}

/// Links the operating system hands to the running app (macOS delivers
/// `conclave://` links this way) go to the join screen like links from a
/// later start. An AppImage, which no package installed, registers itself
/// as the handler of `conclave://`; installed packages ship the handler in
/// their desktop entry (Linux), bundle registry keys (Windows) or
/// Info.plist (macOS), all from the `deep-link` section of tauri.conf.json.
fn register_link_handler(app: &tauri::App) {
    use tauri::Emitter;
    #[cfg(target_os = "linux")]
    use tauri::Manager as _;
    use tauri_plugin_deep_link::DeepLinkExt;
    let handle = app.handle().clone();
    app.deep_link().on_open_url(move |event| {
        for url in event.urls() {
            tracing::info!("a link was opened by the system: showing it on the join screen");
            let _ = handle.emit(OPEN_LINK_EVENT, url.to_string());
        }
    });
    #[cfg(target_os = "linux")]
    if app.env().appimage.is_some() {
        if let Err(e) = app.deep_link().register_all() {
            tracing::warn!(error = %e, "conclave:// links could not be registered");
        }
    }
}

/// A session ending (logout, shutdown, `kill`) sends SIGTERM: the app then
/// quits as if its window were closed, so that exit work (the paste guard)
/// runs.
fn quit_on_sigterm(app: tauri::AppHandle) {
    #[cfg(unix)]
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                if term.recv().await.is_some() {
                    tracing::info!("asked to quit (SIGTERM)");
                    // The paste guard first, off the event loop.
                    let guard = app.clone();
                    let check =
                        tauri::async_runtime::spawn_blocking(move || guard_clipboard(&guard));
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), check).await;
                    // Whatever holds up the orderly exit, the process ends.
                    let _ = std::thread::Builder::new()
                        .name("exit-watchdog".into())
                        .spawn(|| {
                            std::thread::sleep(std::time::Duration::from_secs(3));
                            tracing::warn!("exit took too long; ending the process");
                            std::process::exit(0);
                        });
                    app.exit(0);
                }
            }
            Err(e) => tracing::warn!(error = %e, "SIGTERM not handled"),
        }
    });
    #[cfg(not(unix))]
    let _ = app;
}

/// The paste guard (D5) as the app exits by itself (its window closed):
/// [`guard_clipboard`] on a thread of its own (reading what the webview
/// owns from the main thread would deadlock); exit waits at most a second.
fn clear_our_clipboard(app: &tauri::AppHandle) {
    let app = app.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("paste-guard".into())
        .spawn(move || {
            guard_clipboard(&app);
            let _ = done_tx.send(());
        });
    if spawned.is_ok() {
        let _ = done_rx.recv_timeout(std::time::Duration::from_secs(1));
    }
}

/// The paste guard (D5): if the clipboard still holds what the app put there
/// (the invitation), it is cleared. Once per run; a clipboard connection of
/// its own (the clipboard plugin's is closed at exit).
fn guard_clipboard(app: &tauri::AppHandle) {
    use tauri::Manager;
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let state = app.state::<commands::AppState>();
    let mut clipboard = match arboard::Clipboard::new() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "paste guard: no clipboard");
            return;
        }
    };
    match clipboard.get_text() {
        Ok(text) if state.paste_guard.is_ours(&text) => match clipboard.clear() {
            Ok(()) => tracing::info!("cleared the clipboard of the invitation"),
            Err(e) => tracing::warn!(error = %e, "could not clear the clipboard"),
        },
        Ok(_) => tracing::info!("paste guard: the clipboard holds something else"),
        Err(e) => tracing::info!(error = %e, "paste guard: nothing to read"),
    }
}
