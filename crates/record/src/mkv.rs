//! A crash-safe WebM/Matroska writer for recordings.
//!
//! Layout: EBML header; a Segment of unknown size holding a reserved space
//! (later the SeekHead), Info (with a Duration patched at the end), Tracks,
//! then Clusters. A cluster is collected in memory and written whole, with a
//! known size, then synced: at most `max_cluster_ms` (one second) is ever
//! only in memory. Players read a file cut after any whole cluster (the
//! Segment's unknown size means "until the end"). [`Writer::finish`] appends
//! the Cues (the seek index), writes the Segment's size, the SeekHead and the
//! Duration; [`repair`] does the same for a file a crash cut off, after
//! dropping a partly written last cluster.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Why writing or repairing failed.
#[derive(Debug, thiserror::Error)]
pub enum MkvError {
    /// The file could not be written or read (a full disk shows here).
    #[error("the recording file: {0}")]
    Io(#[from] io::Error),
    /// A frame named a track the file does not have.
    #[error("no track {0} in this recording")]
    UnknownTrack(u64),
    /// The file is not a recording this writer made.
    #[error("not a recording: {0}")]
    NotARecording(&'static str),
}

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const CUES: u32 = 0x1C53_BB6B;
const VOID: u32 = 0xEC;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const DURATION: u32 = 0x4489;

/// Bytes reserved at the Segment's start for the SeekHead.
const SEEK_HEAD_SPACE: usize = 96;
/// Bytes a track's name may take: names are written zero-padded to this
/// length, so that [`Writer::rename_track`] can change them in place.
pub const NAME_SPACE: usize = 64;
/// The "unknown" size: read until the parent ends (here: the file).
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// What a track holds.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackKind {
    /// Video of this size.
    Video {
        /// Pixels across.
        width: u32,
        /// Pixels down.
        height: u32,
    },
    /// Audio at this rate.
    Audio {
        /// Samples per second.
        sample_rate: f64,
        /// Channels.
        channels: u8,
    },
}

/// One track of the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Its number in blocks, from 1.
    pub number: u64,
    /// A name players show (for example "Mix" or a participant's name).
    pub name: String,
    /// Matroska codec id (`V_VP8`, `A_OPUS`).
    pub codec_id: String,
    /// Video or audio, and its format.
    pub kind: TrackKind,
    /// Codec setup data (Opus: the `OpusHead`).
    pub codec_private: Option<Vec<u8>>,
    /// Samples the decoder drops at the start, in nanoseconds.
    pub codec_delay_ns: u64,
    /// Decoding needed before a seek target, in nanoseconds.
    pub seek_pre_roll_ns: u64,
    /// Whether players pick this track by default.
    pub default: bool,
}

impl Track {
    /// A VP8 video track.
    pub fn vp8(number: u64, name: &str, width: u32, height: u32) -> Self {
        Track {
            number,
            name: name.to_owned(),
            codec_id: "V_VP8".into(),
            kind: TrackKind::Video { width, height },
            codec_private: None,
            codec_delay_ns: 0,
            seek_pre_roll_ns: 0,
            default: true,
        }
    }

    /// A mono or stereo Opus track at 48 kHz, with the usual pre-skip
    /// (312 samples) and an 80 ms seek pre-roll.
    pub fn opus(number: u64, name: &str, channels: u8) -> Self {
        const PRE_SKIP: u16 = 312;
        let mut head = b"OpusHead".to_vec();
        head.push(1);
        head.push(channels);
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0);
        Track {
            number,
            name: name.to_owned(),
            codec_id: "A_OPUS".into(),
            kind: TrackKind::Audio {
                sample_rate: 48_000.0,
                channels,
            },
            codec_private: Some(head),
            codec_delay_ns: u64::from(PRE_SKIP) * 1_000_000_000 / 48_000,
            seek_pre_roll_ns: 80_000_000,
            default: true,
        }
    }

    /// The same track, not picked by players unless asked for (a
    /// per-person track beside the mix).
    pub fn not_default(mut self) -> Self {
        self.default = false;
        self
    }

    /// The TrackEntry, and where in it the name's (padded) bytes start.
    fn encode(&self) -> (Vec<u8>, usize) {
        let mut entry = Vec::new();
        entry.extend(uint(0xD7, self.number));
        entry.extend(uint(0x73C5, self.number));
        entry.extend(uint(0x9C, 0)); // not laced
        entry.extend(uint(0x88, u64::from(self.default)));
        let name = padded_text(0x536E, &self.name);
        let name_in_entry = entry.len() + name.len() - NAME_SPACE;
        entry.extend(name);
        entry.extend(text(0x86, &self.codec_id));
        if let Some(private) = &self.codec_private {
            entry.extend(element(0x63A2, private));
        }
        if self.codec_delay_ns > 0 {
            entry.extend(uint(0x56AA, self.codec_delay_ns));
        }
        if self.seek_pre_roll_ns > 0 {
            entry.extend(uint(0x56BB, self.seek_pre_roll_ns));
        }
        match self.kind {
            TrackKind::Video { width, height } => {
                entry.extend(uint(0x83, 1));
                let mut video = uint(0xB0, u64::from(width));
                video.extend(uint(0xBA, u64::from(height)));
                entry.extend(element(0xE0, &video));
            }
            TrackKind::Audio {
                sample_rate,
                channels,
            } => {
                entry.extend(uint(0x83, 2));
                let mut audio = float(0xB5, sample_rate);
                audio.extend(uint(0x9F, u64::from(channels)));
                entry.extend(element(0xE1, &audio));
            }
        }
        let encoded = element(0xAE, &entry);
        let header = encoded.len() - entry.len();
        (encoded, header + name_in_entry)
    }
}

