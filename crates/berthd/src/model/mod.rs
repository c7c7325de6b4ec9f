//! The engine's model: the types every layer above shares (errors, container records, health,
//! network attachments, published ports, ids and names). It imports nothing from the rest of
//! berthd.

pub mod error;
pub mod health;
pub mod ids;
pub mod net;
pub mod record;

pub use error::Error;

/// The strings of a JSON array (Docker's `Cmd`, `Env`, `Aliases`…); other values and
/// non-strings give none.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}
