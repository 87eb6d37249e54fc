//! Process crashes: the store in a child process, killed with SIGKILL at random moments.
//!
//! The test binary re-executes itself (`ORDERLOG_CRASH_CHILD_DIR` set, running only the
//! ignored test `kill_loop::child`): the child opens an `OrderStore` on the real file
//! system under `SyncPolicy::Always` (small segments, no background compactor), resumes
//! the workload drawn from the seed where the store's log ends (`apply`, `apply_batch`,
//! refused batches, `compact`), and prints `acked <lsn> ...` after every acknowledged write.
//! The parent reads those lines over a pipe and SIGKILLs the child after a seeded random
//! number of acknowledgements (plus a random few microseconds, so the kill lands anywhere
//! in the next write, sync, segment roll or compaction), then reopens the store and checks:
//! every acknowledged LSN is at or before the log's end, the log ends no later than the
//! last write the child could have tried, and the state equals the reference model folded
//! up to that LSN (so every acknowledged batch is in it, whole, and at most a contiguous
//! run of unacknowledged writes follows). Each store is killed several times in a row, so
//! recovery also runs on stores that were themselves recovered.
//!
//! SIGKILL keeps the page cache: this is a process crash, not a power cut (see
//! `power_loss`). `ORDERLOG_CRASH_ITERS=N` runs N kills (default 100).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::ExitStatusExt;

use orderlog_snapshot::SnapshotStore;
use orderlog_store::{CompactionOptions, OrderStore, StoreOptions, SyncPolicy, WalOptions};
use orderlog_wal::killpoint::KILL_POINT_VAR;
use orderlog_wal::{KillPoint, verify_log};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::workload::{Op, Workload};

pub(crate) const CHILD_DIR: &str = "ORDERLOG_CRASH_CHILD_DIR";
pub(crate) const CHILD_SEED: &str = "ORDERLOG_CRASH_CHILD_SEED";
/// Kills per store directory.
const KILLS_PER_STORE: u64 = 4;

fn options() -> StoreOptions {
    StoreOptions {
        wal: WalOptions {
            segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN * 4,
            sync_policy: SyncPolicy::Always,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// Set for a child that is to compact after every this many writes and roll the
/// smallest segments (the power-cut sweep: its first operations hold several publishes).
pub(crate) const COMPACT_EVERY_VAR: &str = "ORDERLOG_CRASH_CHILD_COMPACT_EVERY";
/// Set for a child under which the power goes off ([`Death::PowerOff`]).
pub(crate) const POWER_OFF_VAR: &str = "ORDERLOG_CRASH_CHILD_POWER_OFF";

fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The child's side: runs the workload forever (until killed), printing `acked <lsn>
/// <durable lsn> <µs since the epoch>` after each acknowledged write. Under `Always` with
/// the default backend, or under the policy and backend `CASE_VAR` names (the power-cut
/// tests); see [`COMPACT_EVERY_VAR`] and [`POWER_OFF_VAR`].
#[test]
#[ignore = "the child process of the kill loops and the power-cut tests"]
fn child() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) else {
        return;
    };
    let seed: u64 = seed.parse().expect("seed");
    let mut options = match std::env::var(crate::kill_writers::CASE_VAR) {
        Ok(case) => crate::kill_writers::options(&case),
        Err(_) => options(),
    };
    let compact_every: u64 = std::env::var(COMPACT_EVERY_VAR).map_or(0, |v| v.parse().expect("n"));
    if compact_every > 0 {
        options.wal.segment_bytes = orderlog_wal::options::SEGMENT_BYTES_MIN;
    }
    // With the power off under it, every store error ends the child with
    // POWER_OFF_EXIT; the parent checks that the power was off indeed.
    let power_off = std::env::var_os(POWER_OFF_VAR).is_some();
    let failed = |what: &str, e: &dyn std::fmt::Display| -> ! {
        if power_off {
            println!("failed {what}: {e}");
            std::process::exit(POWER_OFF_EXIT);
        }
        panic!("child: {what}: {e}")
    };
    let store = OrderStore::open(&dir, options).unwrap_or_else(|e| failed("open", &e));
    let mut work = Workload::at(seed, store.last_lsn());
    let mut out = std::io::stdout().lock();
    writeln!(out, "opened {}", store.last_lsn()).expect("stdout");
    out.flush().expect("flush");
    loop {
        match work.next_op() {
            Op::Write { events, single, valid } => {
                let got = if single { store.apply(events[0]) } else { store.apply_batch(&events) };
                match (got, valid) {
                    (Ok(lsn), true) => {
                        assert_eq!(lsn, work.lsn(), "child: unexpected LSN");
                        let line = format!("acked {lsn} {} {}", store.durable_lsn(), micros_now());
                        writeln!(out, "{line}").expect("stdout");
                        out.flush().expect("flush");
                        if compact_every > 0 && lsn % compact_every == 0 {
                            store.compact().unwrap_or_else(|e| failed("compact", &e));
                        }
                    }
                    (Err(orderlog_store::StoreError::Mutation(_)), false) => {}
                    (Err(e), _) if !matches!(e, orderlog_store::StoreError::Mutation(_)) => {
                        failed("write", &e)
                    }
                    (got, _) => panic!("child: store and model disagree on {events:?}: {got:?}"),
                }
            }
            Op::Compact => {
                store.compact().unwrap_or_else(|e| failed("compact", &e));
            }
        }
    }
}

/// Kills the child if the parent panics first.
pub(crate) struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The exit code of a child that stopped on a store error with the power off under it
/// (any other ending of such a child is a failure).
pub(crate) const POWER_OFF_EXIT: i32 = 75;

/// How a child dies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Death {
    /// SIGKILL from the parent after this many acknowledgements and microseconds.
    Sigkill { acks: usize, delay_us: u64 },
    /// `abort` by the child itself at the `nth` passage of a named kill point.
    At { point: KillPoint, nth: u64 },
    /// The power goes off under the child at a file-system operation (a crash file
    /// system's `cut_power_after`): it fails from then on and ends by itself, or is
    /// SIGKILLed after this many acknowledgements if its writes never reach the file
    /// system (a policy that does not sync).
    PowerOff { acks: usize, delay_us: u64 },
}

