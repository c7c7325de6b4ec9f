//! Image management for berthd: validated references, the content-addressed blob store, and
//! layers unpacked safely into overlayfs lower directories, image records, the registry
//! client, and the service that pulls and removes images across them.
#![forbid(unsafe_code)]

pub mod archive;
pub mod content;
pub mod content_index;
pub mod digest;
pub mod distribution;
pub mod images;
pub mod layer_tar;
pub mod layers;
pub mod manifest;
pub mod push;
pub mod reference;
pub mod registry;
pub mod service;
pub mod unpack;

pub use content::{ContentError, ContentStore};
pub use digest::Digest;
pub use reference::{Reference, ReferenceError};
