//! Webhook payload filters: a small condition over each event, decided at fan-out. An event for
//! which a webhook's filter is not exactly `true` creates no delivery for that webhook.
//!
//! ```text
//! data.stage == "won"
//! "vip" in data.tags[*].name
//! changes.owner_id != null && data.amount >= 1000
//! type == "deal.updated" || type.startsWith("contact.")
//! data.stage in ["won", "lost"]
//! !(data.archived == true)
//! data.items[0].sku == "A-1"
//! size(data.tags) > 2
//! data["odd key"] == 1
//! ```
//!
//! # The language
//! A subset of [CEL](https://github.com/google/cel-spec) (Common Expression Language), so what
//! people know from CEL (Kubernetes, Envoy, Firebase rules) carries over, plus one extension: the
//! `[*]` wildcard. Where CEL would stop with a type error (a missing field, a string compared with
//! a number), a filter gets `null` or `false` instead: one odd event must neither fail nor slow the
//! publishing of the others, and it simply doesn't match.
//!
//! **Values** are JSON values: `null`, booleans, numbers, strings, lists and objects.
//!
//! **Literals**
//! - strings in `"..."` or `'...'`, with the escapes `\"` `\'` `\\` `\/` `\n` `\r` `\t` and
//!   `\uXXXX` (a surrogate pair for characters beyond U+FFFF). A string cannot span lines.
//! - numbers as in JSON: `0`, `42`, `1.5`, `2e3`, `1.5E-2` (no leading zeros, no `.5`, no `1.`,
//!   no hex, no CEL `u` suffix); `-` in front is the unary minus. A number without `.` or
//!   exponent is exact from -2⁶³ to 2⁶⁴-1; any other number is a 64-bit float (as in the event's
//!   JSON).
//! - `true`, `false`, `null`, and lists `[a, b, ...]` (a trailing comma is allowed). There are no
//!   object literals.
//!
//! **Paths** read the event:
//! - a name at the start reads a top-level key of the event: `type`, `data`, `changes`, `source`,
//!   `actor`, `occurred_at`, ...; a key the event doesn't have is `null`.
//! - `.name` reads a field of an object (after a `.` any name is a field: `data.in`); `["any key"]`
//!   reads a field whose name is not an identifier; `[0]` reads an element of a list. The index may
//!   be any expression: a string reads a field, an integer reads an element, anything else gives
//!   `null`. Reading a field of something that is not an object, an element of something that is
//!   not a list, a negative index or one past the end all give `null`: **missing is `null`, never
//!   an error**.
//! - `[*]` (the extension) applies the rest of the path to every element of a list and gives the
//!   list of results: `data.tags[*].name` is `["vip", "new"]`. With several wildcards the results
//!   are flattened into one list: `data.items[*].parts[*].id` lists the ids of all parts of all
//!   items (an item whose `parts` is not a list adds nothing). `[*]` on anything but a list is
//!   `null`. The rest of the path includes methods: `data.tags[*].name.startsWith("v")` is a list
//!   of booleans, so `true in data.tags[*].name.startsWith("v")` asks "does any tag start with v".
//!   Parentheses end the path: `(data.tags[*]).name` is `null` (a list has no fields).
//!
//! **Operators**, from the loosest to the tightest binding (as in CEL):
//!
//! | operators | meaning |
//! |---|---|
//! | `a \|\| b` | `true` if either side is `true`; `b` is not evaluated when `a` is `true` |
//! | `a && b` | `true` if both sides are `true`; `b` is not evaluated when `a` isn't `true` |
//! | `==` `!=` `<` `<=` `>` `>=` `in` | comparisons: `true` or `false`; no chains (`a < b < c`) |
//! | `!a` `-a` | not, minus |
//! | `a.b` `a[i]` `a[*]` `a.m(...)` `f(...)` | paths and calls |
//!
//! Parentheses group as usual.
//!
//! - `&&`, `||` and `!` treat only `true` as true, and always give a boolean. `!a` is `true` only
//!   when `a` is `false`: `!` of anything that is not a boolean (`null` from a missing field, a
//!   string, ...) is `false`, so a missing field never makes a filter match by accident. Write
//!   `data.archived != true` (or `!(data.archived == true)`) for "not archived, or not set".
//!   Comparisons, `in` and the methods below are always `true` or `false`, so `!` of one of them
//!   is its opposite: `!data.missing.startsWith("x")` is `true`.
//! - `==` and `!=` compare JSON values deeply: numbers by numeric value (`1 == 1.0`), strings,
//!   booleans and `null` exactly, lists element by element, objects by their set of keys and their
//!   values (key order does not matter). Values of different types are different: `1 != "1"`,
//!   `null == null`, and a missing field `== null`. `a != b` is always `!(a == b)`.
//! - `<` `<=` `>` `>=` compare two numbers (by value) or two strings (by Unicode code points, so
//!   RFC 3339 timestamps in UTC compare in time order: `occurred_at >= "2024-05-01T00:00:00Z"`).
//!   Any other pair of types is `false`, both ways: `null < 1` and `null >= 1` are both `false`.
//! - `a in b`: `b` a list: is `a` equal (as `==`) to one of its elements; `b` an object: is `a` a
//!   string naming one of its keys. Otherwise `false`; in particular `in` is not a substring test
//!   (use `.contains(...)`; `x in "abc"` is refused).
//! - `-a` negates a number; of anything else it is `null`.
//!
//! **Functions and methods**
//! - `size(x)` or `x.size()`: the number of characters of a string (Unicode scalar values, not
//!   bytes), of elements of a list, of keys of an object; `null` for anything else.
//! - `s.startsWith(t)`, `s.endsWith(t)`: `true` when both are strings and `s` starts (ends) with
//!   `t`; otherwise `false`.
//! - `x.contains(y)`: on a string, is `y` a substring (`false` unless `y` is a string); on a list
//!   or an object, the same as `y in x`; otherwise `false`.
//! - `matches` is not available: filters have no regular expressions (their cost cannot be bounded
//!   the way the rest of the language is). Nor are CEL's macros (`has`, `exists`, `all`, `map`,
//!   `filter`), arithmetic, conversions, the `? :` operator or object literals; the error says what
//!   to write instead where there is an equivalent.
//!
//! **The result.** The filter matches when its value is exactly `true`. A filter that can never be
//! a boolean (`"won"`, `42`, `size(data.tags)`, `data.tags[*].name`) is refused when it is saved,
//! and so are `&&`, `||` and `!` operands of that kind: they would never match, which is always a
//! mistake. A bare path such as `data.flags.beta` is a valid filter: it matches when that field is
//! `true`.
//!
//! # Bounds
//! A filter runs for every event of every subscribed webhook, so its cost is bounded when it is
//! saved and again when it runs:
//! - at most [`MAX_SOURCE_BYTES`] bytes of source, [`MAX_DEPTH`] levels of nesting (the filter is
//!   the first; each parenthesis, list, call, index and unary operator adds one), and
//!   [`MAX_NODES`] syntax nodes (each literal, name, path step, operator and call counts one);
//! - at most [`MAX_STEPS`] evaluation steps per event. A step is one visit of a syntax node, one
//!   step of a path, one element a wildcard visits and one element `in` or `contains` examines. A
//!   filter that runs out of steps stops there and does not match; [`Filter::evaluate`] reports it
//!   (`exhausted`), so it can be shown rather than silently dropping events.
//!
//! # Why it is hand-written
//! The Rust CEL implementations (the `cel` crate, formerly `cel-interpreter`, and its forks) bring
//! a generated parser and its runtime (LALRPOP, later ANTLR) plus the full CEL type system, for a
//! language this service uses a fraction of; and none bounds the cost of an evaluation, which is
//! the property a fan-out path needs most. JSONLogic (`jsonlogic`, `jsonlogic-rs`) is small, but
//! its rules are JSON (`{"in": ["vip", {"var": "data.tags"}]}`), unfriendly to type into a console
//! or a form. This module is one recursive-descent parser and a tree-walking evaluator with
//! explicit limits, and no dependency beyond `serde_json`.

use serde_json::{Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The longest filter source, in bytes of UTF-8.
pub const MAX_SOURCE_BYTES: usize = 2048;
/// The deepest nesting of parentheses, lists, calls, indexes and unary operators.
pub const MAX_DEPTH: usize = 32;
/// The most syntax nodes (literals, names, path steps, operators, calls) a filter may have.
pub const MAX_NODES: usize = 256;
/// The most evaluation steps one evaluation may take before it stops without matching.
pub const MAX_STEPS: usize = 10_000;

/// A parsed, validated filter. Parsing does all the checking; evaluating cannot fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    source: String,
    ast: Expr,
}

/// Why a filter's source was refused, and where (a 0-based offset in characters, not bytes, so a
/// console can put a caret under it; the end of the source for "unexpected end").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }
}

/// The outcome of one evaluation, for showing a user why a filter did (not) match an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The value is exactly `true` (and the step budget was not exhausted).
    pub matched: bool,
    /// The value of the whole filter; `null` when the budget was exhausted.
    pub value: Value,
    /// Steps taken (at most [`MAX_STEPS`]).
    pub steps: usize,
    /// The evaluation ran out of steps and stopped; the filter did not match.
    pub exhausted: bool,
}

