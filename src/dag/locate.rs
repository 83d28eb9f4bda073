//! Source positions for YAML key paths.
//!
//! serde gives us typed values but no spans, so validation errors would have
//! no line to point at. This module walks the same text once with
//! yaml-rust2's marked event stream and records, for every key path
//! (`tasks[2].depends_on[0]`), the line and column where it starts. The
//! compile step asks it where a path lives; it never decides validity.
//!
//! It is also the first thing to read a DAG file, so it bounds nesting
//! depth: events are pulled one at a time (yaml-rust2's `load` recurses per
//! level and a 6 KB file nested 3,000 deep overflows the stack), and a file
//! deeper than [`MAX_DEPTH`] is reported before serde_yaml or anything else
//! recursive sees it.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Map from key path to the position of its key (mapping entries) or of the
/// item itself (sequence entries).
#[derive(Debug, Default)]
pub struct PosIndex {
    paths: HashMap<String, Pos>,
    too_deep: Option<Pos>,
}

/// The deepest nesting of mappings and sequences a DAG file may use. Real
/// DAGs need fewer than ten levels; the bound keeps every later (recursive)
/// parse and drop far from the stack limit.
pub const MAX_DEPTH: usize = 64;

impl PosIndex {
    /// Index `text`. A text that does not parse yields an empty index: the
    /// syntax error itself is reported by the deserializer. A text nested
    /// deeper than [`MAX_DEPTH`] stops the walk; [`PosIndex::too_deep`]
    /// says where.
    pub fn build(text: &str) -> Self {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        let mut depth = 0usize;
        loop {
            let Ok((ev, mark)) = parser.next_token() else {
                return Self::default();
            };
            match ev {
                Event::StreamEnd => break,
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Self {
                            paths: HashMap::new(),
                            too_deep: Some(Pos {
                                line: mark.line(),
                                column: mark.col() + 1,
                            }),
                        };
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
                _ => {}
            }
            walker.on_event(ev, mark);
        }
        Self {
            paths: walker.paths,
            too_deep: None,
        }
    }

    /// Where the text first nests deeper than [`MAX_DEPTH`], if it does.
    pub fn too_deep(&self) -> Option<Pos> {
        self.too_deep
    }

    /// Position of exactly `path`, when the text has it.
    pub fn get(&self, path: &str) -> Option<Pos> {
        self.paths.get(path).copied()
    }

    /// Position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.paths.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    paths: HashMap<String, Pos>,
    /// The sequence item just opened; recorded at its own mark unless it is
    /// a mapping, which is located at its first key instead.
    last_item: Option<(String, Pos)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    /// Path of the value that is about to start, given the current frame.
    /// Returns `None` when the event is a mapping key.
    fn value_path(&mut self, mark: Marker) -> Option<String> {
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key: Some(k), path }) => {
                let p = join(path, k);
                Some(p)
            }
            Some(Frame::Map { .. }) => None,
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.last_item = Some((p.clone(), pos));
                Some(p)
            }
        }
    }

    fn record_item(&mut self) {
        if let Some((p, pos)) = self.last_item.take() {
            self.paths.entry(p).or_insert(pos);
        }
    }

    fn value_done(&mut self) {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = None;
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => match self.value_path(mark) {
                Some(_) => {
                    self.record_item();
                    self.value_done()
                }
                None => {
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        self.paths.entry(path.clone()).or_insert(Pos {
                            line: mark.line(),
                            column: mark.col() + 1,
                        });
                        let p = join(path, &value);
                        self.paths.entry(p).or_insert(Pos {
                            line: mark.line(),
                            column: mark.col() + 1,
                        });
                        *key = Some(value);
                    }
                }
            },
            Event::Alias(_) if self.value_path(mark).is_some() => {
                self.record_item();
                self.value_done();
            }
            Event::MappingStart(..) => {
                let path = self.value_path(mark).unwrap_or_default();
                self.last_item = None;
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(mark).unwrap_or_default();
                self.record_item();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_items() {
        let text = "id: x\nschedule:\n  cron: '0 2 * * *'\ntasks:\n  - id: a\n    depends_on: [b, c]\n  - id: b\n";
        let idx = PosIndex::build(text);
        assert_eq!(idx.find("id"), Some(Pos { line: 1, column: 1 }));
        assert_eq!(idx.find("schedule.cron"), Some(Pos { line: 3, column: 3 }));
        assert_eq!(idx.find("tasks[0]"), Some(Pos { line: 5, column: 5 }));
        assert_eq!(
            idx.find("tasks[0].depends_on"),
            Some(Pos { line: 6, column: 5 })
        );
        assert_eq!(
            idx.find("tasks[0].depends_on[1]"),
            Some(Pos {
                line: 6,
                column: 21
            })
        );
        assert_eq!(idx.find("tasks[1].id"), Some(Pos { line: 7, column: 5 }));
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(idx.find("tasks[1].nope"), Some(Pos { line: 7, column: 5 }));
        assert_eq!(idx.too_deep(), None);
    }

    #[test]
    fn deep_nesting_is_bounded_without_recursion() {
        let deep = format!("id: x\ndescription:\n  {}x\n", "- ".repeat(100_000));
        let idx = PosIndex::build(&deep);
        let pos = idx.too_deep().expect("too deep");
        assert_eq!(pos.line, 3);
        let ok = format!("id: x\ndescription:\n  {}x\n", "- ".repeat(MAX_DEPTH - 1));
        assert_eq!(PosIndex::build(&ok).too_deep(), None);
    }
}
