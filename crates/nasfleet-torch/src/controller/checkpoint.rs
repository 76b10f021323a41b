//! The controller's checkpoint bytes: the framed format of
//! [`crate::framed`] under the magic `NFRLCKPT`, its header holding the
//! plain state (versions, RNG, baseline).

use serde::de::DeserializeOwned;
use serde::Serialize;

use nasfleet_core::strategy::StrategyError;

pub(crate) use crate::framed::Blob;
use crate::framed::Frame;

const FRAME: Frame = Frame { magic: b"NFRLCKPT", format: 1, what: "an RL controller checkpoint" };

pub(crate) fn encode<S: Serialize>(state: &S, blobs: &[Blob]) -> Result<Vec<u8>, StrategyError> {
    FRAME.encode(state, blobs).map_err(StrategyError::Checkpoint)
}

pub(crate) fn decode<S: DeserializeOwned>(bytes: &[u8]) -> Result<(S, Vec<Blob>), StrategyError> {
    FRAME.decode(bytes).map_err(StrategyError::Checkpoint)
}
