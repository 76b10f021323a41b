//! Local search (White, Nolen, Savani 2020, "Local search is state of the
//! art for NAS benchmarks"): climb from the best architecture so far by
//! evaluating its neighbours one edit away, move to the first one that is
//! better, and restart at random on a local optimum.
//!
//! - A climb starts with `initial` uniformly random architectures (at the
//!   depth schedule's current depth); once all their rewards are back, the
//!   best of them is the climb's **centre**.
//! - The centre's neighbours are every sequence that differs from it in
//!   exactly one token (a choice token set to another of its choices, a skip
//!   bit flipped: 24 for an NB201 cell). They are proposed in a random order,
//!   skipping those whose reward is already known or still outstanding.
//! - A reward better than the centre's (strictly) from a neighbour of this
//!   climb makes that neighbour the centre, and its neighbourhood is
//!   proposed next (first improvement). A neighbour whose reward is already
//!   known from earlier and beats the centre is moved to at once, without
//!   spending a sample.
//! - When every neighbour of the centre has come back without a better one,
//!   the centre is a local optimum: the next proposal restarts the climb.
//! - Proposals asked for while the strategy waits (the initial draws or the
//!   last neighbours are still out) are uniform random fillers; a filler
//!   asked for before the centre is known counts as an initial draw.
//!
//! Every reward is remembered, so the strategy never proposes a known
//! architecture as a neighbour (random draws avoid known ones when they
//! can). Feedback may arrive in any order and batch size; the state,
//! including the RNG and every remembered reward, round-trips through a
//! checkpoint bit for bit.

use std::collections::{BTreeMap, VecDeque};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check_feedback, f64_bits, from_json_checkpoint, proposal, schema_for_tokens, to_json_checkpoint};
use super::{Feedback, Proposal, SearchStrategy, StrategyError, UpdateStats};
use crate::config::LocalSearchConfig;
use crate::space::Space;

const NAME: &str = "local";

/// How many uniform draws a random proposal makes to find an architecture
/// whose reward is neither known nor outstanding before it accepts one.
const FRESH_TRIES: usize = 64;

/// An architecture's tokens and its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scored {
    /// The architecture's tokens.
    pub actions: Vec<u32>,
    /// Its reward.
    #[serde(with = "f64_bits")]
    pub reward: f64,
}

/// Why a proposal was made, so that its reward is put to the right use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Role {
    /// A random start of climb `climb`.
    Initial { climb: u64 },
    /// A neighbour of a centre of climb `climb`.
    Neighbour { climb: u64 },
    /// A random draw made while the climb waited for rewards.
    Filler,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    rng: ChaCha8Rng,
    samples_drawn: u64,
    version: u64,
    /// The current climb (one more at every restart).
    climb: u64,
    /// Local optima reached so far (restarts).
    restarts: u64,
    /// Initial draws of this climb still to propose.
    initial_left: usize,
    /// Initial draws of this climb whose rewards are not back.
    initial_pending: usize,
    /// The best initial draw of this climb so far.
    start: Option<Scored>,
    /// The climb's centre, once its initial draws are all back.
    centre: Option<Scored>,
    /// The centre's neighbours still to propose.
    queue: VecDeque<Vec<u32>>,
    /// Proposals whose rewards are not back, oldest first.
    outstanding: Vec<(Vec<u32>, Role)>,
    /// Every reward seen, by tokens (a sequence: JSON keys must be strings).
    #[serde(with = "known_seq")]
    known: BTreeMap<Vec<u32>, f64>,
}

/// Local search over a space, deterministic per seed (see the module docs).
#[derive(Debug, Clone)]
pub struct LocalSearch {
    space: Space,
    initial: usize,
    state: State,
}

