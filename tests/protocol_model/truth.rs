//! The ground truth, independent of the crate: backup cuts of a simulated history, ScalarDB's
//! lazy recovery applied to a cut (§4 of `shared/scalardb-protocol.md`, with the restore read
//! long after every transaction's lifetime), the state a consistent backup at an instant must
//! recover to, and which transactions a cut tears.

use std::collections::BTreeMap;
use std::fmt;

use crate::sim::{
    BASE_MS, COMMITTED, CoordinatorEntry, DELETED, History, PREPARED, Slot, SlotView, TABLES,
    Writer, table_name,
};

/// A record's user-visible content: `(v, tx_id)`, or `None` when the record does not exist.
pub type Content = Option<(Option<i64>, Option<String>)>;

/// A backup: every table and the Coordinator each copied at some instant (a snapshot index).
#[derive(Clone, Debug)]
pub struct Cut {
    pub table_at: Vec<usize>,
    pub coordinator_at: usize,
    pub tables: Vec<Vec<Slot>>,
    pub coordinator: BTreeMap<String, CoordinatorEntry>,
    /// When each table was copied, in epoch ms.
    pub table_times: Vec<i64>,
    /// When the Coordinator was copied: for a single-instant cut, the cut's instant.
    pub coordinator_time: i64,
}

impl Cut {
    pub fn new(history: &History, table_at: &[usize], coordinator_at: usize) -> Self {
        Self {
            table_at: table_at.to_vec(),
            coordinator_at,
            tables: table_at
                .iter()
                .enumerate()
                .map(|(table, &index)| history.snapshots[index].1.tables[table].clone())
                .collect(),
            coordinator: history.snapshots[coordinator_at].1.coordinator.clone(),
            table_times: table_at.iter().map(|&index| history.time(index)).collect(),
            coordinator_time: history.time(coordinator_at),
        }
    }

    /// Every table and the Coordinator copied at snapshot `index`.
    pub fn single(history: &History, index: usize) -> Self {
        Self::new(history, &vec![index; TABLES.len()], index)
    }

    pub fn has_unresolved(&self) -> bool {
        self.tables.iter().flatten().any(|slot| {
            matches!(slot, Slot::Present(row) if matches!(row.after.tx_state, Some(PREPARED | DELETED)))
        })
    }

    fn coordinator_committed(&self, tx_id: &str) -> bool {
        self.coordinator
            .get(tx_id)
            .is_some_and(|entry| entry.state == COMMITTED)
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cut:")?;
        for (table, slots) in self.tables.iter().enumerate() {
            write!(
                f,
                "  {} copied at snapshot {} (+{}ms):",
                table_name(table),
                self.table_at[table],
                self.table_times[table] - BASE_MS
            )?;
            for (key, slot) in slots.iter().enumerate() {
                write!(f, " [{key}] {};", SlotView(slot))?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "  Coordinator copied at snapshot {}:",
            self.coordinator_at
        )?;
        for (id, entry) in &self.coordinator {
            let state = if entry.state == COMMITTED {
                "COMMITTED"
            } else {
                "ABORTED"
            };
            write!(f, " {id} {state};")?;
        }
        writeln!(f)
    }
}

/// What lazy recovery does to one unresolved record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// PREPARED, Coordinator COMMITTED: becomes COMMITTED.
    Commit,
    /// DELETED, Coordinator COMMITTED: physically deleted.
    ForwardDelete,
    /// Coordinator ABORTED or no row (expired, so aborted): before image restored.
    Restore,
    /// The same, but the record has no before image: deleted.
    BackDelete,
}

/// One record after the restore's first reader recovered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub content: Content,
    /// Ghost: the write the recovered content comes from.
    pub writer: Writer,
    /// What recovery did, for an unresolved record.
    pub recovery: Option<Recovery>,
}

