use proptest::prelude::*;
use prost::Message as _;

use super::wire;
use super::*;

/// Written by the real ScalarDB (scripts/gen-write-set-fixtures).
const FIXTURE_3_19_1: &str = include_str!("../../../fixtures/write_sets/3.19.1.json");

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

type Cols = Vec<(String, String)>;
type Rec = (String, String, Cols, Cols);

fn got_records<'a>(records: impl Iterator<Item = &'a WrittenRecord>) -> Vec<Rec> {
    let mut got: Vec<Rec> = records
        .map(|r| {
            (
                r.table.namespace.clone(),
                r.table.table.clone(),
                cols(&r.partition_key),
                cols(&r.clustering_key),
            )
        })
        .collect();
    got.sort();
    got
}

fn expected_records(v: &serde_json::Value) -> Vec<Rec> {
    let mut want: Vec<Rec> = v
        .as_array()
        .expect("expected records")
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().expect("namespace").to_owned(),
                r["table"].as_str().expect("table").to_owned(),
                expected_cols(&r["partition_key"]),
                expected_cols(&r["clustering_key"]),
            )
        })
        .collect();
    want.sort();
    want
}

fn cols(k: &[KeyColumn]) -> Cols {
    k.iter()
        .map(|c| (c.name.clone(), c.value.to_string()))
        .collect()
}

