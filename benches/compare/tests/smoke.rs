//! Every workload at a tiny size: each system stores every row it was given (each
//! ingest checks its own row count after the timed part), the three analytics answers
//! agree, and the report renders. No timing is asserted.

use orderlog_compare::datasets::totals_agree;
use orderlog_compare::peers::System;
use orderlog_compare::report::{BEGIN, END, replace_section};
use orderlog_compare::workload::Result;
use orderlog_compare::{BATCHES, Plan, WRITERS, render, run};

#[test]
fn every_workload_runs_and_agrees() -> Result<()> {
    let plan = Plan::tiny();
    let r = run(&plan, &|_| {})?;

    // Every cell of the grid ran, with the commits asked for.
    assert_eq!(r.cells.len(), System::ALL.len() * BATCHES.len() * WRITERS.len());
    for c in &r.cells {
        let i = BATCHES.iter().position(|&b| b == c.batch).unwrap_or(0);
        let commits = plan.commits[i].div_ceil(c.writers as u64) * c.writers as u64;
        assert_eq!(c.ingest.commits, commits, "{} b{} w{}", c.system.name(), c.batch, c.writers);
        assert_eq!(c.ingest.ops, commits * c.batch as u64);
        assert_eq!(c.ingest.latencies.len() as u64, commits);
    }
    assert_eq!(r.naive.ops, plan.naive_adds);

    // Every data set: all four reopen rows, three answers that agree and count every order.
    assert_eq!(r.datasets.len(), 1);
    let d = &r.datasets[0];
    assert_eq!(d.orders, 5_000);
    assert_eq!(d.reopens.len(), if cfg!(feature = "fjall") { 4 } else { 3 });
    assert!(d.reopens.iter().all(|o| o.disk_bytes > 0));
    assert_eq!(d.queries.len(), 3);
    for q in &d.queries {
        assert!(totals_agree(&d.queries[0].totals, &q.totals), "{}", q.system);
        assert_eq!(q.totals.values().map(|(n, _)| n).sum::<u64>(), 5_000);
        assert_eq!(q.totals.len(), 4, "four statuses");
    }

    // The report renders every section, and drops into the docs between the markers.
    let text = render(&r);
    for heading in [
        "Physical limits",
        "Durable ingest",
        "Commit latency",
        "Ratios",
        "Reopen",
        "Analytics",
        "Goals",
    ] {
        assert!(text.contains(heading), "{heading}");
    }
    let doc = replace_section("# Benchmarks\n", &text);
    assert!(doc.contains(BEGIN) && doc.contains(END) && doc.contains("okaywal"));
    Ok(())
}