/// ScalarDB's lazy recovery of every unresolved record of the cut. COMMITTED and NULL-state
/// records are never touched; the Coordinator is consulted as copied.
pub fn recover(cut: &Cut) -> Vec<Vec<Recovered>> {
    cut.tables
        .iter()
        .map(|slots| {
            slots
                .iter()
                .map(|slot| match slot {
                    Slot::Absent(since) => Recovered {
                        content: None,
                        writer: *since,
                        recovery: None,
                    },
                    Slot::Present(row) => {
                        let after = (row.after.value, row.after.tx_id.clone());
                        let state = row.after.tx_state;
                        if !matches!(state, Some(PREPARED | DELETED)) {
                            return Recovered {
                                content: Some(after),
                                writer: row.writer,
                                recovery: None,
                            };
                        }
                        let tx_id = row.after.tx_id.as_deref().unwrap_or_default();
                        let (content, writer, recovery) = if cut.coordinator_committed(tx_id) {
                            if state == Some(PREPARED) {
                                (Some(after), row.writer, Recovery::Commit)
                            } else {
                                (None, row.writer, Recovery::ForwardDelete)
                            }
                        } else if row.has_before_image() {
                            (
                                Some((row.before.value, row.before.tx_id.clone())),
                                row.before_writer,
                                Recovery::Restore,
                            )
                        } else {
                            (None, row.before_writer, Recovery::BackDelete)
                        };
                        Recovered {
                            content,
                            writer,
                            recovery: Some(recovery),
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// The data a backup taken at instant `time` must recover to: the initial data with the
/// writes of exactly the transactions whose COMMITTED Coordinator row exists by `time`,
/// applied in commit order.
pub fn committed_prefix(history: &History, time: i64) -> Vec<Vec<Content>> {
    let mut data: Vec<Vec<Content>> = history.snapshots[0]
        .1
        .tables
        .iter()
        .map(|slots| {
            slots
                .iter()
                .map(|slot| match slot {
                    Slot::Absent(_) => None,
                    Slot::Present(row) => Some((row.after.value, row.after.tx_id.clone())),
                })
                .collect()
        })
        .collect();
    let mut committed: Vec<(i64, usize)> = history
        .commit_times
        .iter()
        .enumerate()
        .filter_map(|(tx, at)| at.filter(|&at| at <= time).map(|at| (at, tx)))
        .collect();
    committed.sort_unstable();
    for (_, tx) in committed {
        for write in &history.plans[tx].writes {
            data[write.table][write.key] = write
                .value
                .map(|value| (Some(value), Some(history.tx_ids[tx].clone())));
        }
    }
    data
}

/// What became of one write of a committed transaction in the recovered data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// The record carries this write.
    Kept,
    /// The record carries a later write, of a transaction that committed after this one.
    Overwritten,
    /// The record carries an earlier write: this one is gone.
    Lost,
    /// A delete of a key that was absent: kept and lost look the same.
    Vacuous,
}

/// A committed transaction only part of which survives recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tear {
    pub tx: usize,
    /// The cut's metadata shows it: records carrying the transaction's id both keep and lose
    /// its writes, or a record it COMMITTED meets an ABORTED Coordinator row.
    pub visible: bool,
}

/// The transactions torn by recovering `cut`: some of their writes kept, others lost.
pub fn tears(history: &History, cut: &Cut, recovered: &[Vec<Recovered>]) -> Vec<Tear> {
    let mut found = Vec::new();
    for (tx, plan) in history.plans.iter().enumerate() {
        let Some(committed_at) = history.commit_times[tx] else {
            continue;
        };
        let id = &history.tx_ids[tx];
        let fate = |index: usize| {
            let write = plan.writes[index];
            if history.vacuous[tx][index] {
                return Fate::Vacuous;
            }
            match recovered[write.table][write.key].writer {
                Writer::Tx(writer) if writer == tx => Fate::Kept,
                Writer::Tx(writer) => {
                    let writer_committed_at = history.commit_times[writer]
                        .expect("recovered data only carries committed writes");
                    if writer_committed_at > committed_at {
                        Fate::Overwritten
                    } else {
                        Fate::Lost
                    }
                }
                Writer::Initial => Fate::Lost,
            }
        };
        let fates: Vec<Fate> = (0..plan.writes.len()).map(fate).collect();
        if !(fates.contains(&Fate::Kept) && fates.contains(&Fate::Lost)) {
            continue;
        }
        // Visible: among the records whose after image carries T's id in the cut, one keeps
        // T's write and one loses it.
        let mut keeps = false;
        let mut loses = false;
        let mut committed_but_aborted = false;
        for (index, write) in plan.writes.iter().enumerate() {
            let Slot::Present(row) = &cut.tables[write.table][write.key] else {
                continue;
            };
            if row.after.tx_id.as_deref() != Some(id.as_str()) {
                continue;
            }
            match fates[index] {
                Fate::Kept => keeps = true,
                Fate::Lost => loses = true,
                Fate::Overwritten | Fate::Vacuous => {}
            }
            if row.after.tx_state == Some(COMMITTED)
                && cut
                    .coordinator
                    .get(id)
                    .is_some_and(|entry| entry.state != COMMITTED)
            {
                committed_but_aborted = true;
            }
        }
        found.push(Tear {
            tx,
            visible: (keeps && loses) || committed_but_aborted,
        });
    }
    found
}

/// Every recovered record's writer is the initial load or a transaction that committed in
/// the history: recovery never resurrects an aborted write. A check of the simulator.
pub fn only_committed_writes_survive(history: &History, recovered: &[Vec<Recovered>]) -> bool {
    recovered
        .iter()
        .flatten()
        .all(|record| match record.writer {
            Writer::Initial => true,
            Writer::Tx(tx) => history.commit_times[tx].is_some(),
        })
}