/// Storage that can be made durable: a file is synced to disk, memory needs
/// nothing.
pub trait Durable: Write + Seek {
    /// Makes what was written survive a crash or power loss.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the storage to `len` bytes (dropping what a failed write left).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl Durable for std::fs::File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

impl Durable for io::Cursor<Vec<u8>> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.get_mut()
            .truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
}

/// Where the finishing touches go, found when the file was started (or when
/// a cut-off file is repaired).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Absolute position of the Segment's size field.
    segment_size_at: u64,
    /// Absolute position of the Segment's payload (positions in the
    /// SeekHead and Cues count from here).
    segment_data_at: u64,
    /// Absolute position of the reserved SeekHead space.
    seek_head_at: u64,
    /// Absolute position of the Duration's 8 payload bytes.
    duration_at: u64,
    /// Segment-relative positions of Info and Tracks.
    info_at: u64,
    tracks_at: u64,
}

/// A cue: a cluster that starts with a keyframe of `track` at `time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cue {
    time_ms: u64,
    track: u64,
    cluster_at: u64,
}

/// Writes a recording; see the module documentation.
pub struct Writer<W: Durable> {
    out: W,
    layout: Layout,
    tracks: Vec<Track>,
    /// The track cues follow: the first video track, else the first.
    cue_track: u64,
    max_cluster_ms: u64,
    cluster: Vec<u8>,
    cluster_start_ms: Option<u64>,
    /// The first block of the open cluster, if it is a keyframe of the cue track.
    cluster_cue: bool,
    cues: Vec<Cue>,
    end_ms: u64,
    /// The start of the last cluster written: the next starts no earlier.
    last_cluster_start_ms: u64,
    /// Each track's last time, in the order of `tracks`.
    last_ms: Vec<Option<u64>>,
    /// Frames refused for coming out of order.
    refused: u64,
    /// Each track's number and the absolute position of its name's bytes.
    names: Vec<(u64, u64)>,
}

impl<W: Durable> Writer<W> {
    /// Starts a recording in `out` with these tracks, titled `title`; writes
    /// and syncs the headers. Clusters hold at most `max_cluster_ms`.
    pub fn create(
        mut out: W,
        tracks: Vec<Track>,
        title: &str,
        max_cluster_ms: u64,
    ) -> Result<Self, MkvError> {
        let start = out.stream_position()?;
        let mut header = Vec::new();
        header.extend(uint(0x4286, 1));
        header.extend(uint(0x42F7, 1));
        header.extend(uint(0x42F2, 4));
        header.extend(uint(0x42F3, 8));
        let doc_type = if tracks
            .iter()
            .all(|t| matches!(t.codec_id.as_str(), "V_VP8" | "V_VP9" | "A_OPUS"))
        {
            "webm"
        } else {
            "matroska"
        };
        header.extend(text(0x4282, doc_type));
        header.extend(uint(0x4287, 4));
        header.extend(uint(0x4285, 2));
        let mut bytes = element(EBML, &header);
        bytes.extend(id_bytes(SEGMENT));
        let segment_size_at = start + bytes.len() as u64;
        bytes.extend(UNKNOWN_SIZE);
        let segment_data_at = start + bytes.len() as u64;
        let seek_head_at = segment_data_at;
        bytes.extend(void(SEEK_HEAD_SPACE));
        let info_at = start + bytes.len() as u64 - segment_data_at;
        let mut info = uint(0x2A_D7B1, 1_000_000);
        info.extend(text(0x4D80, "Conclave"));
        info.extend(text(0x5741, "Conclave"));
        if !title.is_empty() {
            info.extend(text(0x7BA9, title));
        }
        let duration_offset = info.len() as u64;
        info.extend(float(DURATION, 0.0));
        let info_element = element(INFO, &info);
        let info_header = info_element.len() as u64 - info.len() as u64;
        // Duration: its ID (2 bytes) and size (1 byte) precede the 8 bytes.
        let duration_at = segment_data_at + info_at + info_header + duration_offset + 3;
        bytes.extend(info_element);
        let tracks_at = start + bytes.len() as u64 - segment_data_at;
        let mut entries = Vec::new();
        let mut name_offsets = Vec::new();
        for track in &tracks {
            let (entry, name_at) = track.encode();
            name_offsets.push((track.number, entries.len() + name_at));
            entries.extend(entry);
        }
        let tracks_element = element(TRACKS, &entries);
        let entries_at = start + bytes.len() as u64 + (tracks_element.len() - entries.len()) as u64;
        let names = name_offsets
            .into_iter()
            .map(|(number, at)| (number, entries_at + at as u64))
            .collect();
        bytes.extend(tracks_element);
        out.write_all(&bytes)?;
        out.flush()?;
        out.sync()?;
        let track_count = tracks.len();
        let cue_track = tracks
            .iter()
            .find(|t| matches!(t.kind, TrackKind::Video { .. }))
            .or(tracks.first())
            .map_or(1, |t| t.number);
        Ok(Writer {
            out,
            layout: Layout {
                segment_size_at,
                segment_data_at,
                seek_head_at,
                duration_at,
                info_at,
                tracks_at,
            },
            tracks,
            cue_track,
            max_cluster_ms: max_cluster_ms.clamp(1, 30_000),
            cluster: Vec::new(),
            cluster_start_ms: None,
            cluster_cue: false,
            cues: Vec::new(),
            end_ms: 0,
            last_cluster_start_ms: 0,
            last_ms: vec![None; track_count],
            refused: 0,
            names,
        })
    }

