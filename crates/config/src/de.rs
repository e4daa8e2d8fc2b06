//! serde over a marked [`Node`] tree: every error carries the position of the
//! node that caused it, unknown keys become warnings with their position, and
//! [`Spanned`] / [`RawNode`] let the typed model keep positions for later
//! validation (routes, policies).

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::yaml::{Mark, Node, Value};

/// A deserialization error, positioned at the innermost node that failed.
#[derive(Debug, Clone)]
pub struct Error {
    pub message: String,
    pub mark: Option<Mark>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            mark: None,
        }
    }
}

/// Keys the deserializer saw that the model does not know.
#[derive(Default)]
pub struct Context {
    pub unknown_keys: RefCell<Vec<(String, Mark)>>,
}

/// Deserializes `T` from `node`, collecting unknown keys into `ctx`.
pub fn from_node<'de, T: Deserialize<'de>>(node: &Node, ctx: &Context) -> Result<T, Error> {
    T::deserialize(NodeDeserializer { node, ctx })
}

const SPANNED: &str = "$gatehouse::Spanned";
const SPANNED_MARK: &str = "$mark";
const SPANNED_VALUE: &str = "$value";
const RAW: &str = "$gatehouse::RawNode";

thread_local! {
    /// Hand-off slot for [`RawNode`]: serde cannot carry a foreign type
    /// through a `Visitor`, so the deserializer parks the node here and the
    /// visitor takes it straight back on the same thread.
    static RAW_SLOT: RefCell<Option<Node>> = const { RefCell::new(None) };
}

/// A value together with the position it was written at.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub mark: Mark,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let _: Option<String> = map.next_key()?;
                let (origin, line, col): (String, u32, u32) = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let value: T = map.next_value()?;
                Ok(Spanned {
                    value,
                    mark: Mark {
                        origin: origin.into(),
                        line,
                        col,
                    },
                })
            }
        }
        d.deserialize_struct(SPANNED, &[SPANNED_MARK, SPANNED_VALUE], V(PhantomData))
    }
}

/// An unparsed subtree (for example a PPL policy), kept with its positions
/// for the crate that compiles it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawNode(pub Node);

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
                RAW_SLOT
                    .with(|s| s.borrow_mut().take())
                    .map(RawNode)
                    .ok_or_else(|| E::custom("raw YAML values need the gatehouse config loader"))
            }
        }
        d.deserialize_struct(RAW, &[], V)
    }
}

#[derive(Clone, Copy)]
struct NodeDeserializer<'a> {
    node: &'a Node,
    ctx: &'a Context,
}

impl<'a> NodeDeserializer<'a> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            mark: Some(self.node.mark.clone()),
        }
    }

    /// Attaches this node's position to an error from deeper down that has none.
    fn at<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|mut e| {
            if e.mark.is_none() {
                e.mark = Some(self.node.mark.clone());
            }
            e
        })
    }

    fn text(&self) -> Result<&'a str, Error> {
        match &self.node.value {
            Value::Scalar(s) => Ok(&s.text),
            _ => Err(self.err(format!("expected a scalar, found {}", self.node.kind()))),
        }
    }

    fn is_plain(&self) -> bool {
        matches!(&self.node.value, Value::Scalar(s) if !s.quoted)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" | "yes" | "on" | "1" => Some(true),
        "false" | "False" | "FALSE" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

macro_rules! number {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let text = self.text()?;
            let n: $ty = text
                .trim()
                .parse()
                .map_err(|_| self.err(format!("expected a number, found `{text}`")))?;
            self.at(visitor.$visit(n))
        }
    };
}

