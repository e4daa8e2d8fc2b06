//! A YAML (and therefore JSON) document as a tree whose every node remembers
//! where it came from, so that any later validation can name `file:line:col`.

use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a value came from: a file position or an environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// File path, or `env:NAME` for values from the environment.
    pub origin: Arc<str>,
    /// 1-based line; 0 when the origin has no lines (environment).
    pub line: u32,
    /// 1-based column; 0 when the origin has no lines.
    pub col: u32,
}

impl Mark {
    pub fn env(name: &str) -> Mark {
        Mark {
            origin: format!("env:{name}").into(),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.origin)
        } else {
            write!(f, "{}:{}:{}", self.origin, self.line, self.col)
        }
    }
}

/// A scalar as written, with whether it was quoted (quoted scalars are
/// always strings; plain ones may be null, bool or a number).
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub quoted: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Keys keep their own marks so unknown keys can be reported precisely.
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

impl Node {
    pub fn scalar(text: impl Into<String>, mark: Mark) -> Node {
        Node {
            value: Value::Scalar(Scalar {
                text: text.into(),
                quoted: false,
            }),
            mark,
        }
    }

    pub fn empty_map(mark: Mark) -> Node {
        Node {
            value: Value::Map(Vec::new()),
            mark,
        }
    }

