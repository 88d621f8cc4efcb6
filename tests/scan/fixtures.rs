//! The same fixture gives the same report on every backend, equal to its expected.json.

use scalardb_verify::runtime::local::Engine;

use crate::support::*;

fn expected_code(state: &str) -> i32 {
    match std::fs::read_to_string(fixture(state).join("verdict"))
        .unwrap()
        .trim()
    {
        "consistent" | "recoverable" => 0,
        "inconsistent" => 1,
        other => panic!("unexpected verdict {other}"),
    }
}

#[test]
fn bank_fixtures_on_sqlite_match_their_expected_reports() {
    for state in STATES {
        let (_dir, path) = sqlite_copy(state);
        let run = scan_json(&sqlite_url(&path), &[]);
        assert_eq!(run.code, expected_code(state), "{state}: {}", run.stderr);
        assert_same_report(&normalized(run.json()), &expected(state), state);
    }
}

#[test]
fn scanning_a_sqlite_backup_never_modifies_it() {
    let (_dir, path) = sqlite_copy("recoverable");
    let before = std::fs::read(&path).unwrap();
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the backup file changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["bank.sqlite"],
        "files appeared beside the backup"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_fixtures_on_postgres_match_their_expected_reports() {
    let server = start(Engine::Postgres, None).await;
    for state in STATES {
        let database = format!("bank_{}", state.replace('-', "_"));
        server
            .execute_sql(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        server
            .load_sql_file(&fixture(state).join("postgres.sql"), Some(&database))
            .await
            .unwrap_or_else(|e| panic!("load {state}: {}", scalardb_verify::scan::error_chain(&e)));
        let run = scan_json(&server.url_for(&database), &[]);
        assert_eq!(run.code, expected_code(state), "{state}: {}", run.stderr);
        assert_same_report(&normalized(run.json()), &expected(state), state);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_fixtures_on_mariadb_match_their_expected_reports() {
    let server = start(Engine::MariaDb, None).await;
    for state in STATES {
        server
            .load_sql_file(&fixture(state).join("mysql.sql"), None)
            .await
            .unwrap_or_else(|e| panic!("load {state}: {}", scalardb_verify::scan::error_chain(&e)));
        let run = scan_json(&server.url(), &[]);
        assert_eq!(run.code, expected_code(state), "{state}: {}", run.stderr);
        assert_same_report(&normalized(run.json()), &expected(state), state);
        server
            .execute_sql(
                "DROP DATABASE bank; DROP DATABASE ledger; DROP DATABASE coordinator; \
                 DROP DATABASE scalardb;",
            )
            .await
            .unwrap();
    }
    server.stop().await.unwrap();
}
