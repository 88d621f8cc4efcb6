//! A simulator of ScalarDB's Consensus Commit, written from `shared/scalardb-protocol.md`
//! (§1 record metadata, §4 lazy recovery, §5 commit protocol) and nothing else: it shares
//! no code with the crate's analysis.
//!
//! It runs a generated [`Script`] on one global clock: transactions prepare their records one
//! step per record, write the Coordinator state (the commit point), then commit or roll back
//! their records one by one; a reader may lazily recover any record; a transaction may crash
//! between any two steps. The state after every step is kept, so that backup cuts can be
//! taken at any instant. Besides what ScalarDB stores, every slot carries a *ghost*: which
//! write produced its current content, used only by the ground truth (`truth.rs`).

use std::collections::BTreeMap;
use std::fmt;

/// Three tables in two namespaces.
pub const TABLES: [(&str, &str); 3] = [
    ("bank", "accounts"),
    ("bank", "branches"),
    ("shop", "orders"),
];
/// Keys per table: few, so that transactions collide.
pub const KEYS: usize = 4;
/// The clock at the start of every history, in epoch ms.
pub const BASE_MS: i64 = 1_700_000_000_000;
/// `RecoveryHandler.TRANSACTION_LIFETIME_MILLIS` (§4), restated rather than imported.
pub const LIFETIME_MS: i64 = 15_000;
/// The transaction that loaded the initial committed rows.
pub const LOADER_TX: &str = "load";

pub const PREPARED: i64 = 1;
pub const DELETED: i64 = 2;
pub const COMMITTED: i64 = 3;
pub const ABORTED: i64 = 4;

/// Which write produced a slot's content: the initial load (or initial absence), or a
/// transaction of the script. Not stored by ScalarDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Writer {
    Initial,
    Tx(usize),
}

/// One image of a record: the user column `v` plus the five metadata columns. A record holds
/// an after image (`v`, `tx_*`) and a before image (`before_v`, `before_tx_*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub value: Option<i64>,
    pub tx_id: Option<String>,
    pub tx_state: Option<i64>,
    pub tx_version: Option<i64>,
    pub tx_prepared_at: Option<i64>,
    pub tx_committed_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub after: Image,
    pub before: Image,
    /// Ghost: the write the after image comes from.
    pub writer: Writer,
    /// Ghost: the write the before image comes from, or (for a record without a before
    /// image) the write the slot was absent since.
    pub before_writer: Writer,
}

impl Row {
    /// `TransactionResult.hasBeforeImage()` (§4).
    pub fn has_before_image(&self) -> bool {
        self.before.tx_id.is_some() || self.before.tx_version.is_some()
    }

    /// PREPARED or DELETED: waiting for its transaction's outcome.
    pub fn is_unresolved(&self) -> bool {
        matches!(self.after.tx_state, Some(PREPARED | DELETED))
    }

    fn is_unresolved_by(&self, tx_id: &str) -> bool {
        self.is_unresolved() && self.after.tx_id.as_deref() == Some(tx_id)
    }
}

/// A primary key's place in a table: a physical row, or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Ghost: the write the key is absent since.
    Absent(Writer),
    Present(Box<Row>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorEntry {
    pub state: i64,
    pub created_at: i64,
}

/// Everything stored at one instant: the tables' slots and the Coordinator's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub tables: Vec<Vec<Slot>>,
    pub coordinator: BTreeMap<String, CoordinatorEntry>,
}

/// ScalarDB version behaviour the history is written with.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// 3.16+: committing or rolling back a record sets every `before_*` to NULL; before,
    /// committed records keep a stale before image.
    pub nulls_before_images: bool,
    /// 3.19: records (and roll-forwards) are stamped with the Coordinator row's
    /// `tx_created_at`; before, with the committing process's clock.
    pub stamps_coordinator_time: bool,
}

