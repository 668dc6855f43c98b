//! Real microphones and speakers through `cpal`.
//!
//! On Linux the native PulseAudio host is used when a PulseAudio (or
//! pipewire-pulse) server is reachable, ALSA otherwise. Streams are always
//! opened mono, 48 kHz, 16-bit with a fixed 10 ms buffer: the host's default
//! buffer delivers audio in chunks of up to two seconds.
//!
//! Streams carry the phone role where the OS has one: on PulseAudio (and
//! pipewire-pulse) our streams are opened directly with the pure-Rust
//! `pulseaudio` client (the same one `cpal` uses) and the property
//! `media.role=phone`, which `cpal` cannot set; that is what switches a
//! Bluetooth headset to its call profile and pauses other programs' music.
//!
//! A stream lives on a thread of its own (`cpal` streams are not `Send` on
//! every platform); the device objects here talk to it through a shared ring
//! of samples. A device that vanishes shows up as [`DeviceError::Gone`] on
//! the next poll, so the caller can fall back to another one; a device
//! opened as "the OS default" also ends when the OS default changes, so the
//! caller follows it.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::device::{DeviceError, DeviceInfo, DeviceKind, Microphone, Speaker};
use crate::frame::{AudioFrame, AUDIO_BLOCK, SAMPLE_RATE};

/// Most audio a speaker queues before the oldest is dropped (keeps latency
/// bounded when the device's clock runs slower than ours).
const SPEAKER_MAX_QUEUE: usize = AUDIO_BLOCK * 5;
/// Most of what a speaker played that is kept for
/// [`Speaker::take_played`] (1 s; the caller takes it every 10 ms).
const PLAYED_KEPT: usize = AUDIO_BLOCK * 100;
/// Most audio a microphone queues before the oldest is dropped (the caller
/// stalled).
const MICROPHONE_MAX_QUEUE: usize = AUDIO_BLOCK * 50;
/// A running device that has not called back for this long is gone.
const STALL: Duration = Duration::from_millis(1500);
/// Callbacks after which a speaker's stream counts as running (about half
/// a second).
const RUNNING_CALLBACKS: u64 = 50;
/// How often a device's presence is checked.
const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);
/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// Tries at a PulseAudio server that is there before ALSA is used instead.
const PULSE_ATTEMPTS: usize = 3;

