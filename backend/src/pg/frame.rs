//! The bound on a client's messages. pgwire buffers a whole message before
//! it hands it on, and takes messages of up to 1 GiB once a client has
//! signed in; so every connection reaches pgwire through a bridge (a Unix
//! socket pair) that reads the client's frames as they come and cuts the
//! connection at the first header announcing more than [`MESSAGE_MAX`]
//! bytes — with a FATAL error the client can show — before the message
//! is read. The bridge also answers the TLS and GSS encryption requests a
//! client may open with ("N": plain text, as pgwire would without TLS).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// The longest message a client may send, bytes (a statement is at most
/// 16 KiB; the rest is room for a driver's framing).
pub const MESSAGE_MAX: usize = 256 << 10;
/// How long a client may take to send its startup message.
const STARTUP_WITHIN: Duration = Duration::from_secs(10);
/// How long the server's last words may take once the client is done.
const GRACE: Duration = Duration::from_secs(2);
/// The startup codes of the TLS and GSS encryption requests.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// Why a client's stream was cut.
#[derive(Debug, thiserror::Error)]
pub enum Cut {
    #[error("a message of {0} bytes (at most {MESSAGE_MAX})")]
    TooLong(usize),
    #[error("a message declaring a length of {0}")]
    Malformed(usize),
    #[error("no startup message within {} s", STARTUP_WITHIN.as_secs())]
    Slow,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where the client's byte stream stands.
#[derive(Debug, Default)]
struct Frames {
    /// Past the startup message: every message has a type byte.
    typed: bool,
    /// The current message's header so far.
    header: Vec<u8>,
    /// Bytes of the current message's body still to pass.
    left: usize,
}

impl Frames {
    /// Reads `data`: the bytes to pass to the server go to `out`, the
    /// answers the bridge gives itself to `replies`. Fails at the first
    /// header past the bound.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>, replies: &mut Vec<u8>) -> Result<(), Cut> {
        let mut i = 0;
        while i < data.len() {
            if self.left > 0 {
                let n = self.left.min(data.len() - i);
                out.extend_from_slice(&data[i..i + n]);
                self.left -= n;
                i += n;
                continue;
            }
            let need = if self.typed { 5 } else { 8 };
            let n = (need - self.header.len()).min(data.len() - i);
            self.header.extend_from_slice(&data[i..i + n]);
            i += n;
            if self.header.len() < need {
                break;
            }
            let word = |at: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&self.header[at..at + 4]);
                u32::from_be_bytes(b) as usize
            };
            // The length counts itself, not the type byte.
            let (len, head) = if self.typed {
                (word(1), 4)
            } else {
                (word(0), 8)
            };
            if len < head {
                return Err(Cut::Malformed(len));
            }
            if len > MESSAGE_MAX {
                return Err(Cut::TooLong(len));
            }
            if !self.typed {
                let code = word(4) as u32;
                if len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST) {
                    replies.push(b'N');
                    self.header.clear();
                    continue;
                }
                self.typed = true;
            }
            out.extend_from_slice(&self.header);
            self.header.clear();
            self.left = len - head;
        }
        Ok(())
    }
}