impl Filter {
    /// Parses and validates a filter; the error points at the offending character.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        if src.len() > MAX_SOURCE_BYTES {
            // Point at the first character beyond the limit, which is where an editor should stop.
            let position = src
                .char_indices()
                .take_while(|(i, c)| i + c.len_utf8() <= MAX_SOURCE_BYTES)
                .count();
            return Err(FilterError::new(
                position,
                format!(
                    "the filter is too long ({} bytes, at most {MAX_SOURCE_BYTES})",
                    src.len()
                ),
            ));
        }
        let mut parser = Parser::new(src)?;
        if parser.tok.tok == Tok::End {
            return Err(FilterError::new(parser.tok.pos, "the filter is empty"));
        }
        let start = parser.tok.pos;
        let ast = parser.parse_or()?;
        if parser.tok.tok != Tok::End {
            return Err(FilterError::new(
                parser.tok.pos,
                format!(
                    "found {} where the filter should end (is an `&&` or `||` missing?){}",
                    parser.tok.tok.describe(),
                    arithmetic_hint(&parser.tok.tok)
                ),
            ));
        }
        if let Some(kind) = never_bool(&ast) {
            return Err(FilterError::new(
                start,
                format!(
                    "a filter must be a condition (it evaluates to {kind}): compare it with `==`, \
                     `in`, or a method such as `.startsWith(...)`"
                ),
            ));
        }
        Ok(Filter {
            source: src.to_string(),
            ast,
        })
    }

    /// The source exactly as it was given (what to store and show).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the event passes the filter: its value is exactly `true` within the step budget.
    pub fn matches(&self, event: &Value) -> bool {
        let mut ev = Eval::new(event);
        matches!(ev.eval(&self.ast).as_deref(), Ok(Value::Bool(true)))
    }

    /// Evaluates the filter and tells how: the value, the steps taken, whether the budget ran out.
    pub fn evaluate(&self, event: &Value) -> Evaluation {
        let mut ev = Eval::new(event);
        match ev.eval(&self.ast) {
            Ok(value) => {
                let value = value.into_owned();
                Evaluation {
                    matched: value == Value::Bool(true),
                    value,
                    steps: ev.steps,
                    exhausted: false,
                }
            }
            Err(Exhausted) => Evaluation {
                matched: false,
                value: Value::Null,
                steps: ev.steps,
                exhausted: true,
            },
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    /// A top-level key of the event.
    Var(String),
    /// A list literal with at least one non-literal element (all-literal lists are folded).
    List(Vec<Expr>),
    /// A base followed by path steps; kept flat so a wildcard can map "the rest of the path".
    Path(Box<Expr>, Vec<Segment>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    // N-ary rather than nested pairs: long `||` chains stay shallow and cost no nesting depth.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Size(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(Expr),
    Wildcard,
    Method(Method, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    StartsWith,
    EndsWith,
    Contains,
    Size,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::StartsWith => "startsWith",
            Method::EndsWith => "endsWith",
            Method::Contains => "contains",
            Method::Size => "size",
        }
    }

    fn arity(self) -> usize {
        match self {
            Method::Size => 0,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

/// What an expression can never be a boolean as, for refusing filters that could never match.
fn never_bool(e: &Expr) -> Option<&'static str> {
    match e {
        Expr::Literal(v) => match v {
            Value::Null => Some("null"),
            Value::Bool(_) => None,
            Value::Number(_) => Some("a number"),
            Value::String(_) => Some("a string"),
            Value::Array(_) => Some("a list"),
            Value::Object(_) => Some("an object"),
        },
        Expr::List(_) => Some("a list"),
        Expr::Neg(_) | Expr::Size(_) => Some("a number or null"),
        Expr::Path(_, segs) => {
            if segs.iter().any(|s| matches!(s, Segment::Wildcard)) {
                Some("a list or null")
            } else {
                match segs.last() {
                    Some(Segment::Method(Method::Size, _)) => Some("a number or null"),
                    _ => None,
                }
            }
        }
        Expr::Var(_) | Expr::Not(_) | Expr::And(_) | Expr::Or(_) | Expr::Compare(..) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Bang,
    Minus,
    Star,
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) if s.chars().count() <= 20 => format!("the string {s:?}"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Num(n) => format!("the number {n}"),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::LBracket => "`[`".to_string(),
            Tok::RBracket => "`]`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Dot => "`.`".to_string(),
            Tok::Bang => "`!`".to_string(),
            Tok::Minus => "`-`".to_string(),
            Tok::Star => "`*`".to_string(),
            Tok::EqEq => "`==`".to_string(),
            Tok::Ne => "`!=`".to_string(),
            Tok::Lt => "`<`".to_string(),
            Tok::Le => "`<=`".to_string(),
            Tok::Gt => "`>`".to_string(),
            Tok::Ge => "`>=`".to_string(),
            Tok::AndAnd => "`&&`".to_string(),
            Tok::OrOr => "`||`".to_string(),
            Tok::End => "end of input".to_string(),
        }
    }

    fn comparison(&self) -> Option<CmpOp> {
        match self {
            Tok::EqEq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            Tok::Word(w) if w == "in" => Some(CmpOp::In),
            _ => None,
        }
    }
}

fn arithmetic_hint(tok: &Tok) -> &'static str {
    match tok {
        Tok::Star | Tok::Minus => " (arithmetic is not supported)",
        _ => "",
    }
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    pos: usize,
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
}

impl Lexer {
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.i + offset).copied()
    }

    fn next_token(&mut self) -> Result<Token, FilterError> {
        while matches!(self.peek_at(0), Some(' ' | '\t' | '\n' | '\r')) {
            self.i += 1;
        }
        let pos = self.i;
        let Some(c) = self.peek_at(0) else {
            return Ok(Token { tok: Tok::End, pos });
        };
        let next = self.peek_at(1);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '.' => (Tok::Dot, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '!' if next == Some('=') => (Tok::Ne, 2),
            '!' => (Tok::Bang, 1),
            '=' if next == Some('=') => (Tok::EqEq, 2),
            '=' => {
                return Err(FilterError::new(
                    pos,
                    "`=` is not an operator: compare with `==`",
                ))
            }
            '<' if next == Some('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '&' if next == Some('&') => (Tok::AndAnd, 2),
            '&' => {
                return Err(FilterError::new(
                    pos,
                    "`&` is not an operator: use `&&` for \"and\"",
                ))
            }
            '|' if next == Some('|') => (Tok::OrOr, 2),
            '|' => {
                return Err(FilterError::new(
                    pos,
                    "`|` is not an operator: use `||` for \"or\"",
                ))
            }
            '"' | '\'' => return self.string(c),
            '0'..='9' => return self.number(),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = self.chars[pos..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .count();
                let word: String = self.chars[pos..pos + len].iter().collect();
                (Tok::Word(word), len)
            }
            '+' | '/' | '%' => {
                return Err(FilterError::new(
                    pos,
                    format!("`{c}`: arithmetic is not supported"),
                ))
            }
            '{' => {
                return Err(FilterError::new(
                    pos,
                    "object literals (`{...}`) are not supported",
                ))
            }
            '?' | ':' => {
                return Err(FilterError::new(
                    pos,
                    format!("`{c}`: the conditional operator (`a ? b : c`) is not supported"),
                ))
            }
            other => {
                return Err(FilterError::new(
                    pos,
                    format!("unexpected character `{}`", other.escape_debug()),
                ))
            }
        };
        self.i += len;
        Ok(Token { tok, pos })
    }

    fn string(&mut self, quote: char) -> Result<Token, FilterError> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_at(0) else {
                return Err(FilterError::new(start, "unclosed string"));
            };
            match c {
                '\n' | '\r' => {
                    return Err(FilterError::new(
                        start,
                        "unclosed string (a string cannot span lines: write `\\n`)",
                    ))
                }
                c if c == quote => {
                    self.i += 1;
                    return Ok(Token {
                        tok: Tok::Str(out),
                        pos: start,
                    });
                }
                '\\' => {
                    let at = self.i;
                    let Some(e) = self.peek_at(1) else {
                        return Err(FilterError::new(start, "unclosed string"));
                    };
                    self.i += 2;
                    match e {
                        '"' | '\'' | '\\' | '/' => out.push(e),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => out.push(self.unicode_escape(at)?),
                        other => {
                            return Err(FilterError::new(
                                at,
                                format!(
                                    "unknown escape `\\{}` (known: \\\" \\' \\\\ \\/ \\n \\r \\t \\uXXXX)",
                                    other.escape_debug()
                                ),
                            ))
                        }
                    }
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// After `\u` (at `at`): four hex digits, and a second `\uXXXX` when they are a high surrogate.
    fn unicode_escape(&mut self, at: usize) -> Result<char, FilterError> {
        let bad = || FilterError::new(at, "invalid `\\u` escape: expected four hex digits");
        let hi = self.hex4().ok_or_else(bad)?;
        if (0xD800..0xDC00).contains(&hi) {
            let lone = || FilterError::new(at, "invalid `\\u` escape: a lone surrogate");
            if self.peek_at(0) != Some('\\') || self.peek_at(1) != Some('u') {
                return Err(lone());
            }
            self.i += 2;
            let lo = self.hex4().ok_or_else(bad)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(lone());
            }
            let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return char::from_u32(code).ok_or_else(lone);
        }
        char::from_u32(hi)
            .ok_or_else(|| FilterError::new(at, "invalid `\\u` escape: a lone surrogate"))
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut code = 0;
        for k in 0..4 {
            code = code * 16 + self.peek_at(k)?.to_digit(16)?;
        }
        self.i += 4;
        Some(code)
    }

    fn number(&mut self) -> Result<Token, FilterError> {
        let start = self.i;
        let digits = |lx: &Lexer, from: usize| {
            lx.chars[from..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
        };
        let int_len = digits(self, start);
        if int_len > 1 && self.chars[start] == '0' {
            return Err(FilterError::new(
                start,
                "a number cannot start with `0` (leading zeros are not allowed)",
            ));
        }
        let mut end = start + int_len;
        let mut is_float = false;
        // `1.foo` is the number 1 then a path step; only `.digit` makes a fraction.
        if self.chars.get(end) == Some(&'.')
            && self.chars.get(end + 1).is_some_and(|c| c.is_ascii_digit())
        {
            end += 1 + digits(self, end + 1);
            is_float = true;
        }
        if matches!(self.chars.get(end), Some('e' | 'E')) {
            let mut k = end + 1;
            if matches!(self.chars.get(k), Some('+' | '-')) {
                k += 1;
            }
            let exp = digits(self, k);
            if exp == 0 {
                return Err(FilterError::new(
                    end,
                    "incomplete exponent: expected digits after `e`",
                ));
            }
            end = k + exp;
            is_float = true;
        }
        if let Some(c) = self.chars.get(end) {
            if c.is_ascii_alphanumeric() || *c == '_' {
                return Err(FilterError::new(
                    end,
                    format!("unexpected `{c}` after a number"),
                ));
            }
        }
        let text: String = self.chars[start..end].iter().collect();
        self.i = end;
        let parsed = if is_float {
            None
        } else {
            text.parse::<u64>().ok().map(Number::from)
        };
        let number = match parsed {
            Some(n) => n,
            None => text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| FilterError::new(start, "number out of range"))?,
        };
        Ok(Token {
            tok: Tok::Num(number),
            pos: start,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    lx: Lexer,
    tok: Token,
    depth: usize,
    nodes: usize,
}

type PResult<T> = Result<T, FilterError>;

impl Parser {
    fn new(src: &str) -> PResult<Parser> {
        let mut lx = Lexer {
            chars: src.chars().collect(),
            i: 0,
        };
        let tok = lx.next_token()?;
        Ok(Parser {
            lx,
            tok,
            depth: 0,
            nodes: 0,
        })
    }

    fn advance(&mut self) -> PResult<Token> {
        let next = self.lx.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> PResult<()> {
        if self.tok.tok == tok {
            self.advance()?;
            Ok(())
        } else {
            Err(FilterError::new(
                self.tok.pos,
                format!(
                    "expected {what}, found {}{}",
                    self.tok.tok.describe(),
                    arithmetic_hint(&self.tok.tok)
                ),
            ))
        }
    }

    fn node(&mut self, pos: usize) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(FilterError::new(
                pos,
                format!("the filter is too complex (more than {MAX_NODES} terms)"),
            ));
        }
        Ok(())
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                pos,
                format!("the filter is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// or = and { "||" and }
    fn parse_or(&mut self) -> PResult<Expr> {
        self.enter(self.tok.pos)?;
        let e = self.logical(Tok::OrOr, "`||`", Parser::parse_and, Expr::Or)?;
        self.leave();
        Ok(e)
    }

    /// and = rel { "&&" rel }
    fn parse_and(&mut self) -> PResult<Expr> {
        self.logical(Tok::AndAnd, "`&&`", Parser::parse_rel, Expr::And)
    }

    fn logical(
        &mut self,
        op: Tok,
        name: &str,
        operand: fn(&mut Parser) -> PResult<Expr>,
        build: fn(Vec<Expr>) -> Expr,
    ) -> PResult<Expr> {
        let first_pos = self.tok.pos;
        let first = operand(self)?;
        if self.tok.tok != op {
            return Ok(first);
        }
        let mut terms = vec![(first_pos, first)];
        while self.tok.tok == op {
            let op_pos = self.advance()?.pos;
            self.node(op_pos)?;
            let pos = self.tok.pos;
            terms.push((pos, operand(self)?));
        }
        for (pos, term) in &terms {
            if let Some(kind) = never_bool(term) {
                return Err(FilterError::new(
                    *pos,
                    format!("each side of {name} must be a condition (it evaluates to {kind})"),
                ));
            }
        }
        Ok(build(terms.into_iter().map(|(_, t)| t).collect()))
    }

    /// rel = unary [ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") unary ]
    fn parse_rel(&mut self) -> PResult<Expr> {
        let lhs = self.parse_unary()?;
        let Some(op) = self.tok.tok.comparison() else {
            return Ok(lhs);
        };
        let op_pos = self.advance()?.pos;
        self.node(op_pos)?;
        let rhs_pos = self.tok.pos;
        let rhs = self.parse_unary()?;
        if op == CmpOp::In {
            if let Expr::Literal(v) = &rhs {
                let kind = match v {
                    Value::String(_) => Some(
                        "`in` tests membership in a list (or an object's keys), not in a string: \
                         for a substring use `.contains(...)`",
                    ),
                    Value::Null | Value::Bool(_) | Value::Number(_) => {
                        Some("`in` needs a list (or an object) on its right: `x in [\"a\", \"b\"]`")
                    }
                    _ => None,
                };
                if let Some(message) = kind {
                    return Err(FilterError::new(rhs_pos, message));
                }
            }
        }
        if self.tok.tok.comparison().is_some() {
            return Err(FilterError::new(
                self.tok.pos,
                "comparisons cannot be chained: combine them with `&&` or `||`, or add parentheses",
            ));
        }
        Ok(Expr::Compare(op, Box::new(lhs), Box::new(rhs)))
    }

    /// unary = "!" unary | "-" unary | postfix
    fn parse_unary(&mut self) -> PResult<Expr> {
        let op = match self.tok.tok {
            Tok::Bang | Tok::Minus => self.tok.tok.clone(),
            _ => return self.parse_postfix(),
        };
        let op_pos = self.advance()?.pos;
        self.enter(op_pos)?;
        let inner_pos = self.tok.pos;
        let inner = self.parse_unary()?;
        self.leave();
        if op == Tok::Bang {
            if let Some(kind) = never_bool(&inner) {
                return Err(FilterError::new(
                    inner_pos,
                    format!("`!` needs a condition (it evaluates to {kind})"),
                ));
            }
            self.node(op_pos)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        match inner {
            // Folded so that `-1` is one literal, as a user reads it.
            Expr::Literal(Value::Number(n)) => Ok(Expr::Literal(Value::Number(negate(&n)))),
            Expr::Literal(v) => Err(FilterError::new(
                inner_pos,
                format!(
                    "`-` needs a number (it is {})",
                    never_bool(&Expr::Literal(v)).unwrap_or("a boolean")
                ),
            )),
            inner => {
                self.node(op_pos)?;
                Ok(Expr::Neg(Box::new(inner)))
            }
        }
    }

    /// postfix = primary { "." name | "." name "(" args ")" | "[" or "]" | "[" "*" "]" }
    fn parse_postfix(&mut self) -> PResult<Expr> {
        let base = self.parse_primary()?;
        let mut segs = Vec::new();
        loop {
            match self.tok.tok {
                Tok::Dot => {
                    self.advance()?;
                    let name_pos = self.tok.pos;
                    let Tok::Word(name) = &self.tok.tok else {
                        return Err(FilterError::new(
                            name_pos,
                            format!(
                                "expected a field name after `.`, found {} (use `[\"...\"]` for other keys)",
                                self.tok.tok.describe()
                            ),
                        ));
                    };
                    let name = name.clone();
                    self.advance()?;
                    self.node(name_pos)?;
                    if self.tok.tok == Tok::LParen {
                        let method = method_named(&name, name_pos)?;
                        let args = self.parse_args()?;
                        check_arity(method.name(), method.arity(), args.len(), name_pos)?;
                        segs.push(Segment::Method(method, args));
                    } else {
                        segs.push(Segment::Field(name));
                    }
                }
                Tok::LBracket => {
                    let open = self.advance()?.pos;
                    self.node(open)?;
                    if self.tok.tok == Tok::Star {
                        self.advance()?;
                        self.expect(Tok::RBracket, "`]` after `[*`")?;
                        segs.push(Segment::Wildcard);
                        continue;
                    }
                    let index_pos = self.tok.pos;
                    let index = self.parse_or()?;
                    if let Expr::Literal(v) = &index {
                        let integer = matches!(v, Value::Number(n) if as_int(n).is_some());
                        if !(integer || v.is_string()) {
                            let kind = never_bool(&index).unwrap_or("a boolean");
                            return Err(FilterError::new(
                                index_pos,
                                format!("an index must be a string or an integer (it is {kind})"),
                            ));
                        }
                    }
                    self.expect(Tok::RBracket, "`]`")?;
                    segs.push(Segment::Index(index));
                }
                _ => break,
            }
        }
        if segs.is_empty() {
            Ok(base)
        } else {
            Ok(Expr::Path(Box::new(base), segs))
        }
    }

    /// primary = literal | name | name "(" args ")" | "(" or ")" | "[" [ or { "," or } [","] ] "]"
    fn parse_primary(&mut self) -> PResult<Expr> {
        let pos = self.tok.pos;
        let tok = self.advance()?.tok;
        match tok {
            Tok::Num(n) => {
                self.node(pos)?;
                Ok(Expr::Literal(Value::Number(n)))
            }
            Tok::Str(s) => {
                self.node(pos)?;
                Ok(Expr::Literal(Value::String(s)))
            }
            Tok::Word(w) => {
                self.node(pos)?;
                match w.as_str() {
                    "true" => return Ok(Expr::Literal(Value::Bool(true))),
                    "false" => return Ok(Expr::Literal(Value::Bool(false))),
                    "null" => return Ok(Expr::Literal(Value::Null)),
                    "in" => {
                        return Err(FilterError::new(
                            pos,
                            "expected an expression, found `in`",
                        ))
                    }
                    _ => {}
                }
                if self.tok.tok != Tok::LParen {
                    return Ok(Expr::Var(w));
                }
                if w != "size" {
                    return Err(FilterError::new(pos, unknown_function(&w)));
                }
                let mut args = self.parse_args()?;
                check_arity("size", 1, args.len(), pos)?;
                Ok(Expr::Size(Box::new(args.remove(0))))
            }
            Tok::LParen => {
                let inner = self.parse_or()?;
                if self.tok.tok != Tok::RParen {
                    return Err(FilterError::new(
                        self.tok.pos,
                        format!(
                            "expected `)` to close the `(` at position {pos}, found {}{}",
                            self.tok.tok.describe(),
                            arithmetic_hint(&self.tok.tok)
                        ),
                    ));
                }
                self.advance()?;
                Ok(inner)
            }
            Tok::LBracket => {
                self.node(pos)?;
                let mut items = Vec::new();
                while self.tok.tok != Tok::RBracket {
                    items.push(self.parse_or()?);
                    match self.tok.tok {
                        Tok::Comma => {
                            self.advance()?;
                        }
                        Tok::RBracket => {}
                        _ => {
                            return Err(FilterError::new(
                                self.tok.pos,
                                format!(
                                    "expected `,` or `]` in the list opened at position {pos}, found {}{}",
                                    self.tok.tok.describe(),
                                    arithmetic_hint(&self.tok.tok)
                                ),
                            ))
                        }
                    }
                }
                self.advance()?;
                // Folded once here so evaluation can borrow the list instead of rebuilding it.
                if items.iter().all(|e| matches!(e, Expr::Literal(_))) {
                    let values = items
                        .into_iter()
                        .map(|e| match e {
                            Expr::Literal(v) => v,
                            _ => Value::Null,
                        })
                        .collect();
                    Ok(Expr::Literal(Value::Array(values)))
                } else {
                    Ok(Expr::List(items))
                }
            }
            Tok::Star => Err(FilterError::new(
                pos,
                "expected an expression, found `*` (`[*]` is only valid after a path, as in `data.tags[*]`)",
            )),
            other => Err(FilterError::new(
                pos,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }

    /// After a function or method name, at `(`: arguments up to the matching `)`.
    fn parse_args(&mut self) -> PResult<Vec<Expr>> {
        self.advance()?;
        let mut args = Vec::new();
        while self.tok.tok != Tok::RParen {
            args.push(self.parse_or()?);
            match self.tok.tok {
                Tok::Comma => {
                    self.advance()?;
                }
                Tok::RParen => {}
                _ => {
                    return Err(FilterError::new(
                        self.tok.pos,
                        format!(
                            "expected `,` or `)` after an argument, found {}{}",
                            self.tok.tok.describe(),
                            arithmetic_hint(&self.tok.tok)
                        ),
                    ))
                }
            }
        }
        self.advance()?;
        Ok(args)
    }
}

fn check_arity(name: &str, want: usize, got: usize, pos: usize) -> PResult<()> {
    if want == got {
        return Ok(());
    }
    let plural = if want == 1 { "" } else { "s" };
    Err(FilterError::new(
        pos,
        format!("`{name}` takes {want} argument{plural}, got {got}"),
    ))
}

const NO_REGEX: &str = "`matches` is not supported: filters have no regular expressions \
                        (use `startsWith`, `endsWith`, `contains` or `in`)";
const MACRO_HINT: &str = "CEL macros are not supported: use `[*]` with `in`, as in \
                          `\"vip\" in data.tags[*].name`";

fn method_named(name: &str, pos: usize) -> PResult<Method> {
    match name {
        "startsWith" => Ok(Method::StartsWith),
        "endsWith" => Ok(Method::EndsWith),
        "contains" => Ok(Method::Contains),
        "size" => Ok(Method::Size),
        "matches" => Err(FilterError::new(pos, NO_REGEX)),
        "exists" | "all" | "exists_one" | "existsOne" | "map" | "filter" => Err(FilterError::new(
            pos,
            format!("unknown method `{name}`: {MACRO_HINT}"),
        )),
        _ => Err(FilterError::new(
            pos,
            format!("unknown method `{name}` (known: startsWith, endsWith, contains, size)"),
        )),
    }
}

fn unknown_function(name: &str) -> String {
    match name {
        "matches" => NO_REGEX.to_string(),
        "has" => {
            "unknown function `has`: a missing field is `null`, so write `x.y != null`".to_string()
        }
        "int" | "uint" | "double" | "string" | "bool" | "bytes" | "timestamp" | "duration"
        | "type" | "dyn" => format!(
            "unknown function `{name}`: conversions are not supported (the only function is `size`)"
        ),
        _ => format!("unknown function `{name}` (the only function is `size`)"),
    }
}

fn negate(n: &Number) -> Number {
    if let Some(i) = n.as_i64() {
        if let Some(neg) = i.checked_neg() {
            return Number::from(neg);
        }
    } else if let Some(u) = n.as_u64() {
        // Above i64::MAX; only 2⁶³ itself has an exact negation (i64::MIN).
        if let Ok(neg) = i64::try_from(-i128::from(u)) {
            return Number::from(neg);
        }
    }
    let f = n.as_f64().unwrap_or(0.0);
    Number::from_f64(-f).unwrap_or_else(|| n.clone())
}

// ---------------------------------------------------------------------------------------------
// Evaluation

static NULL: Value = Value::Null;

/// The step budget ran out; unwinds the whole evaluation.
struct Exhausted;

type EResult<T> = Result<T, Exhausted>;

struct Eval<'a> {
    event: &'a Value,
    steps: usize,
}

fn boolean<'a>(b: bool) -> Cow<'a, Value> {
    Cow::Owned(Value::Bool(b))
}

fn is_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

impl<'a> Eval<'a> {
    fn new(event: &'a Value) -> Self {
        Eval { event, steps: 0 }
    }

    fn step(&mut self) -> EResult<()> {
        if self.steps >= MAX_STEPS {
            return Err(Exhausted);
        }
        self.steps += 1;
        Ok(())
    }

    // Values are borrowed from the event (or the syntax tree) wherever possible: a path into a
    // large payload costs no copy.
    fn eval(&mut self, e: &'a Expr) -> EResult<Cow<'a, Value>> {
        self.step()?;
        Ok(match e {
            Expr::Literal(v) => Cow::Borrowed(v),
            Expr::Var(name) => Cow::Borrowed(self.event.get(name).unwrap_or(&NULL)),
            Expr::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.eval(item)?.into_owned());
                }
                Cow::Owned(Value::Array(out))
            }
            Expr::Path(base, segs) => {
                let base = self.eval(base)?;
                self.apply(base, segs)?
            }
            Expr::Not(x) => match *self.eval(x)? {
                Value::Bool(b) => boolean(!b),
                _ => boolean(false),
            },
            Expr::Neg(x) => match &*self.eval(x)? {
                Value::Number(n) => Cow::Owned(Value::Number(negate(n))),
                _ => Cow::Owned(Value::Null),
            },
            Expr::And(terms) => {
                for t in terms {
                    if !is_true(&*self.eval(t)?) {
                        return Ok(boolean(false));
                    }
                }
                boolean(true)
            }
            Expr::Or(terms) => {
                for t in terms {
                    if is_true(&*self.eval(t)?) {
                        return Ok(boolean(true));
                    }
                }
                boolean(false)
            }
            Expr::Compare(op, a, b) => {
                let a = self.eval(a)?;
                let b = self.eval(b)?;
                let result = match op {
                    CmpOp::Eq => json_eq(&a, &b),
                    CmpOp::Ne => !json_eq(&a, &b),
                    CmpOp::Lt => order(&a, &b) == Some(Ordering::Less),
                    CmpOp::Le => matches!(order(&a, &b), Some(Ordering::Less | Ordering::Equal)),
                    CmpOp::Gt => order(&a, &b) == Some(Ordering::Greater),
                    CmpOp::Ge => {
                        matches!(order(&a, &b), Some(Ordering::Greater | Ordering::Equal))
                    }
                    CmpOp::In => self.member(&a, &b)?,
                };
                boolean(result)
            }
            Expr::Size(x) => Cow::Owned(size(&*self.eval(x)?)),
        })
    }

    fn apply(&mut self, mut cur: Cow<'a, Value>, segs: &'a [Segment]) -> EResult<Cow<'a, Value>> {
        for (i, seg) in segs.iter().enumerate() {
            self.step()?;
            cur = match seg {
                Segment::Field(name) => get_key(cur, name),
                Segment::Index(index) => {
                    let index = self.eval(index)?;
                    match &*index {
                        Value::String(key) => get_key(cur, key),
                        Value::Number(n) => {
                            match n.as_u64().and_then(|i| usize::try_from(i).ok()) {
                                Some(i) => get_index(cur, i),
                                None => Cow::Owned(Value::Null),
                            }
                        }
                        _ => Cow::Owned(Value::Null),
                    }
                }
                Segment::Wildcard => {
                    let rest = &segs[i + 1..];
                    return self.wildcard(cur, rest);
                }
                Segment::Method(method, args) => {
                    let mut values = Vec::with_capacity(args.len());
                    for arg in args {
                        values.push(self.eval(arg)?);
                    }
                    Cow::Owned(self.method(*method, &cur, &values)?)
                }
            };
        }
        Ok(cur)
    }

    fn wildcard(&mut self, cur: Cow<'a, Value>, rest: &'a [Segment]) -> EResult<Cow<'a, Value>> {
        let items: Vec<Cow<'a, Value>> = match cur {
            Cow::Borrowed(Value::Array(items)) => items.iter().map(Cow::Borrowed).collect(),
            Cow::Owned(Value::Array(items)) => items.into_iter().map(Cow::Owned).collect(),
            _ => return Ok(Cow::Owned(Value::Null)),
        };
        let flatten = rest.iter().any(|s| matches!(s, Segment::Wildcard));
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            self.step()?;
            let result = self.apply(item, rest)?.into_owned();
            if flatten {
                // The inner wildcard gave a list, or null where it met something else: skipped.
                if let Value::Array(inner) = result {
                    out.extend(inner);
                }
            } else {
                out.push(result);
            }
        }
        Ok(Cow::Owned(Value::Array(out)))
    }

    fn method(&mut self, method: Method, recv: &Value, args: &[Cow<'a, Value>]) -> EResult<Value> {
        let arg = args.first().map(|a| &**a).unwrap_or(&NULL);
        Ok(match (method, recv, arg) {
            (Method::StartsWith, Value::String(s), Value::String(p)) => {
                Value::Bool(s.starts_with(p.as_str()))
            }
            (Method::EndsWith, Value::String(s), Value::String(p)) => {
                Value::Bool(s.ends_with(p.as_str()))
            }
            (Method::Contains, Value::String(s), Value::String(p)) => {
                Value::Bool(s.contains(p.as_str()))
            }
            (Method::Contains, Value::Array(_) | Value::Object(_), _) => {
                Value::Bool(self.member(arg, recv)?)
            }
            (Method::Size, _, _) => size(recv),
            _ => Value::Bool(false),
        })
    }

    /// `needle in haystack`: one step per element examined.
    fn member(&mut self, needle: &Value, haystack: &Value) -> EResult<bool> {
        match haystack {
            Value::Array(items) => {
                for item in items {
                    self.step()?;
                    if json_eq(needle, item) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Value::Object(map) => Ok(needle.as_str().is_some_and(|k| map.contains_key(k))),
            _ => Ok(false),
        }
    }
}

fn get_key<'a>(cur: Cow<'a, Value>, key: &str) -> Cow<'a, Value> {
    match cur {
        Cow::Borrowed(v) => Cow::Borrowed(v.as_object().and_then(|m| m.get(key)).unwrap_or(&NULL)),
        Cow::Owned(v) => Cow::Owned(
            v.as_object()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or(Value::Null),
        ),
    }
}

fn get_index<'a>(cur: Cow<'a, Value>, i: usize) -> Cow<'a, Value> {
    match cur {
        Cow::Borrowed(v) => Cow::Borrowed(v.as_array().and_then(|a| a.get(i)).unwrap_or(&NULL)),
        Cow::Owned(Value::Array(items)) => {
            Cow::Owned(items.into_iter().nth(i).unwrap_or(Value::Null))
        }
        Cow::Owned(_) => Cow::Owned(Value::Null),
    }
}

fn size(v: &Value) -> Value {
    let n = match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => return Value::Null,
    };
    Value::from(n)
}

