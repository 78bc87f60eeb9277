//! docs/schema.md must say what the code writes: its generated section equals
//! `kvmtrace_ingest::schema::markdown()`, and every table an ingest writes is documented.

use std::path::Path;

const BEGIN: &str = "<!-- BEGIN GENERATED: kvmtrace schema -->";
const END: &str = "<!-- END GENERATED -->";

fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema.md")
}

#[test]
fn schema_doc_matches_code() {
    let doc = std::fs::read_to_string(doc_path()).expect("docs/schema.md");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = kvmtrace_ingest::schema::markdown();
    if std::env::var_os("KVMTRACE_BLESS").is_some() {
        let new = format!("{}\n{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(doc_path(), new).expect("write docs/schema.md");
        return;
    }
    assert_eq!(
        doc[start..end].trim(),
        generated.trim(),
        "docs/schema.md is out of date: run `KVMTRACE_BLESS=1 cargo test -p kvmtrace-ingest --test it schema_doc`"
    );
}

#[test]
fn every_written_table_is_documented() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("ds");
    let (input, opts) = crate::common::synth_small(&out);
    let report = kvmtrace_ingest::run(&input, &opts).expect("ingest synth-small");
    let doc = std::fs::read_to_string(doc_path()).expect("docs/schema.md");
    let documented: Vec<&str> = kvmtrace_ingest::schema::tables()
        .iter()
        .map(|t| t.name)
        .collect();
    for (table, _) in &report.tables {
        let base_name = table.strip_prefix("guest_").unwrap_or(table);
        let is_tracepoint = base_name.contains("__");
        assert!(
            is_tracepoint
                || documented.contains(&table.as_str())
                || documented.contains(&base_name)
                || doc.contains(&format!("`{table}`")),
            "table {table} is written but not documented in docs/schema.md"
        );
    }
}
