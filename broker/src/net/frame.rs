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
    let mut body = BytesMut::zeroed(size as usize);
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated(e)
        } else {
            FrameError::Io(e)
        }
    })?;
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
