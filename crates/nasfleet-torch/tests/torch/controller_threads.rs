//! `use_one_libtorch_thread` makes libtorch single-threaded on the calling
//! thread only: threads started afterwards still get the default pool. Runs
//! alone in a child process of the test binary ([`crate::support::alone`]),
//! since the other tests setting their own threads' counts at the same moment
//! (trainers, policy threads) change the process-wide default it checks.

use nasfleet_torch::controller::use_one_libtorch_thread;
use nasfleet_torch::tch;

#[test]
fn pinning_is_per_thread() {
    if !crate::support::alone("controller_threads::pinning_is_per_thread") {
        return;
    }
    let default = std::thread::spawn(tch::get_num_threads).join().unwrap();
    let pinned = std::thread::spawn(|| {
        use_one_libtorch_thread();
        // Real work after pinning must not re-initialise the count.
        let x = tch::Tensor::ones([64, 64], (tch::Kind::Float, tch::Device::Cpu));
        let _ = x.matmul(&x);
        tch::get_num_threads()
    })
    .join()
    .unwrap();
    assert_eq!(pinned, 1);
    assert_eq!(std::thread::spawn(tch::get_num_threads).join().unwrap(), default);
}
