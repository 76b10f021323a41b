//! What a worker checks before it allocates anything for a job.
//!
//! The payload is untrusted bytes from the queue. In order: its size (before
//! parsing, so a 2 MB payload costs nothing), the job JSON (serde_json's
//! recursion limit turns deep nesting into an error), the format version,
//! that the payload is the job the queue says it is, the architecture
//! (strictly, against [`ArchLimits`]), the recipe's bounds, and for CNN
//! children the core's parameter and FLOP estimate against the worker's caps.
//! Each failure is a [`Rejection`]: a reason token for the dead-letter stream
//! and a message that names the field and the bound.

use nasfleet_core::early_stop::EarlyStopConfig;
use nasfleet_core::trainer::{JobSpec, TrainJob, JOB_FORMAT_VERSION};
use nasfleet_core::Architecture;

use crate::settings::FleetSettings;

/// Dead-letter reasons written by workers (snake_case tokens).
pub mod reasons {
    /// The payload exceeds the worker's size cap.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// Not a job: bad JSON, a missing or mistyped field, a job id mismatch.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    /// A job format this worker does not speak.
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// The architecture is malformed or outside the hard limits.
    pub const INVALID_ARCHITECTURE: &str = "invalid_architecture";
    /// The training recipe is out of bounds.
    pub const INVALID_RECIPE: &str = "invalid_recipe";
    /// The worker cannot estimate the cost: unknown dataset for the space.
    pub const UNKNOWN_DATASET: &str = "unknown_dataset";
    /// The child is over the worker's parameter or FLOP cap.
    pub const OVER_BUDGET: &str = "over_budget";
    /// The trainer reported a permanent failure.
    pub const TRAINER_PERMANENT: &str = "trainer_permanent";
    /// The trainer returned a reward that is not a finite number.
    pub const INVALID_REWARD: &str = "invalid_reward";
}

/// Why a job was refused: a reason token and a precise message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// One of [`reasons`].
    pub reason: &'static str,
    /// What is wrong, naming the field and the bound.
    pub detail: String,
}

