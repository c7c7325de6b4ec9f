//! The engine's model: the types every layer above shares (errors, container records, health,
//! network attachments, published ports, ids and names). It imports nothing from the rest of
//! berthd.

pub mod error;
pub mod health;
pub mod ids;
pub mod net;
pub mod record;

pub use error::Error;
