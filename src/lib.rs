//! scalardb-verify: prove whether a backup of a ScalarDB-managed database restores to a
//! transactionally consistent state.
//!
//! Module map:
//! - `model`: ScalarDB's domain (states, record metadata, the Coordinator lookup rule).
//! - `analyze`: pure analysis, observation in, predictions, findings and verdict out.
pub mod analyze;
pub mod model;
pub mod runtime;