impl Rejection {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Largest image side the cost estimate accepts (keeps its arithmetic far
/// from overflow; real children train on 32×32 or 28×28).
pub const MAX_RESOLUTION: usize = 1024;
/// Most epochs a job may ask for.
pub const MAX_EPOCHS: usize = 100_000;
/// Largest batch a job may ask for.
pub const MAX_BATCH: usize = 1 << 20;

/// Input shape (channels, height, width) and classes of the image datasets
/// the CNN trainer knows, for the cost estimate.
pub fn image_dataset_shape(name: &str) -> Option<((usize, usize, usize), usize)> {
    match name {
        "cifar10" => Some(((3, 32, 32), 10)),
        "fashion-mnist" | "mnist" => Some(((1, 28, 28), 10)),
        _ => None,
    }
}

/// Validates the payload of the job the queue delivered as `job_id` in run
/// `run`, and returns what a trainer receives.
pub fn validate_job(
    job_id: &str,
    run: &str,
    payload: &str,
    settings: &FleetSettings,
) -> Result<TrainJob, Rejection> {
    validate_job_and_rule(job_id, run, payload, settings).map(|(job, _)| job)
}

/// [`validate_job`], also returning the job's early-stopping section
/// (checked against its recipe's epochs), which the worker applies at the
/// end of every epoch; the trainer never sees it.
pub fn validate_job_and_rule(
    job_id: &str,
    run: &str,
    payload: &str,
    settings: &FleetSettings,
) -> Result<(TrainJob, EarlyStopConfig), Rejection> {
    use reasons::*;
    if payload.len() > settings.max_payload_bytes {
        return Err(Rejection::new(
            PAYLOAD_TOO_LARGE,
            format!(
                "payload is {} bytes, this worker accepts at most {} (fleet.max_payload_bytes)",
                payload.len(),
                settings.max_payload_bytes
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(payload);
    let spec: JobSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." || path == "?" { String::new() } else { format!(" at `{path}`") };
        Rejection::new(INVALID_PAYLOAD, format!("job JSON{at}: {}", e.inner()))
    })?;
    de.end()
        .map_err(|e| Rejection::new(INVALID_PAYLOAD, format!("job JSON: {e}")))?;
    if spec.version != JOB_FORMAT_VERSION {
        return Err(Rejection::new(
            UNSUPPORTED_VERSION,
            format!("job format version {} (this worker speaks {JOB_FORMAT_VERSION})", spec.version),
        ));
    }
    if spec.job_id != job_id {
        return Err(Rejection::new(
            INVALID_PAYLOAD,
            format!("the payload is job {:?} but the queue delivered it as {job_id:?}", spec.job_id),
        ));
    }
    if spec.run != run {
        return Err(Rejection::new(
            INVALID_PAYLOAD,
            format!("the payload belongs to run {:?}, this worker serves run {run:?}", spec.run),
        ));
    }
    // The job id names the job's checkpoint directory: no path tricks.
    if job_id.starts_with('.')
        || !job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Rejection::new(
            INVALID_PAYLOAD,
            format!("job id {job_id:?} must consist of ASCII letters, digits, . _ - and not start with ."),
        ));
    }
    let arch = Architecture::from_value(spec.arch, &settings.arch_limits)
        .map_err(|e| Rejection::new(INVALID_ARCHITECTURE, e.to_string()))?;
    let train = spec.train;
    if train.epochs == 0 || train.epochs > MAX_EPOCHS {
        return Err(Rejection::new(
            INVALID_RECIPE,
            format!("train.epochs is {}, expected 1 to {MAX_EPOCHS}", train.epochs),
        ));
    }
    if train.batch_size == 0 || train.batch_size > MAX_BATCH {
        return Err(Rejection::new(
            INVALID_RECIPE,
            format!("train.batch_size is {}, expected 1 to {MAX_BATCH}", train.batch_size),
        ));
    }
    // Searches score children on validation data only; the test set belongs
    // to the final training of a found architecture (`nasfleet train`), which
    // never goes through the queue. (The CNN recipe has no such switch.)
    if train.lm.evaluate_test {
        return Err(Rejection::new(
            INVALID_RECIPE,
            "train.lm.evaluate_test is true: a search job may not score the test set (a child's reward \
             comes from validation data; the test set is for `nasfleet train` on the found architecture)",
        ));
    }
    if let Architecture::Cnn(cnn) = &arch {
        let Some(((c, h, w), classes)) = image_dataset_shape(&train.dataset) else {
            return Err(Rejection::new(
                UNKNOWN_DATASET,
                format!(
                    "dataset {:?} is not an image dataset this worker can size a CNN child for \
                     (known: cifar10, fashion-mnist, mnist)",
                    train.dataset
                ),
            ));
        };
        let (h, w) = match train.image.resolution {
            None => (h, w),
            Some(r) if (1..=MAX_RESOLUTION).contains(&r) => (r, r),
            Some(r) => {
                return Err(Rejection::new(
                    INVALID_RECIPE,
                    format!("train.image.resolution is {r}, expected 1 to {MAX_RESOLUTION}"),
                ))
            }
        };
        let graph = cnn.resolve((c, h, w), classes);
        if let Some(cap) = settings.max_params {
            if graph.params > cap {
                return Err(Rejection::new(
                    OVER_BUDGET,
                    format!(
                        "the child has {} trainable parameters, this worker's cap is {cap} (max_params)",
                        graph.params
                    ),
                ));
            }
        }
        if let Some(cap) = settings.max_flops {
            if graph.flops() > cap {
                return Err(Rejection::new(
                    OVER_BUDGET,
                    format!(
                        "the child needs {} FLOPs per {c}x{h}x{w} image, this worker's cap is {cap} (max_flops)",
                        graph.flops()
                    ),
                ));
            }
        }
    }
    if let Err((key, message)) = spec.early_stop.check(train.epochs) {
        return Err(Rejection::new(INVALID_RECIPE, format!("{key}: {message}")));
    }
    let job = TrainJob {
        job_id: spec.job_id,
        arch,
        train,
        reward: spec.reward,
        seed: spec.seed,
    };
    Ok((job, spec.early_stop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_core::config::TrainConfig;
    use nasfleet_core::reward::RewardConfig;
    use nasfleet_core::space::cnn::CnnLayer;
    use nasfleet_core::space::CnnArch;
    use serde_json::json;

    fn layer(filters: u32) -> CnnLayer {
        CnnLayer {
            filter_height: 3,
            filter_width: 3,
            stride_height: 1,
            stride_width: 1,
            filters,
            inputs: vec![],
        }
    }

    fn spec(arch: serde_json::Value) -> serde_json::Value {
        json!({
            "version": 1, "job_id": "r-000001", "run": "r", "arch": arch,
            "actions": [], "policy_version": 0,
            "train": TrainConfig { epochs: 2, ..TrainConfig::default() },
            "reward": RewardConfig::default(), "seed": 1,
        })
    }

    fn cnn(layers: Vec<CnnLayer>) -> serde_json::Value {
        Architecture::Cnn(CnnArch { layers, max_pool_after: vec![] }).to_value()
    }

    fn check(payload: &str) -> Result<TrainJob, Rejection> {
        validate_job("r-000001", "r", payload, &FleetSettings::default())
    }

    #[test]
    fn a_jobs_early_stopping_is_checked_against_its_recipe() {
        let mut s = spec(cnn(vec![layer(8)]));
        let ok = validate_job_and_rule("r-000001", "r", &s.to_string(), &FleetSettings::default()).unwrap();
        assert!(!ok.1.enabled(), "a job without the section has early stopping off");
        s["early_stop"] = json!({"rule": "asha", "min_epochs": 1, "eta": 3});
        let (_, rule) = validate_job_and_rule("r-000001", "r", &s.to_string(), &FleetSettings::default()).unwrap();
        assert_eq!(rule.rungs(2), vec![1]);
        s["early_stop"] = json!({"rule": "asha", "min_epochs": 2, "eta": 3});
        let r = check(&s.to_string()).unwrap_err();
        assert_eq!(r.reason, reasons::INVALID_RECIPE);
        assert!(r.detail.contains("early_stop.min_epochs"), "{}", r.detail);
    }

    #[test]
    fn a_search_job_may_not_score_the_test_set() {
        let mut train = TrainConfig { epochs: 2, ..TrainConfig::default() };
        train.lm.evaluate_test = true;
        let mut job = spec(cnn(vec![layer(36)]));
        job["train"] = serde_json::to_value(&train).unwrap();
        let r = check(&job.to_string()).unwrap_err();
        assert_eq!(r.reason, reasons::INVALID_RECIPE);
        assert!(r.detail.contains("evaluate_test") && r.detail.contains("test set"), "{}", r.detail);
        train.lm.evaluate_test = false;
        job["train"] = serde_json::to_value(&train).unwrap();
        check(&job.to_string()).unwrap();
    }

    #[test]
    fn a_valid_job_passes() {
        let job = check(&spec(cnn(vec![layer(36), layer(48)])).to_string()).unwrap();
        assert_eq!(job.job_id, "r-000001");
        assert_eq!(job.train.epochs, 2);
    }

    #[test]
    fn each_malformation_has_its_reason() {
        let cases: Vec<(String, &str, &str)> = vec![
            ("{not json".into(), reasons::INVALID_PAYLOAD, "job JSON"),
            ("[]".into(), reasons::INVALID_PAYLOAD, "job JSON"),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["arch"] = json!("DEEP");
                    v.to_string().replace("\"DEEP\"", &format!("{}{}", "[".repeat(200), "]".repeat(200)))
                },
                reasons::INVALID_PAYLOAD,
                "recursion limit",
            ),
            ("x".repeat(2 << 20), reasons::PAYLOAD_TOO_LARGE, "2097152 bytes"),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["arch"]["bogus"] = json!(1);
                    v.to_string()
                },
                reasons::INVALID_ARCHITECTURE,
                "bogus",
            ),
            (spec(cnn(vec![layer(0)])).to_string(), reasons::INVALID_ARCHITECTURE, "filters"),
            (spec(cnn(vec![layer(36); 100])).to_string(), reasons::INVALID_ARCHITECTURE, "layers"),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["version"] = json!(9);
                    v.to_string()
                },
                reasons::UNSUPPORTED_VERSION,
                "version 9",
            ),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["job_id"] = json!("r-000002");
                    v.to_string()
                },
                reasons::INVALID_PAYLOAD,
                "delivered it as",
            ),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["train"]["epochs"] = json!(0);
                    v.to_string()
                },
                reasons::INVALID_RECIPE,
                "train.epochs",
            ),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["train"]["dataset"] = json!("imagenet");
                    v.to_string()
                },
                reasons::UNKNOWN_DATASET,
                "imagenet",
            ),
            (
                {
                    let mut v = spec(cnn(vec![layer(36)]));
                    v["train"]["epocs"] = json!(3);
                    v.to_string()
                },
                reasons::INVALID_PAYLOAD,
                "epocs",
            ),
        ];
        for (payload, reason, needle) in cases {
            let r = check(&payload).unwrap_err();
            assert_eq!(r.reason, reason, "{r}");
            assert!(r.detail.contains(needle), "{needle:?} not in {r}");
        }
    }

    #[test]
    fn cost_caps_are_enforced() {
        let chain: Vec<CnnLayer> = (0..8)
            .map(|i| CnnLayer {
                inputs: if i == 0 { vec![] } else { vec![i - 1] },
                ..layer(1024)
            })
            .collect();
        let big = spec(cnn(chain)).to_string();
        let settings = FleetSettings {
            max_params: Some(1_000_000),
            ..FleetSettings::default()
        };
        let r = validate_job("r-000001", "r", &big, &settings).unwrap_err();
        assert_eq!(r.reason, reasons::OVER_BUDGET);
        assert!(r.detail.contains("max_params"), "{r}");
        let settings = FleetSettings {
            max_params: None,
            max_flops: Some(1_000_000),
            ..FleetSettings::default()
        };
        let r = validate_job("r-000001", "r", &big, &settings).unwrap_err();
        assert!(r.detail.contains("max_flops"), "{r}");
    }
}
