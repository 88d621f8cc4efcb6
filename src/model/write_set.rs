//! The Coordinator's `tx_write_set` BLOB (ScalarDB 3.19+, written when
//! `scalar.db.consensus_commit.coordinator.write_set_logging.enabled=true`): which records a
//! transaction wrote, decoded into typed values.
//!
//! The BLOB is a protobuf `WriteSet` of package `scalardb.consensus_commit.proto.v1`. The
//! message structs in [`wire`] are derived with `prost` from the field numbers and oneofs of
//! the `consensus_commit.proto` that ships inside the `scalardb-3.19.1` jar (ScalarDB's master
//! branch has since changed the schema incompatibly, without a new package or schema version:
//! `WriteSet.entry_groups` became a repeated field and `Entry` field 1 an entry type). Protobuf
//! skips fields it does not know, so a blob of another shape could read as a smaller write
//! set; [`decode`] refuses any message (the write set, its group list, a group, an entry) that
//! does not re-encode to its own length (fields 3.19.1 does not define, or a non-canonical
//! encoding, which ScalarDB's Java writer never emits). It decodes the structure first, with
//! groups and entries left as slices of the input, so the number of records is bounded before
//! any record is decoded.
//!
//! What [`decode`] gives: the schema version (0 is read as 1, as ScalarDB's reader does), the
//! entry groups (one per transaction; a group-commit parent row has one per writing child,
//! each with its `child_id`) and, per group, the records: table, partition and clustering key
//! columns with typed values, and [`WrittenRecord::key`], the key rendered exactly as
//! `store` renders a scanned record's key ([`crate::model::RecordKey`]: integers in decimal,
//! text as is, booleans `true`/`false`, blobs in lowercase hex, NULL as `NULL`), so a record
//! from a write set joins a scanned record by equality. An empty group list is a read-only
//! commit; a NULL column (no write set at all) is the caller's business, not a value here.
//!
//! What it must not do: I/O, panics on any input, or guessing. A BLOB larger than
//! [`MAX_WRITE_SET_BYTES`], holding more than [`MAX_ENTRIES`] records, of a schema version
//! other than 1, that protobuf cannot decode, or with a key column of no known type is an
//! error naming why and where (group and entry index). Entries identify records only: not
//! whether each was a put or a delete.

use std::fmt;

use prost::Message as _;

use crate::model::{RecordKey, TableRef};

/// The largest BLOB decoded. ScalarDB 3.19.1 writes 50 to 100 bytes per record, so this holds
/// a transaction of some 200 000 records; it bounds what a corrupt value can make the decoder
/// allocate (the structure pass keeps one 32-byte slice handle per group and entry, at least
/// two bytes each on the wire, so at most 16 times this, before any record is decoded).
pub const MAX_WRITE_SET_BYTES: usize = 16 << 20;

/// The most records (entries, over all groups) one write set may hold.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The only schema version ScalarDB has written (3.19).
pub const SCHEMA_VERSION_V1: i32 = 1;

