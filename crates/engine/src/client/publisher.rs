//! Sending media: the VideoRoom publisher handle gets a peer connection (on
//! its own UDP port) with a send-only audio and video m-line, offered with
//! `configure`. Encoded frames come in from the runtime (which owns the
//! devices and encoders) and go to str0m, which packetises them; keyframe
//! requests from the server go back out to the runtime.

use std::time::{Duration, Instant};

use conclave_protocol::janus::{Jsep, JsepKind};
use serde_json::json;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
/// Video bitrate before the first estimate.
const INITIAL_VIDEO_KBPS: u64 = 1200;
/// Video never goes below this (the picture would fall apart).
const MIN_VIDEO_BPS: u32 = 150_000;
/// Nor above this (720p30 looks good at it).
const MAX_VIDEO_BPS: u32 = 2_500_000;

use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event as RtcEvent, Rtc};
use tracing::{debug, info, warn};

use super::{Client, Output, Tx, STATS_INTERVAL};
use crate::api::EngineEvent;

/// What this participant publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishConfig {
    /// Send audio.
    pub audio: bool,
    /// Send video.
    pub video: bool,
    /// Share a screen from the start.
    pub screen: bool,
    /// With the computer's sound.
    pub screen_audio: bool,
    /// The one video codec offered.
    pub video_codec: conclave_codec::VideoCodec,
}

/// Which of our streams an encoded frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The microphone (Opus).
    Audio,
    /// The camera.
    Camera,
    /// The shared screen.
    Screen,
    /// The computer's sound, shared with the screen.
    ScreenAudio,
}

/// What the server is told our shared screen's stream is.
pub(crate) const SCREEN_DESCRIPTION: &str = "screen";
/// ... and the computer's sound shared with it.
pub(crate) const SCREEN_AUDIO_DESCRIPTION: &str = "screen-audio";

/// The publishing side of a client.
#[derive(Default)]
pub(crate) struct Publisher {
    rtc: Option<Rtc>,
    pending: Option<SdpPendingOffer>,
    /// An ICE restart waits for the offer in flight to be answered.
    restart_wanted: bool,
    /// The offer in flight restarts ICE (its answer asks for keyframes).
    restarting: bool,
    audio: Option<Mid>,
    video: Option<Mid>,
    started: bool,
    /// The shared screen's m-line (kept, inactive, when sharing stops).
    screen: Option<Mid>,
    /// Whether the screen is offered as sending now.
    sharing: bool,
    /// Whether the user wants it sent (an offer may still be under way).
    want_sharing: bool,
    /// The computer's sound's m-line, once added.
    screen_audio: Option<Mid>,
    /// Whether the computer's sound is offered as sending now.
    sharing_audio: bool,
    /// Whether the user wants it sent.
    want_sharing_audio: bool,
    pub(super) deadline: Option<Instant>,
    /// What is sent, from str0m's statistics.
    pub(super) meter: super::LinkMeter,
    /// The video bitrate last aimed for, bits/s.
    pub(super) video_target: u32,
    /// The loss the server reports for our audio, smoothed as the Opus
    /// protection is: it also decides on redundant audio (RED).
    protection: crate::adapt::AudioProtection,
    /// Whether our audio goes out with RED (RFC 2198) now.
    redundancy: bool,
    /// What the media side was last told about RED (sent and negotiated).
    redundancy_told: Option<bool>,
}