impl<'de, 'a> Deserializer<'de> for NodeDeserializer<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Seq(_) => self.deserialize_seq(visitor),
            Value::Map(_) => self.deserialize_map(visitor),
            Value::Scalar(s) => {
                if self.node.is_null() {
                    return self.at(visitor.visit_unit());
                }
                if !s.quoted {
                    if let Some(b) = match s.text.as_str() {
                        "true" | "True" | "TRUE" => Some(true),
                        "false" | "False" | "FALSE" => Some(false),
                        _ => None,
                    } {
                        return self.at(visitor.visit_bool(b));
                    }
                    if let Ok(i) = s.text.parse::<i64>() {
                        return self.at(visitor.visit_i64(i));
                    }
                    if let Ok(f) = s.text.parse::<f64>()
                        && s.text.chars().any(|c| c.is_ascii_digit())
                    {
                        return self.at(visitor.visit_f64(f));
                    }
                }
                self.at(visitor.visit_str(&s.text))
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text()?;
        match parse_bool(text.trim()) {
            Some(b) => self.at(visitor.visit_bool(b)),
            None => Err(self.err(format!("expected true or false, found `{text}`"))),
        }
    }

    number!(deserialize_i8, visit_i8, i8);
    number!(deserialize_i16, visit_i16, i16);
    number!(deserialize_i32, visit_i32, i32);
    number!(deserialize_i64, visit_i64, i64);
    number!(deserialize_u8, visit_u8, u8);
    number!(deserialize_u16, visit_u16, u16);
    number!(deserialize_u32, visit_u32, u32);
    number!(deserialize_u64, visit_u64, u64);
    number!(deserialize_f32, visit_f32, f32);
    number!(deserialize_f64, visit_f64, f64);

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text()?;
        self.at(visitor.visit_str(text))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text()?;
        self.at(visitor.visit_bytes(text.as_bytes()))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() && self.is_plain() {
            self.at(visitor.visit_none())
        } else {
            self.at(visitor.visit_some(self))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.at(visitor.visit_unit())
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.at(visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Seq(items) => self.at(visitor.visit_seq(Seq {
                items: items.iter(),
                ctx: self.ctx,
            })),
            _ if self.node.is_null() => self.at(visitor.visit_seq(Seq {
                items: [].iter(),
                ctx: self.ctx,
            })),
            _ => Err(self.err(format!("expected a list, found {}", self.node.kind()))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Map(entries) => self.at(visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                ctx: self.ctx,
                known: None,
            })),
            _ if self.node.is_null() => self.at(visitor.visit_map(Map {
                entries: [].iter(),
                value: None,
                ctx: self.ctx,
                known: None,
            })),
            _ => Err(self.err(format!("expected a mapping, found {}", self.node.kind()))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            return visitor.visit_map(SpannedAccess {
                node: self,
                state: 0,
            });
        }
        if name == RAW {
            RAW_SLOT.with(|s| *s.borrow_mut() = Some(self.node.clone()));
            return self.at(visitor.visit_unit());
        }
        match &self.node.value {
            Value::Map(entries) => self.at(visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                ctx: self.ctx,
                known: Some(fields),
            })),
            _ if self.node.is_null() => self.at(visitor.visit_map(Map {
                entries: [].iter(),
                value: None,
                ctx: self.ctx,
                known: Some(fields),
            })),
            _ => Err(self.err(format!("expected a mapping, found {}", self.node.kind()))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let text = self.text()?;
        self.at(visitor.visit_enum(text.into_deserializer()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    ctx: &'a Context,
}

impl<'de, 'a> SeqAccess<'de> for Seq<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some(node) => {
                let d = NodeDeserializer {
                    node,
                    ctx: self.ctx,
                };
                d.at(seed.deserialize(d)).map(Some)
            }
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
    ctx: &'a Context,
    /// For structs: the field names, so unknown keys can be reported.
    known: Option<&'static [&'static str]>,
}

impl<'de, 'a> MapAccess<'de> for Map<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.entries.by_ref() {
            if let Some(known) = self.known {
                let name = key.as_str().unwrap_or_default();
                if !known.contains(&name) {
                    self.ctx
                        .unknown_keys
                        .borrow_mut()
                        .push((name.to_string(), key.mark.clone()));
                    continue;
                }
            }
            self.value = Some(value);
            let d = NodeDeserializer {
                node: key,
                ctx: self.ctx,
            };
            return d.at(seed.deserialize(d)).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("value requested before key"))?;
        let d = NodeDeserializer {
            node,
            ctx: self.ctx,
        };
        d.at(seed.deserialize(d))
    }
}

