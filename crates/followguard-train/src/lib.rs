//! followguard-train: the offline side of followguard, around the pure core
//! (`followguard-core`). Reading labelled account tables ([`dataset`]), training the
//! follower classifier with linfa ([`train`]), its metrics ([`eval`]), model files on disk
//! ([`model_file`]), the `train` / `eval` / `lovo` / `score` commands ([`modelcli`]) and
//! the synthetic follow-stream generator with its ground truth ([`generate`], and the
//! issue-#20 newcomer traffic in [`generate::organic`]).
//!
//! Training and serving share the core's `features::extract`, so there is no train/serve
//! skew. No Kafka, async runtime, HTTP or metrics here.

pub mod dataset;
pub mod eval;
pub mod export;
pub mod generate;
pub mod input;
pub mod model_file;
pub mod modelcli;
pub mod train;
