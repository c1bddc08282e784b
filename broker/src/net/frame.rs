//! Kafka's framing: a 4-byte big-endian size, then that many bytes of request.

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame size {size} is outside 0..={max} (socket.request.max.bytes)")]
    BadSize { size: i32, max: i32 },
    #[error("connection closed mid-frame: {0}")]
    Truncated(std::io::Error),
    #[error("read failed: {0}")]
    Io(std::io::Error),
}

/// What one read from the socket produced.
#[derive(Debug)]
pub enum ReadStep {
    /// Bytes arrived but the frame is not complete yet.
    Partial,
    /// A whole frame body (without its size prefix).
    Frame(Bytes),
    /// The peer closed the connection between frames.
    Closed,
}

/// Reads frames a piece at a time, so a connection can wait on its socket alongside other
/// things (responses to write, timers) and lose nothing when another branch wins. Between
/// frames it holds no buffer at all: the size prefix goes into a 4-byte array and the body
/// buffer is allocated at exactly the announced size once the prefix is complete.
#[derive(Debug)]
pub struct FrameReader {
    max: i32,
    size: [u8; 4],
    size_len: usize,
    body: Option<(usize, BytesMut)>,
}

impl FrameReader {
    /// `max` is `socket.request.max.bytes`.
    pub fn new(max: i32) -> Self {
        FrameReader {
            max,
            size: [0; 4],
            size_len: 0,
            body: None,
        }
    }

    /// Changes the largest frame accepted (a SASL listener's limit before authentication
    /// is `sasl.server.max.receive.size`).
    pub fn set_max(&mut self, max: i32) {
        self.max = max;
    }

    /// True once any byte of a frame has arrived and the frame is not complete.
    pub fn in_frame(&self) -> bool {
        self.size_len > 0
    }

    /// One read from `reader`. Cancel safe when `reader`'s own reads are (a socket's
    /// are): state only changes after a read completes.
    pub async fn read_step<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<ReadStep, FrameError> {
        let Some((size, body)) = &mut self.body else {
            let read = reader
                .read(&mut self.size[self.size_len..])
                .await
                .map_err(FrameError::Io)?;
            if read == 0 {
                return if self.size_len == 0 {
                    Ok(ReadStep::Closed)
                } else {
                    Err(truncated(self.size_len, 4))
                };
            }
            self.size_len += read;
            if self.size_len < 4 {
                return Ok(ReadStep::Partial);
            }
            let size = i32::from_be_bytes(self.size);
            if size < 0 || size > self.max {
                return Err(FrameError::BadSize {
                    size,
                    max: self.max,
                });
            }
            if size == 0 {
                self.size_len = 0;
                return Ok(ReadStep::Frame(Bytes::new()));
            }
            // Filled straight from the socket without zeroing first: produce frames are
            // large and this is the hot path.
            let size = size as usize;
            self.body = Some((size, BytesMut::with_capacity(size)));
            return Ok(ReadStep::Partial);
        };
        let remaining = (*size - body.len()) as u64;
        let read = (&mut *reader)
            .take(remaining)
            .read_buf(body)
            .await
            .map_err(FrameError::Io)?;
        if read == 0 {
            return Err(truncated(body.len(), *size));
        }
        if body.len() < *size {
            return Ok(ReadStep::Partial);
        }
        let frame = self
            .body
            .take()
            .map(|(_, b)| b.freeze())
            .unwrap_or_default();
        self.size_len = 0;
        Ok(ReadStep::Frame(frame))
    }
}

fn truncated(arrived: usize, expected: usize) -> FrameError {
    FrameError::Truncated(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("{arrived} of {expected} bytes arrived"),
    ))
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: i32,
) -> Result<Option<Bytes>, FrameError> {
    let mut frames = FrameReader::new(max);
    loop {
        match frames.read_step(reader).await? {
            ReadStep::Partial => {}
            ReadStep::Frame(frame) => return Ok(Some(frame)),
            ReadStep::Closed => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_refuses_bad_sizes() {
        let mut input: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 5, 1];
        assert_eq!(
            read_frame(&mut input, 100).await.unwrap().unwrap().as_ref(),
            &[7, 8]
        );
        assert!(matches!(
            read_frame(&mut input, 100).await,
            Err(FrameError::Truncated(_))
        ));
        let mut huge: &[u8] = &[0x7f, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut huge, 100).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut negative, 100).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 100).await.unwrap().is_none());
        let mut half_size: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut half_size, 100).await,
            Err(FrameError::Truncated(_))
        ));
    }

    #[tokio::test]
    async fn frame_reader_allocates_nothing_between_frames() {
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0];
        let mut reader = FrameReader::new(100);
        assert!(!reader.in_frame());
        let mut frames = Vec::new();
        loop {
            match reader.read_step(&mut input).await.unwrap() {
                ReadStep::Partial => assert!(reader.in_frame() || reader.body.is_none()),
                ReadStep::Frame(f) => {
                    assert!(!reader.in_frame());
                    assert!(reader.body.is_none());
                    frames.push(f);
                }
                ReadStep::Closed => break,
            }
        }
        assert_eq!(frames, vec![Bytes::from_static(&[1, 2, 3]), Bytes::new()]);
    }
}