    /// Changes a track's name in place (to at most [`NAME_SPACE`] bytes):
    /// a person's track is named once they are known.
    pub fn rename_track(&mut self, track: u64, name: &str) -> Result<(), MkvError> {
        let at = self
            .names
            .iter()
            .find(|(number, _)| *number == track)
            .map(|(_, at)| *at)
            .ok_or(MkvError::UnknownTrack(track))?;
        let field = padded_text(0x536E, name);
        self.out.seek(SeekFrom::Start(at))?;
        self.out.write_all(&field[field.len() - NAME_SPACE..])?;
        self.out.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Adds one encoded frame of `track` at `time_ms` (from the recording's
    /// start). Each track's times strictly increase in the file, whatever
    /// the caller does: a frame at or before its track's last time is not
    /// written (`Ok(false)`). Tracks may run a little apart: a frame before
    /// the open cluster's start sits at a negative offset from it, as
    /// Matroska allows, and clusters never start before the previous one.
    /// A keyframe of the video track starts a new cluster, so that clusters
    /// can be seeked to.
    pub fn write_frame(
        &mut self,
        track: u64,
        time_ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<bool, MkvError> {
        let index = self
            .tracks
            .iter()
            .position(|t| t.number == track)
            .ok_or(MkvError::UnknownTrack(track))?;
        if self.last_ms[index].is_some_and(|last| time_ms <= last) {
            self.refused += 1;
            return Ok(false);
        }
        if let Some(start) = self.cluster_start_ms {
            let due = time_ms.saturating_sub(start) >= self.max_cluster_ms;
            let seek_point = keyframe && track == self.cue_track && time_ms > start;
            // A block's offset is a signed 16-bit count of milliseconds.
            let out_of_reach = time_ms + 30_000 < start;
            if due || seek_point || out_of_reach {
                self.flush()?;
            }
        }
        let floor = self.last_cluster_start_ms;
        let start = *self.cluster_start_ms.get_or_insert_with(|| {
            self.cluster_cue = keyframe && track == self.cue_track;
            time_ms.max(floor)
        });
        let Ok(relative) = i16::try_from(time_ms as i64 - start as i64) else {
            // Further behind than any cluster may reach: not written.
            self.refused += 1;
            return Ok(false);
        };
        let mut block = vint(track);
        block.extend(relative.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0 });
        block.extend_from_slice(data);
        self.cluster.extend(element(SIMPLE_BLOCK, &block));
        self.last_ms[index] = Some(time_ms);
        self.end_ms = self.end_ms.max(time_ms);
        Ok(true)
    }

    /// Frames not written because their time did not follow their track's.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Writes the open cluster and syncs it to disk.
    pub fn flush(&mut self) -> Result<(), MkvError> {
        let Some(start) = self.cluster_start_ms.take() else {
            return Ok(());
        };
        self.last_cluster_start_ms = start;
        let end = self.out.seek(SeekFrom::End(0))?;
        let at = end - self.layout.segment_data_at;
        let mut payload = uint(TIMESTAMP, start);
        payload.append(&mut self.cluster);
        let written = self
            .out
            .write_all(&element(CLUSTER, &payload))
            .and_then(|()| self.out.flush())
            .and_then(|()| self.out.sync());
        if let Err(e) = written {
            // A full disk: what was written before stays whole and playable.
            let _ = self.out.truncate(end);
            let _ = self.out.seek(SeekFrom::Start(end));
            return Err(e.into());
        }
        if self.cluster_cue {
            self.cues.push(Cue {
                time_ms: start,
                track: self.cue_track,
                cluster_at: at,
            });
        }
        Ok(())
    }

    /// How long the recording is so far, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.end_ms
    }

    /// Ends the recording: the last cluster, the Cues, the Segment's size,
    /// the SeekHead and the Duration; synced. Returns the storage.
    pub fn finish(mut self) -> Result<W, MkvError> {
        self.flush()?;
        finalise(&mut self.out, self.layout, &self.cues, self.end_ms)?;
        Ok(self.out)
    }
}

/// Appends the Cues and patches the Segment's size, the SeekHead and the
/// Duration.
fn finalise<W: Durable>(
    out: &mut W,
    layout: Layout,
    cues: &[Cue],
    end_ms: u64,
) -> Result<(), MkvError> {
    let clusters_end = out.seek(SeekFrom::End(0))?;
    let cues_at = clusters_end - layout.segment_data_at;
    let mut points = Vec::new();
    for cue in cues {
        let mut position = uint(0xF7, cue.track);
        position.extend(uint(0xF1, cue.cluster_at));
        let mut point = uint(0xB3, cue.time_ms);
        point.extend(element(0xB7, &position));
        points.extend(element(0xBB, &point));
    }
    if !points.is_empty() {
        let written = out
            .write_all(&element(CUES, &points))
            .and_then(|()| out.flush());
        if written.is_err() {
            // No room for the index (a full disk): finalised without it.
            out.truncate(clusters_end)?;
            out.seek(SeekFrom::Start(clusters_end))?;
            points.clear();
        }
    }
    let end = out.stream_position()?;
    let mut seeks = Vec::new();
    let mut entries = vec![(INFO, layout.info_at), (TRACKS, layout.tracks_at)];
    if !points.is_empty() {
        entries.push((CUES, cues_at));
    }
    for (id, at) in entries {
        let mut seek = element(SEEK_ID, &id_bytes(id));
        seek.extend(element(SEEK_POSITION, &at.to_be_bytes()));
        seeks.extend(element(SEEK, &seek));
    }
    let mut head = element(SEEK_HEAD, &seeks);
    let rest = SEEK_HEAD_SPACE
        .checked_sub(head.len())
        .filter(|r| *r >= 2)
        .ok_or(MkvError::NotARecording("seek head does not fit"))?;
    head.extend(void(rest));
    out.seek(SeekFrom::Start(layout.seek_head_at))?;
    out.write_all(&head)?;
    out.seek(SeekFrom::Start(layout.segment_size_at))?;
    out.write_all(&size8(end - layout.segment_data_at))?;
    out.seek(SeekFrom::Start(layout.duration_at))?;
    out.write_all(&(end_ms as f64).to_be_bytes())?;
    out.seek(SeekFrom::Start(end))?;
    out.flush()?;
    out.sync()?;
    Ok(())
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Whole clusters kept.
    pub clusters: usize,
    /// Bytes of a partly written cluster dropped from the end.
    pub dropped_bytes: u64,
    /// The recording's length, in milliseconds.
    pub duration_ms: u64,
}

/// Finalises a recording that a crash cut off: keeps every whole cluster,
/// drops what follows the last one, and adds the Cues, the Segment's size,
/// the SeekHead and the Duration. `truncate` shortens the storage to a
/// length (a file's `set_len`).
pub fn repair<W: Durable + Read>(
    file: &mut W,
    truncate: impl FnOnce(&mut W, u64) -> io::Result<()>,
) -> Result<Repaired, MkvError> {
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let (id, size, header) = read_element_header(file)?;
    if id != EBML {
        return Err(MkvError::NotARecording("no EBML header"));
    }
    let size = size.ok_or(MkvError::NotARecording("EBML header size"))?;
    file.seek(SeekFrom::Current(
        i64::try_from(size).map_err(|_| MkvError::NotARecording("size"))?,
    ))?;
    let segment_at = header + size;
    let (id, _, segment_header) = read_element_header(file)?;
    if id != SEGMENT {
        return Err(MkvError::NotARecording("no Segment"));
    }
    // Our files have an 8-byte Segment size and the SeekHead's reserved
    // space first: what finishing rewrites in place. Anything else is left
    // untouched.
    if segment_header != 12 {
        return Err(MkvError::NotARecording("not written by Conclave"));
    }
    let segment_data_at = segment_at + segment_header;
    let segment_size_at = segment_data_at - 8;
    let mut reserved = 0;
    for expected in [SEEK_HEAD, VOID] {
        file.seek(SeekFrom::Start(segment_data_at + reserved))?;
        match read_element_header(file) {
            Ok((id, Some(size), header)) if id == expected || id == VOID => {
                reserved += header + size;
                if id == VOID {
                    break;
                }
            }
            _ => break,
        }
    }
    if reserved != SEEK_HEAD_SPACE as u64 {
        return Err(MkvError::NotARecording("not written by Conclave"));
    }
    let mut layout = Layout {
        segment_size_at,
        segment_data_at,
        seek_head_at: segment_data_at,
        duration_at: 0,
        info_at: 0,
        tracks_at: 0,
    };
    let mut cue_track = None;
    let mut cues = Vec::new();
    let mut clusters = 0;
    let mut end_ms = 0;
    let mut good_end = segment_data_at;
    let mut at = segment_data_at;
    while at < len {
        file.seek(SeekFrom::Start(at))?;
        let Ok((id, size, header)) = read_element_header(file) else {
            break;
        };
        // Cues written by an earlier finish are replaced by new ones.
        if id == CUES {
            break;
        }
        let Some(size) = size else { break };
        let end = at + header + size;
        if end > len {
            break;
        }
        let mut payload =
            vec![0; usize::try_from(size).map_err(|_| MkvError::NotARecording("size"))?];
        file.read_exact(&mut payload)?;
        match id {
            INFO => {
                layout.info_at = at - segment_data_at;
                if let Some(offset) = find_child(&payload, DURATION) {
                    layout.duration_at = at + header + offset;
                }
            }
            TRACKS => {
                layout.tracks_at = at - segment_data_at;
                cue_track = first_video_track(&payload);
            }
            CLUSTER => {
                let (start, first_block, last) = cluster_times(&payload);
                if let (Some((track, keyframe)), Some(start)) = (first_block, start) {
                    if keyframe && Some(track) == cue_track {
                        cues.push(Cue {
                            time_ms: start,
                            track,
                            cluster_at: at - segment_data_at,
                        });
                    }
                }
                end_ms = end_ms.max(last);
                clusters += 1;
            }
            _ => {}
        }
        good_end = end;
        at = end;
    }
    if layout.duration_at == 0 || layout.tracks_at == 0 {
        return Err(MkvError::NotARecording("no Info or Tracks"));
    }
    truncate(file, good_end)?;
    file.seek(SeekFrom::Start(good_end))?;
    finalise(file, layout, &cues, end_ms)?;
    Ok(Repaired {
        clusters,
        dropped_bytes: len - good_end,
        duration_ms: end_ms,
    })
}

/// The child elements of `payload`: `(id, offset of its payload, payload)`,
/// up to the first that does not parse or fit.
fn children(payload: &[u8]) -> Vec<(u32, u64, &[u8])> {
    let mut out = Vec::new();
    let mut cursor = io::Cursor::new(payload);
    while (cursor.position() as usize) < payload.len() {
        let Ok((id, Some(size), _)) = read_element_header(&mut cursor) else {
            break;
        };
        let from = cursor.position();
        let Some(body) = usize::try_from(from)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(f, s)| payload.get(f..f.checked_add(s)?))
        else {
            break;
        };
        out.push((id, from, body));
        cursor.set_position(from + size);
    }
    out
}

