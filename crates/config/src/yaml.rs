//! A YAML (and therefore JSON) document as a tree whose every node remembers
//! where it came from, so that any later validation can name `file:line:col`.

use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a value came from: a file position or an environment variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// Points this value and everything in it at `mark` (a value parsed
    /// from a string or taken from the environment has no lines of its
    /// own: errors inside it name the string's place).
    pub fn relabel(&mut self, mark: &Mark) {
        self.mark = mark.clone();
        match &mut self.value {
            Value::Scalar(_) => {}
            Value::Seq(items) => items.iter_mut().for_each(|n| n.relabel(mark)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.relabel(mark);
                v.relabel(mark)
            }),
        }
    }

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

    /// Removes the map entry (key or value) or list item at `mark`, the
    /// first found; false when nothing is there.
    pub fn remove_at(&mut self, mark: &Mark) -> bool {
        match &mut self.value {
            Value::Scalar(_) => false,
            Value::Seq(items) => {
                if let Some(i) = items.iter().position(|n| n.mark == *mark) {
                    items.remove(i);
                    return true;
                }
                items.iter_mut().any(|n| n.remove_at(mark))
            }
            Value::Map(entries) => {
                if let Some(i) = entries
                    .iter()
                    .position(|(k, v)| k.mark == *mark || v.mark == *mark)
                {
                    entries.remove(i);
                    return true;
                }
                entries.iter_mut().any(|(_, v)| v.remove_at(mark))
            }
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

/// The most bytes of configuration text read or parsed from one source
/// (a file, an environment variable, a console import). Real Pomerium files
/// with thousands of routes stay well under 1 MiB; 8 MiB leaves room for
/// inline certificates while keeping the parsed tree under [`MAX_TREE_BYTES`].
pub const MAX_INPUT_BYTES: usize = 8 << 20;

/// The most memory a parsed configuration may take, counting every copy an
/// alias (`*name`) or merge key makes. A budget in bytes rather than in
/// values, because one alias of a long string costs as much as many values.
pub const MAX_TREE_BYTES: usize = 64 << 20;

/// The deepest nesting of lists and mappings. PPL policies are the deepest
/// part of a real file (about a dozen levels); everything that later walks
/// the tree recursively stays far from the end of its stack.
pub const MAX_DEPTH: usize = 64;

/// What one value costs in the tree, besides its text: the node itself and
/// its share of the list or map that holds it.
const NODE_COST: usize = 2 * std::mem::size_of::<Node>();

/// Parses one YAML (or JSON) document. An empty document is an empty map.
/// A leading byte order mark is ignored. Only the first document of a
/// stream is read (as Pomerium does). Input size, nesting depth and the
/// memory the tree takes (alias copies included) are bounded: past a limit
/// the parse stops at once with a positioned error.
pub fn parse(text: &str, origin: &str) -> Result<Node, SyntaxError> {
    parse_within(text, origin, MAX_TREE_BYTES).map(|(node, _)| node)
}

/// [`parse`] with a smaller tree budget (for text inside a configuration,
/// which shares what is left of one): the tree and the bytes it took.
pub fn parse_within(text: &str, origin: &str, budget: usize) -> Result<(Node, usize), SyntaxError> {
    let origin: Arc<str> = origin.into();
    let start = Mark {
        origin: origin.clone(),
        line: 1,
        col: 1,
    };
    if text.len() > MAX_INPUT_BYTES {
        return Err(SyntaxError {
            mark: start,
            message: format!(
                "the configuration is {} bytes, more than the limit of {}",
                text.len(),
                size(MAX_INPUT_BYTES)
            ),
        });
    }
    // Editors on Windows write a BOM; the first key must still be the key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder {
        origin: origin.clone(),
        text,
        stack: Vec::new(),
        anchors: Default::default(),
        root: None,
        error: None,
        spent: 0,
        budget: budget.min(MAX_TREE_BYTES),
        values: 0,
        anchored: 0,
    };
    // yaml-rust2's own `load` recurses once per nesting level and cannot be
    // stopped early; pulling events lets the budget end the parse at once.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut parser = Parser::new_from_str(text);
        loop {
            let (ev, marker) = parser.next_token()?;
            let done = matches!(ev, Event::StreamEnd | Event::DocumentEnd);
            builder.on_event(ev, marker);
            if done || builder.error.is_some() {
                return Ok(());
            }
        }
    }));
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let e: yaml_rust2::ScanError = e;
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
        // The parser is third-party code fed untrusted text: a bug in it is
        // a refused file, never a crashed reload.
        Err(_) => {
            return Err(SyntaxError {
                mark: start,
                message: "invalid YAML: the parser failed on this input".into(),
            });
        }
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    let spent = builder.spent;
    Ok((
        builder.root.unwrap_or_else(|| Node::empty_map(start)),
        spent,
    ))
}