/// How a key starts.
#[derive(Clone, Copy, Debug)]
pub enum Initial {
    Absent,
    /// Written by [`LOADER_TX`], COMMITTED, with this `tx_version`.
    Committed {
        value: i64,
        version: i64,
    },
    /// Present before the table was imported: NULL metadata (3.10+).
    Imported {
        value: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    pub table: usize,
    pub key: usize,
    /// `Some`: put (insert or update); `None`: delete.
    pub value: Option<i64>,
}

/// What a transaction does if the scheduler lets it run to the end.
#[derive(Clone, Copy, Debug)]
pub enum Fate {
    Commit,
    /// Aborts (say, validation fails) once this many records are prepared (capped at all).
    AbortAfterPrepares(usize),
    /// The process dies after this many steps of the transaction.
    CrashAfterSteps(usize),
}

#[derive(Clone, Debug)]
pub struct TxPlan {
    /// Distinct keys, 1 to 4 of them.
    pub writes: Vec<Write>,
    pub fate: Fate,
}

/// One scheduling decision: which runnable actor moves (`actor` modulo their number), which
/// unresolved record a reader recovers (`target` modulo their number), after how long.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub actor: u8,
    pub target: u8,
    pub pause_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub behaviour: Behaviour,
    /// `TABLES.len() * KEYS` entries, table-major.
    pub initial: Vec<Initial>,
    pub txs: Vec<TxPlan>,
    pub ticks: Vec<Tick>,
}

/// A simulated history: the state after every step, on the global clock.
#[derive(Clone, Debug)]
pub struct History {
    pub behaviour: Behaviour,
    pub tx_ids: Vec<String>,
    pub plans: Vec<TxPlan>,
    /// `snapshots[0]` is the initial state at `BASE_MS`; `snapshots[i]` the state after step i.
    pub snapshots: Vec<(i64, State)>,
    /// `events[i]` describes the step that produced `snapshots[i + 1]`.
    pub events: Vec<String>,
    /// When each transaction's COMMITTED Coordinator row was written, if ever.
    pub commit_times: Vec<Option<i64>>,
    /// Per transaction and write: a delete of a key that was absent when it was prepared (a
    /// metadata-only tombstone). Rolling it forward or back leaves the same (absent) data.
    pub vacuous: Vec<Vec<bool>>,
}

pub fn tx_id(index: usize) -> String {
    format!("tx-{index}")
}

pub fn table_name(table: usize) -> String {
    let (namespace, name) = TABLES[table];
    format!("{namespace}.{name}")
}