fn as_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b))
}

/// The offset of child `id`'s payload within `payload`, if present.
fn find_child(payload: &[u8], id: u32) -> Option<u64> {
    children(payload)
        .into_iter()
        .find(|(child, _, _)| *child == id)
        .map(|(_, offset, _)| offset)
}

fn child_uint(payload: &[u8], id: u32) -> Option<u64> {
    children(payload)
        .into_iter()
        .find(|(child, _, _)| *child == id)
        .map(|(_, _, body)| as_uint(body))
}

/// The number of the first video track in a Tracks payload.
fn first_video_track(payload: &[u8]) -> Option<u64> {
    children(payload)
        .into_iter()
        .filter(|(id, _, _)| *id == 0xAE)
        .find(|(_, _, entry)| child_uint(entry, 0x83) == Some(1))
        .and_then(|(_, _, entry)| child_uint(entry, 0xD7))
}

/// A cluster's start time, its first block's track and keyframe flag, and
/// the time of its last block.
fn cluster_times(payload: &[u8]) -> (Option<u64>, Option<(u64, bool)>, u64) {
    let mut start = None;
    let mut first = None;
    let mut last = 0;
    for (id, _, body) in children(payload) {
        match id {
            TIMESTAMP => start = Some(as_uint(body)),
            SIMPLE_BLOCK => {
                let mut block = io::Cursor::new(body);
                let Ok((Some(track), _)) = read_vint(&mut block, true) else {
                    continue;
                };
                let p = block.position() as usize;
                if let (Some(time), Some(flags)) = (body.get(p..p + 2), body.get(p + 2)) {
                    let relative = i16::from_be_bytes([time[0], time[1]]);
                    let at = start
                        .unwrap_or(0)
                        .saturating_add_signed(i64::from(relative));
                    last = last.max(at);
                    first.get_or_insert((track, flags & 0x80 != 0));
                }
            }
            _ => {}
        }
    }
    (start, first, last)
}

