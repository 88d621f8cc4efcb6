//! What ScalarDB's recovery did to the records a backup held pending (the oracle's
//! `truth.json`, `recovered`), as the writes a `drill --recover` rehearsal must make.

/// The records rolled forward, restored from their before images, and deleted (either
/// way), from each record's `(exists afterwards, same tx_id afterwards as in the backup)`.
pub fn expected_writes(records: impl IntoIterator<Item = (bool, bool)>) -> (u64, u64, u64) {
    let (mut committed, mut restored, mut deleted) = (0, 0, 0);
    for (exists, same_tx) in records {
        match (exists, same_tx) {
            (true, true) => committed += 1,
            (true, false) => restored += 1,
            (false, _) => deleted += 1,
        }
    }
    (committed, restored, deleted)
}
