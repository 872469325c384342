#![no_main]
//! The go-yaml v2 port (`kubectl -o yaml` output): never panics, and
//!
//! - reading: what it accepts and `serde_json` accepts is the same tree (unless a raw NEL,
//!   which YAML folds as a line break, is in the input); what `serde_json` accepts it accepts
//!   too, unless the input is outside its documented subset (arrays, numbers) or is one of the
//!   documented go-yaml refusals (control characters, escapes YAML lacks such as `\/` or a
//!   UTF-16 surrogate);
//! - writing: what `marshal` prints is read back by an independent YAML parser (`yaml-rust2`)
//!   as the same tree: the quoting keeps every string a string. Not for strings holding NEL,
//!   LS or PS: YAML 1.1 (go-yaml) reads them as line breaks and the emitter indents after them
//!   in block scalars, as go-yaml's does; YAML 1.2 (`yaml-rust2`) reads them as text, so it
//!   would keep that indentation.
use kubepull_core::goyaml::{marshal, parse_json_as_yaml, Node, YamlError};
use libfuzzer_sys::fuzz_target;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

fn from_json(v: &serde_json::Value) -> Option<Node> {
    Some(match v {
        serde_json::Value::Null => Node::Null,
        serde_json::Value::Bool(b) => Node::Bool(*b),
        serde_json::Value::String(s) => Node::Str(s.clone()),
        serde_json::Value::Object(m) => Node::Map(
            m.iter()
                .map(|(k, v)| Some((k.clone(), from_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        serde_json::Value::Array(_) | serde_json::Value::Number(_) => return None,
    })
}

/// Maps compared without regard to key order.
fn sorted(n: &Node) -> Node {
    match n {
        Node::Map(m) => {
            let mut m: Vec<(String, Node)> =
                m.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            m.sort_by(|a, b| a.0.cmp(&b.0));
            Node::Map(m)
        }
        n => n.clone(),
    }
}

/// Builds a tree from yaml-rust2 events, resolving plain scalars as YAML does for the three
/// non-string values the port prints (`null`, `true`, `false`).
#[derive(Default)]
struct Builder {
    stack: Vec<(Vec<(String, Node)>, Option<String>)>,
    done: Option<Node>,
    bad: Option<String>,
}

impl Builder {
    fn push(&mut self, n: Node) {
        match self.stack.last_mut() {
            None => self.done = Some(n),
            Some((members, key)) => match key.take() {
                None => match n {
                    Node::Str(s) => *key = Some(s),
                    other => self.bad = Some(format!("non-string key {other:?}")),
                },
                Some(k) => members.push((k, n)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        match ev {
            Event::Scalar(s, style, _, tag) => {
                if tag.is_some() {
                    self.bad = Some("tagged scalar".into());
                }
                let n = match (style, s.as_str()) {
                    (TScalarStyle::Plain, "null") => Node::Null,
                    (TScalarStyle::Plain, "true") => Node::Bool(true),
                    (TScalarStyle::Plain, "false") => Node::Bool(false),
                    _ => Node::Str(s),
                };
                self.push(n);
            }
            Event::MappingStart(..) => self.stack.push((Vec::new(), None)),
            Event::MappingEnd => {
                if let Some((m, _)) = self.stack.pop() {
                    self.push(Node::Map(m));
                }
            }
            Event::SequenceStart(..) | Event::Alias(_) => self.bad = Some(format!("{ev:?}")),
            _ => {}
        }
    }
}

/// Holds a character YAML 1.1 breaks lines at and YAML 1.2 does not (NEL, LS, PS).
fn has_yaml11_break(n: &Node) -> bool {
    let brk = |s: &str| s.contains(['\u{85}', '\u{2028}', '\u{2029}']);
    match n {
        Node::Str(s) => brk(s),
        Node::Map(m) => m.iter().any(|(k, v)| brk(k) || has_yaml11_break(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = parse_json_as_yaml(data);
    let nel = data.windows(2).any(|w| w == [0xC2, 0x85]);
    let json: Option<serde_json::Value> = serde_json::from_slice(data).ok();

    match (&ours, &json) {
        (Ok(n), Some(v)) if !nel => {
            let v = from_json(v).expect("go-yaml accepted JSON arrays or numbers");
            assert_eq!(
                sorted(n),
                sorted(&v),
                "go-yaml and JSON read different trees"
            );
        }
        (Err(e), Some(v)) => {
            let allowed = match e {
                YamlError::Unsupported(_) => from_json(v).is_none(),
                YamlError::ControlCharacters | YamlError::Scanner { .. } => true,
            };
            assert!(allowed, "JSON go-yaml must read was refused: {e}");
        }
        _ => {}
    }

    if let Ok(n) = ours {
        let y = marshal(&n);
        if has_yaml11_break(&n) {
            return;
        }
        let mut b = Builder::default();
        let mut p = Parser::new_from_str(&y);
        if let Err(e) = p.load(&mut b, false) {
            panic!("marshal output is not YAML: {e}\n{y}");
        }
        assert!(b.bad.is_none(), "{:?}\n{y}", b.bad);
        let back = b.done.expect("a document");
        assert_eq!(
            sorted(&back),
            sorted(&n),
            "marshal output reads back differently:\n{y}"
        );
    }
});
