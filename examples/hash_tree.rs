//! Hash every file in a directory tree on a weft pool: a small, real workload.
//!
//! ```text
//! cargo run --example hash_tree              # this crate's own directory
//! cargo run --example hash_tree -- ~/src     # any directory
//! ```
//!
//! The main thread walks the tree and submits one job per file with
//! [`ThreadPool::spawn`]; the job opens and reads its file and returns the
//! file's size and digest through its [`JoinHandle`]. The pool's queue is
//! bounded ([`Builder::queue_capacity`], twice the number of threads), so the
//! walk cannot run ahead of the hashing: when the queue is full, `spawn`
//! waits until a worker takes a job. That is backpressure: however big the
//! tree, at most `capacity` jobs (each holding a path) wait at any time, and
//! the producer goes no faster than the workers. Finished results are
//! collected while the walk goes on, oldest first.
//!
//! The hash is 64-bit FNV-1a, written out below so the example needs nothing
//! but std and weft. It is fast and simple but **not cryptographic**: good
//! for noticing that a file changed, useless against someone who wants to
//! forge a match. Use a cryptographic hash from a crate for that.
//!
//! What it prints:
//!
//! * `files`, `bytes`: the regular files hashed and their total size;
//! * `elapsed`: wall time from the start of the walk to the last result,
//!   and the throughput that makes;
//! * `digest`: one FNV-1a digest over every file's relative path and
//!   digest, taken in path order, so it does not depend on which worker
//!   finished first: two runs over unchanged files print the same value;
//! * `largest`: the 5 largest files, with their sizes and digests;
//! * `producer`: how many submissions found the queue full and so had to
//!   wait for room, and how long the walk spent inside `spawn` in total:
//!   high when hashing is the bottleneck (as in a debug build), near 0 when
//!   walking the tree is;
//! * `unreadable`: every directory or file that could not be read
//!   (permission denied, removed during the walk, ...), with the error.
//!   These are reported and skipped; they do not stop the run.
//!
//! Hidden entries (names starting with `.`), directories named `target`
//! (build output) and symbolic links are skipped.
//!
//! [`ThreadPool::spawn`]: weft::ThreadPool::spawn
//! [`Builder::queue_capacity`]: weft::Builder::queue_capacity

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use weft::{Builder, JoinHandle};

fn main() -> ExitCode {
    let root = match std::env::args_os().nth(1) {
        Some(arg) => PathBuf::from(arg),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    if !root.is_dir() {
        eprintln!("hash_tree: {} is not a directory", root.display());
        return ExitCode::from(2);
    }

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let capacity = 2 * threads;
    let pool = match Builder::new()
        .num_threads(threads)
        .queue_capacity(capacity)
        .thread_name(|i| format!("hash-{i}"))
        .build()
    {
        Ok(pool) => pool,
        Err(err) => {
            eprintln!("hash_tree: cannot start the pool: {err}");
            return ExitCode::FAILURE;
        }
    };

    let started = Instant::now();
    let mut report = Report::default();
    // Jobs submitted and not yet collected, oldest first.
    let mut in_flight: VecDeque<(PathBuf, JoinHandle<io::Result<FileDigest>>)> = VecDeque::new();
    let mut walk = Walk::new(&root);
    for found in &mut walk {
        let path = match found {
            Ok(path) => path,
            Err(unreadable) => {
                report.unreadable.push(unreadable);
                continue;
            }
        };
        // Only this thread submits, so a queue that has room now still has
        // room when `spawn` runs; a full one makes `spawn` wait for a worker
        // to take a job.
        if pool.queued_count() >= capacity {
            report.waits += 1;
        }
        let submitted = Instant::now();
        let job_path = path.clone();
        let handle = pool.spawn(move || hash_file(&job_path));
        report.blocked += submitted.elapsed();
        report.submitted += 1;
        in_flight.push_back((path, handle));

        // Collect what has already finished, so results do not pile up.
        while in_flight
            .front()
            .is_some_and(|(_, handle)| handle.is_finished())
        {
            let (path, handle) = in_flight.pop_front().expect("front exists");
            report.record(&root, path, handle);
        }
    }
    for (path, handle) in in_flight {
        report.record(&root, path, handle); // join() waits for the job
    }
    let elapsed = started.elapsed();
    report.links = walk.links;
    pool.shutdown();

    report.print(&root, threads, capacity, elapsed);
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------
// Hashing

/// 64-bit FNV-1a (Fowler–Noll–Vo). A non-cryptographic hash: quick and well
/// spread for ordinary data, trivial to collide on purpose.
#[derive(Clone, Copy)]
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv1a {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(self) -> u64 {
        self.0
    }
}

/// What a job found out about one file.
struct FileDigest {
    bytes: u64,
    digest: u64,
}

/// Reads `path` to the end in fixed-size chunks, hashing as it goes: a large
/// file is never held in memory whole. Runs on a pool worker.
fn hash_file(path: &Path) -> io::Result<FileDigest> {
    let mut file = File::open(path)?;
    let mut hasher = Fnv1a::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut bytes = 0;
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&chunk[..n]);
                bytes += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(FileDigest {
        bytes,
        digest: hasher.finish(),
    })
}

// ---------------------------------------------------------------------------
// Walking the tree

/// Something the walk or a job could not read, and why.
struct Unreadable {
    path: PathBuf,
    error: io::Error,
}

/// A depth-first walk that yields every regular file under a directory, and
/// an [`Unreadable`] for each directory or entry it could not read (then
/// carries on with the rest).
struct Walk {
    /// Directories found but not opened yet.
    pending: Vec<PathBuf>,
    /// The directory being listed, and its remaining entries.
    listing: Option<(PathBuf, fs::ReadDir)>,
    /// Symbolic links met, and not followed (a link can make a cycle).
    links: usize,
}

impl Walk {
    fn new(root: &Path) -> Walk {
        Walk {
            pending: vec![root.to_path_buf()],
            listing: None,
            links: 0,
        }
    }
}

impl Iterator for Walk {
    type Item = Result<PathBuf, Unreadable>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some((dir, entries)) = &mut self.listing else {
                // Open the next directory, or end the walk.
                let dir = self.pending.pop()?;
                match fs::read_dir(&dir) {
                    Ok(entries) => self.listing = Some((dir, entries)),
                    Err(error) => return Some(Err(Unreadable { path: dir, error })),
                }
                continue;
            };
            let entry = match entries.next() {
                Some(Ok(entry)) => entry,
                Some(Err(error)) => {
                    let path = dir.clone();
                    return Some(Err(Unreadable { path, error }));
                }
                None => {
                    self.listing = None;
                    continue;
                }
            };
            let name = entry.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            // `DirEntry::file_type` does not follow symbolic links.
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(error) => {
                    let path = entry.path();
                    return Some(Err(Unreadable { path, error }));
                }
            };
            if kind.is_symlink() {
                self.links += 1;
            } else if kind.is_dir() {
                if name != "target" {
                    self.pending.push(entry.path());
                }
            } else if kind.is_file() {
                return Some(Ok(entry.path()));
            }
            // Sockets, pipes and devices are not files to hash.
        }
    }
}

