//! Docker's stdcopy framing for non-TTY attach, logs and exec streams: an 8-byte header
//! (stream id, three zero bytes, big-endian u32 length) before each chunk of payload.

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// An error from the daemon after the response headers have gone out.
    System = 3,
}

impl Stream {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            3 => Some(Stream::System),
            _ => None,
        }
    }
}

/// Length of a frame header.
pub const HEADER_LEN: usize = 8;

/// Appends one frame carrying `payload` on `stream` to `out`.
pub fn encode_frame(stream: Stream, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.push(stream as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..len as usize]);
}

/// Why a buffer is not a valid frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The first byte is not a stream id 0..=3.
    BadStream(u8),
}

/// A decoded frame: its stream, its payload and the number of bytes it took in the buffer.
pub type Frame<'a> = (Stream, &'a [u8], usize);

/// Reads a frame header: the frame's stream and the length of its payload (for a reader that
/// takes the payload in pieces).
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(Stream, usize), FrameError> {
    let stream = Stream::from_byte(h[0]).ok_or(FrameError::BadStream(h[0]))?;
    Ok((
        stream,
        u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize,
    ))
}

/// Decodes the frame at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn decode_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (stream, len) = decode_header(header)?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((stream, payload, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_two_frames() {
        let mut buf = Vec::new();
        encode_frame(Stream::Stdout, b"hello\n", &mut buf);
        encode_frame(Stream::Stderr, b"oops", &mut buf);
        assert_eq!(&buf[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        let (s, p, n) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!((s, p), (Stream::Stdout, &b"hello\n"[..]));
        let (s, p, _) = decode_frame(&buf[n..]).unwrap().unwrap();
        assert_eq!((s, p), (Stream::Stderr, &b"oops"[..]));
    }

    #[test]
    fn incomplete_and_bad_frames() {
        assert_eq!(decode_frame(&[1, 0, 0]), Ok(None));
        assert_eq!(decode_frame(&[1, 0, 0, 0, 0, 0, 0, 9, b'x']), Ok(None));
        assert_eq!(
            decode_frame(&[7, 0, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::BadStream(7))
        );
    }
}
