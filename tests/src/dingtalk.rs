//! A local fake of DingTalk's custom-robot webhook
//! (`POST /robot/send?access_token=&timestamp=&sign=`), strict where the
//! real one is: it checks each signature itself (HMAC-SHA256 of
//! "timestamp\nsecret" with the robot's secret, base64; written here apart
//! from notify's code), the timestamp within an hour, the body under
//! 20,000 bytes, and at most 20 requests in any rolling minute per robot
//! (the 21st gets 130101, and is counted as a violation). A test can queue
//! error codes a robot answers before it takes messages again.

use anyhow::Result;
use axum::Json;
use axum::extract::{Query, State};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the fake took.
#[derive(Clone, Debug)]
pub struct Received {
    pub token: String,
    pub at: Instant,
    /// The errcode it answered (0: delivered).
    pub answer: i64,
    pub title: String,
    pub text: String,
    pub at_mobiles: Vec<String>,
}

#[derive(Default)]
struct Inner {
    secrets: HashMap<String, String>,
    received: Vec<Received>,
    /// Errcodes to answer next, per token.
    fail: HashMap<String, VecDeque<i64>>,
    /// Requests over 20 a minute, bad signatures, stale timestamps.
    violations: Vec<String>,
}

/// The fake server.
#[derive(Clone)]
pub struct FakeDingTalk {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
}

#[derive(serde::Deserialize)]
struct Params {
    access_token: String,
    timestamp: i64,
    sign: String,
}

fn expected_sign(ts: i64, secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{ts}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn send(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(p): Query<Params>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
    let answer = |code: i64, msg: &str| Json(json!({"errcode": code, "errmsg": msg}));
    let Some(secret) = s.secrets.get(&p.access_token).cloned() else {
        return answer(300005, "token is not exist");
    };
    let now = Instant::now();
    let in_minute = s
        .received
        .iter()
        .filter(|r| r.token == p.access_token && now.duration_since(r.at) < Duration::from_secs(60))
        .count();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut rec = Received {
        token: p.access_token.clone(),
        at: now,
        answer: 0,
        title: v["markdown"]["title"].as_str().unwrap_or_default().into(),
        text: v["markdown"]["text"].as_str().unwrap_or_default().into(),
        at_mobiles: v["at"]["atMobiles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let wall_ms = chrono::Utc::now().timestamp_millis();
    let (code, msg) = if in_minute >= 20 {
        s.violations.push(format!(
            "{}: request {} in a minute",
            p.access_token,
            in_minute + 1
        ));
        (130101, "send too fast, exceed 20 times per minute")
    } else if (wall_ms - p.timestamp).abs() > 3_600_000 {
        s.violations
            .push(format!("{}: stale timestamp", p.access_token));
        (310000, "invalid timestamp")
    } else if p.sign != expected_sign(p.timestamp, &secret) {
        s.violations
            .push(format!("{}: bad sign {}", p.access_token, p.sign));
        (310000, "sign not match")
    } else if body.len() > 20_000 {
        (460101, "body 大小不合法")
    } else if v["msgtype"] != "markdown" {
        (40035, "缺少参数 msgtype")
    } else if let Some(c) = s
        .fail
        .get_mut(&p.access_token)
        .and_then(VecDeque::pop_front)
    {
        (c, "injected")
    } else {
        (0, "ok")
    };
    rec.answer = code;
    s.received.push(rec);
    answer(code, msg)
}

impl FakeDingTalk {
    /// Starts the fake on a free port; `robots` are (access token, secret).
    pub async fn start(robots: &[(&str, &str)]) -> Result<FakeDingTalk> {
        let inner = Arc::new(Mutex::new(Inner {
            secrets: robots
                .iter()
                .map(|(t, s)| (t.to_string(), s.to_string()))
                .collect(),
            ..Default::default()
        }));
        let app = axum::Router::new()
            .route("/robot/send", axum::routing::post(send))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeDingTalk { port, inner })
    }

    /// The webhook of robot `token`.
    pub fn webhook(&self, token: &str) -> String {
        format!(
            "http://127.0.0.1:{}/robot/send?access_token={token}",
            self.port
        )
    }

    /// Makes `token` answer `codes` to its next requests.
    pub fn fail_next(&self, token: &str, codes: &[i64]) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.fail
            .entry(token.to_string())
            .or_default()
            .extend(codes.iter().copied());
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.received.clone()
    }

    /// The messages `token` delivered (answered 0).
    pub fn delivered(&self, token: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.token == token && r.answer == 0)
            .collect()
    }

    /// Everything the fake found wrong.
    pub fn violations(&self) -> Vec<String> {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.violations.clone()
    }

    /// The most requests `token` made in any rolling minute.
    pub fn busiest_minute(&self, token: &str) -> usize {
        let times: Vec<Instant> = self
            .received()
            .into_iter()
            .filter(|r| r.token == token)
            .map(|r| r.at)
            .collect();
        times
            .iter()
            .map(|t| {
                times
                    .iter()
                    .filter(|u| **u >= *t && u.duration_since(*t) < Duration::from_secs(60))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fake_signs_like_the_test_vector() {
        assert_eq!(
            super::expected_sign(1_666_670_400_000, "SECtest0123456789abcdef"),
            "HYgY54sqpNRW+p/mqFEKkxT3mGPIfBf5LDfiQbArU8A="
        );
    }
}
