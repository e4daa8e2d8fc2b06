//! Where a console value came from: the marks (`console:routes/<id>/<key>`,
//! `console:settings/<key>`) the overlay gives the values it contributes,
//! and the reading of a mark back into the console value it names. The
//! compiler and the checks use this without depending on the overlay.

use crate::yaml::Mark;

/// What part of the console a diagnostic points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// A console route (by id), and the key within it when known.
    Route(&'a str, Option<&'a str>),
    /// A global setting.
    Setting(&'a str),
}

const PREFIX: &str = "console:";

/// The mark of a console route's key (`key` empty: the route as a whole).
pub fn route_mark(id: &str, key: &str) -> Mark {
    let origin = if key.is_empty() {
        format!("{PREFIX}routes/{id}")
    } else {
        format!("{PREFIX}routes/{id}/{key}")
    };
    Mark {
        origin: origin.into(),
        line: 0,
        col: 0,
    }
}

pub(crate) fn setting_mark(key: &str) -> Mark {
    Mark {
        origin: format!("{PREFIX}settings/{key}").into(),
        line: 0,
        col: 0,
    }
}

/// Which console value a mark belongs to; `None` for the file and the
/// environment.
pub fn target(mark: &Mark) -> Option<Target<'_>> {
    let rest = mark.origin.strip_prefix(PREFIX)?;
    if let Some(r) = rest.strip_prefix("routes/") {
        return Some(match r.split_once('/') {
            Some((id, key)) => Target::Route(id, Some(key)),
            None => Target::Route(r, None),
        });
    }
    rest.strip_prefix("settings/").map(Target::Setting)
}