impl Client {
    /// Offers our media on the VideoRoom handle (after joining it).
    pub(super) fn start_publishing(&mut self) {
        let want = self.cfg.publish;
        if self.publisher.started || !(want.audio || want.video || want.screen) {
            return;
        }
        self.publisher.want_sharing |= want.screen;
        self.publisher.want_sharing_audio |= want.screen && want.screen_audio;
        let Some(handle) = self.videoroom_handle else {
            return;
        };
        self.publisher.started = true;
        let h264 = want.video_codec == conclave_codec::VideoCodec::H264;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            // Opus with RED (RFC 2198) offered: sent only while the loss
            // calls for it (`update_redundancy`).
            .enable_opus(true, true)
            // Each packet carries the two before it: at 20 % random loss
            // one level leaves 4 % unrepaired (a loss whose next packet is
            // lost too), two leave 0.8 %.
            .set_red_distances(&[1, 2])
            // One video codec: what is offered is what the encoder makes.
            .enable_vp8(!h264)
            .enable_h264(h264)
            // Transport-wide congestion control: the video bitrate follows
            // the estimate.
            .enable_bwe(Some(str0m::bwe::Bitrate::kbps(INITIAL_VIDEO_KBPS)))
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(self.now);
        rtc.bwe().set_bitrate(
            str0m::bwe::Bitrate::bps(u64::from(MIN_VIDEO_BPS)),
            str0m::bwe::Bitrate::bps(u64::from(MAX_VIDEO_BPS) + 64_000),
        );
        match super::local_candidates(
            self.cfg.publish_addr,
            &self.cfg.relayed.publish,
            self.cfg.relay_only,
        ) {
            Ok(candidates) => {
                for c in candidates {
                    rtc.add_local_candidate(c);
                }
            }
            Err(e) => {
                warn!(error = %e, "no usable address for sending media");
                return;
            }
        }
        let mut api = rtc.sdp_api();
        let stream = format!("conclave-{}", self.cfg.self_id);
        if want.audio {
            self.publisher.audio = Some(api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                Some(stream.clone()),
                Some(format!("{stream}-audio")),
                None,
            ));
        }
        if want.video {
            self.publisher.video = Some(api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some(stream.clone()),
                Some(format!("{stream}-video")),
                None,
            ));
        }
        if self.publisher.want_sharing {
            self.publisher.screen = Some(api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some(format!("{stream}-screen")),
                Some(format!("{stream}-screen")),
                None,
            ));
            self.publisher.sharing = true;
            if self.publisher.want_sharing_audio {
                self.publisher.screen_audio = Some(api.add_media(
                    MediaKind::Audio,
                    Direction::SendOnly,
                    Some(format!("{stream}-screen")),
                    Some(format!("{stream}-screen-audio")),
                    None,
                ));
                self.publisher.sharing_audio = true;
            }
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.publisher.pending = Some(pending);
        self.publisher.rtc = Some(rtc);
        let jsep = Jsep {
            kind: JsepKind::Offer,
            sdp: offer.to_sdp_string(),
            restart: false,
            e2ee: false,
        };
        let mut body = json!({
            "request": "configure",
            "audio": want.audio || self.publisher.screen_audio.is_some(),
            "video": want.video || want.screen,
        });
        if self.publisher.screen.is_some() {
            body["descriptions"] = self.share_descriptions();
        }
        self.plugin_message(Tx::Publish, handle, body, Some(jsep));
    }

    /// The `descriptions` of the share's m-lines.
    fn share_descriptions(&self) -> serde_json::Value {
        let mut list = Vec::new();
        if let Some(mid) = self.publisher.screen {
            list.push(json!({"mid": mid.to_string(), "description": SCREEN_DESCRIPTION}));
        }
        if let Some(mid) = self.publisher.screen_audio {
            list.push(json!({"mid": mid.to_string(), "description": SCREEN_AUDIO_DESCRIPTION}));
        }
        json!(list)
    }

    /// Starts or stops sending the shared screen (with the computer's sound
    /// if `audio`): a new offer with their m-lines added, or set inactive
    /// (or active again).
    pub(super) fn set_sharing(&mut self, on: bool, audio: bool) {
        self.publisher.want_sharing = on;
        self.publisher.want_sharing_audio = on && audio;
        if !self.publisher.started {
            if on {
                self.cfg.publish.screen = true;
                self.cfg.publish.screen_audio = audio;
                self.start_publishing();
            }
            return;
        }
        self.renegotiate_share();
    }

    /// Offers the wanted sharing state if it differs from the offered one
    /// and no offer is under way.
    fn renegotiate_share(&mut self) {
        let (on, audio) = (
            self.publisher.want_sharing,
            self.publisher.want_sharing_audio,
        );
        if (on, audio) == (self.publisher.sharing, self.publisher.sharing_audio)
            || self.publisher.pending.is_some()
        {
            return;
        }
        let (Some(handle), Some(rtc)) = (self.videoroom_handle, &mut self.publisher.rtc) else {
            return;
        };
        let direction = |send: bool| {
            if send {
                Direction::SendOnly
            } else {
                Direction::Inactive
            }
        };
        let stream = format!("conclave-{}-screen", self.cfg.self_id);
        let mut api = rtc.sdp_api();
        let mut line = |mid: Option<Mid>, kind: MediaKind, send: bool, track: &str| match mid {
            Some(mid) => {
                api.set_direction(mid, direction(send));
                Some(mid)
            }
            None if send => Some(api.add_media(
                kind,
                Direction::SendOnly,
                Some(stream.clone()),
                Some(format!("{stream}{track}")),
                None,
            )),
            None => None,
        };
        let screen = line(self.publisher.screen, MediaKind::Video, on, "");
        let screen_audio = line(
            self.publisher.screen_audio,
            MediaKind::Audio,
            audio,
            "-audio",
        );
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.publisher.screen = screen;
        self.publisher.screen_audio = screen_audio;
        self.publisher.pending = Some(pending);
        self.publisher.sharing = on;
        self.publisher.sharing_audio = audio;
        let jsep = Jsep {
            kind: JsepKind::Offer,
            sdp: offer.to_sdp_string(),
            restart: false,
            e2ee: false,
        };
        let body = json!({"request": "configure", "descriptions": self.share_descriptions()});
        self.plugin_message(Tx::Publish, handle, body, Some(jsep));
    }

    /// Restarts ICE on the sending connection after the network changed:
    /// our new candidates in an offer with fresh credentials (the old
    /// candidates stay, and fail), sent with `configure`.
    pub(super) fn restart_publisher_ice(&mut self) {
        if self.publisher.pending.is_some() {
            self.publisher.restart_wanted = true;
            return;
        }
        let (Some(handle), Some(rtc)) = (self.videoroom_handle, &mut self.publisher.rtc) else {
            return;
        };
        match super::local_candidates(self.cfg.publish_addr, &self.cfg.relayed.publish, false) {
            Ok(candidates) => {
                for c in candidates {
                    rtc.add_local_candidate(c);
                }
            }
            Err(e) => return warn!(error = %e, "no candidate on the new network"),
        }
        let mut api = rtc.sdp_api();
        api.ice_restart(true);
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.publisher.pending = Some(pending);
        self.publisher.restarting = true;
        let jsep = Jsep {
            kind: JsepKind::Offer,
            sdp: offer.to_sdp_string(),
            restart: true,
            e2ee: false,
        };
        self.plugin_message(
            Tx::Publish,
            handle,
            json!({"request": "configure"}),
            Some(jsep),
        );
    }

    /// The server's answer to our offer.
    pub(super) fn on_publish_answer(&mut self, jsep: Jsep) {
        let (Some(rtc), Some(pending)) = (&mut self.publisher.rtc, self.publisher.pending.take())
        else {
            return;
        };
        let now = self.now;
        let applied = SdpAnswer::from_sdp_string(&jsep.sdp)
            .map_err(|e| e.to_string())
            .and_then(|a| {
                rtc.sdp_api()
                    .accept_answer(pending, a)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| {
                // Our own ICE checks start now, not when the server's arrive.
                rtc.handle_input(str0m::Input::Timeout(now))
                    .map_err(|e| e.to_string())
            });
        match applied {
            Ok(()) => {
                self.drain_publisher();
                if std::mem::take(&mut self.publisher.restarting) {
                    // Whoever receives us starts again from a keyframe.
                    self.out
                        .push_back(Output::KeyframeRequested { screen: false });
                    if self.publisher.sharing {
                        self.out
                            .push_back(Output::KeyframeRequested { screen: true });
                    }
                }
                if std::mem::take(&mut self.publisher.restart_wanted) {
                    return self.restart_publisher_ice();
                }
                // The user may have started or stopped sharing meanwhile.
                self.renegotiate_share();
                if self.publisher.sharing {
                    self.out
                        .push_back(Output::KeyframeRequested { screen: true });
                }
            }
            Err(e) => {
                warn!(error = %e, "the server's media answer was unusable");
                self.emit(EngineEvent::Warning {
                    message: format!("Others cannot receive your audio and video: {e}"),
                });
            }
        }
    }

    /// One encoded frame from the runtime: Opus or VP8.
    pub(super) fn send_encoded(&mut self, sent: Sent, data: &[u8], captured: Duration, level: u8) {
        let video = matches!(sent, Sent::Camera | Sent::Screen);
        let mid = match sent {
            Sent::Audio => self.publisher.audio,
            Sent::Camera => self.publisher.video,
            Sent::Screen => self.publisher.screen.filter(|_| self.publisher.sharing),
            Sent::ScreenAudio => self
                .publisher
                .screen_audio
                .filter(|_| self.publisher.sharing_audio),
        };
        let (Some(rtc), Some(mid)) = (&mut self.publisher.rtc, mid) else {
            return;
        };
        if !rtc.is_connected() {
            return;
        }
        let Some(writer) = rtc.writer(mid) else {
            return;
        };
        let codec = match (video, self.cfg.publish.video_codec) {
            (false, _) => Codec::Opus,
            (true, conclave_codec::VideoCodec::Vp8) => Codec::Vp8,
            (true, conclave_codec::VideoCodec::H264) => Codec::H264,
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        let (rate, frequency) = if video {
            (90_000u64, Frequency::NINETY_KHZ)
        } else {
            (48_000u64, Frequency::FORTY_EIGHT_KHZ)
        };
        let ticks = captured.as_micros() as u64 * rate / 1_000_000;
        let writer = if video {
            writer
        } else {
            writer.audio_level(-(level.min(127) as i8), level < 40)
        };
        if let Err(e) = writer.write(pt, self.now, MediaTime::new(ticks, frequency), data) {
            debug!(error = %e, "media write failed");
        }
        self.drain_publisher();
    }

    /// A datagram on the sending port.
    pub(super) fn on_publish_packet(
        &mut self,
        proto: Protocol,
        source: std::net::SocketAddr,
        destination: std::net::SocketAddr,
        data: &[u8],
    ) {
        let Some(rtc) = &mut self.publisher.rtc else {
            return;
        };
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            return;
        };
        if let Err(e) = rtc.handle_input(str0m::Input::Receive(self.now, receive)) {
            debug!(error = %e, "media input failed");
        }
        self.drain_publisher();
    }

    /// Advances the publisher's peer in time.
    pub(super) fn publisher_timeout(&mut self) {
        let now = self.now;
        if self.publisher.deadline.is_some_and(|t| now >= t) {
            if let Some(rtc) = &mut self.publisher.rtc {
                if let Err(e) = rtc.handle_input(str0m::Input::Timeout(now)) {
                    debug!(error = %e, "media timeout failed");
                }
            }
            self.drain_publisher();
        }
    }

    fn drain_publisher(&mut self) {
        loop {
            let Some(rtc) = &mut self.publisher.rtc else {
                return;
            };
            let output = match rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    warn!(error = %e, "sending media failed");
                    self.publisher.rtc = None;
                    self.publisher.deadline = None;
                    return;
                }
            };
            match output {
                str0m::Output::Timeout(t) => {
                    self.publisher.deadline = Some(t);
                    return;
                }
                str0m::Output::Transmit(t) => self.out.push_back(Output::Transmit {
                    proto: t.proto,
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.to_vec(),
                }),
                str0m::Output::Event(RtcEvent::EgressBitrateEstimate(
                    str0m::bwe::BweKind::Twcc { estimate, .. }
                    | str0m::bwe::BweKind::Remb { estimate, .. },
                )) => {
                    // Leave room for audio, RTP overhead and retransmissions.
                    let video = (estimate.as_u64() as f64 * 0.85) as u32;
                    let video = video
                        .saturating_sub(40_000)
                        .clamp(MIN_VIDEO_BPS, MAX_VIDEO_BPS);
                    self.publisher.video_target = video;
                    self.out.push_back(Output::VideoBitrate(video));
                }
                str0m::Output::Event(RtcEvent::KeyframeRequest(req)) => {
                    let screen = self.publisher.screen == Some(req.mid);
                    self.out.push_back(Output::KeyframeRequested { screen })
                }
                str0m::Output::Event(RtcEvent::MediaEgressStats(s))
                    if Some(s.mid) == self.publisher.audio =>
                {
                    if let Some(loss) = s.loss {
                        self.out.push_back(Output::AudioLoss(loss));
                        self.publisher.protection.on_report(loss, self.now);
                        self.update_redundancy(false);
                    }
                }
                str0m::Output::Event(RtcEvent::PeerStats(s)) => self.publisher.meter.update(
                    s.timestamp,
                    s.peer_bytes_tx,
                    s.rtt,
                    s.egress_loss_fraction,
                ),
                str0m::Output::Event(RtcEvent::Connected) => {
                    debug!("sending media");
                    // str0m sends RED as soon as it is negotiated: not
                    // until the loss calls for it.
                    self.update_redundancy(true);
                    // Start with a keyframe for whoever is watching.
                    self.out
                        .push_back(Output::KeyframeRequested { screen: false });
                    self.out
                        .push_back(Output::KeyframeRequested { screen: true });
                }
                str0m::Output::Event(_) => {}
            }
        }
    }

    /// Sends our audio with RED while the loss the server reports calls
    /// for it, and without on a clean link (it doubles the audio's
    /// bitrate). Only where the server negotiated RED.
    fn update_redundancy(&mut self, always: bool) {
        let want = self.publisher.protection.wants_redundancy();
        if want == self.publisher.redundancy && !always {
            return;
        }
        if want != self.publisher.redundancy {
            info!(on = want, "redundant audio");
        }
        self.publisher.redundancy = want;
        let mids = [self.publisher.audio, self.publisher.screen_audio];
        let mut sent = false;
        if let Some(rtc) = self.publisher.rtc.as_mut() {
            // Negotiated: the server took RED for Opus.
            let negotiated = rtc
                .codec_config()
                .find(|p| p.spec().codec == str0m::format::Codec::Opus && p.red().is_some())
                .is_some();
            let mut api = rtc.direct_api();
            for mid in mids.into_iter().flatten() {
                api.set_red_send(mid, want);
            }
            sent = want && negotiated;
        }
        if self.publisher.redundancy_told != Some(sent) {
            self.publisher.redundancy_told = Some(sent);
            self.out.push_back(Output::AudioRedundancy(sent));
        }
    }
}