/// The protobuf messages, field for field as ScalarDB 3.19.1 declares them.
pub mod wire {
    /// `WriteSet { int32 schema_version = 1; oneof payload { EntryGroups entry_groups = 2; } }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteSet {
        #[prost(int32, tag = "1")]
        pub schema_version: i32,
        #[prost(oneof = "Payload", tags = "2")]
        pub payload: Option<Payload>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        #[prost(message, tag = "2")]
        EntryGroups(EntryGroups),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryGroups {
        #[prost(message, repeated, tag = "1")]
        pub entry_groups: Vec<EntryGroup>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryGroup {
        #[prost(string, optional, tag = "1")]
        pub child_id: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(string, optional, tag = "1")]
        pub participant_id: Option<String>,
        #[prost(string, tag = "2")]
        pub namespace_name: String,
        #[prost(string, tag = "3")]
        pub table_name: String,
        #[prost(message, optional, tag = "4")]
        pub partition_key: Option<Key>,
        #[prost(message, optional, tag = "5")]
        pub clustering_key: Option<Key>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Key {
        #[prost(message, repeated, tag = "1")]
        pub columns: Vec<Column>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Column {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(oneof = "Value", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")]
        pub value: Option<Value>,
    }

    /// Each wrapper's `value` is unset for NULL.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "2")]
        Boolean(BooleanValue),
        #[prost(message, tag = "3")]
        Int(IntValue),
        #[prost(message, tag = "4")]
        BigInt(BigIntValue),
        #[prost(message, tag = "5")]
        Float(FloatValue),
        #[prost(message, tag = "6")]
        Double(DoubleValue),
        #[prost(message, tag = "7")]
        Text(TextValue),
        #[prost(message, tag = "8")]
        Blob(BlobValue),
        #[prost(message, tag = "9")]
        Date(DateValue),
        #[prost(message, tag = "10")]
        Time(TimeValue),
        #[prost(message, tag = "11")]
        Timestamp(TimestampValue),
        #[prost(message, tag = "12")]
        TimestampTz(TimestampTzValue),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BooleanValue {
        #[prost(bool, optional, tag = "1")]
        pub value: Option<bool>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IntValue {
        #[prost(int32, optional, tag = "1")]
        pub value: Option<i32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BigIntValue {
        #[prost(int64, optional, tag = "1")]
        pub value: Option<i64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FloatValue {
        #[prost(float, optional, tag = "1")]
        pub value: Option<f32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DoubleValue {
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TextValue {
        #[prost(string, optional, tag = "1")]
        pub value: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BlobValue {
        #[prost(bytes = "vec", optional, tag = "1")]
        pub value: Option<Vec<u8>>,
    }
    /// Days since 1970-01-01.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DateValue {
        #[prost(sint32, optional, tag = "1")]
        pub value: Option<i32>,
    }
    /// Nanoseconds since midnight.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeValue {
        #[prost(int64, optional, tag = "1")]
        pub value: Option<i64>,
    }
    /// `<epochSecond><millisecond, 3 digits>` read as UTC.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimestampValue {
        #[prost(sint64, optional, tag = "1")]
        pub value: Option<i64>,
    }
    /// `<epochSecond><millisecond, 3 digits>`; for a negative second the millisecond is
    /// stored as its complement `999 - ms`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimestampTzValue {
        #[prost(sint64, optional, tag = "1")]
        pub value: Option<i64>,
    }
}

/// The same messages with nested groups and entries kept as undecoded slices of the input
/// (a nested message and a `bytes` field are the same on the wire), so their number is known,
/// and bounded, before any is decoded.
mod shallow {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteSet {
        #[prost(int32, tag = "1")]
        pub schema_version: i32,
        #[prost(bytes = "bytes", optional, tag = "2")]
        pub entry_groups: Option<Bytes>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryGroups {
        #[prost(bytes = "bytes", repeated, tag = "1")]
        pub entry_groups: Vec<Bytes>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryGroup {
        #[prost(string, optional, tag = "1")]
        pub child_id: Option<String>,
        #[prost(bytes = "bytes", repeated, tag = "2")]
        pub entries: Vec<Bytes>,
    }
}

/// A decoded write set.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteSet {
    /// The schema version as stored (0 or 1; both mean v1).
    pub schema_version: i32,
    /// One group per writing transaction; empty for a read-only commit.
    pub groups: Vec<EntryGroup>,
}

impl WriteSet {
    /// Every record of every group, in stored order.
    pub fn records(&self) -> impl Iterator<Item = &WrittenRecord> {
        self.groups.iter().flat_map(|g| g.records.iter())
    }
}

/// The records one transaction wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryGroup {
    /// The group-commit child id (the part after `$` of the full id); `None` outside group commit.
    pub child_id: Option<String>,
    pub records: Vec<WrittenRecord>,
}

/// One record a transaction wrote (a put or a delete; the write set does not say which).
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenRecord {
    /// The two-phase-commit participant that wrote it, when ScalarDB recorded one.
    pub participant_id: Option<String>,
    pub table: TableRef,
    pub partition_key: Vec<KeyColumn>,
    /// Empty when the table has no clustering key.
    pub clustering_key: Vec<KeyColumn>,
}

impl WrittenRecord {
    /// The key as `store` renders a scanned record's key: partition then clustering columns.
    pub fn key(&self) -> RecordKey {
        RecordKey(
            self.partition_key
                .iter()
                .chain(&self.clustering_key)
                .map(|c| (c.name.clone(), c.value.to_string()))
                .collect(),
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyColumn {
    pub name: String,
    pub value: KeyValue,
}

/// A key column's value with its ScalarDB type.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyValue {
    /// The type's wrapper was present with no value.
    Null,
    Boolean(bool),
    Int(i32),
    BigInt(i64),
    Float(f32),
    Double(f64),
    Text(String),
    Blob(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Nanoseconds since midnight.
    Time(i64),
    /// ScalarDB's `<epochSecond><millis>` encoding, as stored.
    Timestamp(i64),
    /// ScalarDB's `<epochSecond><millis>` encoding, as stored.
    TimestampTz(i64),
}

/// Renders as `store` renders key values (`RecordKey`): integers in decimal, text as is,
/// booleans `true`/`false`, blobs in lowercase hex, NULL as `NULL`; floats, dates, times and
/// timestamps as the Cassandra store renders them (the SQL stores leave those to the
/// database's text cast, so a join on such keys is exact on Cassandra only).
impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Boolean(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
            Self::BigInt(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::Text(v) => f.write_str(v),
            Self::Blob(bytes) => bytes.iter().try_for_each(|b| write!(f, "{b:02x}")),
            Self::Date(days) => match jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(i64::from(*days)))
            {
                Ok(d) => write!(f, "{d}"),
                Err(_) => write!(f, "{days}"),
            },
            Self::Time(nanos) => {
                match jiff::civil::Time::MIN.checked_add(jiff::Span::new().nanoseconds(*nanos)) {
                    Ok(t) if (0..86_400_000_000_000).contains(nanos) => write!(f, "{t}"),
                    _ => write!(f, "{nanos}"),
                }
            }
            Self::Timestamp(v) | Self::TimestampTz(v) => match timestamp_millis(*v) {
                Some(ms) => match jiff::Timestamp::from_millisecond(ms) {
                    Ok(t) => write!(f, "{t}"),
                    Err(_) => write!(f, "{v}"),
                },
                None => write!(f, "{v}"),
            },
        }
    }
}

/// Milliseconds since the epoch from ScalarDB's `<epochSecond><millis>` encoding (a negative
/// second stores its millisecond as `999 - ms`).
fn timestamp_millis(encoded: i64) -> Option<i64> {
    let seconds = encoded / 1000;
    let low = (encoded % 1000).abs();
    let ms = if encoded < 0 { 999 - low } else { low };
    seconds.checked_mul(1000)?.checked_add(ms)
}

/// A Coordinator row with its write set, as a store reads it: the row, and the BLOB unless
/// it is larger than [`MAX_WRITE_SET_BYTES`] (then only its length crossed the wire);
/// `None` when the row carries none (a row the cut window asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWriteSet {
    pub row: crate::model::CoordinatorRow,
    pub bytes: Option<Result<Vec<u8>, u64>>,
}

impl StoredWriteSet {
    /// Decodes the BLOB; an oversized one is [`WriteSetError::TooLarge`], a row without
    /// one [`WriteSetError::Absent`].
    pub fn decode(&self) -> Result<WriteSet, WriteSetError> {
        match &self.bytes {
            Some(Ok(bytes)) => decode(bytes),
            Some(Err(len)) => Err(WriteSetError::TooLarge {
                len: usize::try_from(*len).unwrap_or(usize::MAX),
                max: MAX_WRITE_SET_BYTES,
            }),
            None => Err(WriteSetError::Absent),
        }
    }

    /// The id each group's records carry: `parent$child` for a child of a group-commit
    /// parent row, the row's own id otherwise.
    pub fn group_tx_id(&self, group: &EntryGroup) -> String {
        match &group.child_id {
            Some(child) if crate::model::GroupCommitId::parse(&self.row.tx_id).is_none() => {
                format!("{}${child}", self.row.tx_id)
            }
            _ => self.row.tx_id.clone(),
        }
    }
}

/// Why a BLOB is not a usable write set.
#[derive(Debug, thiserror::Error)]
pub enum WriteSetError {
    #[error("decode a write set: the Coordinator row carries none")]
    Absent,
    #[error("decode a write set of {len} bytes (more than {max})")]
    TooLarge { len: usize, max: usize },
    #[error("decode {at} as ScalarDB 3.19.1's protobuf")]
    Malformed {
        at: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error("decode a write set of schema version {0} (only 1, or 0 meaning 1, is known)")]
    UnknownSchemaVersion(i32),
    #[error(
        "decode {at} ({len} bytes): only {known} are fields ScalarDB 3.19.1 defines \
         (another schema, or not a write set)"
    )]
    UnknownFields {
        at: String,
        len: usize,
        known: usize,
    },
    #[error("decode a write set of more than {max} records")]
    TooManyEntries { max: usize },
    #[error("decode entry {entry} of group {group}: it has no partition key")]
    MissingPartitionKey { group: usize, entry: usize },
    #[error("decode entry {entry} of group {group}: it names no namespace or no table")]
    MissingTable { group: usize, entry: usize },
    #[error(
        "decode entry {entry} of group {group}: key column {column:?} has no value of a known type"
    )]
    UnknownValueType {
        group: usize,
        entry: usize,
        column: String,
    },
}

/// Decodes one `tx_write_set` value (the bytes of a non-NULL column).
pub fn decode(bytes: &[u8]) -> Result<WriteSet, WriteSetError> {
    if bytes.len() > MAX_WRITE_SET_BYTES {
        return Err(WriteSetError::TooLarge {
            len: bytes.len(),
            max: MAX_WRITE_SET_BYTES,
        });
    }
    // The structure first, with groups and entries left as slices of the input, so the count
    // of records is checked before any record is decoded.
    let top = bytes::Bytes::copy_from_slice(bytes);
    let raw = shallow::WriteSet::decode(top).map_err(|source| WriteSetError::Malformed {
        at: "the write set".to_owned(),
        source,
    })?;
    if raw.schema_version != 0 && raw.schema_version != SCHEMA_VERSION_V1 {
        return Err(WriteSetError::UnknownSchemaVersion(raw.schema_version));
    }
    exact("the write set", bytes.len(), raw.encoded_len())?;
    let Some(payload) = raw.entry_groups else {
        return Ok(WriteSet {
            schema_version: raw.schema_version,
            groups: Vec::new(),
        });
    };
    let payload_len = payload.len();
    let list =
        shallow::EntryGroups::decode(payload).map_err(|source| WriteSetError::Malformed {
            at: "the entry group list".to_owned(),
            source,
        })?;
    exact("the entry group list", payload_len, list.encoded_len())?;
    if list.entry_groups.len() > MAX_ENTRIES {
        return Err(WriteSetError::TooManyEntries { max: MAX_ENTRIES });
    }
    let shallow_groups = list
        .entry_groups
        .into_iter()
        .enumerate()
        .map(|(group, raw_group)| {
            let at = || format!("entry group {group}");
            let group_len = raw_group.len();
            let g = shallow::EntryGroup::decode(raw_group)
                .map_err(|source| WriteSetError::Malformed { at: at(), source })?;
            exact(&at(), group_len, g.encoded_len())?;
            Ok(g)
        })
        .collect::<Result<Vec<_>, WriteSetError>>()?;
    let total = shallow_groups
        .iter()
        .fold(0_usize, |n, g| n.saturating_add(g.entries.len()));
    if total > MAX_ENTRIES {
        return Err(WriteSetError::TooManyEntries { max: MAX_ENTRIES });
    }
    let mut groups = Vec::with_capacity(shallow_groups.len());
    for (group, g) in shallow_groups.into_iter().enumerate() {
        let mut records = Vec::with_capacity(g.entries.len());
        for (entry, raw_entry) in g.entries.into_iter().enumerate() {
            let at = || format!("entry {entry} of group {group}");
            let entry_len = raw_entry.len();
            let e = wire::Entry::decode(raw_entry)
                .map_err(|source| WriteSetError::Malformed { at: at(), source })?;
            exact(&at(), entry_len, e.encoded_len())?;
            records.push(record(group, entry, e)?);
        }
        groups.push(EntryGroup {
            child_id: g.child_id,
            records,
        });
    }
    Ok(WriteSet {
        schema_version: raw.schema_version,
        groups,
    })
}

/// Protobuf skips fields it does not know; a message that does not re-encode to its own
/// length held some (or was not canonically encoded, which ScalarDB's writer never does).
fn exact(at: &str, len: usize, known: usize) -> Result<(), WriteSetError> {
    if len == known {
        Ok(())
    } else {
        Err(WriteSetError::UnknownFields {
            at: at.to_owned(),
            len,
            known,
        })
    }
}

fn record(group: usize, entry: usize, e: wire::Entry) -> Result<WrittenRecord, WriteSetError> {
    if e.namespace_name.is_empty() || e.table_name.is_empty() {
        return Err(WriteSetError::MissingTable { group, entry });
    }
    let partition = e
        .partition_key
        .filter(|k| !k.columns.is_empty())
        .ok_or(WriteSetError::MissingPartitionKey { group, entry })?;
    let columns = |key: wire::Key| {
        key.columns
            .into_iter()
            .map(|c| {
                let value = value(c.value).ok_or_else(|| WriteSetError::UnknownValueType {
                    group,
                    entry,
                    column: c.name.clone(),
                })?;
                Ok(KeyColumn {
                    name: c.name,
                    value,
                })
            })
            .collect::<Result<Vec<_>, WriteSetError>>()
    };
    Ok(WrittenRecord {
        participant_id: e.participant_id,
        table: TableRef::new(e.namespace_name, e.table_name),
        partition_key: columns(partition)?,
        clustering_key: e
            .clustering_key
            .map(columns)
            .transpose()?
            .unwrap_or_default(),
    })
}

fn value(v: Option<wire::Value>) -> Option<KeyValue> {
    use wire::Value as W;
    Some(match v? {
        W::Boolean(v) => v.value.map_or(KeyValue::Null, KeyValue::Boolean),
        W::Int(v) => v.value.map_or(KeyValue::Null, KeyValue::Int),
        W::BigInt(v) => v.value.map_or(KeyValue::Null, KeyValue::BigInt),
        W::Float(v) => v.value.map_or(KeyValue::Null, KeyValue::Float),
        W::Double(v) => v.value.map_or(KeyValue::Null, KeyValue::Double),
        W::Text(v) => v.value.map_or(KeyValue::Null, KeyValue::Text),
        W::Blob(v) => v.value.map_or(KeyValue::Null, KeyValue::Blob),
        W::Date(v) => v.value.map_or(KeyValue::Null, KeyValue::Date),
        W::Time(v) => v.value.map_or(KeyValue::Null, KeyValue::Time),
        W::Timestamp(v) => v.value.map_or(KeyValue::Null, KeyValue::Timestamp),
        W::TimestampTz(v) => v.value.map_or(KeyValue::Null, KeyValue::TimestampTz),
    })
}

#[cfg(test)]
mod tests;