/// The audio host: on Linux the PulseAudio host when a PulseAudio (or
/// pipewire-pulse) server is configured, ALSA otherwise. On a busy machine
/// the PulseAudio handshake can take longer than the two seconds `cpal`
/// waits: it is tried [`PULSE_ATTEMPTS`] times before ALSA is used (whose
/// devices have other names, so a device chosen by its PulseAudio name
/// would not be found and another one would play its part).
fn host() -> cpal::Host {
    #[cfg(target_os = "linux")]
    {
        if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
            let mut failure = None;
            for _ in 0..PULSE_ATTEMPTS {
                match cpal::host_from_id(cpal::HostId::PulseAudio) {
                    Ok(host) => return host,
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            tracing::warn!(
                error = failure.unwrap_or_default(),
                "PulseAudio did not answer; using ALSA"
            );
        }
    }
    cpal::default_host()
}

/// Whether a device matching `wanted` (as [`SystemMicrophone::open`] and
/// [`SystemSpeaker::open`] match it) is there now.
pub fn is_present(kind: DeviceKind, wanted: &str) -> bool {
    find_device(kind, Some(wanted)).is_ok()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn describe(device: &cpal::Device, kind: DeviceKind, default_id: Option<&str>) -> DeviceInfo {
    let id = device
        .id()
        .map(|i| i.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let name = device
        .description()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|_| id.clone());
    DeviceInfo {
        is_default: default_id == Some(id.as_str()),
        id,
        name,
        kind,
    }
}

/// The id of the OS default microphone (or speaker, for any other kind).
fn default_id(host: &cpal::Host, kind: DeviceKind) -> Option<String> {
    match kind {
        DeviceKind::Microphone => host.default_input_device(),
        _ => host.default_output_device(),
    }
    .and_then(|d| d.id().ok())
    .map(|i| i.to_string())
}

/// The input that hears what the OS default speaker plays (PulseAudio's
/// monitor of the default sink), for sharing the computer's sound.
pub fn default_output_monitor_id() -> Option<String> {
    let host = host();
    let speaker = default_id(&host, DeviceKind::Speaker)?;
    let monitor = format!("{speaker}.monitor");
    let found = host
        .input_devices()
        .ok()?
        .filter_map(|d| d.id().ok())
        .any(|id| id.to_string() == monitor);
    found.then_some(monitor)
}

/// The audio backend in use ("PulseAudio", "ALSA", ...), for diagnostics.
pub fn backend_name() -> String {
    format!("{:?}", host().id())
}

/// Lists the microphones and speakers the OS offers, defaults marked.
pub fn list_audio_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    let host = host();
    let default_in = default_id(&host, DeviceKind::Microphone);
    let default_out = default_id(&host, DeviceKind::Speaker);
    let mut out = Vec::new();
    let inputs = host
        .input_devices()
        .map_err(|e| DeviceError::Io(e.to_string()))?;
    out.extend(inputs.map(|d| describe(&d, DeviceKind::Microphone, default_in.as_deref())));
    let outputs = host
        .output_devices()
        .map_err(|e| DeviceError::Io(e.to_string()))?;
    out.extend(outputs.map(|d| describe(&d, DeviceKind::Speaker, default_out.as_deref())));
    Ok(out)
}

/// Finds a device by id or by name (exact, then case-insensitive substring);
/// `None` picks the OS default.
fn find_device(kind: DeviceKind, wanted: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let host = host();
    let default = match kind {
        DeviceKind::Microphone => host.default_input_device(),
        _ => host.default_output_device(),
    };
    let Some(wanted) = wanted else {
        return default.ok_or_else(|| DeviceError::Gone(format!("no default {kind:?}")));
    };
    let devices: Vec<cpal::Device> = match kind {
        DeviceKind::Microphone => host.input_devices().map(|d| d.collect()),
        _ => host.output_devices().map(|d| d.collect()),
    }
    .map_err(|e| DeviceError::Io(e.to_string()))?;
    let described: Vec<(cpal::Device, DeviceInfo)> = devices
        .into_iter()
        .map(|d| {
            let info = describe(&d, kind, None);
            (d, info)
        })
        .collect();
    let lower = wanted.to_lowercase();
    let exact = described.iter().position(|(_, i)| {
        i.id == wanted || i.name == wanted || i.id.ends_with(&format!(":{wanted}"))
    });
    let fuzzy = || {
        described.iter().position(|(_, i)| {
            i.name.to_lowercase().contains(&lower) || i.id.to_lowercase().contains(&lower)
        })
    };
    match exact.or_else(fuzzy) {
        Some(i) => Ok(described
            .into_iter()
            .nth(i)
            .map(|(d, _)| d)
            .ok_or_else(|| DeviceError::Gone(wanted.to_string()))?),
        None => Err(DeviceError::Gone(format!(
            "no {kind:?} called \"{wanted}\""
        ))),
    }
}

fn config() -> cpal::StreamConfig {
    cpal::StreamConfig {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        buffer_size: cpal::BufferSize::Fixed(AUDIO_BLOCK as u32),
    }
}

fn classify(e: &cpal::Error) -> DeviceError {
    let text = e.to_string();
    match e.kind() {
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::StreamInvalidated => {
            DeviceError::Gone(text)
        }
        cpal::ErrorKind::DeviceBusy => DeviceError::Busy(text),
        cpal::ErrorKind::UnsupportedConfig | cpal::ErrorKind::UnsupportedOperation => {
            DeviceError::Unsupported(text)
        }
        _ => DeviceError::Io(text),
    }
}

/// State shared between a device object and its stream thread.
#[derive(Default)]
struct Shared {
    samples: Mutex<VecDeque<i16>>,
    failure: Mutex<Option<String>>,
    /// Blocks the speaker had to fill with silence.
    underruns: Mutex<u64>,
    /// What the speaker handed to the device, silence included.
    played: Mutex<VecDeque<i16>>,
    /// When the device last called us.
    last_callback: Mutex<Option<Instant>>,
    /// How often it has called us.
    callbacks: Mutex<u64>,
}

impl Shared {
    fn touch(&self) {
        *lock(&self.last_callback) = Some(Instant::now());
        *lock(&self.callbacks) += 1;
    }

    /// Takes captured samples (the oldest dropped when the caller stalls).
    fn captured(&self, samples: impl Iterator<Item = i16>) {
        self.touch();
        let mut q = lock(&self.samples);
        q.extend(samples);
        let excess = q.len().saturating_sub(MICROPHONE_MAX_QUEUE);
        q.drain(..excess);
    }

    /// Hands up to `wanted` queued samples to `put` (index, sample) for
    /// playing; returns how many there were (the rest is silence, an
    /// underrun).
    fn fill(&self, wanted: usize, mut put: impl FnMut(usize, i16)) -> usize {
        self.touch();
        let mut q = lock(&self.samples);
        let n = q.len().min(wanted);
        let mut played = lock(&self.played);
        for (i, s) in q.drain(..n).enumerate() {
            put(i, s);
            played.push_back(s);
        }
        drop(q);
        played.extend(std::iter::repeat_n(0, wanted - n));
        let excess = played.len().saturating_sub(PLAYED_KEPT);
        played.drain(..excess);
        drop(played);
        if n < wanted {
            *lock(&self.underruns) += 1;
        }
        n
    }

    /// The device went quiet: it stopped calling us although it is running
    /// (PulseAudio kills the stream of a device that goes away).
    fn stalled(&self, now: Instant) -> bool {
        lock(&self.last_callback).is_some_and(|last| now.saturating_duration_since(last) > STALL)
    }
}

/// Watches, on a thread of its own, that a device is still listed by the
/// OS; marks it failed when it is not. (PulseAudio moves the streams of a
/// vanished device to the default one without telling the stream's owner,
/// so the user would never learn why the sound changed.) Ends when the
/// device object is dropped.
///
/// With `follow_default` (the user chose "the OS default"), a change of the
/// OS default also ends the device, so the caller opens the new default.
fn watch_presence(kind: DeviceKind, id: String, follow_default: bool, shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    let _ = std::thread::Builder::new()
        .name("audio-presence".into())
        .spawn(move || {
            let host = host();
            loop {
                std::thread::sleep(PRESENCE_INTERVAL);
                let Some(shared) = weak.upgrade() else { return };
                let listed = match kind {
                    DeviceKind::Microphone => host.input_devices().map(|d| d.collect::<Vec<_>>()),
                    _ => host.output_devices().map(|d| d.collect::<Vec<_>>()),
                };
                // An error listing is not proof of absence.
                let Ok(listed) = listed else { continue };
                let present = listed
                    .iter()
                    .any(|d| d.id().map(|i| i.to_string()) == Ok(id.clone()));
                if !present {
                    *lock(&shared.failure) = Some("it was unplugged or removed".into());
                    return;
                }
                if follow_default && default_id(&host, kind).is_some_and(|d| d != id) {
                    *lock(&shared.failure) =
                        Some("the system default is now another device".into());
                    return;
                }
            }
        });
}

/// Keeps a stream alive on its own thread until dropped.
struct StreamThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Whatever keeps a running stream open (dropped: closed).
type OpenStream = Box<dyn std::any::Any>;

/// A `cpal` stream, started.
fn started(stream: cpal::Stream) -> Result<OpenStream, DeviceError> {
    stream.play().map_err(|e| classify(&e))?;
    Ok(Box::new(stream))
}

impl StreamThread {
    fn spawn<F>(build: F) -> Result<Self, DeviceError>
    where
        F: FnOnce() -> Result<OpenStream, DeviceError> + Send + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("audio-device".into())
            .spawn(move || {
                let stream = match build() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // Until the owner drops us.
                let _ = stop_rx.recv();
                drop(stream);
            })
            .map_err(|e| DeviceError::Io(e.to_string()))?;
        match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(StreamThread {
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(DeviceError::Busy(
                "the audio device did not open in time".into(),
            )),
        }
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A microphone of the OS.
pub struct SystemMicrophone {
    info: DeviceInfo,
    shared: Arc<Shared>,
    _stream: StreamThread,
    epoch: Instant,
    started: Option<Instant>,
    delivered: u32,
}

impl SystemMicrophone {
    /// Opens a microphone by id or name, or the default one. Capture times
    /// count from `epoch`.
    pub fn open(wanted: Option<&str>, epoch: Instant) -> Result<Self, DeviceError> {
        let device = find_device(DeviceKind::Microphone, wanted)?;
        let info = describe(
            &device,
            DeviceKind::Microphone,
            default_id(&host(), DeviceKind::Microphone).as_deref(),
        );
        let shared = Arc::new(Shared::default());
        let (data, fail) = (shared.clone(), shared.clone());
        let id = info.id.clone();
        let stream = StreamThread::spawn(move || {
            #[cfg(target_os = "linux")]
            if let Some(name) = phone::pulse_name(&id) {
                // The computer's sound (a monitor) is not a voice.
                let call = !id.ends_with(".monitor");
                return phone::record(name, data, call);
            }
            let _ = id;
            device
                .build_input_stream::<i16, _, _>(
                    config(),
                    move |samples: &[i16], _| data.captured(samples.iter().copied()),
                    move |e| {
                        *lock(&fail.failure) = Some(e.to_string());
                    },
                    Some(OPEN_TIMEOUT),
                )
                .map_err(|e| classify(&e))
                .and_then(started)
        })?;
        watch_presence(
            DeviceKind::Microphone,
            info.id.clone(),
            wanted.is_none(),
            &shared,
        );
        Ok(SystemMicrophone {
            info,
            shared,
            _stream: stream,
            epoch,
            started: None,
            delivered: 0,
        })
    }
}

impl Microphone for SystemMicrophone {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn poll_block(&mut self, now: Instant) -> Result<Option<AudioFrame>, DeviceError> {
        if let Some(reason) = lock(&self.shared.failure).take() {
            return Err(DeviceError::Gone(format!("{}: {reason}", self.info.name)));
        }
        let mut q = lock(&self.shared.samples);
        if q.len() < AUDIO_BLOCK {
            drop(q);
            if self.shared.stalled(now) {
                return Err(DeviceError::Gone(format!(
                    "{} stopped delivering audio",
                    self.info.name
                )));
            }
            return Ok(None);
        }
        let samples: Vec<i16> = q.drain(..AUDIO_BLOCK).collect();
        let queued = q.len();
        drop(q);
        // The device's clock counts samples: the first block was captured
        // `queued` samples before now, every later one 10 ms after the last.
        let started = *self.started.get_or_insert_with(|| {
            let ago = Duration::from_micros(
                (queued + AUDIO_BLOCK) as u64 * 1_000_000 / SAMPLE_RATE as u64,
            );
            now.checked_sub(ago).unwrap_or(now)
        });
        let captured = started.saturating_duration_since(self.epoch)
            + Duration::from_millis(10) * self.delivered;
        self.delivered += 1;
        Ok(Some(AudioFrame { samples, captured }))
    }
}

/// A speaker of the OS.
pub struct SystemSpeaker {
    info: DeviceInfo,
    shared: Arc<Shared>,
    _stream: StreamThread,
}

impl SystemSpeaker {
    /// Opens a speaker by id or name, or the default one, for a call (the
    /// phone role where the OS has one).
    pub fn open(wanted: Option<&str>) -> Result<Self, DeviceError> {
        Self::open_for(wanted, true)
    }

    /// Opens a speaker; `call` gives the stream the phone role. Without it
    /// (while the computer's sound is shared) PulseAudio's role-cork does
    /// not mute the music or video being shared.
    pub fn open_for(wanted: Option<&str>, call: bool) -> Result<Self, DeviceError> {
        let device = find_device(DeviceKind::Speaker, wanted)?;
        let info = describe(
            &device,
            DeviceKind::Speaker,
            default_id(&host(), DeviceKind::Speaker).as_deref(),
        );
        let shared = Arc::new(Shared::default());
        let (data, fail) = (shared.clone(), shared.clone());
        let id = info.id.clone();
        let stream = StreamThread::spawn(move || {
            #[cfg(target_os = "linux")]
            if let Some(name) = phone::pulse_name(&id) {
                return phone::playback(name, data, call);
            }
            let _ = id;
            device
                .build_output_stream::<i16, _, _>(
                    config(),
                    move |out: &mut [i16], _| {
                        let n = data.fill(out.len(), |i, sample| out[i] = sample);
                        out[n..].fill(0);
                    },
                    move |e| {
                        *lock(&fail.failure) = Some(e.to_string());
                    },
                    Some(OPEN_TIMEOUT),
                )
                .map_err(|e| classify(&e))
                .and_then(started)
        })?;
        watch_presence(
            DeviceKind::Speaker,
            info.id.clone(),
            wanted.is_none(),
            &shared,
        );
        Ok(SystemSpeaker {
            info,
            shared,
            _stream: stream,
        })
    }

    /// How often the device found nothing to play.
    pub fn underruns(&self) -> u64 {
        *lock(&self.shared.underruns)
    }
}

impl Speaker for SystemSpeaker {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn queued(&self) -> Duration {
        let n = lock(&self.shared.samples).len() as u64;
        Duration::from_micros(n * 1_000_000 / SAMPLE_RATE as u64)
    }

    fn play(&mut self, block: &AudioFrame) -> Result<(), DeviceError> {
        if let Some(reason) = lock(&self.shared.failure).take() {
            return Err(DeviceError::Gone(format!("{}: {reason}", self.info.name)));
        }
        // Its stream, once running, died without a word (our connection
        // to the sound server broke, say): the caller opens it again. (A
        // new stream may wait a while for its first requests; that is
        // not a failure.)
        if *lock(&self.shared.callbacks) >= RUNNING_CALLBACKS && self.shared.stalled(Instant::now())
        {
            return Err(DeviceError::Gone(format!(
                "{} stopped playing audio",
                self.info.name
            )));
        }
        let mut q = lock(&self.shared.samples);
        q.extend(block.samples.iter().copied());
        let excess = q.len().saturating_sub(SPEAKER_MAX_QUEUE);
        q.drain(..excess);
        Ok(())
    }

    fn take_played(&mut self) -> Option<Vec<i16>> {
        Some(lock(&self.shared.played).drain(..).collect())
    }
}

/// Our own PulseAudio streams, with the phone role.
#[cfg(target_os = "linux")]
mod phone {
    use std::ffi::{CStr, CString};
    use std::sync::Arc;

    use futures_executor::block_on;
    use pulseaudio::protocol::{self, stream::BufferAttr, stream::StreamFlags, Prop, Props};
    use pulseaudio::AsPlaybackSource;

    use super::{DeviceError, OpenStream, Shared, AUDIO_BLOCK, SAMPLE_RATE};

    /// Bytes of one 10 ms block (mono, 16-bit).
    const BLOCK_BYTES: u32 = (AUDIO_BLOCK * 2) as u32;

    /// The PulseAudio name of a device `cpal`'s PulseAudio host lists
    /// (`pulseaudio:NAME`); `None` for other hosts.
    pub(super) fn pulse_name(id: &str) -> Option<CString> {
        id.strip_prefix("pulseaudio:")
            .and_then(|name| CString::new(name).ok())
    }

    /// A connection of the stream's own: a stream closing (the device
    /// preview's, say) never touches another stream's connection. It ends
    /// with the stream.
    fn client() -> Result<pulseaudio::Client, DeviceError> {
        pulseaudio::Client::from_env(c"Conclave")
            .map_err(|e| DeviceError::Io(format!("PulseAudio: {e}")))
    }

    /// What a failed request means for the device.
    fn failed(e: pulseaudio::ClientError) -> DeviceError {
        match e {
            pulseaudio::ClientError::ServerError(code) => {
                DeviceError::Gone(format!("PulseAudio refused the stream: {code:?}"))
            }
            other => DeviceError::Io(format!("PulseAudio: {other}")),
        }
    }

    /// What every stream of ours says about itself: with `call`, the phone
    /// role.
    fn properties(name: &CStr, call: bool) -> Props {
        let mut props = Props::new();
        if call {
            props.set(Prop::MediaRole, c"phone");
        }
        props.set(Prop::MediaName, name);
        props.set(Prop::ApplicationName, c"Conclave");
        props
    }

    fn spec() -> (protocol::SampleSpec, protocol::ChannelMap) {
        (
            protocol::SampleSpec {
                format: protocol::SampleFormat::S16Le,
                channels: 1,
                sample_rate: SAMPLE_RATE,
            },
            protocol::ChannelMap::new([protocol::ChannelPosition::Mono]),
        )
    }

    /// A record stream from the source `name`, 10 ms fragments, nothing
    /// dropped by the server when we fall behind (our own queue bounds
    /// the delay).
    pub(super) fn record(
        name: CString,
        data: Arc<Shared>,
        call: bool,
    ) -> Result<OpenStream, DeviceError> {
        let (sample_spec, channel_map) = spec();
        let params = protocol::RecordStreamParams {
            sample_spec,
            channel_map,
            source_name: Some(name),
            // Delivered every 10 ms, but kept by the server (up to its
            // limit) while we do not read: a stall of ours loses no sound,
            // and the capture keeps its timeline.
            buffer_attr: BufferAttr {
                max_length: u32::MAX,
                fragment_size: BLOCK_BYTES,
                ..Default::default()
            },
            flags: StreamFlags {
                start_corked: true,
                adjust_latency: true,
                ..Default::default()
            },
            props: properties(c"Microphone", call),
            ..Default::default()
        };
        let client = client()?;
        let stream = block_on(client.create_record_stream(params, move |bytes: &[u8]| {
            data.captured(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
        }))
        .map_err(failed)?;
        block_on(stream.uncork()).map_err(failed)?;
        block_on(stream.started()).map_err(failed)?;
        // The stream first, then its connection.
        Ok(Box::new((stream, client)))
    }

    /// A playback stream to the sink `name`, two 10 ms blocks deep.
    pub(super) fn playback(
        name: CString,
        data: Arc<Shared>,
        call: bool,
    ) -> Result<OpenStream, DeviceError> {
        let (sample_spec, channel_map) = spec();
        let params = protocol::PlaybackStreamParams {
            sample_spec,
            channel_map,
            sink_name: Some(name),
            buffer_attr: BufferAttr {
                max_length: 2 * BLOCK_BYTES,
                target_length: 2 * BLOCK_BYTES,
                minimum_request_length: BLOCK_BYTES,
                ..Default::default()
            },
            flags: StreamFlags {
                start_corked: true,
                adjust_latency: true,
                ..Default::default()
            },
            props: properties(c"Speaker", call),
            ..Default::default()
        };
        let source = move |out: &mut [u8]| -> usize {
            let n = data.fill(out.len() / 2, |i, sample| {
                out[2 * i..2 * i + 2].copy_from_slice(&sample.to_le_bytes());
            });
            out[2 * n..].fill(0);
            // Never 0: that would end the stream.
            out.len()
        };
        let client = client()?;
        let stream = block_on(client.create_playback_stream(params, source.as_playback_source()))
            .map_err(failed)?;
        block_on(stream.uncork()).map_err(failed)?;
        Ok(Box::new((stream, client)))
    }
}
