//! Helpers shared by the test modules.

use std::process::Command;

/// Set in the environment of the child process [`alone`] starts.
const ALONE: &str = "NASFLEET_TORCH_TEST_ALONE";

/// Runs the test `path` (e.g. `"controller_threads::pinning_is_per_thread"`)
/// alone, in a child process of this test binary, for a test that reads
/// process-wide state the other tests of this binary change while they run
/// in parallel. Call it first thing in that test: it returns `true` in the
/// child, where the test body then runs; in the parent it runs the child,
/// asserts that exactly that one test ran and passed, and returns `false`,
/// and the test returns.
pub(crate) fn alone(path: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the path of the test binary");
    let out = Command::new(exe)
        .args(["--exact", path, "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .expect("running the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{path} alone in a child process failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    false
}
