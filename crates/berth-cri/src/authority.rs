//! Clients that send a unix socket's path as HTTP/2's `:authority` (grpc-go before 1.52,
//! among them the client critest v1.26.1 and older kubelets use) are refused by the HTTP/2
//! server tonic runs on (hyper's `h2` accepts only an RFC authority, and a path has `/`). Each
//! connection therefore passes through a small relay: frames from the client go on as they
//! came, but for header blocks, which are decoded (HPACK), given `:authority: localhost`, and
//! encoded again for the server; frames to the client are copied as they are.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

/// HTTP/2's connection preface, which the client sends first.
const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload a server accepts by default (SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16_384;
/// The largest header block accepted from a client.
const MAX_BLOCK: usize = 1 << 20;

/// The server's end of a relayed connection.
pub struct Relayed(pub DuplexStream);

impl tonic::transport::server::Connected for Relayed {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Relayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Relayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Relays `client` to the server end it returns, until either side closes.
pub fn relay(client: tokio::net::UnixStream) -> Relayed {
    let (ours, theirs) = tokio::io::duplex(256 << 10);
    let (client_r, mut client_w) = client.into_split();
    let (mut server_r, server_w) = tokio::io::split(ours);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    });
    tokio::spawn(async move {
        let _ = to_server(client_r, server_w).await;
    });
    Relayed(theirs)
}

/// One header block's frame, written whole (split into CONTINUATION frames if it must be).
async fn write_headers<W: AsyncWrite + Unpin>(
    w: &mut W,
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: &[u8],
) -> std::io::Result<()> {
    let mut first = priority.map(|p| p.to_vec()).unwrap_or_default();
    let room = MAX_FRAME - first.len();
    let (head, mut rest) = block.split_at(block.len().min(room));
    first.extend_from_slice(head);
    let mut flags = if end_stream { END_STREAM } else { 0 };
    flags |= if priority.is_some() { PRIORITY } else { 0 };
    flags |= if rest.is_empty() { END_HEADERS } else { 0 };
    write_frame(w, HEADERS, flags, stream, &first).await?;
    while !rest.is_empty() {
        let (part, more) = rest.split_at(rest.len().min(MAX_FRAME));
        let flags = if more.is_empty() { END_HEADERS } else { 0 };
        write_frame(w, CONTINUATION, flags, stream, part).await?;
        rest = more;
    }
    Ok(())
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = payload.len() as u32;
    let mut head = [0u8; 9];
    head[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    head[3] = kind;
    head[4] = flags;
    head[5..].copy_from_slice(&stream.to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(payload).await
}

/// A header block with `:authority` made `localhost`.
fn rewrite(
    decoder: &mut hpack::Decoder<'_>,
    encoder: &mut hpack::Encoder<'_>,
    block: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut headers = decoder
        .decode(block)
        .map_err(|_| bad("a header block that does not decode"))?;
    for (name, value) in headers.iter_mut() {
        if name.as_slice() == b":authority" {
            *value = b"localhost".to_vec();
        }
    }
    Ok(encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..]))))
}

/// A header block being gathered: its stream, END_STREAM, priority and fragments.
type Block = (u32, bool, Option<[u8; 5]>, Vec<u8>);

async fn to_server<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut r: R,
    mut w: W,
) -> std::io::Result<()> {
    let mut preface = [0u8; PREFACE_LEN];
    r.read_exact(&mut preface).await?;
    w.write_all(&preface).await?;
    let (mut decoder, mut encoder) = (hpack::Decoder::new(), hpack::Encoder::new());
    let mut open: Option<Block> = None;
    loop {
        let mut head = [0u8; 9];
        r.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        match kind {
            HEADERS => {
                let mut p = &payload[..];
                let pad = if flags & PADDED != 0 {
                    let (n, rest) = p
                        .split_first()
                        .ok_or_else(|| bad("a short HEADERS frame"))?;
                    p = rest;
                    usize::from(*n)
                } else {
                    0
                };
                let priority = if flags & PRIORITY != 0 {
                    let (pr, rest) = p
                        .split_at_checked(5)
                        .ok_or_else(|| bad("a short HEADERS frame"))?;
                    p = rest;
                    Some([pr[0], pr[1], pr[2], pr[3], pr[4]])
                } else {
                    None
                };
                let frag = p.get(..p.len().saturating_sub(pad)).unwrap_or_default();
                open = Some((stream, flags & END_STREAM != 0, priority, frag.to_vec()));
            }
            CONTINUATION => match open.as_mut() {
                Some((s, _, _, block))
                    if *s == stream && block.len() + payload.len() <= MAX_BLOCK =>
                {
                    block.extend_from_slice(&payload);
                }
                _ => return Err(bad("a CONTINUATION frame out of place")),
            },
            _ => {
                w.write_all(&head).await?;
                w.write_all(&payload).await?;
                continue;
            }
        }
        if flags & END_HEADERS != 0 {
            if let Some((s, end, priority, block)) = open.take() {
                let block = rewrite(&mut decoder, &mut encoder, &block)?;
                write_headers(&mut w, s, end, priority, &block).await?;
            }
        }
        w.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_path_authority_becomes_localhost_and_other_frames_pass() {
        let mut client_enc = hpack::Encoder::new();
        let block = client_enc.encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (&b":authority"[..], &b"/run/berth/cri.sock"[..]),
            (&b":path"[..], &b"/runtime.v1.RuntimeService/Version"[..]),
        ]);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS (empty), then HEADERS split in two with a CONTINUATION.
        let mut frames = Vec::new();
        write_frame(&mut frames, 0x4, 0, 0, &[]).await.unwrap();
        let (a, b) = block.split_at(5);
        write_frame(&mut frames, HEADERS, END_STREAM, 1, a)
            .await
            .unwrap();
        write_frame(&mut frames, CONTINUATION, END_HEADERS, 1, b)
            .await
            .unwrap();
        input.extend(frames);
        let mut out = Vec::new();
        let err = to_server(&input[..], &mut out).await.unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "the input ends"
        );
        assert_eq!(&out[..24], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(
            &out[24..33],
            &[0, 0, 0, 0x4, 0, 0, 0, 0, 0],
            "SETTINGS as it came"
        );
        let headers = &out[33..];
        assert_eq!(
            (headers[3], headers[4]),
            (HEADERS, END_STREAM | END_HEADERS)
        );
        let got = hpack::Decoder::new().decode(&headers[9..]).unwrap();
        assert!(
            got.contains(&(b":authority".to_vec(), b"localhost".to_vec())),
            "{got:?}"
        );
        assert!(got.contains(&(
            b":path".to_vec(),
            b"/runtime.v1.RuntimeService/Version".to_vec()
        )));
    }
}
