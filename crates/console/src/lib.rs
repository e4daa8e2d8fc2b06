//! The console: routes, policies and a few global settings managed from a
//! browser (or its JSON API), applied to the running proxy at once.
//!
//! Console routes and settings are an overlay on the configuration file,
//! kept as JSON documents with Pomerium's key names in the session store's
//! backend (the embedded file by default, Redis when several instances
//! share it). Every change goes through the same reading and validation as
//! the file (the overlay is merged into the file's tree first), is built
//! into a complete runtime, saved with compare-and-set on the state's
//! version together with its history entry, and only then put in force.
//! Nothing invalid is saved; nothing saved fails to apply.
//!
//! The console is a route of its own (`console:` in the file): the usual
//! sign-in and policy run before any of this code does. It sits above
//! `gatehouse-proxy`: the binary registers a [`Console`] with
//! [`Proxy::new`] as the proxy's [`RouteService`], and hands it the proxy
//! for what it does outside a request ([`Console::start`],
//! [`Console::load_file`]). The proxy does not know this crate.
//!
//! | module | what |
//! |---|---|
//! | `state` | the state, a change and its record, their errors |
//! | `console` | the [`Console`]: its store, the state in force, making a change |
//! | `edit` | a change applied to the state (a revert included) |
//! | `follow` | other instances' saves, and the request rates |
//! | `import_export` | the state as a configuration file and back |
//! | `serve` | the console host: who may use it, cross-site writes, then `api` or `html` |
//! | `api` | the JSON API (`/api/v1`) |
//! | `html` | the pages, one file each; `form` maps the route form, `diff` the history |
//!
//! [`Proxy::new`]: gatehouse_proxy::Proxy::new
//! [`RouteService`]: gatehouse_proxy::RouteService
#![forbid(unsafe_code)]

mod api;
mod common;
mod console;
mod diff;
mod edit;
mod follow;
mod form;
mod html;
mod import_export;
mod serve;
mod state;

pub use console::Console;
pub use state::{Change, ChangeError, ConsoleRoute, Edit, FieldError, State};

#[cfg(test)]
mod tests;
