//! Configuration for gatehouse, compatible with Pomerium's `config.yaml`.
//!
//! Owns: reading the file (YAML or JSON), environment overrides (upper-case
//! key names), `*_file` secrets, validation with `file:line:col` diagnostics,
//! and the compiled [`Config`] the data plane runs on. Must not: open
//! sockets, start tasks or know about requests.
#![forbid(unsafe_code)]

mod compile;
mod compiled;
pub mod de;
mod diagnostic;
mod input;
mod load;
pub mod model;
mod origin;
pub mod overlay;
pub mod registry;
pub mod yaml;

pub use compile::{parse_template, parse_upstream};
pub use compiled::*;
pub use diagnostic::{Diagnostic, Severity};
pub use input::read_limited;
pub use load::{
    Loaded, ROUTE_SECRET_KEYS, Rejected, RoutePolicy, SECRET_KEYS, did_you_mean_hint, load_file,
    load_file_with_env, load_str,
};
pub use model::{Options, RouteOptions, parse_duration};
pub use yaml::{MAX_DEPTH, MAX_INPUT_BYTES, MAX_TREE_BYTES, Mark, shorten};

#[cfg(test)]
mod registry_tests;
#[cfg(test)]
mod tests;