impl LocalSearch {
    /// A fresh search over `space` seeded with `seed`; refuses `initial = 0`.
    pub fn new(space: Space, cfg: &LocalSearchConfig, seed: u64) -> Result<Self, StrategyError> {
        if cfg.initial == 0 {
            return Err(StrategyError::Config("local_search.initial must be at least 1".into()));
        }
        Ok(LocalSearch {
            space,
            initial: cfg.initial,
            state: State {
                rng: ChaCha8Rng::seed_from_u64(seed),
                samples_drawn: 0,
                version: 0,
                climb: 0,
                restarts: 0,
                initial_left: cfg.initial,
                initial_pending: 0,
                start: None,
                centre: None,
                queue: VecDeque::new(),
                outstanding: Vec::new(),
                known: BTreeMap::new(),
            },
        })
    }

    /// The current climb's centre (`None` while its initial draws are out).
    pub fn centre(&self) -> Option<&Scored> {
        self.state.centre.as_ref()
    }

    /// Local optima reached so far (each one restarted the climb).
    pub fn restarts(&self) -> u64 {
        self.state.restarts
    }

    /// Proposal tokens without decoding.
    pub fn sample_tokens(&mut self, n: usize) -> Result<Vec<Vec<u32>>, StrategyError> {
        (0..n).map(|_| self.next_tokens()).collect()
    }

    fn next_tokens(&mut self) -> Result<Vec<u32>, StrategyError> {
        let climb = self.state.climb;
        let (tokens, role) = if self.state.centre.is_none() {
            self.state.initial_left = self.state.initial_left.saturating_sub(1);
            self.state.initial_pending += 1;
            (self.fresh_random(), Role::Initial { climb })
        } else if let Some(n) = self.state.queue.pop_front() {
            (n, Role::Neighbour { climb })
        } else if self.state.outstanding.iter().any(|(_, r)| *r == Role::Neighbour { climb }) {
            (self.fresh_random(), Role::Filler)
        } else {
            // A local optimum: every neighbour is back and none is better.
            let s = &mut self.state;
            s.climb += 1;
            s.restarts += 1;
            s.centre = None;
            s.start = None;
            s.initial_left = self.initial - 1;
            s.initial_pending = 1;
            (self.fresh_random(), Role::Initial { climb: climb + 1 })
        };
        self.state.samples_drawn += 1;
        self.state.outstanding.push((tokens.clone(), role));
        Ok(tokens)
    }

    /// A uniform sequence at the scheduled depth, redrawn (a few times) while
    /// its reward is known or outstanding.
    fn fresh_random(&mut self) -> Vec<u32> {
        let schema = self.space.schema(self.space.layers_at(self.state.samples_drawn));
        let mut tokens = schema.sample_uniform(&mut self.state.rng);
        for _ in 1..FRESH_TRIES {
            if !self.seen(&tokens) {
                break;
            }
            tokens = schema.sample_uniform(&mut self.state.rng);
        }
        tokens
    }

    fn seen(&self, tokens: &[u32]) -> bool {
        self.state.known.contains_key(tokens) || self.state.outstanding.iter().any(|(t, _)| t == tokens)
    }

    /// Makes `s` the centre; moves on at once through known better
    /// neighbours, then queues the unknown neighbours in random order.
    fn move_to(&mut self, mut s: Scored) -> Result<(), StrategyError> {
        loop {
            let neighbours = neighbours(&self.space, &s.actions)?;
            let best_known = neighbours
                .iter()
                .filter_map(|n| self.state.known.get(n).map(|&r| (n, r)))
                .fold(None, |b: Option<(&Vec<u32>, f64)>, (n, r)| match b {
                    Some((_, br)) if br >= r => b,
                    _ => Some((n, r)),
                });
            if let Some((n, r)) = best_known {
                if r > s.reward {
                    s = Scored { actions: n.clone(), reward: r };
                    continue;
                }
            }
            let mut queue: Vec<Vec<u32>> = neighbours.into_iter().filter(|n| !self.seen(n)).collect();
            queue.shuffle(&mut self.state.rng);
            self.state.queue = queue.into();
            self.state.centre = Some(s);
            return Ok(());
        }
    }
}