/// A FATAL ErrorResponse saying `message` (SQLSTATE 54000).
fn fatal(message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "54000"),
        (b'M', message),
    ] {
        body.push(k);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Passes the client's bytes to `server` frame by frame until the client
/// is done or past the bound; the server sees the end either way.
async fn upstream(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut server: tokio::net::unix::OwnedWriteHalf,
    replies: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), Cut> {
    let mut frames = Frames::default();
    let mut buf = vec![0u8; 16 << 10];
    let mut out = Vec::with_capacity(buf.len());
    loop {
        let n = if frames.typed {
            from.read(&mut buf).await?
        } else {
            tokio::time::timeout(STARTUP_WITHIN, from.read(&mut buf))
                .await
                .map_err(|_| Cut::Slow)??
        };
        if n == 0 {
            return Ok(());
        }
        out.clear();
        let mut reply = Vec::new();
        frames.feed(&buf[..n], &mut out, &mut reply)?;
        if !reply.is_empty() && replies.send(reply).await.is_err() {
            return Ok(());
        }
        server.write_all(&out).await?;
    }
}

/// Carries one client's connection to pgwire's end of a socket pair,
/// until either side is done. A client cut for its message size gets a
/// FATAL error saying why.
pub async fn bridge(client: TcpStream, server: UnixStream) -> Result<(), Cut> {
    let (client_r, mut client_w) = client.into_split();
    let (mut server_r, server_w) = server.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let up = upstream(client_r, server_w, tx);
    tokio::pin!(up);
    // Downstream: the server's bytes, and the bridge's own answers (only
    // before the startup, when the server has said nothing yet).
    let down = async {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            tokio::select! {
                r = server_r.read(&mut buf) => match r? {
                    0 => return Ok::<(), std::io::Error>(()),
                    n => client_w.write_all(&buf[..n]).await?,
                },
                Some(reply) = rx.recv() => client_w.write_all(&reply).await?,
            }
        }
    };
    let cut = tokio::select! {
        r = &mut up => r,
        _ = down => return Ok(()),
    };
    // The client is done or cut: the server saw the end; let it finish.
    let _ = tokio::time::timeout(GRACE, async {
        let mut rest = Vec::new();
        let _ = server_r.read_to_end(&mut rest).await;
        let _ = client_w.write_all(&rest).await;
    })
    .await;
    if let Err(e @ (Cut::TooLong(_) | Cut::Malformed(_))) = &cut {
        let _ = client_w
            .write_all(&fatal(&format!("connection closed: {e}")))
            .await;
    }
    let _ = client_w.shutdown().await;
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn untyped(code: u32, body: &[u8]) -> Vec<u8> {
        let mut m = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A TLS request answered "N" and not passed on; the startup and the
    /// messages after it passed whole, however they are split; a header
    /// past the bound (or shorter than itself) cuts the stream before its
    /// body.
    #[test]
    fn messages_pass_whole_and_oversized_ones_are_cut_at_their_header() {
        let startup = untyped(196_608, b"user\0analyst\0\0");
        let query = typed(b'Q', b"SELECT 1\0");
        let mut stream = untyped(SSL_REQUEST, b"");
        stream.extend_from_slice(&startup);
        stream.extend_from_slice(&query);
        for split in [1, 3, 7, stream.len()] {
            let mut f = Frames::default();
            let (mut out, mut replies) = (Vec::new(), Vec::new());
            for chunk in stream.chunks(split) {
                f.feed(chunk, &mut out, &mut replies)
                    .expect("within the bound");
            }
            assert_eq!(replies, b"N");
            assert_eq!(
                out,
                [startup.clone(), query.clone()].concat(),
                "split {split}"
            );
        }
        let mut f = Frames::default();
        let (mut out, mut replies) = (Vec::new(), Vec::new());
        f.feed(&startup, &mut out, &mut replies).expect("startup");
        let mut big = vec![b'Q'];
        big.extend_from_slice(&((MESSAGE_MAX + 1) as u32).to_be_bytes());
        out.clear();
        assert!(matches!(
            f.feed(&big, &mut out, &mut replies),
            Err(Cut::TooLong(n)) if n == MESSAGE_MAX + 1
        ));
        assert!(out.is_empty(), "nothing of it passed");
        // At the bound exactly: passes.
        let mut f = Frames::default();
        f.feed(&startup, &mut out, &mut replies).expect("startup");
        let mut edge = vec![b'Q'];
        edge.extend_from_slice(&(MESSAGE_MAX as u32).to_be_bytes());
        f.feed(&edge, &mut out, &mut replies).expect("at the bound");
        let mut f = Frames::default();
        assert!(matches!(
            f.feed(&[0, 0, 0, 3, 0, 0, 0, 0], &mut out, &mut replies),
            Err(Cut::Malformed(3))
        ));
        assert!(fatal("x").starts_with(b"E"));
    }
}
