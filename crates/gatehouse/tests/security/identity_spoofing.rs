//! See main.rs for the class this module covers.

#[allow(unused_imports)]
use crate::common::*;
