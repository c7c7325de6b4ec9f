//! Engine API response bodies whose pinned `bollard-stubs` model differs from what dockerd
//! sends; clients written against dockerd read these exact shapes:
//! - [`IdResponse`]: the bollard model renames its field to `ID` (`rename_all = "UPPERCASE"`),
//!   where dockerd's `POST /containers/{id}/exec` answers `{"Id": ...}`;
//! - [`ContainerWaitResponse`]: the bollard model leaves `Error` out when there is none, where
//!   dockerd 20.10 sends `"Error": null`.

use serde::{Deserialize, Serialize};

/// `{"Id": ...}`: the answer of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    #[serde(rename = "Id")]
    pub id: String,
}

/// The body of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerWaitResponse {
    #[serde(rename = "StatusCode")]
    pub status_code: i64,
    /// Why waiting failed; `null` when it did not.
    #[serde(rename = "Error")]
    pub error: Option<WaitError>,
}

/// A failed wait's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitError {
    #[serde(rename = "Message")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_are_dockerds() {
        let id = serde_json::to_string(&IdResponse { id: "ab".into() }).unwrap();
        assert_eq!(id, r#"{"Id":"ab"}"#);
        let wait = ContainerWaitResponse {
            status_code: 3,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&wait).unwrap(),
            r#"{"StatusCode":3,"Error":null}"#
        );
    }
}