/// Starts a child on `dir` and lets it die as `death` says; returns the LSN it opened at
/// (`None`: it died while opening) and the LSNs it acknowledged.
fn kill_once(dir: &Path, seed: u64, death: Death) -> (Option<u64>, Vec<u64>) {
    let (opened, acked) = run_child("kill_loop::child", dir, seed, &[], death);
    let lsn = |a: &String| a.split_whitespace().next().and_then(|l| l.parse().ok());
    (opened, acked.iter().map(|a| lsn(a).expect("lsn")).collect())
}

/// Runs the ignored test `child_test` of this binary as a child process on `dir` (with
/// `seed` and `env`), reading its `opened <lsn>` and `acked <...>` lines, and lets it die
/// as `death` says (a `Sigkill` counts `acked` lines). Returns the LSN it opened at
/// (`None`: it died while opening) and what followed each `acked `.
pub(crate) fn run_child(
    child_test: &str,
    dir: &Path,
    seed: u64,
    env: &[(&str, String)],
    death: Death,
) -> (Option<u64>, Vec<String>) {
    let exe = std::env::current_exe().expect("current_exe");
    let spawning = crate::SPAWN.write().unwrap_or_else(|p| p.into_inner());
    // Through a shell that turns core dumps off: a child that aborts leaves no file.
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -c 0; exec \"$0\" \"$@\""])
        .arg(exe)
        .args(["--exact", child_test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove(KILL_POINT_VAR)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Death::At { point, nth } = death {
        command.env(KILL_POINT_VAR, format!("{point}@{nth}"));
    }
    let child = command.spawn().expect("spawn the child");
    let watchdog = Watchdog::start(child.id());
    let mut child = KillOnDrop(child);
    let mut spawning = Some(spawning);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut opened = None;
    let mut acked = Vec::new();
    let mut killed = false;
    // Read to the end, also after the kill: what the child printed before it died is
    // what it acknowledged.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        // libtest may print `test kill_loop::child ... ` before the child's first line.
        let line = line.rsplit("... ").next().unwrap_or_default();
        if let Some(lsn) = line.strip_prefix("opened ") {
            // The child has exec'd and opened the store: other tests may open theirs.
            drop(spawning.take());
            opened = Some(lsn.parse().expect("lsn"));
        } else if let Some(ack) = line.strip_prefix("acked ") {
            acked.push(ack.to_string());
            if let Death::Sigkill { acks, delay_us } | Death::PowerOff { acks, delay_us } = death
                && acked.len() == acks
                && !killed
            {
                let until = Instant::now() + Duration::from_micros(delay_us);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                child.0.kill().expect("SIGKILL");
                killed = true;
            }
        }
    }
    let status = child.0.wait().expect("wait");
    assert!(!watchdog.stop(), "the child made no progress for {CHILD_TIMEOUT:?}: killed");
    let as_expected = match death {
        Death::Sigkill { .. } => status.signal() == Some(libc::SIGKILL) && !acked.is_empty(),
        Death::At { .. } => status.signal() == Some(libc::SIGABRT),
        // Killed, or ended by itself on a store error (see `POWER_OFF_EXIT`).
        Death::PowerOff { .. } => {
            status.signal() == Some(libc::SIGKILL) || status.code() == Some(POWER_OFF_EXIT)
        }
    };
    if !as_expected {
        let mut err = String::new();
        if let Some(mut e) = child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("the child ended ({status}) after {} acks, not as {death:?}:\n{err}", acked.len());
    }
    (opened, acked)
}

