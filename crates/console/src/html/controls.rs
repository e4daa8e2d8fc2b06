//! Form controls with their label, hint and error, shared by the route
//! and settings forms.

use std::collections::HashMap;

use gatehouse_proxy::answers::html_escape as esc;

use crate::state::FieldError;

/// A configuration message as HTML: escaped, with each `quoted` part
/// (keys, values, examples) set as code, as the file's messages write them.
pub(super) fn message(text: &str) -> String {
    let mut out = String::new();
    let mut parts = text.split('`');
    let mut code = false;
    let count = text.matches('`').count();
    if let Some(first) = parts.next() {
        out.push_str(&esc(first));
    }
    for (i, part) in parts.enumerate() {
        // An odd last backtick has no partner: kept as written.
        if count % 2 == 1 && i + 1 == count {
            out.push('`');
            out.push_str(&esc(part));
            continue;
        }
        code = !code;
        if code {
            out.push_str("<code>");
            out.push_str(&esc(part));
            out.push_str("</code>");
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

/// Renders form controls with their label, hint and error, and remembers
/// which fields it showed (and their labels): the summary links to those,
/// and spells out errors for any other field.
pub(super) struct Form<'a> {
    values: &'a HashMap<String, String>,
    errors: &'a [FieldError],
    shown: std::cell::RefCell<Vec<(String, String)>>,
}

impl<'a> Form<'a> {
    pub(super) fn new(values: &'a HashMap<String, String>, errors: &'a [FieldError]) -> Self {
        Form {
            values,
            errors,
            shown: Default::default(),
        }
    }

    pub(super) fn v(&self, name: &str) -> String {
        esc(self
            .values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default())
    }

    /// The attributes for `name`'s control (labelled `label`, which may
    /// hold markup) and its error message (empty when it has none). The
    /// control's id must be `f-{name}`: the summary links to it.
    pub(super) fn error(&self, name: &str, label: &str) -> (String, String) {
        self.shown
            .borrow_mut()
            .push((name.to_string(), label.to_string()));
        let messages: Vec<&str> = self
            .errors
            .iter()
            .filter(|e| e.field == name)
            .map(|e| e.message.as_str())
            .collect();
        if messages.is_empty() {
            return (String::new(), String::new());
        }
        (
            format!(" aria-invalid=true aria-describedby=\"err-{name}\""),
            format!(
                "<p class=error id=\"err-{name}\">{}</p>",
                message(&messages.join("; "))
            ),
        )
    }

    /// A labelled control: `control` gets the attributes to add to it.
    pub(super) fn field(
        &self,
        name: &str,
        label: &str,
        hint: &str,
        control: impl FnOnce(&str) -> String,
    ) -> String {
        let (attrs, err) = self.error(name, label);
        format!(
            "<div class=field><label for=\"f-{name}\">{label}</label>{}{}{err}</div>",
            control(&attrs),
            hint_html(hint),
        )
    }

    pub(super) fn text(&self, name: &str, label: &str, hint: &str, placeholder: &str) -> String {
        self.field(name, label, hint, |attrs| {
            format!(
                "<input type=text id=\"f-{name}\" name=\"{name}\" value=\"{}\" placeholder=\"{}\"{attrs}>",
                self.v(name),
                esc(placeholder)
            )
        })
    }

    pub(super) fn area(&self, name: &str, label: &str, hint: &str, placeholder: &str) -> String {
        self.field(name, label, hint, |attrs| {
            format!(
                "<textarea id=\"f-{name}\" name=\"{name}\" placeholder=\"{}\"{attrs}>{}</textarea>",
                esc(placeholder),
                self.v(name)
            )
        })
    }

    pub(super) fn check(&self, name: &str, label: &str, hint: &str) -> String {
        let (attrs, err) = self.error(name, label);
        let checked = if self.values.get(name).is_some_and(|v| v == "on") {
            " checked"
        } else {
            ""
        };
        format!(
            "<div class=\"field check\"><input type=checkbox id=\"f-{name}\" name=\"{name}\"{checked}{attrs}> <label for=\"f-{name}\">{label}</label>{h}{err}</div>",
            h = hint_html(hint),
        )
    }

    pub(super) fn select(
        &self,
        name: &str,
        label: &str,
        options: &[(&str, &str)],
        hint: &str,
    ) -> String {
        let current = self
            .values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default();
        let opts: String = options
            .iter()
            .map(|(v, l)| {
                let sel = if *v == current { " selected" } else { "" };
                format!("<option value=\"{v}\"{sel}>{l}</option>")
            })
            .collect();
        self.field(name, label, hint, |attrs| {
            format!("<select id=\"f-{name}\" name=\"{name}\"{attrs}>{opts}</select>")
        })
    }

    /// "Not saved" with the count and every error: a link to its field
    /// when one showed it, else spelled out (the file's, a key set through
    /// the API). Call after rendering the fields.
    pub(super) fn summary(&self) -> String {
        let shown = self.shown.borrow();
        let items: String = self
            .errors
            .iter()
            .map(|e| match shown.iter().find(|(name, _)| *name == e.field) {
                Some((name, label)) => format!(
                    "<li><a href=\"#f-{name}\">{label}: {}</a></li>",
                    message(&e.message)
                ),
                None => unshown(e),
            })
            .collect();
        error_summary(
            &match self.errors.len() {
                1 => "Not saved: 1 problem".to_string(),
                n => format!("Not saved: {n} problems"),
            },
            "Nothing was changed; fix these and save again.",
            &items,
        )
    }
}

/// An error no form field shows, as a summary's list item.
fn unshown(e: &FieldError) -> String {
    if e.field.is_empty() {
        format!("<li>{}</li>", message(&e.message))
    } else {
        format!(
            "<li><code>{}</code>: {}</li>",
            esc(&e.field),
            message(&e.message)
        )
    }
}

/// The box at the top of a form that was not saved (empty without
/// `items`). It takes the focus when the page loads (`autofocus`, as the
/// pages run no script), so keyboard and screen-reader users start at the
/// list of problems, each a link to its field.
pub(super) fn error_summary(title: &str, text: &str, items: &str) -> String {
    if items.is_empty() {
        return String::new();
    }
    format!(
        "<div class=problem role=alert id=error-summary tabindex=-1 autofocus aria-labelledby=error-summary-title>\
<h2 id=error-summary-title>{title}</h2><p>{text}</p><ul>{items}</ul></div>"
    )
}

fn hint_html(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("<p class=hint>{hint}</p>")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_set_quoted_parts_as_code_and_escape_the_rest() {
        assert_eq!(
            super::message("invalid `to` URL `<x>`: it needs a scheme"),
            "invalid <code>to</code> URL <code>&lt;x&gt;</code>: it needs a scheme"
        );
        assert_eq!(super::message("odd ` one"), "odd ` one");
        assert_eq!(super::message("a `b` c ` d"), "a <code>b</code> c ` d");
    }

    use super::*;

    #[test]
    fn every_error_is_in_the_summary_linked_to_its_field() {
        let values = HashMap::new();
        let errors = [
            FieldError {
                field: "to".into(),
                message: "bad to".into(),
            },
            FieldError {
                field: "redirect".into(),
                message: "bad redirect".into(),
            },
            FieldError {
                field: String::new(),
                message: "the file".into(),
            },
        ];
        let f = Form::new(&values, &errors);
        let to = f.area("to", "To", "", "");
        assert!(
            to.contains("aria-invalid=true") && to.contains("bad to"),
            "{to}"
        );
        let summary = f.summary();
        assert!(summary.contains("3 problems"), "{summary}");
        assert!(summary.contains(" autofocus"), "{summary}");
        assert!(
            summary.contains("<code>redirect</code>: bad redirect"),
            "{summary}"
        );
        assert!(summary.contains("<li>the file</li>"), "{summary}");
        assert!(
            summary.contains("<a href=\"#f-to\">To: bad to</a>"),
            "a link to the field that shows it: {summary}"
        );
        assert_eq!(Form::new(&values, &[]).summary(), "");
    }
}