/// Feeds [`Spanned`]'s visitor the node's position and then the node itself.
struct SpannedAccess<'a> {
    node: NodeDeserializer<'a>,
    state: u8,
}

impl<'de, 'a> MapAccess<'de> for SpannedAccess<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = match self.state {
            0 => SPANNED_MARK,
            1 => SPANNED_VALUE,
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.state += 1;
        if self.state == 1 {
            let m = &self.node.node.mark;
            seed.deserialize(MarkDeserializer(m))
        } else {
            seed.deserialize(self.node)
        }
    }
}

/// Presents a [`Mark`] as the tuple `(origin, line, col)`.
struct MarkDeserializer<'a>(&'a Mark);

impl<'de, 'a> Deserializer<'de> for MarkDeserializer<'a> {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        use serde::de::value::SeqDeserializer;
        let origin: &str = &self.0.origin;
        let parts: Vec<MarkPart> = vec![
            MarkPart::Str(origin.to_string()),
            MarkPart::Num(self.0.line),
            MarkPart::Num(self.0.col),
        ];
        visitor.visit_seq(SeqDeserializer::new(parts.into_iter()))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

enum MarkPart {
    Str(String),
    Num(u32),
}

impl<'de> IntoDeserializer<'de, Error> for MarkPart {
    type Deserializer = MarkPartDeserializer;
    fn into_deserializer(self) -> MarkPartDeserializer {
        MarkPartDeserializer(self)
    }
}

struct MarkPartDeserializer(MarkPart);

impl<'de> Deserializer<'de> for MarkPartDeserializer {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            MarkPart::Str(s) => visitor.visit_string(s),
            MarkPart::Num(n) => visitor.visit_u32(n),
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The field names of a struct deserialized with serde derive.
pub fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'f>(&'f mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Error> {
            Err(<Error as de::Error>::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(<Error as de::Error>::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    #[derive(Deserialize, Debug)]
    #[serde(default)]
    #[derive(Default)]
    struct Demo {
        name: Option<Spanned<String>>,
        #[serde(alias = "also")]
        count: u32,
        flag: bool,
        list: Vec<String>,
        raw: Option<RawNode>,
    }

    #[test]
    fn spans_unknown_keys_and_raw_nodes() {
        let doc = parse(
            "name: x\ncount: 3\nflag: true\nbogus: 1\nlist: [a, b]\nraw: {allow: {or: []}}\n",
            "t.yaml",
        )
        .unwrap();
        let ctx = Context::default();
        let d: Demo = from_node(&doc, &ctx).unwrap();
        let name = d.name.unwrap();
        assert_eq!(name.value, "x");
        assert_eq!((name.mark.line, name.mark.col), (1, 7));
        assert_eq!(d.count, 3);
        assert!(d.flag);
        assert_eq!(d.list, vec!["a", "b"]);
        assert!(d.raw.unwrap().0.get("allow").is_some());
        let unknown = ctx.unknown_keys.borrow();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].0, "bogus");
        assert_eq!(unknown[0].1.line, 4);
    }

    #[test]
    fn aliases_are_known_fields() {
        let doc = parse("also: 7\n", "t.yaml").unwrap();
        let ctx = Context::default();
        let d: Demo = from_node(&doc, &ctx).unwrap();
        assert_eq!(d.count, 7);
        assert!(ctx.unknown_keys.borrow().is_empty());
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let doc = parse("name: x\ncount: lots\n", "t.yaml").unwrap();
        let err = from_node::<Demo>(&doc, &Context::default()).unwrap_err();
        let mark = err.mark.unwrap();
        assert_eq!((mark.line, mark.col), (2, 8));
        assert!(err.message.contains("expected a number"), "{}", err.message);
    }
}
