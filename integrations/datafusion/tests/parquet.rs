//! TPC-H as Parquet: generated once into a folder, then scanned by queries
//! that give the same answers as the same tables generated in memory.

use std::path::Path;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{SessionConfig, SessionContext};
use memledger_datafusion::parquet_data::{self, Generated, MANIFEST};
use memledger_datafusion::tpch;

const SCALE: f64 = 0.01;

fn context() -> SessionContext {
    SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(1024),
    )
}

/// Query `n`'s result as a printed table.
async fn answer(ctx: &SessionContext, n: usize) -> String {
    let batches = ctx
        .sql(tpch::query(n).unwrap())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

fn parquet_files(dir: &Path) -> usize {
    tpch::TABLES
        .iter()
        .map(|t| {
            std::fs::read_dir(dir.join(t))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "parquet")
                })
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_the_same_answers_from_parquet_as_from_memory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tpch");
    let generated = parquet_data::write_tables(&dir, SCALE, 3, 2).unwrap();
    // Six scaled tables in three files each, nation and region in one.
    assert_eq!(generated, Generated::Written { files: 6 * 3 + 2 });
    assert_eq!(parquet_files(&dir), 20);
    assert_eq!(parquet_data::scale_of(&dir).unwrap(), SCALE);
    // Only the finished folder is left beside it: no temporary folder.
    let entries: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("tpch")]);
    // A data set is never overwritten.
    assert!(parquet_data::write_tables(&dir, SCALE, 3, 2).is_err());

    let from_parquet = context();
    parquet_data::register_tables(&from_parquet, &dir)
        .await
        .unwrap();
    let in_memory = context();
    tpch::register_tables(&in_memory, SCALE, 2, 1024).unwrap();

    let lineitem_rows = |ctx: SessionContext| async move {
        let batches = ctx
            .sql("select count(*) from lineitem")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    };
    assert_eq!(
        lineitem_rows(from_parquet.clone()).await,
        lineitem_rows(in_memory.clone()).await
    );
    for n in [1, 6] {
        let parquet = answer(&from_parquet, n).await;
        let memory = answer(&in_memory, n).await;
        assert_eq!(parquet, memory, "q{n} differs between Parquet and memory");
        // q1 has one row per (returnflag, linestatus) pair, q6 one sum:
        // a table with rows, not an empty result, was compared.
        let data_rows = parquet.lines().filter(|l| l.starts_with("| ")).count() - 1;
        assert_eq!(data_rows, if n == 1 { 4 } else { 1 }, "q{n}:\n{parquet}");
    }
}

#[tokio::test]
async fn a_folder_without_a_complete_data_set_is_refused() {
    let root = tempfile::tempdir().unwrap();
    // What an interrupted generation leaves: table folders, no manifest.
    let partial = root.path().join("partial");
    std::fs::create_dir_all(partial.join("lineitem")).unwrap();
    let ctx = context();
    let err = parquet_data::register_tables(&ctx, &partial)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(MANIFEST), "{err}");
    assert!(!ctx.table_exist("lineitem").unwrap());
    // A bad scale writes nothing.
    assert!(parquet_data::write_tables(&root.path().join("x"), -1.0, 2, 1).is_err());
    assert!(!root.path().join("x").exists());
}
