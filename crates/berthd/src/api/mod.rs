//! The Engine API: the listener and routing (`server`), Docker's error, JSON and stream shapes
//! (`http`, `attach`), and one module per route family. It reaches the engine through its
//! `Daemon` handle; nothing below imports it.

pub mod archive;
pub mod attach;
pub mod build;
pub mod changes;
pub mod containers;
pub mod events;
pub mod exec;
pub mod http;
pub mod images;
pub mod networks;
pub mod server;
pub mod stats;
pub mod system;
pub mod volumes;
