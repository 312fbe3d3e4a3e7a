//! The frames the store builds once and shares among followers.

use axum::extract::ws::Utf8Bytes;
use gridwatch_model::ws::ServerMsg;

/// A server message as a text frame.
pub fn frame(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(msg).expect("server messages always serialize"))
}

/// A heartbeat frame.
pub fn heartbeat_frame(node: &str, seq: u64, as_of: &str) -> Utf8Bytes {
    frame(&ServerMsg::Heartbeat {
        node: node.to_string(),
        seq,
        as_of: as_of.to_string(),
    })
}

/// An error frame.
pub fn error_frame(code: &str, message: &str) -> Utf8Bytes {
    frame(&ServerMsg::Error {
        code: code.to_string(),
        message: message.to_string(),
    })
}
