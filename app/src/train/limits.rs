//! The trainer's resource limits (`[train] memory_limit`, `thread_limit`):
//! a strategy is native code that can leak memory or threads, and the kernel's
//! OOM killer would then take whichever process it likes, a neighbour's
//! included. The watchdog reads what the trainer holds ten times a second and
//! fails the run with the reason once a limit is passed; the checkpoint saved
//! last is kept, so the run resumes from it.

use crate::experiment::Machine;
use crate::experiment::schema::TrainSpec;

/// The share of the machine's memory a trainer may hold when the experiment
/// says nothing.
pub const DEFAULT_MEMORY_SHARE: f64 = 0.5;
/// Threads a trainer may run when the experiment says nothing: at least this,
/// and [`DEFAULT_THREADS_PER_CORE`] per core.
pub const DEFAULT_MIN_THREADS: usize = 512;
pub const DEFAULT_THREADS_PER_CORE: usize = 8;

const GIB: f64 = (1u64 << 30) as f64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub threads: usize,
}

impl Limits {
    pub fn of(train: &TrainSpec) -> Limits {
        let machine = crate::train::ThisMachine.memory().unwrap_or(u128::MAX);
        let memory_bytes = match train.memory_limit {
            Some(gib) => (gib * GIB) as u64,
            None => (machine as f64 * DEFAULT_MEMORY_SHARE) as u64,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = train
            .thread_limit
            .unwrap_or(DEFAULT_MIN_THREADS.max(DEFAULT_THREADS_PER_CORE * cores));
        Limits {
            memory_bytes,
            threads,
        }
    }

    /// Why this process is past a limit now, if it is.
    pub fn exceeded(&self) -> Option<String> {
        if let Some(held) = resident_bytes().filter(|b| *b > self.memory_bytes) {
            return Some(format!(
                "the trainer held {:.2} GiB of memory, over its limit of {:.2} GiB \
                 ([train] memory_limit; a strategy that leaks?)",
                held as f64 / GIB,
                self.memory_bytes as f64 / GIB
            ));
        }
        threads().filter(|n| *n > self.threads).map(|n| {
            format!(
                "the trainer ran {n} threads, over its limit of {} ([train] thread_limit; \
                     a strategy that starts threads and never ends them?)",
                self.threads
            )
        })
    }
}

/// Resident memory of this process.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64);
    Some(pages * page)
}

/// Threads of this process.
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// Asks the kernel to pick this trainer before others when memory runs out
/// all the same (it resumes from its checkpoint; the user's shell does not).
pub fn prefer_me_to_the_oom_killer() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "500");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured_and_judged_against_its_limits() {
        let held = resident_bytes().unwrap();
        assert!(held > 1 << 20, "{held}");
        let n = threads().unwrap();
        assert!(n >= 1);
        let generous = Limits {
            memory_bytes: u64::MAX,
            threads: usize::MAX,
        };
        assert_eq!(generous.exceeded(), None);
        let small_memory = Limits {
            memory_bytes: 1 << 20,
            ..generous
        };
        let why = small_memory.exceeded().unwrap();
        assert!(why.contains("memory_limit"), "{why}");
        let few_threads = Limits {
            threads: 0,
            ..generous
        };
        let why = few_threads.exceeded().unwrap();
        assert!(
            why.contains(&format!("ran {n} threads")) || why.contains("thread_limit"),
            "{why}"
        );
    }
}
