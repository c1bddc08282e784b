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

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: i32,
) -> Result<Option<Bytes>, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size > max {
        return Err(FrameError::BadSize { size, max });
    }
    // Filled straight from the socket without zeroing first: produce frames are large and
    // this is the hot path.
    let size = size as usize;
    let mut body = BytesMut::with_capacity(size);
    while body.len() < size {
        let remaining = (size - body.len()) as u64;
        let read = (&mut *reader)
            .take(remaining)
            .read_buf(&mut body)
            .await
            .map_err(FrameError::Io)?;
        if read == 0 {
            return Err(FrameError::Truncated(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} of {size} bytes arrived", body.len()),
            )));
        }
    }
    Ok(Some(body.freeze()))
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
    }
}
