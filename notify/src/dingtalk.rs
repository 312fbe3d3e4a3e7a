//! A DingTalk custom robot: its webhook signed with the robot's secret,
//! the markdown message, and what its answers mean.
//!
//! Signing (DingTalk's "加签"): `sign = urlencode(base64(HMAC-SHA256(key =
//! secret, message = "<timestamp>\n<secret>")))`, with the timestamp in
//! Unix milliseconds, both appended to the webhook as `&timestamp=…&sign=…`.
//! DingTalk refuses a timestamp more than an hour off.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// At most this many messages a minute per robot (DingTalk's limit).
pub const PER_MINUTE: usize = 20;
/// Largest body DingTalk takes, bytes.
pub const BODY_MAX: usize = 20_000;

/// The signature of `timestamp_ms` with `secret`, base64 (not yet
/// URL-encoded).
pub fn sign(timestamp_ms: i64, secret: &str) -> String {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Percent-encodes a base64 signature for a query string (`+`, `/`, `=`).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The webhook to post to at `timestamp_ms`, signed.
pub fn signed_url(webhook: &str, secret: &str, timestamp_ms: i64) -> String {
    let sep = if webhook.contains('?') { '&' } else { '?' };
    format!(
        "{webhook}{sep}timestamp={timestamp_ms}&sign={}",
        urlencode(&sign(timestamp_ms, secret))
    )
}

/// Who a message mentions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct At {
    #[serde(rename = "atMobiles")]
    pub mobiles: Vec<String>,
    #[serde(rename = "isAtAll")]
    pub all: bool,
}

/// A markdown message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Markdown {
    pub title: String,
    pub text: String,
}

/// The body of a markdown message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarkdownMessage {
    pub msgtype: &'static str,
    pub markdown: Markdown,
    pub at: At,
}

impl MarkdownMessage {
    pub fn new(title: &str, text: &str, at: At) -> Self {
        Self {
            msgtype: "markdown",
            markdown: Markdown {
                title: title.to_string(),
                text: text.to_string(),
            },
            at,
        }
    }
}

/// What the robot's answer `{"errcode", "errmsg"}` means for the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Sent,
    /// Over 20 a minute: wait and send again.
    TooFast,
    /// The signature or the timestamp was refused: sign afresh and retry
    /// (a clock far off keeps failing, and says so).
    BadSign,
    /// The body cannot be sent as it is (too large, malformed): split or
    /// drop it, never retry it unchanged.
    Refused(i64, String),
    /// Anything else: back off and retry.
    Retry(i64, String),
}

/// Reads an answer body.
pub fn outcome(body: &[u8]) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Reply {
        errcode: i64,
        #[serde(default)]
        errmsg: String,
    }
    match serde_json::from_slice::<Reply>(body) {
        Ok(Reply { errcode: 0, .. }) => Outcome::Sent,
        Ok(Reply {
            errcode: 130101, ..
        }) => Outcome::TooFast,
        Ok(Reply {
            errcode: 310000, ..
        }) => Outcome::BadSign,
        Ok(Reply {
            errcode: code @ (460101 | 40035 | 300001),
            errmsg,
        }) => Outcome::Refused(code, errmsg),
        Ok(Reply { errcode, errmsg }) => Outcome::Retry(errcode, errmsg),
        Err(e) => Outcome::Retry(-1, format!("not a DingTalk answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `../shared/data/dingtalk/sign-test-vector.txt`.
    #[test]
    fn the_signature_matches_the_test_vector() {
        let s = sign(1_666_670_400_000, "SECtest0123456789abcdef");
        assert_eq!(s, "HYgY54sqpNRW+p/mqFEKkxT3mGPIfBf5LDfiQbArU8A=");
        assert_eq!(
            urlencode(&s),
            "HYgY54sqpNRW%2Bp%2FmqFEKkxT3mGPIfBf5LDfiQbArU8A%3D"
        );
        assert_eq!(
            signed_url(
                "https://oapi.dingtalk.com/robot/send?access_token=abc",
                "SECtest0123456789abcdef",
                1_666_670_400_000
            ),
            "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1666670400000&sign=HYgY54sqpNRW%2Bp%2FmqFEKkxT3mGPIfBf5LDfiQbArU8A%3D"
        );
    }

    /// The answers of `../shared/data/dingtalk/message-examples.json`.
    #[test]
    fn answers_mean_what_dingtalk_says() {
        assert_eq!(outcome(br#"{"errcode": 0, "errmsg": "ok"}"#), Outcome::Sent);
        assert_eq!(
            outcome(
                br#"{"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}"#
            ),
            Outcome::TooFast
        );
        assert_eq!(
            outcome(br#"{"errcode": 310000, "errmsg": "sign not match"}"#),
            Outcome::BadSign
        );
        assert!(matches!(
            outcome(r#"{"errcode": 460101, "errmsg": "body 大小不合法"}"#.as_bytes()),
            Outcome::Refused(460101, _)
        ));
        assert!(matches!(outcome(b"<html>"), Outcome::Retry(-1, _)));
    }

    #[test]
    fn a_markdown_message_has_dingtalks_shape() {
        let m = MarkdownMessage::new(
            "事件处置提醒",
            "### 事件处置提醒",
            At {
                mobiles: vec!["138xxxxxxxx".into()],
                all: false,
            },
        );
        let v = serde_json::to_value(&m).expect("a message serializes");
        assert_eq!(
            v,
            serde_json::json!({"msgtype": "markdown",
                "markdown": {"title": "事件处置提醒", "text": "### 事件处置提醒"},
                "at": {"atMobiles": ["138xxxxxxxx"], "isAtAll": false}})
        );
    }
}