    /// True for `~`, `null` or an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if !s.quoted && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short description of the node's kind for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(_) if self.is_null() => "null",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

/// Parses one YAML (or JSON) document. An empty document is an empty map.
pub fn parse(text: &str, origin: &str) -> Result<Node, SyntaxError> {
    let origin: Arc<str> = origin.into();
    let mut builder = Builder {
        origin: origin.clone(),
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        let m = e.marker();
        return Err(SyntaxError {
            mark: Mark {
                origin,
                line: m.line() as u32,
                col: m.col() as u32 + 1,
            },
            message: format!("invalid YAML: {}", e.info()),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or_else(|| {
        Node::empty_map(Mark {
            origin,
            line: 1,
            col: 1,
        })
    }))
}

enum Frame {
    Seq(Node, usize),
    /// A mapping, its anchor, the key waiting for its value, and the keys
    /// that came from a merge (`<<`) and may still be overridden.
    Map(Node, usize, Option<Node>, Vec<String>),
}

struct Builder {
    origin: Arc<str>,
    stack: Vec<Frame>,
    /// Anchor id -> node, for aliases (`*name`).
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn mark(&self, m: Marker) -> Mark {
        Mark {
            origin: self.origin.clone(),
            line: m.line() as u32,
            col: m.col() as u32 + 1,
        }
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(seq, _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending, merged_keys)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let Value::Map(entries) = &mut map.value else {
                        return;
                    };
                    // YAML merge key: `<<: *defaults` copies entries not already set.
                    if key.as_str() == Some("<<") {
                        if let Value::Map(merged) = node.value {
                            for (k, v) in merged {
                                let name = k.as_str().unwrap_or_default().to_string();
                                if !entries.iter().any(|(e, _)| e.as_str() == Some(&name)) {
                                    merged_keys.push(name);
                                    entries.push((k, v));
                                }
                            }
                        }
                        return;
                    }
                    let existing = entries
                        .iter()
                        .position(|(e, _)| e.as_str().is_some() && e.as_str() == key.as_str());
                    match existing {
                        None => entries.push((key, node)),
                        Some(i) => {
                            let name = key.as_str().unwrap_or_default();
                            if let Some(m) = merged_keys.iter().position(|k| k == name) {
                                merged_keys.swap_remove(m);
                                entries[i] = (key, node);
                            } else if self.error.is_none() {
                                self.error = Some(SyntaxError {
                                    message: format!(
                                        "duplicate key `{name}` (first set at line {})",
                                        entries[i].0.mark.line
                                    ),
                                    mark: key.mark,
                                });
                            }
                        }
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let mark = self.mark(marker);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let node = Node {
                    value: Value::Scalar(Scalar { text, quoted }),
                    mark,
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(
                Node {
                    value: Value::Seq(Vec::new()),
                    mark,
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(
                Node {
                    value: Value::Map(Vec::new()),
                    mark,
                },
                anchor,
                None,
                Vec::new(),
            )),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(node, anchor)) | Some(Frame::Map(node, anchor, _, _)) => {
                    self.finish(node, anchor)
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.iter().rev().find(|(a, _)| *a == id) {
                Some((_, node)) => {
                    let node = node.clone();
                    self.finish(node, 0)
                }
                None => {
                    self.error = Some(SyntaxError {
                        mark,
                        message: "alias refers to an unknown anchor".into(),
                    })
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Writes a node as block-style YAML that reads back as the same tree
/// (strings that would read as something else are double-quoted).
pub fn emit(node: &Node) -> String {
    let mut out = String::new();
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => emit_map(entries, 0, &mut out),
        Value::Seq(items) if !items.is_empty() => emit_seq(items, 0, &mut out),
        _ => {
            out.push_str(&scalar_text(node));
            out.push('\n');
        }
    }
    out
}

fn emit_map(entries: &[(Node, Node)], indent: usize, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar_text(k));
        out.push(':');
        emit_value(v, indent, out);
    }
}

fn emit_seq(items: &[Node], indent: usize, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match &item.value {
            Value::Map(entries) if !entries.is_empty() => emit_map(entries, indent + 2, out),
            Value::Seq(inner) if !inner.is_empty() => emit_seq(inner, indent + 2, out),
            _ => {
                out.push_str(&scalar_text(item));
                out.push('\n');
            }
        }
    }
}

/// After `key:`: a scalar on the same line, a collection on the next.
fn emit_value(v: &Node, indent: usize, out: &mut String) {
    match &v.value {
        Value::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            emit_map(entries, indent + 2, out);
        }
        Value::Seq(items) if !items.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            emit_seq(items, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar_text(v));
            out.push('\n');
        }
    }
}

fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::Map(_) => "{}".into(),
        Value::Seq(_) => "[]".into(),
        Value::Scalar(s) if !s.quoted && node.is_null() => "null".into(),
        Value::Scalar(s) if !s.quoted && plain_safe(&s.text) => s.text.clone(),
        Value::Scalar(s) if s.quoted && plain_safe(&s.text) && !reads_as_other(&s.text) => {
            s.text.clone()
        }
        Value::Scalar(s) => quote(&s.text),
    }
}

/// A plain scalar that YAML would read as a boolean, null or number.
fn reads_as_other(t: &str) -> bool {
    matches!(
        t,
        "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "Yes"
            | "No"
            | "On"
            | "Off"
            | "YES"
            | "NO"
            | "ON"
            | "OFF"
            | "~"
            | "null"
            | "Null"
            | "NULL"
    ) || t.parse::<f64>().is_ok()
        || t.starts_with("0x")
        || t.starts_with("0o")
        || t.starts_with('.')
}

/// Text that needs no quotes in a block context.
fn plain_safe(t: &str) -> bool {
    let Some(first) = t.chars().next() else {
        return false;
    };
    !(first.is_whitespace()
        || t.ends_with(char::is_whitespace)
        || t.ends_with(':')
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || t.contains(": ")
        || t.contains(" #")
        || t.chars().any(|c| c.is_control() || c == '\u{feff}'))
}

fn quote(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 2);
    out.push('"');
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_one_based() {
        let doc = parse("a: 1\nroutes:\n  - from: https://x\n", "f.yaml").unwrap();
        let routes = doc.get("routes").unwrap();
        let Value::Seq(items) = &routes.value else {
            panic!("not a seq")
        };
        let from = items[0].get("from").unwrap();
        assert_eq!((from.mark.line, from.mark.col), (3, 11));
        assert_eq!(doc.get("a").unwrap().mark.to_string(), "f.yaml:1:4");
    }

    #[test]
    fn json_parses_with_positions() {
        let doc = parse("{\n  \"address\": \":8443\"\n}", "c.json").unwrap();
        let a = doc.get("address").unwrap();
        assert_eq!(a.as_str(), Some(":8443"));
        assert_eq!(a.mark.line, 2);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: c\n", "bad.yaml").unwrap_err();
        assert_eq!(&*err.mark.origin, "bad.yaml");
        assert!(err.mark.line >= 1, "{err:?}");
    }

    #[test]
    fn anchors_and_merge_keys() {
        let doc = parse(
            "base: &b {timeout: 5s, x: 1}\nr:\n  <<: *b\n  x: 2\n",
            "f.yaml",
        )
        .unwrap();
        let r = doc.get("r").unwrap();
        assert_eq!(r.get("x").unwrap().as_str(), Some("2"));
        assert_eq!(r.get("timeout").unwrap().as_str(), Some("5s"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n", "d.yaml").unwrap_err();
        assert_eq!(err.mark.line, 3);
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn empty_document_is_empty_map() {
        let doc = parse("", "e.yaml").unwrap();
        assert!(matches!(doc.value, Value::Map(ref m) if m.is_empty()));
    }

    #[test]
    fn emitted_yaml_reads_back_the_same() {
        let text = "a: 1\nb: \"true\"\nc:\n  - x\n  - {k: \"v: w\", n: ~, e: []}\n  - [1, 2]\nd: {}\ne: \"line\\nbreak\"\nf: \" lead\"\ng: '#x'\nh: http://a/b?c=d\n";
        let node = parse(text, "t").unwrap();
        let again = parse(&emit(&node), "t").unwrap();
        fn strip(n: &Node) -> String {
            match &n.value {
                Value::Scalar(s) if !s.quoted && n.is_null() => "null".into(),
                Value::Scalar(s) => format!(
                    "{}{:?}",
                    if s.quoted && super::reads_as_other(&s.text) {
                        "q"
                    } else {
                        ""
                    },
                    s.text
                ),
                Value::Seq(i) => format!("[{}]", i.iter().map(strip).collect::<Vec<_>>().join(",")),
                Value::Map(e) => format!(
                    "{{{}}}",
                    e.iter()
                        .map(|(k, v)| format!("{}={}", strip(k), strip(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }
        }
        assert_eq!(strip(&node), strip(&again), "{}", emit(&node));
    }
}
