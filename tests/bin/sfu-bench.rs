//! `sfu-bench`: forwarding cost of a meeting server, side by side.
//!
//! For each server given as `NAME=ws://IP:PORT@PID`, creates a room, starts
//! P synthetic publishers (VP8-like ~1 Mbit/s video + Opus-like audio) and
//! S subscribers that receive every publisher's streams, lets it settle,
//! then measures for a window: the server process's CPU time (from
//! /proc/PID/stat), packets sent and received (loss) and one-way delay
//! through the server. Prints a table, then one JSON line.
//!
//! Usage: sfu-bench --publishers P --subscribers S --seconds T NAME=URL@PID...

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use conclave_e2e::synthetic::{Role, SyntheticPeer, Window};
use serde_json::json;

struct Target {
    name: String,
    url: String,
    pid: u32,
}

struct Outcome {
    name: String,
    streams: usize,
    forwarded: u64,
    expected: u64,
    cpu_seconds: f64,
    seconds: f64,
    delay_p50_ms: f64,
    delay_p95_ms: f64,
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
        .ok_or_else(|| anyhow!("no CPU times"))?;
    Ok(ticks / 100.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn create_room(url: &str) -> anyhow::Result<u64> {
    let room = 500_000 + u64::from(rand::random::<u16>());
    let mut sig = conclave_e2e::synthetic::Signaling::connect(url).await?;
    let handle = sig.attach("janus.plugin.videoroom").await?;
    sig.message(
        handle,
        json!({"request": "create", "room": room, "publishers": 16, "bitrate": 0}),
        None,
    )
    .await?;
    Ok(room)
}

async fn measure(
    target: &Target,
    publishers: usize,
    subscribers: usize,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let ip: std::net::IpAddr = target
        .url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| anyhow!("no IP in {}", target.url))?;
    let room = create_room(&target.url).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(Window::default());
    let mut pubs = Vec::new();
    for i in 0..publishers {
        pubs.push(
            SyntheticPeer::start(
                &target.url,
                room,
                None,
                ip,
                Role::Publisher {
                    display: format!("pub{i}"),
                },
                window.clone(),
                stop.clone(),
            )
            .await?,
        );
    }
    // Janus lists a publisher as a feed only once its media is up.
    let up = tokio::time::Instant::now() + Duration::from_secs(15);
    while !pubs
        .iter()
        .all(|p| p.stats.connected.load(Ordering::Relaxed))
    {
        if tokio::time::Instant::now() > up {
            bail!("{}: publishers did not connect", target.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let feeds: Vec<u64> = pubs.iter().map(|p| p.id).collect();
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        subs.push(
            SyntheticPeer::start(
                &target.url,
                room,
                None,
                ip,
                Role::Subscriber {
                    feeds: feeds.clone(),
                },
                window.clone(),
                stop.clone(),
            )
            .await?,
        );
    }
    // Settle: every connection up and media flowing.
    let settle = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let up = pubs
            .iter()
            .chain(&subs)
            .all(|p| p.stats.connected.load(Ordering::Relaxed));
        let flowing = subs.iter().all(|s| {
            s.stats
                .streams_seen
                .lock()
                .map(|seen| seen.len() == publishers * 2)
                .unwrap_or(false)
        });
        if up && flowing {
            break;
        }
        if tokio::time::Instant::now() > settle {
            bail!(
                "{}: peers did not connect or media did not flow",
                target.name
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let length = Duration::from_secs(seconds);
    let cpu_before = cpu_seconds(target.pid)?;
    window.open(length);
    tokio::time::sleep(length).await;
    let cpu_after = cpu_seconds(target.pid)?;
    // Let packets sent at the end of the window arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let sent: u64 = pubs
        .iter()
        .map(|p| p.stats.sent_in_window.load(Ordering::Relaxed))
        .sum();
    let received: u64 = subs
        .iter()
        .map(|s| s.stats.received_in_window.load(Ordering::Relaxed))
        .sum();
    let mut delays: Vec<u32> = subs
        .iter()
        .flat_map(|s| {
            s.stats
                .delays_us
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default()
        })
        .collect();
    delays.sort_unstable();
    for p in pubs.into_iter().chain(subs) {
        let _ = p.join().await;
    }
    Ok(Outcome {
        name: target.name.clone(),
        streams: publishers * 2 * subscribers,
        forwarded: received,
        expected: sent * subscribers as u64,
        cpu_seconds: cpu_after - cpu_before,
        seconds: length.as_secs_f64(),
        delay_p50_ms: percentile(&delays, 0.5),
        delay_p95_ms: percentile(&delays, 0.95),
    })
}

fn main() -> anyhow::Result<()> {
    let mut publishers = 3;
    let mut subscribers = 3;
    let mut seconds = 10;
    let mut targets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| -> anyhow::Result<usize> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("{what} needs a number"))
        };
        match a.as_str() {
            "--publishers" => publishers = value("--publishers")?,
            "--subscribers" => subscribers = value("--subscribers")?,
            "--seconds" => seconds = value("--seconds")? as u64,
            spec => {
                let (name, rest) = spec
                    .split_once('=')
                    .ok_or_else(|| anyhow!("expected NAME=URL@PID, got {spec}"))?;
                let (url, pid) = rest
                    .rsplit_once('@')
                    .ok_or_else(|| anyhow!("expected NAME=URL@PID, got {spec}"))?;
                targets.push(Target {
                    name: name.into(),
                    url: url.into(),
                    pid: pid.parse().context("PID")?,
                });
            }
        }
    }
    if targets.is_empty() {
        bail!("usage: sfu-bench [--publishers P] [--subscribers S] [--seconds T] NAME=ws://IP:PORT@PID...");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut outcomes = Vec::new();
    for t in &targets {
        eprintln!(
            "measuring {} ({} publishers, {} subscribers, {} s)",
            t.name, publishers, subscribers, seconds
        );
        outcomes.push(runtime.block_on(measure(t, publishers, subscribers, seconds))?);
    }
    println!(
        "{:<10} {:>8} {:>11} {:>11} {:>8} {:>9} {:>15} {:>15} {:>9} {:>9}",
        "server",
        "streams",
        "forwarded",
        "expected",
        "loss %",
        "CPU s",
        "CPU s/stream·s",
        "CPU µs/packet",
        "p50 ms",
        "p95 ms"
    );
    let mut json = serde_json::Map::new();
    for o in &outcomes {
        let loss = if o.expected == 0 {
            100.0
        } else {
            100.0 * (1.0 - o.forwarded as f64 / o.expected as f64).max(0.0)
        };
        let per_stream = o.cpu_seconds / o.streams as f64 / o.seconds;
        let per_packet_us = o.cpu_seconds * 1e6 / o.forwarded.max(1) as f64;
        println!(
            "{:<10} {:>8} {:>11} {:>11} {:>8.3} {:>9.2} {:>15.5} {:>15.2} {:>9.2} {:>9.2}",
            o.name,
            o.streams,
            o.forwarded,
            o.expected,
            loss,
            o.cpu_seconds,
            per_stream,
            per_packet_us,
            o.delay_p50_ms,
            o.delay_p95_ms
        );
        json.insert(format!("{}_cpu_per_stream", o.name), json!(per_stream));
        json.insert(
            format!("{}_cpu_per_packet_us", o.name),
            json!(per_packet_us),
        );
        json.insert(format!("{}_loss_pct", o.name), json!(loss));
        json.insert(format!("{}_delay_p50_ms", o.name), json!(o.delay_p50_ms));
    }
    let get = |json: &serde_json::Map<String, serde_json::Value>, k: &str| {
        json.get(k).and_then(|v| v.as_f64())
    };
    if let (Some(c), Some(j)) = (
        get(&json, "conclave_cpu_per_stream"),
        get(&json, "janus_cpu_per_stream"),
    ) {
        json.insert("ratio".into(), json!(c / j));
    }
    if let Some(d) = get(&json, "conclave_delay_p50_ms") {
        json.insert("added_delay_p50_ms".into(), json!(d));
    }
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