// ----- EBML ------------------------------------------------------------------

fn id_bytes(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    bytes[skip..].to_vec()
}

/// The shortest EBML variable-length integer for `value`.
fn vint(value: u64) -> Vec<u8> {
    for length in 1..=8u32 {
        // All ones is reserved (unknown size), hence the `- 1`.
        let max = (1u64 << (7 * length)) - 1;
        if value < max {
            let marked = value | (1u64 << (7 * length));
            return marked.to_be_bytes()[(8 - length as usize)..].to_vec();
        }
    }
    size8(value).to_vec()
}

/// An 8-byte EBML size (patched in place at the end).
fn size8(value: u64) -> [u8; 8] {
    let mut bytes = value.to_be_bytes();
    bytes[0] = 0x01;
    bytes
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(vint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn uint(id: u32, value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(id, &bytes[skip..])
}

fn float(id: u32, value: f64) -> Vec<u8> {
    element(id, &value.to_be_bytes())
}

fn text(id: u32, value: &str) -> Vec<u8> {
    element(id, value.as_bytes())
}

/// A Void element of exactly `total` bytes (at least 2).
/// A string element of exactly [`NAME_SPACE`] bytes: the text (cut at a
/// character boundary) and zeros, which readers take as the string's end.
fn padded_text(id: u32, value: &str) -> Vec<u8> {
    let mut end = value.len().min(NAME_SPACE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = value.as_bytes()[..end].to_vec();
    bytes.resize(NAME_SPACE, 0);
    element(id, &bytes)
}

fn void(total: usize) -> Vec<u8> {
    // One byte of ID; a 1-byte size up to 126, else an 8-byte size.
    let (size, header) = if total - 2 < 127 {
        (vint((total - 2) as u64), 2)
    } else {
        (size8((total - 9) as u64).to_vec(), 9)
    };
    let mut out = id_bytes(VOID);
    out.extend(size);
    out.resize(total.max(header), 0);
    out
}

/// Reads a variable-length integer; `(value, length)`. With `strip` the
/// length marker is removed (sizes, numbers); without it the raw bytes are
/// kept (IDs). An all-ones size reads as `None` (unknown).
fn read_vint<R: Read>(input: &mut R, strip: bool) -> io::Result<(Option<u64>, u64)> {
    let mut first = [0u8; 1];
    input.read_exact(&mut first)?;
    let length = first[0].leading_zeros() + 1;
    if length > 8 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad vint"));
    }
    let mut value = u64::from(first[0]);
    let mut rest = vec![0u8; length as usize - 1];
    input.read_exact(&mut rest)?;
    for b in &rest {
        value = (value << 8) | u64::from(*b);
    }
    if !strip {
        return Ok((Some(value), u64::from(length)));
    }
    let marker = 1u64 << (7 * length);
    let stripped = value & (marker - 1);
    let unknown = stripped == marker - 1;
    Ok(((!unknown).then_some(stripped), u64::from(length)))
}

/// Reads an element's ID and size; `(id, size, header length)`.
fn read_element_header<R: Read>(input: &mut R) -> io::Result<(u32, Option<u64>, u64)> {
    let (id, id_length) = read_vint(input, false)?;
    if id_length > 4 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad id"));
    }
    let (size, size_length) = read_vint(input, true)?;
    let id = u32::try_from(id.unwrap_or_default())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad id"))?;
    Ok((id, size, id_length + size_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracks() -> Vec<Track> {
        vec![
            Track::vp8(1, "Gallery", 1280, 720),
            Track::opus(2, "Mix", 1),
        ]
    }

    /// Writes `seconds` of frames: video at 25/s (a keyframe each second),
    /// audio every 20 ms.
    fn record(writer: &mut Writer<io::Cursor<Vec<u8>>>, seconds: u64) {
        let mut events: Vec<(u64, u64, bool)> = Vec::new();
        for ms in (0..seconds * 1000).step_by(40) {
            events.push((ms, 1, ms % 1000 == 0));
        }
        for ms in (0..seconds * 1000).step_by(20) {
            events.push((ms, 2, true));
        }
        events.sort();
        for (ms, track, key) in events {
            writer
                .write_frame(track, ms, key, &[track as u8; 40])
                .expect("frame");
        }
    }

    #[test]
    fn vints_round_trip_and_reserve_all_ones() {
        for value in [0u64, 1, 126, 127, 16_382, 16_383, 1 << 40] {
            let bytes = vint(value);
            let (read, length) = read_vint(&mut io::Cursor::new(&bytes), true).expect("read");
            assert_eq!(read, Some(value));
            assert_eq!(length as usize, bytes.len());
        }
        assert_eq!(vint(127), vec![0x40, 0x7F], "127 needs two bytes");
        let (unknown, _) = read_vint(&mut io::Cursor::new(UNKNOWN_SIZE), true).expect("read");
        assert_eq!(unknown, None);
    }

    #[test]
    fn a_finished_recording_has_cues_a_duration_and_a_known_size() {
        let mut writer =
            Writer::create(io::Cursor::new(Vec::new()), tracks(), "Weekly", 1000).expect("create");
        record(&mut writer, 5);
        let bytes = writer.finish().expect("finish").into_inner();
        let mut cursor = io::Cursor::new(bytes.clone());
        let report = repair(&mut cursor, |c, len| {
            c.get_mut().truncate(len as usize);
            Ok(())
        })
        .expect("a finished file reads back");
        assert_eq!(
            report.clusters, 5,
            "a cluster per second, each at a keyframe"
        );
        assert_eq!(report.duration_ms, 4980);
        // Reading it back and finalising again changes nothing.
        assert_eq!(cursor.into_inner(), bytes);
    }

    #[test]
    fn a_file_cut_anywhere_is_repaired_to_its_whole_clusters() {
        let mut writer =
            Writer::create(io::Cursor::new(Vec::new()), tracks(), "", 1000).expect("create");
        record(&mut writer, 4);
        writer.flush().expect("flush");
        // Everything was written and synced before the "crash"; no finish.
        let written = writer.out.get_ref().clone();
        for cut in [
            written.len(),
            written.len() - 1,
            written.len() - 500,
            written.len() / 2,
        ] {
            let mut cursor = io::Cursor::new(written[..cut].to_vec());
            let report = repair(&mut cursor, |c, len| {
                c.get_mut().truncate(len as usize);
                Ok(())
            })
            .expect("repair");
            if cut == written.len() {
                assert_eq!((report.clusters, report.dropped_bytes), (4, 0));
                assert_eq!(report.duration_ms, 3980);
            } else {
                assert!(
                    report.clusters < 4 && report.dropped_bytes > 0,
                    "{cut}: {report:?}"
                );
            }
        }
    }

    #[test]
    fn a_file_not_written_here_is_refused_and_left_alone() {
        // An EBML header and a Segment with a 1-byte size, as other muxers write.
        let mut foreign = element(EBML, &text(0x4282, "webm"));
        foreign.extend(element(SEGMENT, &uint(0x2A_D7B1, 1_000_000)));
        for bytes in [foreign, b"not a recording at all".to_vec(), Vec::new()] {
            let mut cursor = io::Cursor::new(bytes.clone());
            let result = repair(&mut cursor, |c, len| {
                c.get_mut().truncate(len as usize);
                Ok(())
            });
            assert!(result.is_err(), "{bytes:?}");
            assert_eq!(cursor.into_inner(), bytes, "unchanged");
        }
    }

    #[test]
    fn a_track_is_renamed_in_place() {
        let tracks = vec![
            Track::vp8(1, "Gallery", 1280, 720),
            Track::opus(2, "(nobody)", 1).not_default(),
        ];
        let mut writer =
            Writer::create(io::Cursor::new(Vec::new()), tracks, "", 1000).expect("create");
        record(&mut writer, 1);
        writer.rename_track(2, "Ada Lovelace").expect("rename");
        let long = "Ωμέγα ".repeat(20);
        writer.rename_track(1, &long).expect("a long name is cut");
        assert!(matches!(
            writer.rename_track(9, "x"),
            Err(MkvError::UnknownTrack(9))
        ));
        record(&mut writer, 1);
        let bytes = writer.finish().expect("finish").into_inner();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"Ada Lovelace\0"), "the new name, zero-padded");
        assert!(
            !has(b"(nobody)") && !has(b"Gallery"),
            "the old names are gone"
        );
        // 64 bytes would split a character: cut before it, at 63.
        assert!(has(&[&long.as_bytes()[..63], &[0u8][..]].concat()));
        let mut cursor = io::Cursor::new(bytes);
        repair(&mut cursor, |_, _| Ok(())).expect("the file still reads back");
    }

    /// Storage that holds `capacity` bytes and then fails like a full disk.
    struct SmallDisk {
        data: io::Cursor<Vec<u8>>,
        capacity: usize,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.capacity.saturating_sub(self.data.position() as usize);
            if room == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::StorageFull.into());
            }
            self.data.write(&buf[..buf.len().min(room)])
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SmallDisk {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.data.seek(to)
        }
    }

    impl Durable for SmallDisk {
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.data.get_mut().truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_keeps_every_whole_cluster_written_before_it() {
        // Room for the headers and about two and a half seconds.
        let mut probe =
            Writer::create(io::Cursor::new(Vec::new()), tracks(), "", 1000).expect("create");
        let headers = probe.out.get_ref().len();
        record(&mut probe, 1);
        probe.flush().expect("flush");
        let second = probe.out.get_ref().len() - headers;
        let disk = SmallDisk {
            data: io::Cursor::new(Vec::new()),
            capacity: headers + second * 5 / 2,
        };
        let mut writer = Writer::create(disk, tracks(), "", 1000).expect("create");
        let mut failed = None;
        'frames: for ms in (0..5000).step_by(20) {
            for (track, key) in [(1, ms % 1000 == 0), (2, true)] {
                if track == 1 && ms % 40 != 0 {
                    continue;
                }
                if let Err(e) = writer.write_frame(track, ms, key, &[track as u8; 40]) {
                    failed = Some((ms, e));
                    break 'frames;
                }
            }
        }
        let (at_ms, error) = failed.expect("the disk fills up");
        assert!(matches!(error, MkvError::Io(_)), "{error}");
        assert!((2000..3100).contains(&at_ms), "failed at {at_ms} ms");
        // Nothing torn was left at the end.
        let kept = writer.out.data.get_ref().clone();
        let report = repair(&mut io::Cursor::new(kept.clone()), |_, _| Ok(())).expect("reads");
        assert_eq!((report.clusters, report.dropped_bytes), (2, 0));
        // Finishing with not a byte to spare: no index, but finalised.
        writer.out.capacity = kept.len();
        let disk = writer.finish().expect("finalised without cues");
        let finished = disk.data.into_inner();
        assert_eq!(finished.len(), kept.len(), "nothing appended");
        let report = repair(&mut io::Cursor::new(finished), |_, _| Ok(())).expect("reads back");
        assert_eq!(report.clusters, 2);
        assert_eq!(report.duration_ms, 1980);
    }

    /// Every block of a finished in-memory recording, cluster by cluster:
    /// (cluster start, track, absolute time).
    fn blocks(writer_layout: Layout, bytes: &[u8]) -> Vec<(u64, u64, u64)> {
        let body = &bytes[writer_layout.segment_data_at as usize..];
        let mut out = Vec::new();
        for (id, _, cluster) in children(body) {
            if id != CLUSTER {
                continue;
            }
            let mut start = 0;
            for (child, _, payload) in children(cluster) {
                match child {
                    TIMESTAMP => start = as_uint(payload),
                    SIMPLE_BLOCK => {
                        let mut block = io::Cursor::new(payload);
                        let (track, _) = read_vint(&mut block, true).expect("track");
                        let p = block.position() as usize;
                        let relative = i16::from_be_bytes([payload[p], payload[p + 1]]);
                        let at = start.checked_add_signed(i64::from(relative)).expect("time");
                        out.push((start, track.expect("track"), at));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    proptest::proptest! {
        /// Whatever order frames come in, each track's times strictly
        /// increase in the file; clusters never start before the one
        /// before; every frame that followed its track's last is there.
        #[test]
        fn each_tracks_times_strictly_increase_whatever_comes_in(
            frames in proptest::collection::vec((1u64..=2, 0u64..6000, proptest::bool::ANY), 0..300)
        ) {
            let mut writer =
                Writer::create(io::Cursor::new(Vec::new()), tracks(), "", 500).expect("create");
            let layout = writer.layout;
            let mut last: [Option<u64>; 3] = [None; 3];
            let mut accepted = Vec::new();
            for (track, ms, key) in frames {
                let written = writer.write_frame(track, ms, key, &[track as u8; 7]).expect("frame");
                let follows = last[track as usize].is_none_or(|l| ms > l);
                proptest::prop_assert_eq!(written, follows);
                if written {
                    last[track as usize] = Some(ms);
                    accepted.push((track, ms));
                }
            }
            let bytes = writer.finish().expect("finish").into_inner();
            let read = blocks(layout, &bytes);
            let mut cluster_start = 0;
            for (start, _, _) in &read {
                proptest::prop_assert!(*start >= cluster_start);
                cluster_start = *start;
            }
            for track in [1, 2] {
                let wanted: Vec<u64> =
                    accepted.iter().filter(|(t, _)| *t == track).map(|(_, ms)| *ms).collect();
                let got: Vec<u64> =
                    read.iter().filter(|(_, t, _)| *t == track).map(|(_, _, ms)| *ms).collect();
                proptest::prop_assert_eq!(got, wanted);
            }
        }
    }

    #[test]
    fn clusters_are_written_when_a_second_is_full() {
        let mut writer =
            Writer::create(io::Cursor::new(Vec::new()), tracks(), "", 1000).expect("create");
        let headers = writer.out.get_ref().len();
        for ms in (0..990).step_by(20) {
            writer.write_frame(2, ms, true, &[0; 10]).expect("frame");
        }
        assert_eq!(
            writer.out.get_ref().len(),
            headers,
            "the first second is in memory"
        );
        writer.write_frame(2, 1000, true, &[0; 10]).expect("frame");
        assert!(
            writer.out.get_ref().len() > headers,
            "written once a second is full"
        );
        assert!(matches!(
            writer.write_frame(9, 1000, true, &[]),
            Err(MkvError::UnknownTrack(9))
        ));
    }
}
