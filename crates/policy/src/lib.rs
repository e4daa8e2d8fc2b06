//! The Pomerium Policy Language: parser and evaluator.
//!
//! Owns: compiling PPL into a fast, allocation-free evaluator and deciding
//! allow/deny with reasons. Must stay pure: no I/O, no async, no clock reads
//! (time is an argument). Filled in by the authorization issue.
#![forbid(unsafe_code)]