/// Every sequence one token away from `tokens` (in position order, then
/// value order), at the depth of `tokens`.
pub fn neighbours(space: &Space, tokens: &[u32]) -> Result<Vec<Vec<u32>>, StrategyError> {
    let schema = schema_for_tokens(space, tokens)?;
    let mut out = Vec::new();
    for (p, choices) in schema.token_choices().enumerate() {
        for v in 0..choices {
            if v != tokens[p] {
                let mut n = tokens.to_vec();
                n[p] = v;
                out.push(n);
            }
        }
    }
    Ok(out)
}

impl SearchStrategy for LocalSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError> {
        let version = self.state.version;
        self.sample_tokens(n)?.into_iter().map(|t| proposal(&self.space, t, version)).collect()
    }

    /// Remembers every reward, climbs on a better neighbour, and starts the
    /// climb from the best initial draw once they are all back. No loss,
    /// baseline, entropy or gradient: those report 0.
    fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError> {
        check_feedback(&self.space, batch)?;
        for f in batch {
            self.state.known.insert(f.actions.clone(), f.reward);
            let role = match self.state.outstanding.iter().position(|(t, _)| *t == f.actions) {
                Some(k) => self.state.outstanding.remove(k).1,
                None => Role::Filler,
            };
            let here = Scored { actions: f.actions.clone(), reward: f.reward };
            match role {
                Role::Initial { climb } if climb == self.state.climb && self.state.centre.is_none() => {
                    self.state.initial_pending = self.state.initial_pending.saturating_sub(1);
                    if self.state.start.as_ref().is_none_or(|s| f.reward > s.reward) {
                        self.state.start = Some(here);
                    }
                }
                Role::Neighbour { climb }
                    if climb == self.state.climb
                        && self.state.centre.as_ref().is_some_and(|c| f.reward > c.reward) =>
                {
                    self.move_to(here)?;
                }
                _ => {}
            }
        }
        if self.state.centre.is_none() && self.state.initial_left == 0 && self.state.initial_pending == 0 {
            if let Some(s) = self.state.start.take() {
                self.move_to(s)?;
            }
        }
        self.state.version += 1;
        Ok(UpdateStats::without_gradient(batch, 0.0, self.state.version))
    }

    fn policy_version(&self) -> u64 {
        self.state.version
    }

    fn samples_drawn(&self) -> u64 {
        self.state.samples_drawn
    }

    fn checkpoint(&self) -> Result<Vec<u8>, StrategyError> {
        to_json_checkpoint(NAME, &self.space, &self.state)
    }

    /// Refuses remembered architectures that do not fit the space and
    /// rewards that are not finite.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), StrategyError> {
        let state: State = from_json_checkpoint(NAME, &self.space, bytes)?;
        let scored = state.start.iter().chain(state.centre.iter()).map(|s| (&s.actions, s.reward));
        for (k, (tokens, reward)) in state.known.iter().map(|(t, r)| (t, *r)).chain(scored).enumerate() {
            schema_for_tokens(&self.space, tokens)
                .map_err(|e| StrategyError::Checkpoint(format!("remembered architecture {k}: {e}")))?;
            if !reward.is_finite() {
                return Err(StrategyError::Checkpoint(format!("remembered architecture {k}: reward is not finite")));
            }
        }
        for (k, tokens) in state.queue.iter().chain(state.outstanding.iter().map(|(t, _)| t)).enumerate() {
            schema_for_tokens(&self.space, tokens)
                .map_err(|e| StrategyError::Checkpoint(format!("queued architecture {k}: {e}")))?;
        }
        self.state = state;
        Ok(())
    }
}

