//! Image management for berthd: validated references, the content-addressed blob store, and
//! layers unpacked safely into overlayfs lower directories. The registry client and the image
//! metadata store build on these (issue #5).
#![forbid(unsafe_code)]

pub mod content;
pub mod digest;
pub mod images;
pub mod layers;
pub mod manifest;
pub mod reference;
pub mod unpack;

pub use content::{ContentError, ContentStore};
pub use digest::Digest;
pub use reference::{Reference, ReferenceError};