/// JSON equality with numbers compared by value (`1 == 1.0`) and objects regardless of key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Exact for integers (all of u64 and i64), and exact between an integer and a float: comparing
/// both as f64 would say 2⁵³+1 == 2⁵³.
fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => int_float_cmp(x, b.as_f64()?),
        (None, Some(y)) => int_float_cmp(y, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn int_float_cmp(i: i128, f: f64) -> Option<Ordering> {
    // A whole float within ±1e30 converts to i128 exactly; beyond that, or with a fraction (hence
    // below 2⁵² in magnitude), comparing as f64 cannot change the order.
    if f.fract() == 0.0 && f.abs() < 1e30 {
        Some(i.cmp(&(f as i128)))
    } else {
        (i as f64).partial_cmp(&f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const EVENT: &str = r#"{
        "id": "evt_1",
        "type": "deal.updated",
        "source": "crm",
        "actor": {"type": "user", "id": "u_42", "name": "Zoë"},
        "occurred_at": "2024-05-01T12:00:00Z",
        "data": {
            "id": "deal_9", "stage": "won", "amount": 1500, "ratio": 0.25, "archived": false,
            "tags": [{"name": "vip", "weight": 3}, {"name": "new"}, {"name": "eu", "weight": 1.5}],
            "items": [
                {"sku": "A-1", "qty": 2, "parts": [{"id": "p1"}, {"id": "p2"}]},
                {"sku": "B-2", "qty": 0, "parts": [{"id": "p3"}]},
                {"sku": "C-3", "parts": "none"}
            ],
            "odd key": 1,
            "in": "keyword",
            "labels": ["a", "b", "c"],
            "matrix": [[1, 2], [3], []],
            "nothing": null,
            "empty": "",
            "zero": 0,
            "big": 18446744073709551615,
            "neg": -7,
            "float_one": 1.0,
            "nested": {"deep": {"deeper": {"value": "x"}}},
            "quote": "say \"hi\"",
            "unicode": "café ✓",
            "emoji": "😀",
            "flags": {"beta": true, "legacy": false},
            "obj_a": {"x": 1, "y": [1, 2]},
            "obj_b": {"y": [1.0, 2], "x": 1.0},
            "mixed": [1, "1", true, null, [1], {"k": 1}]
        },
        "changes": {"owner_id": {"from": null, "to": "u_7"}, "stage": {"from": "open", "to": "won"}}
    }"#;

    fn event() -> Value {
        serde_json::from_str(EVENT).expect("the test event is JSON")
    }

    /// Evaluates any expression, even one `Filter::parse` would refuse as a filter (a string, a
    /// number): the value tables check the operands filters are made of.
    fn value_of(src: &str, event: &Value) -> Result<Value, String> {
        let mut parser = Parser::new(src).map_err(|e| e.to_string())?;
        let ast = parser.parse_or().map_err(|e| e.to_string())?;
        if parser.tok.tok != Tok::End {
            return Err(format!("trailing {:?}", parser.tok));
        }
        match Eval::new(event).eval(&ast) {
            Ok(v) => Ok(v.into_owned()),
            Err(Exhausted) => Err("exhausted".to_string()),
        }
    }

    fn check_rows<T: fmt::Debug>(rows: &[T], check: impl Fn(&T) -> Result<(), String>) {
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|row| check(row).err().map(|why| format!("{row:?}: {why}")))
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} rows failed:\n{}",
            failures.len(),
            rows.len(),
            failures.join("\n")
        );
    }

    fn check_matches(rows: &[(&str, bool)]) {
        let ev = event();
        check_rows(rows, |(src, want)| {
            let filter = Filter::parse(src).map_err(|e| format!("parse error {e}"))?;
            let outcome = filter.evaluate(&ev);
            if outcome.matched != *want || filter.matches(&ev) != *want {
                return Err(format!(
                    "matched {} (value {})",
                    outcome.matched, outcome.value
                ));
            }
            if outcome.exhausted {
                return Err("exhausted".to_string());
            }
            Ok(())
        });
    }

    // The examples of the brief, and each one's near miss.
    #[rustfmt::skip]
    const EXAMPLES: &[(&str, bool)] = &[
        (r#"data.stage == "won""#, true),
        (r#""vip" in data.tags[*].name"#, true),
        (r#"changes.owner_id != null && data.amount >= 1000"#, true),
        (r#"type == "deal.updated" || type.startsWith("contact.")"#, true),
        (r#"data.stage in ["won", "lost"]"#, true),
        (r#"!(data.archived == true)"#, true),
        (r#"data.items[0].sku == "A-1""#, true),
        (r#"size(data.tags) > 2"#, true),
        (r#"data["odd key"] == 1"#, true),
        (r#"data.stage == "lost""#, false),
        (r#""gold" in data.tags[*].name"#, false),
        (r#"changes.amount != null && data.amount >= 1000"#, false),
        (r#"changes.owner_id != null && data.amount >= 1501"#, false),
        (r#"type == "deal.created" || type.startsWith("contact.")"#, false),
        (r#"type == "contact.created" || type.startsWith("deal.")"#, true),
        (r#"data.stage in ["open", "lost"]"#, false),
        (r#"!(data.flags.beta == true)"#, false),
        (r#"data.items[1].sku == "A-1""#, false),
        (r#"size(data.tags) > 3"#, false),
        (r#"data["odd key"] == 2"#, false),
    ];

    // Missing fields are null, never an error; only `true` matches.
    #[rustfmt::skip]
    const MISSING: &[(&str, bool)] = &[
        ("data.missing == null", true),
        ("missing == null", true),
        ("missing.deeper.still == null", true),
        ("data.missing != null", false),
        ("data.missing == false", false),
        ("data.missing", false),
        ("!data.missing", false),
        ("data.missing != true", true),
        ("!(data.missing == true)", true),
        ("data.missing < 1", false),
        ("data.missing >= 1", false),
        ("data.missing in [null]", true),
        ("data.missing in [false, 0, \"\"]", false),
        ("data.nothing == null", true),
        ("data.nothing == data.missing", true),
        ("data.stage.sub == null", true),
        ("data.tags.name == null", true),
        ("data.amount[0] == null", true),
        ("data.labels[3] == null", true),
        ("data.labels[-1] == null", true),
        ("data.labels[\"a\"] == null", true),
        ("data.flags[0] == null", true),
        ("data.missing.startsWith(\"a\")", false),
        ("!data.missing.startsWith(\"a\")", true),
        ("size(data.missing) == null", true),
        ("data.missing.size() == null", true),
        ("-data.missing == null", true),
        ("data.missing in data.labels", false),
        ("\"a\" in data.missing", false),
        ("data.missing.contains(\"a\")", false),
        ("data.flags.beta", true),
        ("data.flags.legacy", false),
        ("data.stage", false),
        ("actor.name == \"Zoë\"", true),
        ("nonexistent_root", false),
        ("data.items[2].parts[*].id == null", true),
        ("data.missing[*] == null", true),
        ("data.missing || data.flags.beta", true),
        ("data.missing && true", false),
        ("changes.owner_id.from == null && changes.owner_id.to == \"u_7\"", true),
    ];

    // Type mismatches are false (predicates) or null (values), never errors.
    #[rustfmt::skip]
    const MISMATCHES: &[(&str, bool)] = &[
        ("data.amount == \"1500\"", false),
        ("data.amount != \"1500\"", true),
        ("data.stage == 1", false),
        ("data.stage < 1", false),
        ("data.stage > 1", false),
        ("data.stage <= 1", false),
        ("data.stage >= 1", false),
        ("1 < \"2\"", false),
        ("\"2\" > 1", false),
        ("true == 1", false),
        ("null == false", false),
        ("0 == false", false),
        ("\"\" == null", false),
        ("data.flags.beta > false", false),
        ("data.flags.beta >= true", false),
        ("data.labels < data.labels", false),
        ("data.labels <= data.labels", false),
        ("data.flags <= data.flags", false),
        ("null <= null", false),
        ("data.labels == [\"a\", \"b\", \"c\"]", true),
        ("data.labels == [\"c\", \"b\", \"a\"]", false),
        ("data.obj_a == data.obj_b", true),
        ("data.obj_a != data.obj_b", false),
        ("data.obj_a == data.flags", false),
        ("data.stage.startsWith(1)", false),
        ("data.amount.startsWith(\"1\")", false),
        ("data.stage.endsWith(null)", false),
        ("data.stage.contains(true)", false),
        ("!data.stage", false),
        ("!data.amount", false),
        ("!data.labels", false),
        ("!data.nothing", false),
        ("!!data.flags.beta", true),
        ("!data.flags.legacy", true),
        ("data.stage && true", false),
        ("data.stage || data.flags.beta", true),
        ("data.amount in data.stage", false),
        ("\"w\" in data.stage", false),
        ("data.stage.contains(\"o\")", true),
        ("1 in data.mixed", true),
        ("\"1\" in data.mixed", true),
        ("true in data.mixed", true),
        ("null in data.mixed", true),
        ("[1] in data.mixed", true),
        ("[1.0] in data.mixed", true),
        ("2 in data.mixed", false),
        ("false in data.mixed", false),
        ("[] in data.mixed", false),
        ("\"k\" in data.mixed[5]", true),
        ("1 in data.mixed[5]", false),
        ("data.mixed[5] in data.mixed", true),
        ("size(data.amount) == null", true),
        ("size(true) == null", true),
        ("-data.stage == null", true),
        ("data.amount.size() == null", true),
        ("data.amount.contains(1)", false),
    ];

    #[rustfmt::skip]
    const NUMBERS: &[(&str, bool)] = &[
        ("data.amount == 1500.0", true),
        ("data.amount == 1.5e3", true),
        ("data.amount == 15e2", true),
        ("data.amount == 150000E-2", true),
        ("data.amount > 1499.99", true),
        ("data.amount >= 1500", true),
        ("data.amount <= 1500", true),
        ("data.amount < 1500", false),
        ("data.amount > 1500", false),
        ("data.float_one == 1", true),
        ("data.float_one == data.obj_a.x", true),
        ("data.ratio == 0.25", true),
        ("data.ratio == 25e-2", true),
        ("data.ratio != 0.250", false),
        ("data.ratio < 1", true),
        ("data.neg == -7", true),
        ("data.neg < -6.5", true),
        ("data.neg < 0 && data.neg > -8", true),
        ("-data.neg == 7", true),
        ("- -7 == 7", true),
        ("--7 == 7", true),
        ("-(-(7)) == 7", true),
        ("data.big == 18446744073709551615", true),
        ("data.big > 18446744073709551614", true),
        ("data.big == 18446744073709551616", false),
        ("data.big < 18446744073709551616", true),
        ("data.big < 1e300", true),
        ("9007199254740993 == 9007199254740992.0", false),
        ("9007199254740993 > 9007199254740992.0", true),
        ("9007199254740992 == 9007199254740992.0", true),
        ("-9223372036854775808 < -9223372036854775807", true),
        ("-9223372036854775808 == -9223372036854775808.0", true),
        ("-18446744073709551615 < -9223372036854775808", true),
        ("0 == -0", true),
        ("0.0 == -0.0", true),
        ("0 == -0.0", true),
        ("1E2 == 100", true),
        ("1e+2 == 100", true),
        ("1e-2 == 0.01", true),
        ("0.1 < 0.2", true),
        ("2.5 > 2", true),
        ("2 < 2.5", true),
        ("-2.5 < -2", true),
        ("data.zero == 0", true),
        ("data.zero == false", false),
        ("data.zero == -0", true),
        ("1e-400 == 0", true),
        ("size(data.labels) == 3.0", true),
    ];

    #[rustfmt::skip]
    const STRINGS: &[(&str, bool)] = &[
        (r#"data.quote == "say \"hi\"""#, true),
        (r#"data.quote == 'say "hi"'"#, true),
        (r#"data.quote == 'say \"hi\"'"#, true),
        (r#"'it\'s' == "it's""#, true),
        (r#""a\\b" == 'a\\b'"#, true),
        (r#"size("a\\b") == 3"#, true),
        (r#""line\nbreak" != "line\\nbreak""#, true),
        (r#"size("\n\t\r") == 3"#, true),
        (r#""\u00e9" == "é""#, true),
        (r#""\u00E9" == "é""#, true),
        (r#"data.unicode == "caf\u00e9 \u2713""#, true),
        (r#"data.emoji == "\ud83d\ude00""#, true),
        (r#"data.emoji == "\uD83D\uDE00""#, true),
        (r#"size(data.emoji) == 1"#, true),
        (r#"size(data.unicode) == 6"#, true),
        (r#""\/" == "/""#, true),
        (r#""" == data.empty"#, true),
        (r#"'' == data.empty"#, true),
        (r#"size(data.empty) == 0"#, true),
        (r#""abc" < "abd""#, true),
        (r#""Z" < "a""#, true),
        (r#""a" < "B""#, false),
        (r#""é" > "z""#, true),
        (r#""abc" <= "abc" && "abc" >= "abc""#, true),
        (r#""ab" < "abc""#, true),
        (r#"occurred_at >= "2024-05-01T00:00:00Z""#, true),
        (r#"occurred_at < "2024-05-01T00:00:00Z""#, false),
        (r#"type.endsWith(".updated")"#, true),
        (r#"type.startsWith("deal.")"#, true),
        (r#"type.contains("al.up")"#, true),
        (r#"type.startsWith("")"#, true),
        (r#"type.endsWith("deal")"#, false),
        (r#"type.startsWith("Deal.")"#, false),
        (r#"data.in == "keyword""#, true),
        (r#"data["in"] == "keyword""#, true),
        (r#"data['odd key'] == 1"#, true),
        (r#""won" == 'won'"#, true),
        (r#""tab\there" == 'tab	here'"#, true),
        (r#"actor.name.endsWith("ë")"#, true),
        (r#"actor.name.startsWith("Zo\u00eb")"#, true),
    ];

    #[rustfmt::skip]
    const ARRAYS: &[(&str, bool)] = &[
        (r#"data.tags[*].name == ["vip", "new", "eu"]"#, true),
        (r#"data.tags[*].weight == [3, null, 1.5]"#, true),
        (r#"null in data.tags[*].weight"#, true),
        (r#"data.items[*].parts[*].id == ["p1", "p2", "p3"]"#, true),
        (r#""p3" in data.items[*].parts[*].id"#, true),
        (r#"data.matrix[*][*] == [1, 2, 3]"#, true),
        (r#"size(data.matrix[*]) == 3"#, true),
        (r#"data.matrix[*][0] == [1, 3, null]"#, true),
        (r#"data.labels[*] == data.labels"#, true),
        (r#"data.stage[*] == null"#, true),
        (r#"data.flags[*] == null"#, true),
        (r#"true in data.tags[*].name.startsWith("v")"#, true),
        (r#"data.tags[*].name.startsWith("v") == [true, false, false]"#, true),
        (r#"data.tags[*].name.size() == [3, 3, 2]"#, true),
        (r#"size(data.tags[*].weight) == 3"#, true),
        (r#"data.tags[0].name == "vip""#, true),
        (r#"data.tags[data.zero].name == "vip""#, true),
        (r#"data.tags[data.float_one].name == "new""#, false),
        (r#"data.labels[1] == "b""#, true),
        (r#"data.labels[2] == "c""#, true),
        (r#"data.tags[*]["name"] == ["vip", "new", "eu"]"#, true),
        (r#"data.labels.contains("b")"#, true),
        (r#"data.labels.contains("z")"#, false),
        (r#"data.flags.contains("beta")"#, true),
        (r#"data.flags.contains(true)"#, false),
        (r#""beta" in data.flags"#, true),
        (r#""gamma" in data.flags"#, false),
        (r#"[data.stage, type] == ["won", "deal.updated"]"#, true),
        (r#"data.stage in [type, "won"]"#, true),
        (r#"[1, 2, 3][1] == 2"#, true),
        (r#"[1, 2,] == [1, 2]"#, true),
        (r#"[] == []"#, true),
        (r#"size([]) == 0"#, true),
        (r#"[[1], [2]][*][*] == [1, 2]"#, true),
        (r#"[data.matrix, [[4]]][*][*][*] == [1, 2, 3, 4]"#, true),
        (r#"(data.tags[*]).name == null"#, true),
        (r#"data.items[*].qty == [2, 0, null]"#, true),
        (r#"2 in data.items[*].qty"#, true),
        (r#"data.items[-1] == null"#, true),
        (r#"data.items[3] == null"#, true),
        (r#"data.items[*].parts[0].id == ["p1", "p3", null]"#, true),
        (r#""vip" in data.tags[*].name && data.amount > 1000"#, true),
        (r#"size(data.items[*].parts[*]) == 3"#, true),
        (r#"data.nested.deep.deeper.value == "x""#, true),
        (r#"data["nested"]["deep"].deeper["value"] == "x""#, true),
        (r#"data.items[*].sku.endsWith("-1") == [true, false, false]"#, true),
        (r#"[1, 2] == [1.0, 2.0]"#, true),
        (r#"[1, 2] == [1, 2, 3]"#, false),
        (r#"data.labels[*].contains("a") == [true, false, false]"#, true),
        (r#"data.mixed[*] == data.mixed"#, true),
    ];

    #[rustfmt::skip]
    const PRECEDENCE: &[(&str, bool)] = &[
        ("true || false && false", true),
        ("(true || false) && false", false),
        ("false && false || true", true),
        ("false && (false || true)", false),
        ("!true || true", true),
        ("!(true || true)", false),
        ("!false && false", false),
        ("!data.flags.legacy == true", true),
        ("!true == false", true),
        ("1 < 2 && 2 < 3", true),
        ("data.stage == \"won\" && data.amount > 1000 || false", true),
        ("false || data.stage == \"won\" && data.flags.beta", true),
        ("false || data.stage == \"won\" && data.flags.legacy", false),
        ("-1 < 0", true),
        ("-data.amount < 0", true),
        ("!(1 < 2)", false),
        ("1 in [1] && 2 in [2]", true),
        ("(((true)))", true),
        ("data.missing == null || data.missing.x.y", true),
        ("true && true && true && false", false),
        ("false || false || false || true", true),
        ("(true && false) || (false || true) && true", true),
        ("!(!(true))", true),
        ("!(-1 == 1)", true),
        ("(data.stage == \"won\") == true", true),
        ("(1 < 2) == (3 < 4)", true),
        ("(1 < 2) in [true]", true),
        ("!(data.stage in [\"lost\"]) && !(data.amount < 10)", true),
    ];

    #[test]
    fn the_examples() {
        check_matches(EXAMPLES);
    }

    #[test]
    fn missing_fields() {
        check_matches(MISSING);
    }

    #[test]
    fn type_mismatches() {
        check_matches(MISMATCHES);
    }

    #[test]
    fn numbers() {
        check_matches(NUMBERS);
    }

    #[test]
    fn strings_and_escapes() {
        check_matches(STRINGS);
    }

    #[test]
    fn arrays_and_wildcards() {
        check_matches(ARRAYS);
    }

    #[test]
    fn precedence() {
        check_matches(PRECEDENCE);
    }

    // The values operands evaluate to (bypassing the "must be a condition" rule).
    #[rustfmt::skip]
    const VALUES: &[(&str, &str)] = &[
        ("data.stage", r#""won""#),
        ("data.tags[0]", r#"{"name": "vip", "weight": 3}"#),
        ("missing", "null"),
        ("size(data.tags)", "3"),
        ("size(data.flags)", "2"),
        ("size(\"héllo\")", "5"),
        ("data.tags[*].name", r#"["vip", "new", "eu"]"#),
        ("data.items[*].parts[*]", r#"[{"id": "p1"}, {"id": "p2"}, {"id": "p3"}]"#),
        ("data.matrix[*][*]", "[1, 2, 3]"),
        ("data.matrix[*]", "[[1, 2], [3], []]"),
        ("-data.neg", "7"),
        ("-data.ratio", "-0.25"),
        ("-data.big", "-1.8446744073709552e19"),
        ("-1.5", "-1.5"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("18446744073709551615", "18446744073709551615"),
        ("18446744073709551616", "1.8446744073709552e19"),
        ("1.0", "1.0"),
        ("[1, \"a\", null, true]", r#"[1, "a", null, true]"#),
        ("[data.stage, [data.zero]]", r#"["won", [0]]"#),
        ("data.labels[0]", r#""a""#),
        ("\"\\u0041\\t\"", r#""A\t""#),
        ("'\\''", r#""'""#),
        ("data.flags.beta && data.stage == \"won\"", "true"),
        ("data.tags[*].weight", "[3, null, 1.5]"),
        ("[1, 2][5]", "null"),
        ("[[1, 2], [3]][1][0]", "3"),
        ("data.mixed[5].k", "1"),
        ("size(data.mixed[*])", "6"),
        ("data.tags.size()", "3"),
    ];

    #[test]
    fn operand_values() {
        let ev = event();
        check_rows(VALUES, |(src, want)| {
            let want: Value = serde_json::from_str(want).map_err(|e| e.to_string())?;
            let got = value_of(src, &ev)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got}"))
            }
        });
    }

    // Where each mistake is reported, and what it says. Positions count characters.
    #[rustfmt::skip]
    const PARSE_ERRORS: &[(&str, usize, &str)] = &[
        ("", 0, "the filter is empty"),
        ("   ", 3, "the filter is empty"),
        ("data.stage ==", 13, "expected an expression, found end of input"),
        ("data.stage = \"won\"", 11, "`=` is not an operator: compare with `==`"),
        ("data.stage == \"won", 14, "unclosed string"),
        ("data.stage == 'won", 14, "unclosed string"),
        ("data.stage == 'won\"", 14, "unclosed string"),
        ("\"abc\\\"", 0, "unclosed string"),
        ("\"ab\nc\" == x", 0, "a string cannot span lines"),
        ("foo(data)", 0, "unknown function `foo`"),
        ("size(data.tags, 1) > 2", 0, "`size` takes 1 argument, got 2"),
        ("size() > 2", 0, "`size` takes 1 argument, got 0"),
        ("type.startsWith()", 5, "`startsWith` takes 1 argument, got 0"),
        ("type.startsWith(\"a\", \"b\")", 5, "`startsWith` takes 1 argument, got 2"),
        ("type.endsWith()", 5, "`endsWith` takes 1 argument, got 0"),
        ("data.tags.contains()", 10, "`contains` takes 1 argument, got 0"),
        ("data.tags.size(1) > 0", 10, "`size` takes 0 arguments, got 1"),
        ("type.matches(\"^deal\")", 5, "no regular expressions"),
        ("matches(type, \"x\")", 0, "no regular expressions"),
        ("has(data.stage)", 0, "unknown function `has`"),
        ("int(data.amount) > 1", 0, "conversions are not supported"),
        ("data.tags.exists(t, t.name == \"vip\")", 10, "macros are not supported"),
        ("data.tags.all(t, t.name == \"vip\")", 10, "macros are not supported"),
        ("type.lower() == \"x\"", 5, "unknown method `lower`"),
        ("a.b.c()", 4, "unknown method `c`"),
        ("data.stage == \"won\" data.amount > 1", 20, "found `data` where the filter should end"),
        ("data.stage == \"won\")", 19, "found `)` where the filter should end"),
        ("true false", 5, "found `false` where the filter should end"),
        ("r\"raw\" == x", 1, "found the string \"raw\" where the filter should end"),
        ("data.x == 1 and data.y == 2", 12, "found `and`"),
        ("(data.stage == \"won\"", 20, "expected `)` to close the `(` at position 0, found end of input"),
        ("\"won\"", 0, "a filter must be a condition (it evaluates to a string)"),
        ("42", 0, "a filter must be a condition (it evaluates to a number)"),
        ("  null", 2, "a filter must be a condition (it evaluates to null)"),
        ("[true]", 0, "a filter must be a condition (it evaluates to a list)"),
        ("[data.x]", 0, "a filter must be a condition (it evaluates to a list)"),
        ("size(data.tags)", 0, "a filter must be a condition (it evaluates to a number or null)"),
        ("data.tags[*].name", 0, "a filter must be a condition (it evaluates to a list or null)"),
        ("(data.tags[*].name)", 0, "a filter must be a condition (it evaluates to a list or null)"),
        ("-data.amount", 0, "a filter must be a condition (it evaluates to a number or null)"),
        ("data.tags.size()", 0, "a filter must be a condition (it evaluates to a number or null)"),
        ("-1", 0, "a filter must be a condition (it evaluates to a number)"),
        ("data.x == 1 && \"yes\"", 15, "each side of `&&` must be a condition (it evaluates to a string)"),
        ("1 || data.x", 0, "each side of `||` must be a condition (it evaluates to a number)"),
        ("data.x || data.y && size(data.z)", 20, "each side of `&&` must be a condition"),
        ("!\"x\"", 1, "`!` needs a condition (it evaluates to a string)"),
        ("!data.tags[*].name", 1, "`!` needs a condition (it evaluates to a list or null)"),
        ("!!1", 2, "`!` needs a condition (it evaluates to a number)"),
        ("-\"x\" == 1", 1, "`-` needs a number (it is a string)"),
        ("-true == 1", 1, "`-` needs a number (it is a boolean)"),
        ("-null == 1", 1, "`-` needs a number (it is null)"),
        ("!-1 == false", 1, "`!` needs a condition (it evaluates to a number)"),
        ("1 < 2 < 3", 6, "comparisons cannot be chained"),
        ("a == b == c", 7, "comparisons cannot be chained"),
        ("a in b in c", 7, "comparisons cannot be chained"),
        ("a == b != c", 7, "comparisons cannot be chained"),
        ("type in \"deal.updated\"", 8, "not in a string: for a substring use `.contains(...)`"),
        ("1 in 1", 5, "`in` needs a list (or an object) on its right"),
        ("x in null", 5, "`in` needs a list"),
        ("x in -1", 5, "`in` needs a list"),
        ("data.stage == 01", 14, "leading zeros"),
        ("data.stage == 00.5", 14, "leading zeros"),
        ("data.amount > 1.", 16, "expected a field name after `.`, found end of input"),
        ("data.amount > .5", 14, "expected an expression, found `.`"),
        ("data.amount > 1e", 15, "incomplete exponent"),
        ("data.amount > 1e+", 15, "incomplete exponent"),
        ("data.amount > 1.5E-", 17, "incomplete exponent"),
        ("data.amount > 1e999", 14, "number out of range"),
        ("data.amount > -1e999", 15, "number out of range"),
        ("data.amount > 12abc", 16, "unexpected `a` after a number"),
        ("data.amount > 0x10", 15, "unexpected `x` after a number"),
        ("data.amount > 1u", 15, "unexpected `u` after a number"),
        ("data.amount > 1_000", 15, "unexpected `_` after a number"),
        ("data.amount + 1 > 2", 12, "arithmetic is not supported"),
        ("data.amount * 2 > 2", 12, "arithmetic is not supported"),
        ("data.amount / 2 > 2", 12, "arithmetic is not supported"),
        ("data.amount % 2 == 0", 12, "arithmetic is not supported"),
        ("data.amount - 1 > 2", 12, "arithmetic is not supported"),
        ("size(data.x * 2) > 1", 12, "expected `,` or `)` after an argument, found `*` (arithmetic"),
        ("{\"a\": 1} == data", 0, "object literals (`{...}`) are not supported"),
        ("data.x ? 1 : 2", 7, "the conditional operator"),
        ("data.x & true", 7, "use `&&`"),
        ("data.x | true", 7, "use `||`"),
        ("data.stage == \"won\" ||| true", 22, "use `||`"),
        ("data.", 5, "expected a field name after `.`, found end of input"),
        ("data.1 == 1", 5, "expected a field name after `.`, found the number 1"),
        ("data.[\"x\"] == 1", 5, "expected a field name after `.`, found `[`"),
        ("data..x == 1", 5, "expected a field name after `.`, found `.`"),
        ("data.tags[ == 1", 11, "expected an expression, found `==`"),
        ("data.tags[0 == 1", 16, "expected `]`, found end of input"),
        ("data.tags[0 1] == 1", 12, "expected `]`, found the number 1"),
        ("data.tags[*", 11, "expected `]` after `[*`, found end of input"),
        ("data.tags[*x] == 1", 11, "expected `]` after `[*`, found `x`"),
        ("data.tags[] == 1", 10, "expected an expression, found `]`"),
        ("data.tags[true] == 1", 10, "an index must be a string or an integer (it is a boolean)"),
        ("data.tags[1.5] == 1", 10, "an index must be a string or an integer (it is a number)"),
        ("data.tags[null] == 1", 10, "an index must be a string or an integer (it is null)"),
        ("data.tags[[0]] == 1", 10, "an index must be a string or an integer (it is a list)"),
        ("*", 0, "`[*]` is only valid after a path"),
        ("[*] == 1", 1, "`[*]` is only valid after a path"),
        ("[1, 2", 5, "expected `,` or `]` in the list opened at position 0, found end of input"),
        ("[1 2] == x", 3, "expected `,` or `]` in the list opened at position 0"),
        ("x in [1, [2 3]]", 12, "in the list opened at position 9"),
        ("[,] == x", 1, "expected an expression, found `,`"),
        ("[1,,2] == x", 3, "expected an expression, found `,`"),
        ("size(data.tags", 14, "expected `,` or `)` after an argument, found end of input"),
        ("type.startsWith(\"a\"", 19, "expected `,` or `)` after an argument"),
        ("size(,) == 1", 5, "expected an expression, found `,`"),
        ("x in", 4, "expected an expression, found end of input"),
        ("in == 1", 0, "expected an expression, found `in`"),
        ("== 1", 0, "expected an expression, found `==`"),
        ("|| true", 0, "expected an expression, found `||`"),
        ("data.x == 1 &&", 14, "expected an expression, found end of input"),
        ("data.x == 1 )", 12, "found `)` where the filter should end"),
        ("!", 1, "expected an expression, found end of input"),
        ("-", 1, "expected an expression, found end of input"),
        ("()", 1, "expected an expression, found `)`"),
        (")", 0, "expected an expression, found `)`"),
        ("data.x == \"\\q\"", 11, "unknown escape `\\q`"),
        ("data.x == \"\\x41\"", 11, "unknown escape `\\x`"),
        ("data.x == \"\\u12\"", 11, "invalid `\\u` escape: expected four hex digits"),
        ("data.x == \"\\uZZZZ\"", 11, "invalid `\\u` escape: expected four hex digits"),
        ("data.x == \"\\ud83d\"", 11, "invalid `\\u` escape: a lone surrogate"),
        ("data.x == \"\\ude00\"", 11, "invalid `\\u` escape: a lone surrogate"),
        ("data.x == \"\\ud83d\\u0041\"", 11, "invalid `\\u` escape: a lone surrogate"),
        ("data.x == \"\\ud83d\\uZZ\"", 11, "expected four hex digits"),
        ("data.x == \"\\", 10, "unclosed string"),
        ("data.x == #1", 10, "unexpected character `#`"),
        ("data.x == “quoted”", 10, "unexpected character `“`"),
        ("data.x == 1 ; true", 12, "unexpected character `;`"),
        ("data.x == 1\u{0}", 11, "unexpected character `\\0`"),
        ("\"café\" = 1", 7, "`=` is not an operator"),
        ("actor.name == \"Zoë\" &&& true", 22, "use `&&`"),
        ("data.x == \"ünïcödé\" && foo()", 23, "unknown function `foo`"),
        ("é == 1", 0, "unexpected character `é`"),
    ];

    #[test]
    fn parse_errors() {
        check_rows(
            PARSE_ERRORS,
            |(src, position, message)| match Filter::parse(src) {
                Ok(_) => Err("parsed".to_string()),
                Err(e) if e.position == *position && e.message.contains(message) => Ok(()),
                Err(e) => Err(format!("got {e}")),
            },
        );
    }

    // Steps, so the budget is understood: one per node visit, path step, wildcard element and
    // element examined by `in`; short-circuited operands cost nothing.
    #[rustfmt::skip]
    const STEPS: &[(&str, usize)] = &[
        ("true", 1),
        ("data.stage == \"won\"", 5),
        ("false && data.x == 1", 2),
        ("true || data.x == 1", 2),
        ("true && data.flags.beta", 6),
        ("data.labels[*] == null", 9),
        ("\"c\" in data.labels", 8),
        ("\"a\" in data.labels", 6),
        ("data.labels.contains(\"b\")", 7),
        ("\"beta\" in data.flags", 5),
        ("[1, 2, 3] == [1, 2, 3]", 3),
        ("[data.x] == null", 6),
        ("data.matrix[*][*] == null", 15),
    ];

    #[test]
    fn step_counts() {
        let ev = event();
        check_rows(STEPS, |(src, want)| {
            let outcome = Filter::parse(src).map_err(|e| e.to_string())?.evaluate(&ev);
            if outcome.steps == *want && !outcome.exhausted {
                Ok(())
            } else {
                Err(format!("{} steps", outcome.steps))
            }
        });
    }

    #[test]
    fn table_has_hundreds_of_rows() {
        let rows = EXAMPLES.len()
            + MISSING.len()
            + MISMATCHES.len()
            + NUMBERS.len()
            + STRINGS.len()
            + ARRAYS.len()
            + PRECEDENCE.len()
            + VALUES.len()
            + PARSE_ERRORS.len()
            + STEPS.len();
        assert!(rows >= 200, "{rows} rows");
    }

    // --- limits -------------------------------------------------------------------------------

    #[test]
    fn source_length_limit() {
        let exact = format!("data.x == \"{}\"", "a".repeat(MAX_SOURCE_BYTES - 12));
        assert_eq!(exact.len(), MAX_SOURCE_BYTES);
        assert!(Filter::parse(&exact).is_ok());
        let over = format!("data.x == \"{}\"", "a".repeat(MAX_SOURCE_BYTES - 11));
        let err = Filter::parse(&over).unwrap_err();
        assert_eq!(err.position, MAX_SOURCE_BYTES);
        assert!(
            err.message.contains("too long (2049 bytes, at most 2048)"),
            "{err}"
        );
        // Two-byte characters: the position counts characters, the limit counts bytes.
        let wide = format!("data.x == \"{}\"", "é".repeat(1020));
        assert_eq!(wide.len(), 2052);
        let err = Filter::parse(&wide).unwrap_err();
        assert_eq!(err.position, 11 + 1018);
    }

    #[test]
    fn depth_limit() {
        let parens = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
        assert!(Filter::parse(&parens(MAX_DEPTH - 1)).is_ok());
        let err = Filter::parse(&parens(MAX_DEPTH)).unwrap_err();
        assert_eq!(err.position, MAX_DEPTH);
        assert!(
            err.message
                .contains("nested too deeply (more than 32 levels)"),
            "{err}"
        );

        let nots = |n: usize| format!("{}true", "!".repeat(n));
        assert!(Filter::parse(&nots(MAX_DEPTH - 1)).is_ok());
        let err = Filter::parse(&nots(MAX_DEPTH)).unwrap_err();
        assert_eq!(err.position, MAX_DEPTH - 1);

        let lists = |n: usize| format!("x in {}1{}", "[".repeat(n), "]".repeat(n));
        assert!(Filter::parse(&lists(MAX_DEPTH - 1)).is_ok());
        assert!(Filter::parse(&lists(MAX_DEPTH)).is_err());

        let calls = |n: usize| format!("{}x{} == 1", "size(".repeat(n), ")".repeat(n));
        assert!(Filter::parse(&calls(MAX_DEPTH - 1)).is_ok());
        assert!(Filter::parse(&calls(MAX_DEPTH)).is_err());

        let indexes = |n: usize| format!("{}0{} == 1", "x[".repeat(n), "]".repeat(n));
        assert!(Filter::parse(&indexes(MAX_DEPTH - 1)).is_ok());
        assert!(Filter::parse(&indexes(MAX_DEPTH)).is_err());

        // Far beyond the limit, the parser stops before its own stack is at risk.
        assert!(Filter::parse(&parens(1000)).is_err());
        assert!(Filter::parse(&"[".repeat(2000)).is_err());
        assert!(Filter::parse(&"!".repeat(2000)).is_err());
        assert!(Filter::parse(&"-".repeat(2000)).is_err());

        // Long `||` chains are flat: no nesting cost.
        let chain = vec!["data.stage == \"x\""; 40].join(" || ");
        assert!(Filter::parse(&chain).is_ok());
    }

    #[test]
    fn node_limit() {
        // N terms joined by `&&` are 2N - 1 nodes.
        let chain = |n: usize| vec!["x"; n].join(" && ");
        assert!(Filter::parse(&chain(128)).is_ok());
        let err = Filter::parse(&chain(129)).unwrap_err();
        assert_eq!(err.position, 128 * 5);
        assert!(
            err.message.contains("too complex (more than 256 terms)"),
            "{err}"
        );

        let path = format!("x{} == 1", ".a".repeat(MAX_NODES - 3));
        assert!(Filter::parse(&path).is_ok());
        let path = format!("x{} == 1", ".a".repeat(MAX_NODES - 2));
        assert!(Filter::parse(&path).is_err());

        let list = format!("x in [{}]", vec!["1"; MAX_NODES - 3].join(","));
        assert!(Filter::parse(&list).is_ok());
        let list = format!("x in [{}]", vec!["1"; MAX_NODES - 2].join(","));
        assert!(Filter::parse(&list).is_err());
    }

    #[test]
    fn step_limit() {
        // `"x" in data.xs` takes 5 steps before looking at the elements, one per element then.
        let filter = Filter::parse("\"x\" in data.xs").unwrap();
        let with = |n: usize| json!({"data": {"xs": vec![0; n]}});
        let at_limit = filter.evaluate(&with(MAX_STEPS - 5));
        assert_eq!(
            (at_limit.steps, at_limit.exhausted, at_limit.matched),
            (MAX_STEPS, false, false)
        );
        let over = filter.evaluate(&with(MAX_STEPS - 4));
        assert_eq!(
            over,
            Evaluation {
                matched: false,
                value: Value::Null,
                steps: MAX_STEPS,
                exhausted: true
            }
        );

        // A match found within the budget is a match, however large the list.
        let mut xs = vec![json!(0); 50_000];
        xs[3] = json!("x");
        let early = filter.evaluate(&json!({"data": {"xs": xs}}));
        assert!(early.matched && !early.exhausted);

        // Nested wildcards over a 200×200 matrix would take 40,000 steps: stopped, no match.
        let matrix = json!({"m": vec![vec![1; 200]; 200]});
        let filter = Filter::parse("1 in m[*][*]").unwrap();
        let outcome = filter.evaluate(&matrix);
        assert!(outcome.exhausted && !outcome.matched);
        assert_eq!(outcome.steps, MAX_STEPS);
        assert!(!filter.matches(&matrix));

        // Per-element work inside a wildcard counts too.
        let filter = Filter::parse("true in m[*][*].contains(m[0][0])").unwrap();
        assert!(filter.evaluate(&matrix).exhausted);
    }

    #[test]
    fn worst_case_filters_stay_cheap() {
        // A filter at every limit at once, on a big event: it stops at the step budget (the
        // cost bound is the step count, never a wall-clock figure).
        let wild = format!("1 in x{}", "[*]".repeat(60));
        let mut nested = json!(1);
        for _ in 0..8 {
            nested = json!([nested.clone(), nested.clone(), nested.clone(), nested]);
        }
        let event = json!({ "x": nested });
        let filter = Filter::parse(&wild).unwrap();
        let outcome = filter.evaluate(&event);
        assert!(outcome.steps <= MAX_STEPS);
        assert!(outcome.exhausted && !outcome.matched);
    }

    // --- API ----------------------------------------------------------------------------------

    #[test]
    fn api_surface() {
        let src = "  data.stage == \"won\"  ";
        let filter: Filter = src.parse().unwrap();
        assert_eq!(filter.source(), src);
        assert_eq!(filter.to_string(), src);
        assert_eq!(filter, Filter::parse(src).unwrap());
        assert_ne!(filter, Filter::parse("data.stage == \"lost\"").unwrap());
        let cloned = filter.clone();
        assert!(cloned.matches(&event()));

        let outcome = filter.evaluate(&event());
        assert_eq!(
            outcome,
            Evaluation {
                matched: true,
                value: Value::Bool(true),
                steps: 5,
                exhausted: false
            }
        );
        let bare = Filter::parse("data.stage").unwrap().evaluate(&event());
        assert_eq!(bare.value, json!("won"));
        assert!(!bare.matched);

        let err = Filter::parse("data.x ==").unwrap_err();
        assert_eq!(
            err.to_string(),
            "at position 9: expected an expression, found end of input"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
        assert!(boxed.to_string().starts_with("at position 9"));
    }

    #[test]
    fn events_that_are_not_objects() {
        let filter = Filter::parse("type == null && !type.startsWith(\"a\")").unwrap();
        for event in [
            json!(null),
            json!([1, 2]),
            json!("type"),
            json!(3),
            json!(true),
        ] {
            assert!(filter.matches(&event), "{event}");
        }
    }

    // --- properties ---------------------------------------------------------------------------

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("type"),
            Just("data"),
            Just("tags"),
            Just("name"),
            Just("stage"),
            Just("amount"),
            Just("items"),
            Just("x"),
            Just("odd key"),
        ]
        .prop_map(str::to_string);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            (0i64..4).prop_map(Value::from),
            prop_oneof![Just("vip"), Just("won"), Just(""), Just("é😀")]
                .prop_map(|s| Value::String(s.to_string())),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("\"vip\"".to_string()),
            Just("'won'".to_string()),
            Just("\"\\u00e9\\n\"".to_string()),
            any::<i32>().prop_map(|n| n.to_string()),
            (-5i64..5).prop_map(|n| n.to_string()),
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
        ]
    }

    /// Paths without wildcards or with them (`wild`), to respect the "must be a condition" rule.
    fn path(wild: bool) -> impl Strategy<Value = String> {
        let root = prop_oneof![
            Just("type"),
            Just("data"),
            Just("tags"),
            Just("x"),
            Just("amount")
        ];
        let mut steps = vec![
            Just(".name"),
            Just(".tags"),
            Just(".items"),
            Just(".stage"),
            Just(".amount"),
            Just(".x"),
            Just("[0]"),
            Just("[1]"),
            Just("[-1]"),
            Just("[\"odd key\"]"),
            Just("['type']"),
        ];
        if wild {
            steps.push(Just("[*]"));
            steps.push(Just("[*]"));
        }
        (
            root,
            prop::collection::vec(prop::strategy::Union::new(steps), 0..5),
        )
            .prop_map(|(root, steps)| format!("{root}{}", steps.concat()))
    }

    fn index() -> impl Strategy<Value = String> {
        prop_oneof![
            (-2i64..4).prop_map(|n| n.to_string()),
            Just("\"name\"".to_string()),
            path(false),
        ]
    }

    fn value_expr() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![literal(), path(true)];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                inner.clone().prop_map(|v| format!("size({v})")),
                path(false).prop_map(|p| format!("-{p}")),
                (path(true), index()).prop_map(|(p, i)| format!("{p}[{i}]")),
            ]
        })
    }

    fn condition() -> impl Strategy<Value = String> {
        let op = prop_oneof![
            Just("=="),
            Just("!="),
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">="),
        ];
        let method = prop_oneof![Just("startsWith"), Just("endsWith"), Just("contains")];
        let in_rhs = prop_oneof![
            path(true),
            prop::collection::vec(value_expr(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        ];
        let leaf = prop_oneof![
            (value_expr(), op, value_expr()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (value_expr(), in_rhs).prop_map(|(a, b)| format!("{a} in {b}")),
            (path(false), method.clone(), value_expr())
                .prop_map(|(p, m, v)| format!("{p}.{m}({v})")),
            (path(true), method, value_expr())
                .prop_map(|(p, m, v)| format!("true in {p}.{m}({v})")),
            Just("true".to_string()),
            path(false),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|c| format!("!({c})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
                inner.prop_map(|c| format!("({c})")),
            ]
        })
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("data"),
            Just("."),
            Just("tags"),
            Just("["),
            Just("]"),
            Just("[*]"),
            Just("("),
            Just(")"),
            Just(","),
            Just("!"),
            Just("-"),
            Just("=="),
            Just("!="),
            Just("<"),
            Just(">="),
            Just("&&"),
            Just("||"),
            Just(" in "),
            Just("size"),
            Just(".startsWith"),
            Just("\"s\""),
            Just("'"),
            Just("\""),
            Just("\\u"),
            Just("\\"),
            Just("1"),
            Just("0"),
            Just("e"),
            Just("1.5e-3"),
            Just("null"),
            Just("true"),
            Just(" "),
            Just("é"),
        ];
        prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    fn check_error_position(
        src: &str,
        result: &Result<Filter, FilterError>,
    ) -> Result<(), TestCaseError> {
        if let Err(e) = result {
            prop_assert!(e.position <= src.chars().count(), "{e} for {src:?}");
            prop_assert!(!e.message.is_empty());
        }
        Ok(())
    }

    fn check_evaluation(filter: &Filter, event: &Value) -> Result<(), TestCaseError> {
        let outcome = filter.evaluate(event);
        prop_assert!(outcome.steps <= MAX_STEPS);
        prop_assert_eq!(outcome.matched, filter.matches(event));
        prop_assert_eq!(outcome.matched, outcome.value == Value::Bool(true));
        if outcome.exhausted {
            prop_assert!(!outcome.matched);
            prop_assert_eq!(outcome.steps, MAX_STEPS);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsing_arbitrary_text_never_panics(src in "\\PC{0,120}") {
            let result = Filter::parse(&src);
            check_error_position(&src, &result)?;
        }

        #[test]
        fn parsing_token_soup_never_panics(src in token_soup()) {
            let result = Filter::parse(&src);
            check_error_position(&src, &result)?;
            if let Ok(filter) = result {
                check_evaluation(&filter, &event())?;
            }
        }

        #[test]
        fn evaluating_generated_filters_never_panics(
            src in condition(),
            data in json_value(),
            top in prop::collection::btree_map(
                prop_oneof![Just("type"), Just("tags"), Just("x"), Just("amount")].prop_map(str::to_string),
                json_value(),
                0..4,
            ),
        ) {
            let result = Filter::parse(&src);
            let filter = match result {
                Ok(filter) => filter,
                // The grammar generates only valid filters, up to the size limits.
                Err(e) => {
                    prop_assert!(e.message.contains("too complex") || e.message.contains("too long"), "{e} for {src}");
                    return Ok(());
                }
            };
            let mut event: serde_json::Map<String, Value> = top.into_iter().collect();
            event.insert("data".to_string(), data);
            let event = Value::Object(event);
            check_evaluation(&filter, &event)?;
            check_evaluation(&filter, &self::event())?;
        }
    }
}
