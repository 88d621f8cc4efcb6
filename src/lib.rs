//! scalardb-verify: prove whether a backup of a ScalarDB-managed database restores to a
//! transactionally consistent state.
pub mod runtime;
