//! Integration tests, built as one binary (each test crate would monomorphise dfdx again).

mod aggregation;
mod batch;
mod checkpoint;
mod cli;
mod common;
mod embed;
mod estimators;
mod eval;
mod layering;
mod mmvae_plus;
mod train;