/// The remembered rewards as a sequence of `[tokens, reward bits]`.
mod known_seq {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(m: &BTreeMap<Vec<u32>, f64>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&Vec<u32>, u64)> = m.iter().map(|(t, r)| (t, r.to_bits())).collect();
        v.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Vec<u32>, f64>, D::Error> {
        let v: Vec<(Vec<u32>, u64)> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|(t, b)| (t, f64::from_bits(b))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(initial: usize, seed: u64) -> LocalSearch {
        LocalSearch::new(Space::Nb201, &LocalSearchConfig { initial }, seed).unwrap()
    }

    /// Reward: the number of tokens equal to 2 (unique optimum: all 2s);
    /// a smooth landscape with no local optimum but the global one.
    fn reward(t: &[u32]) -> f64 {
        t.iter().filter(|&&x| x == 2).count() as f64
    }

    fn feed(s: &mut LocalSearch, props: &[Proposal], f: impl Fn(&[u32]) -> f64) {
        let batch: Vec<Feedback> =
            props.iter().map(|p| Feedback { actions: p.actions.clone(), reward: f(&p.actions) }).collect();
        s.update(&batch).unwrap();
    }

    #[test]
    fn neighbours_differ_in_one_token() {
        let n = neighbours(&Space::Nb201, &[0, 1, 2, 3, 4, 0]).unwrap();
        assert_eq!(n.len(), 24);
        for x in &n {
            assert_eq!(x.iter().zip([0, 1, 2, 3, 4, 0]).filter(|(a, b)| **a != *b).count(), 1);
        }
        let mut d = n.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 24);
    }

    #[test]
    fn climbs_a_smooth_landscape_to_the_optimum_then_restarts() {
        let mut s = search(3, 7);
        // Synchronous rounds of 1: exact first-improvement hill-climbing.
        let mut best = 0.0f64;
        let mut n = 0;
        while s.restarts() == 0 {
            let p = s.propose(1).unwrap();
            best = best.max(reward(&p[0].actions));
            feed(&mut s, &p, reward);
            n += 1;
            assert!(n < 200, "no local optimum after {n} samples");
        }
        assert_eq!(best, 6.0);
        // Never a known architecture proposed as a neighbour: at most the
        // 3 initial draws + 6 moves × 24 neighbours + the restart.
        assert!(n <= 3 + 6 * 24 + 1, "{n}");
        assert!(s.centre().is_none());
    }

    #[test]
    fn a_known_better_neighbour_is_moved_to_without_a_sample() {
        let mut s = search(1, 0);
        let p = s.propose(1).unwrap();
        let mut better = p[0].actions.clone();
        better[0] = (better[0] + 1) % 5;
        // Feed the better neighbour first (as a stray reward), then the start.
        s.update(&[Feedback { actions: better.clone(), reward: 10.0 }]).unwrap();
        feed(&mut s, &p, |_| 1.0);
        assert_eq!(s.centre().unwrap().actions, better);
        // Its neighbours are queued, without the start (known).
        let next = s.propose(24).unwrap();
        assert!(next.iter().all(|q| q.actions != p[0].actions));
    }

    #[test]
    fn checkpoint_resumes_bit_for_bit_and_refuses_other_strategies() {
        let mut a = search(4, 3);
        let f = |t: &[u32]| t.iter().enumerate().map(|(k, &x)| ((k as u32 + 1) * x % 7) as f64 * 0.1).sum::<f64>();
        for _ in 0..10 {
            let p = a.propose(3).unwrap();
            feed(&mut a, &p, f);
        }
        let outstanding = a.propose(2).unwrap();
        let ck = a.checkpoint().unwrap();
        let mut b = search(4, 99);
        b.restore(&ck).unwrap();
        feed(&mut a, &outstanding, f);
        feed(&mut b, &outstanding, f);
        for _ in 0..20 {
            let pa = a.propose(3).unwrap();
            let pb = b.propose(3).unwrap();
            assert_eq!(pa, pb);
            feed(&mut a, &pa, f);
            feed(&mut b, &pb, f);
        }
        assert_eq!(a.checkpoint().unwrap(), b.checkpoint().unwrap());
        let evo = super::super::RandomSearch::new(Space::Nb201, 0).checkpoint().unwrap();
        assert!(b.restore(&evo).unwrap_err().to_string().contains("\"random\""));
    }
}
