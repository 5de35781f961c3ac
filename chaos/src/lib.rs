//! ballast-chaos: chaos experiments.
pub mod act;
pub mod action;
pub mod doubles;
pub mod experiment;
pub mod journal;
pub mod load;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod run;
pub mod spec;
