//! `Deployment::from_properties`: any text, as one service's properties file or (split at
//! a NUL byte) two services' files, is a routed deployment or a named error, never a panic.
//! Building it reads no file; opening its single storage may read a SQLite file's header
//! (a path the fuzzer wrote), never write one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scalardb_verify::config::{Deployment, PropertiesFile};

mod common;

#[global_allocator]
static BUDGET: common::Budget = common::Budget::new(64 << 20);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files: Vec<PropertiesFile> = text
        .splitn(2, '\0')
        .enumerate()
        .map(|(i, part)| PropertiesFile {
            path: format!("service{i}.properties").into(),
            text: part.to_owned(),
        })
        .collect();
    if let Ok(deployment) = Deployment::from_properties(&files, None) {
        for storage in deployment.storages() {
            let _ = storage.to_string();
            let _ = storage.endpoint().display();
        }
        let _ = deployment.storage(deployment.coordinator_storage()).to_string();
        for service in deployment.services() {
            let _ = deployment.storage(service.storage_for_namespace("bank_a"));
            let _ = deployment.storage(service.storage_for_table("coordinator", "state"));
        }
        for (id, _) in deployment.storages_with_ids() {
            let _ = deployment.routes_table_to("bank_a", "accounts", id);
            let _ = deployment.is_mapped(id);
        }
        let _ = deployment.only_storage().map(|s| s.endpoint().open().is_ok());
    }
});