/// Checks a tree built by other means (environment values, console
/// overlays merged into the file's tree) against the same depth and memory
/// limits as [`parse`]. Iterative, so any depth is measured safely.
pub fn check_limits(root: &Node) -> Result<(), SyntaxError> {
    let mut spent = 0usize;
    let mut todo: Vec<(&Node, usize)> = vec![(root, 1)];
    while let Some((node, depth)) = todo.pop() {
        spent += NODE_COST;
        match &node.value {
            Value::Scalar(s) => spent += s.text.len(),
            Value::Seq(items) => todo.extend(items.iter().map(|n| (n, depth + 1))),
            Value::Map(entries) => {
                for (k, v) in entries {
                    todo.push((k, depth + 1));
                    todo.push((v, depth + 1));
                }
            }
        }
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                mark: node.mark.clone(),
                message: format!("lists and mappings are nested more than {MAX_DEPTH} levels deep"),
            });
        }
        if spent > MAX_TREE_BYTES {
            return Err(SyntaxError {
                mark: node.mark.clone(),
                message: format!(
                    "the configuration takes more than {} once read",
                    size(MAX_TREE_BYTES)
                ),
            });
        }
    }
    Ok(())
}

/// `8 MiB`, `64 KiB`, `12 bytes`.
fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Shortens a value quoted in a message: the first 80 characters and the
/// full length, so a huge bad value cannot flood a terminal or a log.
pub fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    const KEEP: usize = 80;
    match text.char_indices().nth(KEEP) {
        None => text.into(),
        Some((cut, _)) => format!("{}…({} bytes)", &text[..cut], text.len()).into(),
    }
}

/// A list or mapping being built, with what its end needs.
struct Frame {
    node: Node,
    anchor: usize,
    /// What one copy of it costs so far (an alias of it costs this again).
    cost: usize,
    /// Levels below it, itself included (1 for an empty one).
    height: usize,
    /// For mappings: the key waiting for its value, and the keys that came
    /// from a merge (`<<`) and may still be overridden.
    pending: Option<Node>,
    merged_keys: std::collections::HashSet<String>,
    /// For mappings: each string key's entry, so a duplicate is found in
    /// constant time (a scan per key made a flat map quadratic).
    keys: std::collections::HashMap<String, usize>,
}

/// An anchored node, what a copy of it costs and how deep it is.
struct Anchor {
    node: Node,
    cost: usize,
    height: usize,
}

struct Builder<'t> {
    origin: Arc<str>,
    /// The text being parsed, to name aliases in errors.
    text: &'t str,
    stack: Vec<Frame>,
    /// Anchors in order, for aliases (`*name`).
    /// By yaml-rust2's anchor id (a redefined name gets a new id).
    anchors: std::collections::HashMap<usize, Anchor>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    /// Tree bytes so far, alias copies included (see [`MAX_TREE_BYTES`]).
    spent: usize,
    /// The most tree bytes this parse may spend.
    budget: usize,
    /// Values so far, alias copies included (for the error message).
    values: usize,
    /// Open lists and mappings that have an anchor: everything added inside
    /// one is stored twice (in the tree and in the anchor's copy).
    anchored: usize,
}

