//! Job ids and child seeds: pure functions of the run and a sequence number,
//! so a restarted controller re-derives exactly the ids it issued before.

/// The id of the `seq`-th job of `run`: `<run>-<seq, zero-padded to 6>`.
pub fn job_id(run: &str, seq: u64) -> String {
    format!("{run}-{seq:06}")
}

/// The sequence number of a job id of `run`, if it is one (exactly the form
/// [`job_id`] writes: no other padding, no sign).
pub fn parse_seq(run: &str, id: &str) -> Option<u64> {
    let digits = id.strip_prefix(run)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq: u64 = digits.parse().ok()?;
    (job_id(run, seq) == id).then_some(seq)
}

/// The training seed of child `seq` in a search seeded with `search_seed`
/// (SplitMix64 of both, so neighbouring children get unrelated seeds).
pub fn child_seed(search_seed: u64, seq: u64) -> u64 {
    splitmix64(splitmix64(search_seed) ^ seq)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_lookalikes() {
        assert_eq!(job_id("r-1", 7), "r-1-000007");
        assert_eq!(parse_seq("r-1", "r-1-000007"), Some(7));
        assert_eq!(parse_seq("r", "r-1234567"), Some(1_234_567));
        for bad in ["r-1-7", "r-1-0000007", "r-1-", "r-2-000007", "r-1-00000x", "r-1-+00007", "x"] {
            assert_eq!(parse_seq("r-1", bad), None, "{bad}");
        }
    }

    #[test]
    fn seeds_differ_per_child_and_per_search() {
        assert_ne!(child_seed(0, 0), child_seed(0, 1));
        assert_ne!(child_seed(0, 0), child_seed(1, 0));
        assert_eq!(child_seed(5, 9), child_seed(5, 9));
    }
}