fn expected_cols(v: &serde_json::Value) -> Cols {
    v.as_array()
        .expect("key is an array")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().expect("name").to_owned(),
                pair[1].as_str().expect("value").to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_blob_scalardb_3_19_1_wrote_decodes_to_the_records_it_wrote() {
    let doc: serde_json::Value = serde_json::from_str(FIXTURE_3_19_1).expect("fixture is JSON");
    assert_eq!(doc["scalardb_version"], "3.19.1");
    let rows = doc["rows"].as_array().expect("rows");
    let mut labels = Vec::new();
    for row in rows {
        let label = row["label"].as_str().expect("label");
        labels.push(label.to_owned());
        let bytes = unhex(row["write_set_hex"].as_str().expect("hex"));
        let ws = decode(&bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(ws.schema_version, 1, "{label}: ScalarDB writes version 1");
        let got = got_records(ws.records());
        let want = expected_records(&row["expected_records"]);
        assert_eq!(got, want, "{label}: records");
        if let Some(groups) = row["expected_groups"].as_array() {
            let mut got: Vec<_> = ws
                .groups
                .iter()
                .map(|g| (g.child_id.clone(), got_records(g.records.iter())))
                .collect();
            let mut want: Vec<_> = groups
                .iter()
                .map(|g| {
                    (
                        g["child_id"].as_str().map(str::to_owned),
                        expected_records(&g["records"]),
                    )
                })
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{label}: one group per child, with its id");
            let listed = row["tx_child_ids"]
                .as_str()
                .expect("parent row lists children");
            for (child, _) in &got {
                let child = child.as_deref().expect("child id");
                assert!(
                    listed.split(',').any(|c| c == child),
                    "{label}: {child} listed"
                );
            }
        } else if want.is_empty() {
            assert!(
                ws.groups.is_empty(),
                "{label}: a read-only commit has no group"
            );
        } else {
            assert_eq!(
                ws.groups.len(),
                1,
                "{label}: one group outside group commit"
            );
            assert_eq!(ws.groups[0].child_id, None, "{label}: no child id");
        }
        // The join key is the scanned record's key, partition then clustering columns.
        for r in ws.records() {
            let key = r.key();
            assert_eq!(
                key.0.len(),
                r.partition_key.len() + r.clustering_key.len(),
                "{label}: key"
            );
        }
    }
    for needed in [
        "seed",
        "transfer",
        "delete",
        "read-only",
        "group-commit",
        "time-keys",
        "aborted-commit",
    ] {
        assert!(
            labels.iter().any(|l| l == needed),
            "fixture lacks the {needed} case"
        );
    }
    let aborted = rows
        .iter()
        .find(|r| r["label"] == "aborted-commit")
        .expect("aborted row");
    assert_eq!(aborted["tx_state"], 4, "the failed commit's row is ABORTED");
}

fn column(name: &str, value: wire::Value) -> wire::Column {
    wire::Column {
        name: name.to_owned(),
        value: Some(value),
    }
}

fn entry(
    table: &str,
    partition: Vec<wire::Column>,
    clustering: Option<Vec<wire::Column>>,
) -> wire::Entry {
    wire::Entry {
        participant_id: None,
        namespace_name: "ns".to_owned(),
        table_name: table.to_owned(),
        partition_key: Some(wire::Key { columns: partition }),
        clustering_key: clustering.map(|columns| wire::Key { columns }),
    }
}

fn blob(version: i32, groups: Vec<wire::EntryGroup>) -> Vec<u8> {
    wire::WriteSet {
        schema_version: version,
        payload: Some(wire::Payload::EntryGroups(wire::EntryGroups {
            entry_groups: groups,
        })),
    }
    .encode_to_vec()
}

fn int(v: i32) -> wire::Value {
    wire::Value::Int(wire::IntValue { value: Some(v) })
}

#[test]
fn group_commit_children_keep_their_ids_and_keys_render_like_the_store() {
    let bytes = blob(
        1,
        vec![
            wire::EntryGroup {
                child_id: Some("c1".to_owned()),
                entries: vec![entry(
                    "t",
                    vec![column(
                        "b",
                        wire::Value::Blob(wire::BlobValue {
                            value: Some(vec![0, 0xab]),
                        }),
                    )],
                    Some(vec![
                        column(
                            "f",
                            wire::Value::Boolean(wire::BooleanValue { value: Some(false) }),
                        ),
                        column("n", wire::Value::Text(wire::TextValue { value: None })),
                    ]),
                )],
            },
            wire::EntryGroup {
                child_id: Some("c2".to_owned()),
                entries: vec![entry(
                    "u",
                    vec![column(
                        "d",
                        wire::Value::Date(wire::DateValue { value: Some(-1) }),
                    )],
                    None,
                )],
            },
        ],
    );
    let ws = decode(&bytes).expect("decodes");
    let children: Vec<_> = ws.groups.iter().map(|g| g.child_id.as_deref()).collect();
    assert_eq!(children, [Some("c1"), Some("c2")]);
    assert_eq!(
        ws.groups[0].records[0].key().to_string(),
        "b=00ab, f=false, n=NULL"
    );
    assert_eq!(ws.groups[1].records[0].key().to_string(), "d=1969-12-31");
    assert!(ws.groups[1].records[0].clustering_key.is_empty());
}

#[test]
fn timestamps_follow_scalardb_encoding_including_the_negative_complement() {
    // 12345 s + 789 ms, and -12345 s with 789 ms stored as 999 - 789 = 210.
    assert_eq!(
        KeyValue::TimestampTz(12_345_789).to_string(),
        "1970-01-01T03:25:45.789Z"
    );
    assert_eq!(
        KeyValue::TimestampTz(-12_345_210).to_string(),
        jiff::Timestamp::from_millisecond(-12_345_000 + 789)
            .expect("in range")
            .to_string()
    );
    assert_eq!(KeyValue::Time(3_600_000_000_000).to_string(), "01:00:00");
    assert_eq!(
        KeyValue::Time(-1).to_string(),
        "-1",
        "out of range stays a number"
    );
}

#[test]
fn version_zero_means_one_and_other_versions_are_refused() {
    let groups = || {
        vec![wire::EntryGroup {
            child_id: None,
            entries: vec![entry("t", vec![column("k", int(1))], None)],
        }]
    };
    assert_eq!(decode(&blob(0, groups())).expect("v0").records().count(), 1);
    assert!(matches!(
        decode(&blob(2, groups())),
        Err(WriteSetError::UnknownSchemaVersion(2))
    ));
}

#[test]
fn malformed_and_foreign_blobs_are_errors_naming_why() {
    assert!(matches!(
        decode(&[0x0a, 0xff]),
        Err(WriteSetError::Malformed { .. })
    ));
    // A field 3.19.1 does not define (ScalarDB master's Entry.columns = 6 would be one).
    let mut bytes = blob(1, vec![]);
    bytes.extend([0x30, 0x01]);
    let err = decode(&bytes).expect_err("unknown field");
    assert!(
        matches!(&err, WriteSetError::UnknownFields { at, len: 6, known: 4 } if at == "the write set"),
        "{err:?}"
    );
    // ScalarDB master's shape (WriteSet field 2 is an EntryGroup itself, without the
    // EntryGroups wrapper) must not read as an empty write set.
    let group = wire::EntryGroup {
        child_id: None,
        entries: vec![entry("t", vec![column("k", int(1))], None)],
    }
    .encode_to_vec();
    let mut master = vec![0x08, 0x01, 0x12, u8::try_from(group.len()).expect("short")];
    master.extend(group);
    let err = decode(&master).expect_err("master shape");
    assert!(
        matches!(&err, WriteSetError::UnknownFields { at, .. } if at == "the entry group list"),
        "{err:?}"
    );
    // A key column whose type field is unset (or of a type added later).
    let no_type = blob(
        1,
        vec![wire::EntryGroup {
            child_id: None,
            entries: vec![entry(
                "t",
                vec![wire::Column {
                    name: "k".to_owned(),
                    value: None,
                }],
                None,
            )],
        }],
    );
    let err = decode(&no_type).expect_err("no type");
    assert_eq!(
        err.to_string(),
        "decode entry 0 of group 0: key column \"k\" has no value of a known type"
    );
    let no_partition = blob(
        1,
        vec![wire::EntryGroup {
            child_id: None,
            entries: vec![entry("t", vec![], None)],
        }],
    );
    assert!(matches!(
        decode(&no_partition),
        Err(WriteSetError::MissingPartitionKey { group: 0, entry: 0 })
    ));
    let no_table = blob(
        1,
        vec![wire::EntryGroup {
            child_id: None,
            entries: vec![entry("", vec![column("k", int(1))], None)],
        }],
    );
    assert!(matches!(
        decode(&no_table),
        Err(WriteSetError::MissingTable { group: 0, entry: 0 })
    ));
}

#[test]
fn absurd_sizes_are_refused() {
    let huge = vec![0_u8; MAX_WRITE_SET_BYTES + 1];
    assert!(matches!(
        decode(&huge),
        Err(WriteSetError::TooLarge { len, .. }) if len == MAX_WRITE_SET_BYTES + 1
    ));
    let many = blob(
        1,
        vec![wire::EntryGroup {
            child_id: None,
            // Empty entries would each be a MissingTable error: the count is refused first.
            entries: vec![wire::Entry::default(); MAX_ENTRIES + 1],
        }],
    );
    assert!(many.len() <= MAX_WRITE_SET_BYTES);
    assert!(matches!(
        decode(&many),
        Err(WriteSetError::TooManyEntries { max: MAX_ENTRIES })
    ));
    // Split over two groups, the total counts.
    let half = || wire::EntryGroup {
        child_id: Some("c".to_owned()),
        entries: vec![wire::Entry::default(); MAX_ENTRIES / 2 + 1],
    };
    assert!(matches!(
        decode(&blob(1, vec![half(), half()])),
        Err(WriteSetError::TooManyEntries { max: MAX_ENTRIES })
    ));
    let groups = blob(1, vec![wire::EntryGroup::default(); MAX_ENTRIES + 1]);
    assert!(matches!(
        decode(&groups),
        Err(WriteSetError::TooManyEntries { max: MAX_ENTRIES })
    ));
}

fn fixture_blobs() -> Vec<Vec<u8>> {
    let doc: serde_json::Value = serde_json::from_str(FIXTURE_3_19_1).expect("fixture is JSON");
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| unhex(r["write_set_hex"].as_str().expect("hex")))
        .filter(|b| !b.is_empty())
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_real_blobs_never_panic(
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let blobs = fixture_blobs();
        let mut b = blobs[pick.index(blobs.len())].clone();
        let i = at.index(b.len());
        if cut {
            b.truncate(i);
        } else {
            b[i] = byte;
        }
        let _ = decode(&b);
    }
}