// ---------------------------------------------------------------------------
// Results

/// One hashed file.
struct Hashed {
    /// Relative to the root of the walk.
    path: PathBuf,
    bytes: u64,
    digest: u64,
}

#[derive(Default)]
struct Report {
    hashed: Vec<Hashed>,
    unreadable: Vec<Unreadable>,
    /// Jobs submitted.
    submitted: usize,
    /// Submissions that found the queue full.
    waits: usize,
    /// Time the walk spent inside `spawn`.
    blocked: Duration,
    /// Symbolic links skipped.
    links: usize,
}

impl Report {
    /// Waits for one job and files its result.
    fn record(&mut self, root: &Path, path: PathBuf, handle: JoinHandle<io::Result<FileDigest>>) {
        let error = match handle.join() {
            Ok(Ok(FileDigest { bytes, digest })) => {
                let path = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                self.hashed.push(Hashed {
                    path,
                    bytes,
                    digest,
                });
                return;
            }
            Ok(Err(error)) => error,
            // `hash_file` does not panic; if it ever did, the pool would
            // have caught it and handed it to us here. Report it all the same.
            Err(panicked) => io::Error::other(panicked.to_string()),
        };
        self.unreadable.push(Unreadable { path, error });
    }

    fn print(mut self, root: &Path, threads: usize, capacity: usize, elapsed: Duration) {
        // A digest of the whole tree, independent of the order in which jobs
        // finished: fold every (path, digest) pair in path order.
        self.hashed.sort_by(|a, b| a.path.cmp(&b.path));
        let mut tree = Fnv1a::new();
        for file in &self.hashed {
            tree.update(file.path.as_os_str().as_encoded_bytes());
            tree.update(&[0]); // so "ab" + "c" differs from "a" + "bc"
            tree.update(&file.digest.to_le_bytes());
        }
        let total: u64 = self.hashed.iter().map(|file| file.bytes).sum();
        let per_second = total as f64 / elapsed.as_secs_f64().max(1e-9);

        println!("hash_tree: {}", root.display());
        println!("  pool       {threads} threads, queue capacity {capacity}");
        println!("  files      {}", self.hashed.len());
        println!("  bytes      {} ({total} bytes)", human(total as f64));
        println!("  elapsed    {elapsed:.2?} ({}/s)", human(per_second));
        println!(
            "  digest     {:016x}  (FNV-1a 64 over every path and file digest, in path order)",
            tree.finish()
        );
        println!("  largest");
        self.hashed
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
        for file in self.hashed.iter().take(5) {
            println!(
                "    {:>10}  {:016x}  {}",
                human(file.bytes as f64),
                file.digest,
                file.path.display()
            );
        }
        println!(
            "  producer   found the queue full {} of {} times; {:.2?} blocked in spawn",
            self.waits, self.submitted, self.blocked
        );
        println!("  unreadable {}", self.unreadable.len());
        for Unreadable { path, error } in &self.unreadable {
            println!("    {}: {error}", path.display());
        }
        if self.links > 0 {
            println!("  ({} symbolic links not followed)", self.links);
        }
    }
}

/// `bytes` in B, KiB, MiB or GiB, one decimal.
fn human(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