fn at(time: i64) -> String {
    format!("+{}ms", time - BASE_MS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Preparing `writes[next]`, or deciding the outcome once all are prepared.
    Preparing {
        next: usize,
    },
    /// Committing `writes[next]` after the commit point.
    Committing {
        next: usize,
    },
    /// Rolling back `writes[next]`, one of the `prepared` first writes.
    RollingBack {
        next: usize,
    },
    Done,
    Crashed,
}

struct Live {
    phase: Phase,
    prepared: usize,
    steps: usize,
}

struct Simulator {
    behaviour: Behaviour,
    tx_ids: Vec<String>,
    plans: Vec<TxPlan>,
    live: Vec<Live>,
    state: State,
    now: i64,
    commit_times: Vec<Option<i64>>,
    vacuous: Vec<Vec<bool>>,
}

/// What an actor did in one step, for the timeline.
type Event = String;

/// Runs the script to its last tick (or until nobody can move).
pub fn simulate(script: &Script) -> History {
    let mut coordinator = BTreeMap::new();
    let mut tables = Vec::new();
    for table in 0..TABLES.len() {
        let mut slots = Vec::new();
        for key in 0..KEYS {
            slots.push(match script.initial[table * KEYS + key] {
                Initial::Absent => Slot::Absent(Writer::Initial),
                Initial::Committed { value, version } => {
                    coordinator.insert(
                        LOADER_TX.to_owned(),
                        CoordinatorEntry {
                            state: COMMITTED,
                            created_at: BASE_MS - 1_500,
                        },
                    );
                    Slot::Present(Box::new(Row {
                        after: Image {
                            value: Some(value),
                            tx_id: Some(LOADER_TX.to_owned()),
                            tx_state: Some(COMMITTED),
                            tx_version: Some(version),
                            tx_prepared_at: Some(BASE_MS - 2_000),
                            tx_committed_at: Some(BASE_MS - 1_500),
                        },
                        before: Image::default(),
                        writer: Writer::Initial,
                        before_writer: Writer::Initial,
                    }))
                }
                Initial::Imported { value } => Slot::Present(Box::new(Row {
                    after: Image {
                        value: Some(value),
                        ..Image::default()
                    },
                    before: Image::default(),
                    writer: Writer::Initial,
                    before_writer: Writer::Initial,
                })),
            });
        }
        tables.push(slots);
    }
    let initial = State {
        tables,
        coordinator,
    };
    let mut sim = Simulator {
        behaviour: script.behaviour,
        tx_ids: (0..script.txs.len()).map(tx_id).collect(),
        plans: script.txs.clone(),
        live: script
            .txs
            .iter()
            .map(|_| Live {
                phase: Phase::Preparing { next: 0 },
                prepared: 0,
                steps: 0,
            })
            .collect(),
        state: initial.clone(),
        now: BASE_MS,
        commit_times: vec![None; script.txs.len()],
        vacuous: script
            .txs
            .iter()
            .map(|plan| vec![false; plan.writes.len()])
            .collect(),
    };
    let mut snapshots = vec![(BASE_MS, initial)];
    let mut events = Vec::new();
    for tick in &script.ticks {
        let mut actors: Vec<Option<usize>> = (0..sim.live.len())
            .filter(|&i| !matches!(sim.live[i].phase, Phase::Done | Phase::Crashed))
            .map(Some)
            .collect();
        let unresolved = sim.unresolved_records();
        if !unresolved.is_empty() {
            actors.push(None);
        }
        if actors.is_empty() {
            break;
        }
        sim.now += tick.pause_ms;
        let event = match actors[usize::from(tick.actor) % actors.len()] {
            Some(tx) => sim.step_tx(tx),
            None => {
                let (table, key) = unresolved[usize::from(tick.target) % unresolved.len()];
                sim.recover(table, key)
            }
        };
        events.push(format!("{} {event}", at(sim.now)));
        snapshots.push((sim.now, sim.state.clone()));
    }
    History {
        behaviour: script.behaviour,
        tx_ids: sim.tx_ids,
        plans: sim.plans,
        snapshots,
        events,
        commit_times: sim.commit_times,
        vacuous: sim.vacuous,
    }
}

impl Simulator {
    fn unresolved_records(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (table, slots) in self.state.tables.iter().enumerate() {
            for (key, slot) in slots.iter().enumerate() {
                if matches!(slot, Slot::Present(row) if row.is_unresolved()) {
                    found.push((table, key));
                }
            }
        }
        found
    }

    /// One step of transaction `tx`: a prepare, the Coordinator write, or one record's commit
    /// or roll back.
    fn step_tx(&mut self, tx: usize) -> Event {
        let id = self.tx_ids[tx].clone();
        let writes = self.plans[tx].writes.clone();
        let phase = self.live[tx].phase;
        let event = match phase {
            Phase::Preparing { next } => {
                let abort_at = match self.plans[tx].fate {
                    Fate::AbortAfterPrepares(n) => Some(n.min(writes.len())),
                    _ => None,
                };
                if abort_at == Some(next) {
                    self.begin_roll_back(tx);
                    format!("{id} aborts: {}", self.abort_state(&id))
                } else if next == writes.len() {
                    self.commit_state(tx)
                } else {
                    let write = writes[next];
                    match self.prepare(tx, next) {
                        Ok(event) => {
                            self.live[tx].prepared += 1;
                            self.live[tx].phase = Phase::Preparing { next: next + 1 };
                            event
                        }
                        Err(holder) => {
                            self.begin_roll_back(tx);
                            format!(
                                "{id} cannot prepare {}[{}] ({holder} holds it) and aborts: {}",
                                table_name(write.table),
                                write.key,
                                self.abort_state(&id)
                            )
                        }
                    }
                }
            }
            Phase::Committing { next } => {
                let write = writes[next];
                let created_at = self.state.coordinator[&id].created_at;
                let event = self.commit_record(&id, write.table, write.key, created_at);
                self.live[tx].phase = if next + 1 == writes.len() {
                    Phase::Done
                } else {
                    Phase::Committing { next: next + 1 }
                };
                format!("{id} commits {}", event)
            }
            Phase::RollingBack { next } => {
                let write = writes[next];
                let event = self.roll_back_record(&id, write.table, write.key);
                self.live[tx].phase = if next + 1 >= self.live[tx].prepared {
                    Phase::Done
                } else {
                    Phase::RollingBack { next: next + 1 }
                };
                format!("{id} rolls back {}", event)
            }
            Phase::Done | Phase::Crashed => unreachable!("only runnable transactions step"),
        };
        let live = &mut self.live[tx];
        live.steps += 1;
        if let Fate::CrashAfterSteps(limit) = self.plans[tx].fate {
            if live.steps >= limit && live.phase != Phase::Done {
                live.phase = Phase::Crashed;
                return format!("{event}; then {id} crashes");
            }
        }
        event
    }

    fn begin_roll_back(&mut self, tx: usize) {
        let live = &mut self.live[tx];
        live.phase = if live.prepared == 0 {
            Phase::Done
        } else {
            Phase::RollingBack { next: 0 }
        };
    }

    /// §3: `putIfNotExists(T, ABORTED, now)`; a conflict means someone already decided.
    fn abort_state(&mut self, id: &str) -> String {
        match self.state.coordinator.get(id) {
            None => {
                self.state.coordinator.insert(
                    id.to_owned(),
                    CoordinatorEntry {
                        state: ABORTED,
                        created_at: self.now,
                    },
                );
                "Coordinator ABORTED".to_owned()
            }
            Some(entry) => {
                assert_eq!(entry.state, ABORTED, "{id} aborts after its commit point");
                "Coordinator already ABORTED".to_owned()
            }
        }
    }

    /// §5 step 4, the commit point; loses to an ABORTED row a lazy reader wrote.
    fn commit_state(&mut self, tx: usize) -> String {
        let id = self.tx_ids[tx].clone();
        if self.state.coordinator.contains_key(&id) {
            self.begin_roll_back(tx);
            return format!("{id} finds the Coordinator ABORTED by a reader and aborts");
        }
        self.state.coordinator.insert(
            id.clone(),
            CoordinatorEntry {
                state: COMMITTED,
                created_at: self.now,
            },
        );
        self.commit_times[tx] = Some(self.now);
        self.live[tx].phase = Phase::Committing { next: 0 };
        format!("{id} COMMIT POINT: Coordinator COMMITTED")
    }

    /// §5 step 2 for one record. `Err` names the transaction whose PREPARED/DELETED record
    /// makes the conditional write fail.
    fn prepare(&mut self, tx: usize, index: usize) -> Result<Event, String> {
        let id = self.tx_ids[tx].clone();
        let write = self.plans[tx].writes[index];
        let now = self.now;
        let slot = &mut self.state.tables[write.table][write.key];
        let state = if write.value.is_some() {
            PREPARED
        } else {
            DELETED
        };
        let new_row = match slot {
            Slot::Present(row) if row.is_unresolved() => {
                return Err(row.after.tx_id.clone().unwrap_or_default());
            }
            Slot::Absent(since) => {
                // Put-if-not-exists: a fresh record, or a metadata-only tombstone.
                self.vacuous[tx][index] = write.value.is_none();
                Row {
                    after: Image {
                        value: write.value,
                        tx_id: Some(id.clone()),
                        tx_state: Some(state),
                        tx_version: Some(1),
                        tx_prepared_at: Some(now),
                        tx_committed_at: None,
                    },
                    before: Image::default(),
                    writer: Writer::Tx(tx),
                    before_writer: *since,
                }
            }
            Slot::Present(row) => {
                let mut before = row.after.clone();
                // 0 is the sentinel for "the previous version had NULL metadata".
                before.tx_version = Some(row.after.tx_version.unwrap_or(0));
                Row {
                    after: Image {
                        value: write.value.or(row.after.value),
                        tx_id: Some(id.clone()),
                        tx_state: Some(state),
                        tx_version: Some(row.after.tx_version.map_or(1, |v| v + 1)),
                        tx_prepared_at: Some(now),
                        tx_committed_at: row.after.tx_committed_at,
                    },
                    before,
                    writer: Writer::Tx(tx),
                    before_writer: row.writer,
                }
            }
        };
        let what = match write.value {
            Some(v) => format!("put {v}"),
            None if matches!(slot, Slot::Absent(_)) => "delete (tombstone)".to_owned(),
            None => "delete".to_owned(),
        };
        let version = new_row.after.tx_version.unwrap_or_default();
        *slot = Slot::Present(Box::new(new_row));
        Ok(format!(
            "{id} prepares {}[{}]: {what} (v{version})",
            table_name(write.table),
            write.key
        ))
    }

    fn committed_at(&self, created_at: i64) -> i64 {
        if self.behaviour.stamps_coordinator_time {
            created_at
        } else {
            self.now
        }
    }

    /// §5 step 5 / §4 roll forward of one record, conditioned on `tx_id == T` and an
    /// unresolved state; a record someone else resolved is left alone.
    fn commit_record(&mut self, id: &str, table: usize, key: usize, created_at: i64) -> Event {
        let committed_at = self.committed_at(created_at);
        let nulls = self.behaviour.nulls_before_images;
        let slot = &mut self.state.tables[table][key];
        let place = format!("{}[{key}]", table_name(table));
        match slot {
            Slot::Present(row) if row.is_unresolved_by(id) => {
                if row.after.tx_state == Some(DELETED) {
                    *slot = Slot::Absent(row.writer);
                    format!("{place}: physically deleted")
                } else {
                    row.after.tx_state = Some(COMMITTED);
                    row.after.tx_committed_at = Some(committed_at);
                    if nulls {
                        row.before = Image::default();
                    }
                    format!("{place}: COMMITTED")
                }
            }
            _ => format!("{place}: nothing to do (already resolved)"),
        }
    }

    /// §4 roll back of one record: restore the before image (metadata included, version 0
    /// back to NULL) or delete a record that has none.
    fn roll_back_record(&mut self, id: &str, table: usize, key: usize) -> Event {
        let nulls = self.behaviour.nulls_before_images;
        let slot = &mut self.state.tables[table][key];
        let place = format!("{}[{key}]", table_name(table));
        match slot {
            Slot::Present(row) if row.is_unresolved_by(id) => {
                if row.has_before_image() {
                    let mut restored = row.before.clone();
                    if restored.tx_version == Some(0) {
                        restored.tx_version = None;
                    }
                    row.after = restored;
                    row.writer = row.before_writer;
                    if nulls {
                        row.before = Image::default();
                    }
                    format!("{place}: before image restored")
                } else {
                    *slot = Slot::Absent(row.before_writer);
                    format!("{place}: deleted (no before image)")
                }
            }
            _ => format!("{place}: nothing to do (already resolved)"),
        }
    }

    /// §4: a reader meets an unresolved record and follows the Coordinator; without a row,
    /// it aborts the transaction once the record is expired (the roll back itself is a later
    /// step), and otherwise leaves it in flight.
    fn recover(&mut self, table: usize, key: usize) -> Event {
        let Slot::Present(row) = &self.state.tables[table][key] else {
            unreachable!("only unresolved records are recovered");
        };
        let id = row
            .after
            .tx_id
            .clone()
            .expect("an unresolved record has a tx_id");
        let prepared_at = row.after.tx_prepared_at.expect("and a tx_prepared_at");
        let place = format!("{}[{key}]", table_name(table));
        match self.state.coordinator.get(&id).copied() {
            Some(CoordinatorEntry {
                state: COMMITTED,
                created_at,
            }) => format!(
                "reader rolls {id} forward: {}",
                self.commit_record(&id, table, key, created_at)
            ),
            Some(_) => format!(
                "reader rolls {id} back: {}",
                self.roll_back_record(&id, table, key)
            ),
            None if self.now > prepared_at + LIFETIME_MS => {
                format!(
                    "reader finds {place} of {id} expired: {}",
                    self.abort_state(&id)
                )
            }
            None => format!("reader finds {place} of {id} in flight and leaves it"),
        }
    }
}

impl History {
    /// The instant of snapshot `index`.
    pub fn time(&self, index: usize) -> i64 {
        self.snapshots[index].0
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history ({}; tx_committed_at from {}):",
            if self.behaviour.nulls_before_images {
                "3.16+, before images NULLed on commit and roll back"
            } else {
                "3.10-3.15, before images kept"
            },
            if self.behaviour.stamps_coordinator_time {
                "the Coordinator row (3.19)"
            } else {
                "the committing clock"
            }
        )?;
        writeln!(f, "  initial state:")?;
        for (table, slots) in self.snapshots[0].1.tables.iter().enumerate() {
            write!(f, "    {}:", table_name(table))?;
            for (key, slot) in slots.iter().enumerate() {
                write!(f, " [{key}] {}", SlotView(slot))?;
            }
            writeln!(f)?;
        }
        for (tx, plan) in self.plans.iter().enumerate() {
            write!(f, "  {}:", self.tx_ids[tx])?;
            for write in &plan.writes {
                match write.value {
                    Some(v) => write!(f, " put {}[{}]={v};", table_name(write.table), write.key)?,
                    None => write!(f, " delete {}[{}];", table_name(write.table), write.key)?,
                }
            }
            writeln!(f, " fate {:?}", plan.fate)?;
        }
        writeln!(f, "  steps (snapshot index: event):")?;
        for (index, event) in self.events.iter().enumerate() {
            writeln!(f, "    {}: {event}", index + 1)?;
        }
        Ok(())
    }
}

/// One slot, compactly: `COMMITTED tx-1 v2 =7 (before tx-0 v1 =3)`.
pub struct SlotView<'a>(pub &'a Slot);

impl fmt::Display for SlotView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = match self.0 {
            Slot::Absent(_) => return f.write_str("absent"),
            Slot::Present(row) => row,
        };
        let image = |image: &Image| {
            let state = match image.tx_state {
                None => "NULL".to_owned(),
                Some(PREPARED) => "PREPARED".to_owned(),
                Some(DELETED) => "DELETED".to_owned(),
                Some(COMMITTED) => "COMMITTED".to_owned(),
                Some(other) => other.to_string(),
            };
            format!(
                "{state} {} v{} ={}",
                image.tx_id.as_deref().unwrap_or("NULL"),
                image
                    .tx_version
                    .map_or_else(|| "NULL".to_owned(), |v| v.to_string()),
                image
                    .value
                    .map_or_else(|| "NULL".to_owned(), |v| v.to_string())
            )
        };
        write!(f, "{}", image(&row.after))?;
        if row.has_before_image() {
            write!(f, " (before {})", image(&row.before))?;
        }
        Ok(())
    }
}