/// Longest a child may run: it is killed after this, and the test fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// SIGKILLs a child that is still running after [`CHILD_TIMEOUT`], so that a child that
/// stops acknowledging fails the test instead of hanging it.
struct Watchdog {
    done: std::sync::mpsc::Sender<()>,
    fired: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(pid: u32) -> Watchdog {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let fired = std::thread::spawn(move || {
            let timed_out = matches!(
                wait.recv_timeout(CHILD_TIMEOUT),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if timed_out {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            timed_out
        });
        Watchdog { done, fired }
    }

    /// True if it had to kill the child.
    fn stop(self) -> bool {
        let _ = self.done.send(());
        self.fired.join().unwrap_or(true)
    }
}

/// What a reopen after a kill found.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) kills: u64,
    pub(crate) unacked_survived: u64,
    pub(crate) from_snapshot: u64,
    pub(crate) torn: u64,
}

/// Checks the store in `dir` after a kill: `verify` finds no corruption in the log or the
/// snapshots; the reopened store holds every acknowledged LSN, nothing beyond what the
/// child could have tried, and the model's state at its last LSN. Returns that LSN.
pub(crate) fn check_after_kill(
    dir: &Path,
    seed: u64,
    last_acked: u64,
    context: &str,
    tally: &mut Tally,
) -> u64 {
    let log = verify_log(dir.join("wal")).expect("verify the log");
    assert!(!log.is_corrupt(), "{context}: verify finds the log corrupt: {:?}", log.findings);
    let snapshots = SnapshotStore::open_read_only(dir.join("snapshots"));
    for info in snapshots.list().expect("list snapshots") {
        snapshots.verify(&info).unwrap_or_else(|e| panic!("{context}: snapshot damaged: {e}"));
    }

    let store = OrderStore::open(dir, options()).expect("reopen after the kill");
    let last = store.last_lsn();
    assert!(
        last >= last_acked,
        "{context}: acknowledged LSN {last_acked} lost, log ends at {last}"
    );
    let model = Workload::at(seed, last);
    assert!(
        &store.state() == model.model(),
        "{context}: state differs from the model at LSN {last}"
    );
    tally.kills += 1;
    tally.unacked_survived += u64::from(last > last_acked);
    tally.from_snapshot += u64::from(store.open_report().snapshot_lsn > 0);
    tally.torn += u64::from(store.open_report().wal.truncated.is_some());
    last
}

#[test]
fn kill_loop_acknowledged_writes_survive_sigkill() {
    let kills = env_count("ORDERLOG_CRASH_ITERS", 100);
    let base = env_count("ORDERLOG_CRASH_SEED", 0);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut store_seed = base;
    while tally.kills < kills {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let mut rng = StdRng::seed_from_u64(store_seed);
        let mut expected_open = 0;
        for round in 0..KILLS_PER_STORE.min(kills - tally.kills) {
            let death = Death::Sigkill {
                acks: rng.random_range(1..=120),
                delay_us: rng.random_range(0..300),
            };
            let (opened, acked) = kill_once(&dir, store_seed, death);
            let context = format!("seed {store_seed} round {round} (ORDERLOG_CRASH_SEED={base})");
            assert_eq!(opened, Some(expected_open), "{context}: reopened elsewhere");
            let last_acked = *acked.last().expect("acks");
            expected_open = check_after_kill(&dir, store_seed, last_acked, &context, &mut tally);
        }
        store_seed += 1;
    }
    println!(
        "kill_loop: {} kills; {} kept unacknowledged writes, {} recovered from a snapshot, {} \
         cut a torn tail; {:.1?}",
        tally.kills,
        tally.unacked_survived,
        tally.from_snapshot,
        tally.torn,
        started.elapsed()
    );
}

/// Every named kill point, at its first and a later passage, in a child process of its
/// own: the child aborts there, and the store must recover as after any kill.
#[test]
fn kill_points_every_named_point_recovers() {
    let passages = env_count("ORDERLOG_KILL_PASSAGES", 2);
    let started = Instant::now();
    let mut tally = Tally::default();
    for (i, point) in KillPoint::ALL.into_iter().enumerate() {
        for nth in 1..=passages {
            let seed = 1_000 + i as u64;
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("store");
            let (_, acked) = kill_once(&dir, seed, Death::At { point, nth });
            let context = format!("{point}@{nth} (seed {seed})");
            // A point passed while opening kills the child before its first write.
            let last_acked = acked.last().copied().unwrap_or(0);
            check_after_kill(&dir, seed, last_acked, &context, &mut tally);
        }
    }
    println!(
        "kill_points: {} points x {passages} passages, {} kills; {} kept unacknowledged writes, \
         {} recovered from a snapshot, {} cut a torn tail; {:.1?}",
        KillPoint::ALL.len(),
        tally.kills,
        tally.unacked_survived,
        tally.from_snapshot,
        tally.torn,
        started.elapsed()
    );
}
