//! `conclave-server`: a meeting server that speaks the subset of the Janus
//! WebRTC Server API that Conclave uses (sessions, handles, VideoRoom and
//! TextRoom), so that the app can host a meeting itself and anyone can run one
//! without Janus.
//!
//! The server is a sans-IO state machine, [`Server`]: WebSocket texts, UDP
//! datagrams and the clock go in through [`Server::handle_input`]; texts to
//! send, datagrams to transmit and the next deadline come out of
//! [`Server::poll_output`] and [`Server::poll_timeout`]. [`runtime`] drives it
//! with tokio: one WebSocket listener, one UDP socket. On the WebSocket port,
//! plain HTTP gets the meeting pages of [`web`] (`/j/<id>`).
//!
//! The VideoRoom forwards media as an SFU ([`sfu`]): publishers' RTP goes to
//! subscribers packet by packet, never decoded.
//!
//! Must not: store media, chat or invitations; log chat text, PINs or secrets;
//! depend on the app or a UI.

mod clock;
pub mod config;
mod core;
mod limiter;
mod peer;
mod rewrite;
pub mod runtime;
mod sfu;
mod textroom;
pub mod tls;
mod videoroom;
pub mod web;

#[cfg(test)]
mod sfu_tests;
#[cfg(test)]
mod tests;

pub use crate::core::{ConnId, IceAddresses, Input, Output, Protocol, Server};
pub use config::{Config, Limits};
