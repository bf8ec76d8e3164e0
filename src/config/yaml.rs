//! A YAML document as a small tree whose every key and value knows where it sits in the text.
//!
//! serde-saphyr reports *where* a typed deserialization failed (line, column) but not *which key*
//! it was reading: an unknown nested field says "unknown field `x`" without its section, and a
//! wrong type says "invalid floating point" without the field name. So the config is read in two
//! steps: this module turns the text into a [`Node`] tree with [`Spanned`] keys and values, and
//! `schema.rs` walks it, knowing the full key path of every value. The byte spans also let
//! `edit.rs` change one value of a file in place without touching anything else.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A node with its location in the source text.
pub(crate) type SNode = Spanned<Node>;

/// A parsed YAML node. Sequences are not kept (no setting takes one): only their presence.
#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq,
    Map(Vec<(SNode, SNode)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        // Out of i128 range: no setting accepts such a number, keep it as a huge float.
        Ok(i128::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Node::Seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<SNode>()? {
            entries.push((key, map.next_value::<SNode>()?));
        }
        Ok(Node::Map(entries))
    }
}

/// Parse one YAML document.
///
/// Only `true`/`false` (any case) are booleans, so `yes`, `on`, ... stay text and get a clear
/// "must be true or false" instead of silently meaning something. `.inf`/`.nan` reach the tree
/// as floats, so that they are reported against their key like any other bad number.
pub(crate) fn parse(text: &str) -> Result<SNode, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options)
}

/// A one-line description of a YAML error, with its line and column when known.
pub(crate) fn error_message(err: &serde_saphyr::Error) -> String {
    err.without_snippet()
        .render_with_formatter(&serde_saphyr::UserMessageFormatter)
}

/// The byte range of a node in the text it was parsed from.
pub(crate) fn byte_range(node: &SNode) -> Option<Range<usize>> {
    let span = node.referenced.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    Some(start..start + len)
}

/// The source text of a node, as written (quotes included).
pub(crate) fn raw<'t>(text: &'t str, node: &SNode) -> Option<&'t str> {
    text.get(byte_range(node)?)
}

/// A key's name: its text, or its spelling in the file for a non-text key (`1:`, `true:`).
pub(crate) fn key_name(text: &str, key: &SNode) -> String {
    match &key.value {
        Node::Str(s) => s.clone(),
        _ => raw(text, key).unwrap_or("?").to_owned(),
    }
}

/// How a value reads in an error message: `0`, `-3`, `"abc"`, `a list`.
pub(crate) fn describe(text: &str, node: &SNode) -> String {
    match &node.value {
        Node::Null => "nothing".to_owned(),
        Node::Seq => "a list".to_owned(),
        Node::Map(_) => "a mapping".to_owned(),
        Node::Str(s) => format!("{s:?}"),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => raw(text, node).map_or_else(|| i.to_string(), str::to_owned),
        Node::Float(f) => raw(text, node).map_or_else(|| f.to_string(), str::to_owned),
    }
}

/// Render `value` as a YAML scalar: plain when it reads back as exactly this value, else quoted.
///
/// With `text_only`, a plain spelling that YAML would read as a number, boolean or null (`2024`,
/// `true`, `~`) is quoted so it stays text; without it, such spellings are written plain (the
/// caller validates the result). An empty value is written as nothing (null: "use the default").
pub(crate) fn scalar(value: &str, text_only: bool) -> String {
    if value.is_empty() {
        return String::new();
    }
    if plain_reads_back(value, text_only) {
        value.to_owned()
    } else if value.chars().any(char::is_control) {
        // JSON string syntax is valid YAML double-quoted syntax.
        serde_json::to_string(value).unwrap_or_default()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

fn plain_reads_back(value: &str, text_only: bool) -> bool {
    let doc = format!("k: {value}\n");
    let Ok(root) = parse(&doc) else {
        return false;
    };
    let Node::Map(entries) = &root.value else {
        return false;
    };
    let [(_, node)] = entries.as_slice() else {
        return false;
    };
    // The whole text must be the value: no comment, anchor or tag swallowed part of it.
    if byte_range(node) != Some(3..3 + value.len()) {
        return false;
    }
    match &node.value {
        Node::Str(s) => s == value,
        Node::Seq | Node::Map(_) => false,
        _ => !text_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_keeps_plain_paths_plain() {
        assert_eq!(
            scalar("//server/share/app.db", true),
            "//server/share/app.db"
        );
        assert_eq!(
            scalar(r"\\server\share\app.db", true),
            r"\\server\share\app.db"
        );
        assert_eq!(scalar("~/cache", true), "~/cache");
    }

    #[test]
    fn scalar_quotes_what_yaml_would_misread() {
        assert_eq!(scalar("2024", true), "'2024'");
        assert_eq!(scalar("~", true), "'~'");
        assert_eq!(scalar("a # b", true), "'a # b'");
        assert_eq!(scalar("it's: here", true), "'it''s: here'");
        assert_eq!(scalar("- x", false), "'- x'");
        assert_eq!(scalar("line\nbreak", true), "\"line\\nbreak\"");
    }

    #[test]
    fn scalar_writes_numbers_plain_when_text_is_not_required() {
        assert_eq!(scalar("30", false), "30");
        assert_eq!(scalar("true", false), "true");
        assert_eq!(scalar("30 # comment", false), "'30 # comment'");
    }

    #[test]
    fn quoted_scalars_read_back_as_the_same_text() {
        for value in [
            "2024",
            "~",
            "a # b",
            "it's: here",
            "[x]",
            "line\nbreak",
            "*alias",
        ] {
            let doc = format!("k: {}\n", scalar(value, true));
            let root = parse(&doc).unwrap();
            let Node::Map(entries) = root.value else {
                panic!("{doc}")
            };
            assert!(
                matches!(&entries[0].1.value, Node::Str(s) if s == value),
                "{doc}"
            );
        }
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "database:\n  path: x  # c\n";
        let root = parse(text).unwrap();
        let Node::Map(top) = &root.value else {
            panic!()
        };
        let Node::Map(db) = &top[0].1.value else {
            panic!()
        };
        assert_eq!(raw(text, &db[0].0), Some("path"));
        assert_eq!(raw(text, &db[0].1), Some("x"));
        assert_eq!(db[0].1.referenced.line(), 2);
    }
}