impl Builder<'_> {
    fn mark(&self, m: Marker) -> Mark {
        Mark {
            origin: self.origin.clone(),
            line: m.line() as u32,
            col: m.col() as u32 + 1,
        }
    }

    fn fail(&mut self, mark: Mark, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { mark, message });
        }
    }

    /// Spends `cost` tree bytes on `values` more values; false (and an
    /// error naming the alias, if one is the cause) past the budget.
    fn spend(&mut self, cost: usize, values: usize, mark: &Mark, alias: Option<Marker>) -> bool {
        self.spent = self.spent.saturating_add(cost);
        self.values = self.values.saturating_add(values);
        if self.spent <= self.budget {
            return true;
        }
        let limit = size(self.budget);
        let message = match alias.map(|at| self.alias_name(at)) {
            Some(name) => format!(
                "alias `*{name}` makes the configuration take more than {limit} ({} values with every alias copied); aliases that copy aliases multiply, so nest fewer of them",
                self.values
            ),
            None => format!(
                "the configuration takes more than {limit} once read ({} values)",
                self.values
            ),
        };
        self.fail(mark.clone(), message);
        false
    }

    /// The anchor name of the alias at `at` (`*name`), shortened for
    /// messages. Found by line and column: the parser counts characters.
    fn alias_name(&self, at: Marker) -> String {
        let name: String = self
            .text
            .split('\n')
            .nth(at.line().saturating_sub(1))
            .map(|line| {
                line.chars()
                    .skip(at.col())
                    .skip_while(|c| *c == '*')
                    .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                    .collect()
            })
            .unwrap_or_default();
        shorten(&name).into_owned()
    }

    /// How many times a node added now is stored: once in the tree, once
    /// more for each open anchored list or mapping, and once more if it has
    /// an anchor itself. Charging all copies up front means the budget is
    /// crossed at the value (or alias) that causes it.
    fn copies(&self, anchor: usize) -> usize {
        1 + self.anchored + usize::from(anchor > 0)
    }

    fn start(&mut self, value: Value, anchor: usize, mark: Mark) {
        if self.stack.len() >= MAX_DEPTH {
            return self.fail(
                mark,
                format!("lists and mappings are nested more than {MAX_DEPTH} levels deep"),
            );
        }
        let copies = self.copies(anchor);
        if !self.spend(NODE_COST * copies, copies, &mark, None) {
            return;
        }
        self.anchored += usize::from(anchor > 0);
        self.stack.push(Frame {
            node: Node { value, mark },
            anchor,
            cost: NODE_COST,
            height: 1,
            pending: None,
            merged_keys: Default::default(),
            keys: Default::default(),
        });
    }

    /// A complete node: remembered if anchored, then added to its parent.
    fn finish(&mut self, node: Node, anchor: usize, cost: usize, height: usize) {
        if anchor > 0 {
            self.anchors.insert(
                anchor,
                Anchor {
                    node: node.clone(),
                    cost,
                    height,
                },
            );
        }
        let Some(frame) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        frame.height = frame.height.max(height + 1);
        frame.cost = frame.cost.saturating_add(cost);
        match &mut frame.node.value {
            Value::Seq(items) => items.push(node),
            Value::Scalar(_) => {}
            Value::Map(entries) => match frame.pending.take() {
                None => frame.pending = Some(node),
                Some(key) => {
                    // YAML merge key: `<<: *defaults` copies entries not already set.
                    if key.as_str() == Some("<<") {
                        if let Value::Map(merged) = node.value {
                            for (k, v) in merged {
                                let name = k.as_str().unwrap_or_default().to_string();
                                if !frame.keys.contains_key(&name) {
                                    frame.keys.insert(name.clone(), entries.len());
                                    frame.merged_keys.insert(name);
                                    entries.push((k, v));
                                }
                            }
                        }
                        return;
                    }
                    let existing = key.as_str().and_then(|k| frame.keys.get(k).copied());
                    match existing {
                        None => {
                            if let Some(k) = key.as_str() {
                                frame.keys.insert(k.to_string(), entries.len());
                            }
                            entries.push((key, node))
                        }
                        Some(i) => {
                            let name = key.as_str().unwrap_or_default();
                            if frame.merged_keys.remove(name) {
                                entries[i] = (key, node);
                            } else if self.error.is_none() {
                                self.error = Some(SyntaxError {
                                    message: format!(
                                        "duplicate key `{}` (first set at line {})",
                                        shorten(name),
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

    fn on_event(&mut self, ev: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let mark = self.mark(marker);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let cost = NODE_COST + text.len();
                let copies = self.copies(anchor);
                if !self.spend(cost.saturating_mul(copies), copies, &mark, None) {
                    return;
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                let node = Node {
                    value: Value::Scalar(Scalar { text, quoted }),
                    mark,
                };
                self.finish(node, anchor, cost, 1);
            }
            Event::SequenceStart(anchor, _) => self.start(Value::Seq(Vec::new()), anchor, mark),
            Event::MappingStart(anchor, _) => self.start(Value::Map(Vec::new()), anchor, mark),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    self.anchored -= usize::from(frame.anchor > 0);
                    self.finish(frame.node, frame.anchor, frame.cost, frame.height);
                }
            }
            Event::Alias(id) => {
                let Some(anchor) = self.anchors.get(&id) else {
                    return self.fail(mark, "alias refers to an unknown anchor".into());
                };
                let (cost, height) = (anchor.cost, anchor.height);
                if self.stack.len() + height > MAX_DEPTH {
                    let name = self.alias_name(marker);
                    return self.fail(
                        mark,
                        format!(
                            "alias `*{name}` nests lists and mappings more than {MAX_DEPTH} levels deep"
                        ),
                    );
                }
                // Checked before the copy is made: a bomb never allocates.
                let copies = self.copies(0);
                let values = (cost / NODE_COST).saturating_mul(copies);
                if !self.spend(cost.saturating_mul(copies), values, &mark, Some(marker)) {
                    return;
                }
                let Some(node) = self.anchors.get(&id).map(|a| a.node.clone()) else {
                    return;
                };
                self.finish(node, 0, cost, height);
            }
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

    /// The error for a text that must not load (without printing a tree
    /// that did load: it may be huge).
    fn refused(text: &str) -> SyntaxError {
        match parse(text, "b.yaml") {
            Ok(_) => panic!("loaded:\n{}", shorten(text)),
            Err(e) => e,
        }
    }

    /// `levels` of anchors, each a list of `width` aliases of the one before.
    fn bomb(levels: usize, width: usize) -> String {
        let mut text = String::from("a0: &a0 [lol]\n");
        for i in 1..=levels {
            let items = vec![format!("*a{}", i - 1); width].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        text
    }

    #[test]
    fn alias_bombs_are_refused_at_the_alias_that_crosses_the_budget() {
        // Width 9 from 6 levels up is past the budget; width 2 reaches 2^60.
        for (levels, width) in [(6, 9), (7, 9), (9, 9), (30, 9), (60, 2)] {
            let err = refused(&bomb(levels, width));
            assert!(err.message.starts_with("alias `*a"), "{err:?}");
            assert!(err.message.contains("64 MiB"), "{err:?}");
            assert!(err.mark.line >= 2 && err.mark.col > 1, "{err:?}");
            let line = bomb(levels, width)
                .lines()
                .nth(err.mark.line as usize - 1)
                .unwrap()
                .to_string();
            let at: String = line.chars().skip(err.mark.col as usize - 1).collect();
            assert!(at.starts_with('*'), "the mark points at the alias: {at}");
            let named = err.message.split('`').nth(1).unwrap();
            assert!(at.starts_with(named), "{named} vs {at}");
        }
    }

    /// Each key costs constant time: a flat mapping of 200,000 keys (about
    /// 3 MB) parses at once, where a scan per key took minutes. Duplicates
    /// are still found, and merged keys may still be overridden.
    #[test]
    fn flat_mappings_parse_in_linear_time() {
        let mut text = String::new();
        for i in 0..200_000 {
            text.push_str(&format!("k{i}: {i}\n"));
        }
        let root = parse(&text, "flat.yaml").unwrap();
        assert!(matches!(&root.value, Value::Map(e) if e.len() == 200_000));
        text.push_str("k7: again\n");
        let e = parse(&text, "flat.yaml").unwrap_err();
        assert!(
            e.message
                .contains("duplicate key `k7` (first set at line 8)"),
            "{}",
            e.message
        );
        let merged = parse("a: &a {x: 1, y: 2}\nb: {<<: *a, x: 3}\n", "m.yaml").unwrap();
        let Value::Map(top) = &merged.value else {
            panic!()
        };
        let Value::Map(b) = &top[1].1.value else {
            panic!()
        };
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn aliases_are_named_by_character_position() {
        // Multi-byte text before the alias: the parser counts characters.
        let text = format!("# é ✓\n{}", bomb(6, 9));
        let err = refused(&text);
        assert!(err.message.starts_with("alias `*a5`"), "{err:?}");
    }

    #[test]
    fn nested_aliases_within_the_budget_still_load() {
        let doc = parse(&bomb(3, 9), "ok.yaml").unwrap();
        let Value::Seq(top) = &doc.get("a3").unwrap().value else {
            panic!("not a list")
        };
        assert_eq!(top.len(), 9);
        let mut defaults =
            String::from("base: &b {timeout: 5s, allow_websockets: true}\nroutes:\n");
        for i in 0..500 {
            defaults.push_str(&format!(
                "  - {{<<: *b, from: 'https://r{i}.example.com'}}\n"
            ));
        }
        assert!(parse(&defaults, "many.yaml").is_ok());
    }

    #[test]
    fn aliases_of_long_strings_count_their_bytes() {
        let text = format!(
            "a: &a '{}'\nb: [{}]\n",
            "x".repeat(1 << 20),
            vec!["*a"; 100].join(",")
        );
        let err = refused(&text);
        assert!(err.message.starts_with("alias `*a`"), "{err:?}");
        assert_eq!(err.mark.line, 2);
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&nested(MAX_DEPTH), "d.yaml").is_ok());
        let err = parse(&nested(MAX_DEPTH + 1), "d.yaml").unwrap_err();
        assert!(err.message.contains("nested more than 64"), "{err:?}");
        assert_eq!((err.mark.line, err.mark.col), (1, 65));
        // Block style is limited the same way, whatever the parser allows.
        let mut block = String::new();
        for i in 0..10_000 {
            block.push_str(&format!("{}k:\n", " ".repeat(i)));
        }
        assert!(parse(&block, "d.yaml").is_err());
        // An alias of a deep node, used deep down, is as deep as its copy.
        let deep = format!(
            "a: &a {}\nb: {}*a{}\n",
            nested(40),
            "[".repeat(30),
            "]".repeat(30)
        );
        let err = refused(&deep);
        assert!(err.message.starts_with("alias `*a` nests"), "{err:?}");
        assert!(check_limits(&parse(&nested(40), "d").unwrap()).is_ok());
    }

    #[test]
    fn check_limits_measures_trees_built_elsewhere() {
        let mut node = Node::scalar("x", Mark::env("X"));
        for _ in 0..100_000 {
            node = Node {
                value: Value::Seq(vec![node]),
                mark: Mark::env("X"),
            };
        }
        let err = check_limits(&node).unwrap_err();
        assert!(err.message.contains("nested more than"), "{err:?}");
        // A tree this deep must also be dropped without recursing.
        let mut node = Some(node);
        while let Some(Node {
            value: Value::Seq(mut items),
            ..
        }) = node.take()
        {
            node = items.pop();
        }
        let wide = Node {
            value: Value::Seq(vec![Node::scalar("y".repeat(1 << 20), Mark::env("X")); 70]),
            mark: Mark::env("X"),
        };
        let err = check_limits(&wide).unwrap_err();
        assert!(err.message.contains("more than 64 MiB"), "{err:?}");
    }

    #[test]
    fn input_size_is_bounded() {
        let text = format!("a: {}\n", "x".repeat(MAX_INPUT_BYTES));
        let err = parse(&text, "big.yaml").unwrap_err();
        assert_eq!((err.mark.line, err.mark.col), (1, 1));
        assert!(
            err.message.contains("more than the limit of 8 MiB"),
            "{err:?}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let doc = parse("\u{feff}routes: []\nb: 2\n", "bom.yaml").unwrap();
        assert!(doc.get("routes").is_some());
        assert_eq!(doc.get("b").unwrap().mark.to_string(), "bom.yaml:2:4");
        let doc = parse("\u{feff}{\"a\": 1}", "bom.json").unwrap();
        assert_eq!(doc.get("a").unwrap().as_str(), Some("1"));
    }

    #[test]
    fn long_values_are_shortened() {
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(1000);
        let s = shorten(&long);
        assert!(s.ends_with("…(2000 bytes)"), "{s}");
        assert_eq!(s.chars().filter(|c| *c == 'é').count(), 80);
        let err = parse(&format!("{k}: 1\n{k}: 2\n", k = "k".repeat(5000)), "d").unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
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
