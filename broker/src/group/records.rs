//! The keys and values the coordinator writes to `__consumer_offsets`, in Kafka's own
//! layouts (OffsetCommitKey v1 / OffsetCommitValue v3, GroupMetadataKey v2 /
//! GroupMetadataValue v3), so Kafka's tools can read the topic and a later migration needs
//! no conversion.
//!
//! Hand-written because `kafka-protocol` ships only the wire messages, not these internal
//! record schemas; they are plain big-endian fields with int16-prefixed strings.

use bytes::{Buf, BufMut, Bytes, BytesMut};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("string is not UTF-8")]
    NotUtf8,
}

/// What a `__consumer_offsets` key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

impl RecordKey {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut buf, group);
                put_str(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                buf.put_i16(GROUP_KEY_VERSION);
                put_str(&mut buf, group);
            }
        }
        buf.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Result<RecordKey, RecordError> {
        let version = get_i16(&mut buf)?;
        match version {
            0 | 1 => Ok(RecordKey::Offset {
                group: get_str(&mut buf)?,
                topic: get_str(&mut buf)?,
                partition: get_i32(&mut buf)?,
            }),
            2 => Ok(RecordKey::Group {
                group: get_str(&mut buf)?,
            }),
            version => Err(RecordError::UnknownVersion {
                what: "key",
                version,
            }),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(OFFSET_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_str(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Result<OffsetValue, RecordError> {
        let version = get_i16(&mut buf)?;
        match version {
            // v1 carried an expire timestamp after the commit timestamp; it is ignored, as
            // Kafka ignores it since KIP-211.
            1 => Ok(OffsetValue {
                offset: get_i64(&mut buf)?,
                leader_epoch: -1,
                metadata: get_str(&mut buf)?,
                commit_timestamp: get_i64(&mut buf)?,
            }),
            3 => Ok(OffsetValue {
                offset: get_i64(&mut buf)?,
                leader_epoch: get_i32(&mut buf)?,
                metadata: get_str(&mut buf)?,
                commit_timestamp: get_i64(&mut buf)?,
            }),
            version => Err(RecordError::UnknownVersion {
                what: "offset value",
                version,
            }),
        }
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(GROUP_VALUE_VERSION);
        put_str(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_str(&mut buf, self.protocol.as_deref());
        put_nullable_str(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut buf, &m.member_id);
            put_nullable_str(&mut buf, m.group_instance_id.as_deref());
            put_str(&mut buf, &m.client_id);
            put_str(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Result<GroupValue, RecordError> {
        let version = get_i16(&mut buf)?;
        if version != GROUP_VALUE_VERSION {
            return Err(RecordError::UnknownVersion {
                what: "group value",
                version,
            });
        }
        let mut value = GroupValue {
            protocol_type: get_str(&mut buf)?,
            generation: get_i32(&mut buf)?,
            protocol: get_nullable_str(&mut buf)?,
            leader: get_nullable_str(&mut buf)?,
            current_state_timestamp: get_i64(&mut buf)?,
            members: Vec::new(),
        };
        let count = get_i32(&mut buf)?.max(0);
        for _ in 0..count {
            value.members.push(MemberValue {
                member_id: get_str(&mut buf)?,
                group_instance_id: get_nullable_str(&mut buf)?,
                client_id: get_str(&mut buf)?,
                client_host: get_str(&mut buf)?,
                rebalance_timeout_ms: get_i32(&mut buf)?,
                session_timeout_ms: get_i32(&mut buf)?,
                subscription: get_bytes(&mut buf)?,
                assignment: get_bytes(&mut buf)?,
            });
        }
        Ok(value)
    }
}

fn put_str(buf: &mut BytesMut, s: &str) {
    // Group ids, topics and metadata are bounded far below i16::MAX by the request
    // validation that precedes every write.
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

fn need(buf: &[u8], n: usize) -> Result<(), RecordError> {
    if buf.remaining() < n {
        Err(RecordError::Truncated)
    } else {
        Ok(())
    }
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, RecordError> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, RecordError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, RecordError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn get_nullable_str(buf: &mut &[u8]) -> Result<Option<String>, RecordError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    need(buf, len)?;
    let s = std::str::from_utf8(&buf[..len])
        .map_err(|_| RecordError::NotUtf8)?
        .to_string();
    buf.advance(len);
    Ok(Some(s))
}

fn get_str(buf: &mut &[u8]) -> Result<String, RecordError> {
    Ok(get_nullable_str(buf)?.unwrap_or_default())
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes, RecordError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = len as usize;
    need(buf, len)?;
    let b = Bytes::copy_from_slice(&buf[..len]);
    buf.advance(len);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "orders".into(),
            partition: 7,
        };
        assert_eq!(RecordKey::decode(&key.encode()), Ok(key));
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(RecordKey::decode(&key.encode()), Ok(key));

        let offset = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "checkpoint α".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        assert_eq!(OffsetValue::decode(&offset.encode()), Ok(offset));

        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "m-1".into(),
                group_instance_id: Some("a".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(&group.encode()), Ok(group));
    }

    #[test]
    fn offset_key_layout_matches_kafka() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        };
        assert_eq!(
            &key.encode()[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]
        );
    }

    #[test]
    fn truncated_and_unknown_records_are_errors() {
        assert_eq!(RecordKey::decode(&[0]), Err(RecordError::Truncated));
        assert_eq!(
            RecordKey::decode(&[0, 9]),
            Err(RecordError::UnknownVersion {
                what: "key",
                version: 9
            })
        );
        let mut value = OffsetValue {
            offset: 1,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp: 0,
        }
        .encode()
        .to_vec();
        value.truncate(value.len() - 1);
        assert_eq!(OffsetValue::decode(&value), Err(RecordError::Truncated));
    }
}
