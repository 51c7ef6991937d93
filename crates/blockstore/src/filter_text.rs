//! The `--where` language: conditions joined by `AND`, each `col OP value` (`= != <> < <= > >=`),
//! `col BETWEEN a AND b`, `col IS NULL` or `col IS NOT NULL`.
//!
//! It is tokenised strictly: a value is one quoted string (`'…'` or `"…"`, a doubled quote
//! inside stands for one) or a run of bare words, and after a value only `AND` or the end may
//! follow. Anything else — `OR`, `NOT`, `IN`, `LIKE`, parentheses, a stray quote — is an error
//! naming it, never folded into a string literal (where `origin = 'JFK' OR origin = 'LGA'` once
//! became the one string `JFK' OR origin = 'LGA` and matched nothing).
use crate::predicate::{CmpOp, Predicate, parse_value};
use crate::types::ColumnType;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An identifier, keyword, number or other bare word.
    Word(String),
    /// A quoted string, quotes removed and doubled quotes undone.
    Quoted(String),
    /// A comparison operator.
    Op(CmpOp),
    /// `(`, `)` or `,`.
    Punct(char),
}

/// Keywords that end a bare value.
const KEYWORDS: [&str; 9] = ["AND", "OR", "NOT", "IS", "NULL", "BETWEEN", "IN", "LIKE", "ILIKE"];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k))
}

fn invalid(why: impl Into<String>) -> Error {
    Error::InvalidPredicate(why.into())
}

fn tokenize(expr: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = expr.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some((_, ch)) if ch == c => {
                        if chars.peek().map(|&(_, n)| n) == Some(c) {
                            chars.next();
                            s.push(c);
                        } else {
                            break;
                        }
                    }
                    Some((_, ch)) => s.push(ch),
                    None => return Err(invalid(format!("unterminated quote starting at character {at}"))),
                }
            }
            tokens.push(Token::Quoted(s));
        } else if "=!<>".contains(c) {
            chars.next();
            let next = chars.peek().map(|&(_, n)| n);
            let (op, two) = match (c, next) {
                ('<', Some('=')) => (CmpOp::Le, true),
                ('>', Some('=')) => (CmpOp::Ge, true),
                ('!', Some('=')) | ('<', Some('>')) => (CmpOp::Ne, true),
                ('=', _) => (CmpOp::Eq, false),
                ('<', _) => (CmpOp::Lt, false),
                ('>', _) => (CmpOp::Gt, false),
                _ => return Err(invalid(format!("`{c}` at character {at} is not an operator"))),
            };
            if two {
                chars.next();
            }
            tokens.push(Token::Op(op));
        } else if "(),".contains(c) {
            chars.next();
            tokens.push(Token::Punct(c));
        } else {
            let mut w = String::new();
            while let Some(&(_, ch)) = chars.peek() {
                if ch.is_whitespace() || "'\"=!<>(),".contains(ch) {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            tokens.push(Token::Word(w));
        }
    }
    Ok(tokens)
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("`{w}`"),
        Token::Quoted(s) => format!("'{s}'"),
        Token::Op(op) => format!("`{}`", op.symbol()),
        Token::Punct(c) => format!("`{c}`"),
    }
}

/// What `--where` cannot express, said plainly.
fn unsupported(t: &Token) -> Error {
    let what = describe(t);
    let hint = match t {
        Token::Word(w) if w.eq_ignore_ascii_case("OR") => " (only conditions joined by AND are supported)",
        Token::Word(w) if ["NOT", "IN", "LIKE", "ILIKE"].iter().any(|k| w.eq_ignore_ascii_case(k)) => {
            " (supported: = != <> < <= > >=, BETWEEN, IS [NOT] NULL)"
        }
        Token::Punct(_) => " (parentheses and lists are not supported)",
        _ => "",
    };
    invalid(format!("unexpected {what}{hint}"))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    columns: &'a [(String, ColumnType)],
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k)) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect_keyword(&mut self, k: &str, context: &str) -> Result<()> {
        if self.keyword(k) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => invalid(format!("{context}: expected {k}, found {}", describe(t))),
            None => invalid(format!("{context}: expected {k}")),
        })
    }

    /// One value: a quoted string, or bare words up to a keyword, operator or the end.
    fn value(&mut self, column: &str, ty: ColumnType) -> Result<crate::zone::Scalar> {
        let text = match self.peek() {
            Some(Token::Quoted(_)) => match self.next() {
                Some(Token::Quoted(s)) => s,
                _ => unreachable!("peeked a quoted string"),
            },
            Some(Token::Word(w)) if !is_keyword(w) => {
                let mut words = Vec::new();
                while let Some(Token::Word(w)) = self.peek() {
                    if is_keyword(w) {
                        break;
                    }
                    words.push(w.clone());
                    self.pos += 1;
                }
                words.join(" ")
            }
            Some(t) => return Err(invalid(format!("`{column}`: expected a value, found {}", describe(t)))),
            None => return Err(invalid(format!("`{column}`: missing value after the operator"))),
        };
        parse_value(ty, &text)
    }

    fn condition(&mut self) -> Result<Predicate> {
        let column = match self.next() {
            Some(Token::Word(w)) if !is_keyword(&w) => w,
            Some(t) => return Err(invalid(format!("expected a column name, found {}", describe(&t)))),
            None => return Err(invalid("expected a condition")),
        };
        let ty = self
            .columns
            .iter()
            .find(|(n, _)| *n == column)
            .map(|(_, t)| *t)
            .ok_or_else(|| invalid(format!("unknown column `{column}`")))?;
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            self.expect_keyword("NULL", &format!("`{column} IS`"))?;
            return Ok(if negated {
                Predicate::IsNotNull(column)
            } else {
                Predicate::IsNull(column)
            });
        }
        if self.keyword("BETWEEN") {
            let low = self.value(&column, ty)?;
            self.expect_keyword("AND", &format!("`{column} BETWEEN`"))?;
            let high = self.value(&column, ty)?;
            return Ok(Predicate::between(&column, low, high));
        }
        match self.next() {
            Some(Token::Op(op)) => {
                let value = self.value(&column, ty)?;
                Ok(Predicate::compare(&column, op, value))
            }
            Some(t @ Token::Word(_)) | Some(t @ Token::Punct(_)) => Err(unsupported(&t)),
            Some(t) => Err(invalid(format!(
                "`{column}`: expected an operator, found {}",
                describe(&t)
            ))),
            None => Err(invalid(format!(
                "`{column}`: expected an operator (= != < <= > >=), BETWEEN, IS NULL or IS NOT NULL"
            ))),
        }
    }
}

/// Parses a filter expression against a table's columns (see the module docs).
pub fn parse_filter(expr: &str, columns: &[(String, ColumnType)]) -> Result<Vec<Predicate>> {
    if expr.len() > 64 * 1024 {
        return Err(invalid("expression longer than 64 KiB"));
    }
    let mut p = Parser {
        tokens: tokenize(expr)?,
        pos: 0,
        columns,
    };
    let mut out = vec![p.condition()?];
    while let Some(t) = p.next() {
        match t {
            Token::Word(w) if w.eq_ignore_ascii_case("AND") => out.push(p.condition()?),
            other => return Err(unsupported(&other)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Scalar;

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("origin".to_owned(), ColumnType::Utf8),
            ("id".to_owned(), ColumnType::Int64),
            ("ts".to_owned(), ColumnType::TimestampMicros),
        ]
    }

    #[test]
    fn or_is_an_error_never_part_of_a_string() {
        let err = parse_filter("origin = 'JFK' OR origin = 'LGA'", &cols()).unwrap_err();
        assert!(err.to_string().contains("`OR`"), "{err}");
        assert!(err.to_string().contains("only conditions joined by AND"), "{err}");
    }

    #[test]
    fn what_where_cannot_express_is_named() {
        for (bad, named) in [
            ("origin IN ('JFK', 'LGA')", "`IN`"),
            ("origin LIKE 'J%'", "`LIKE`"),
            ("NOT id = 1", "`NOT`"),
            ("(id = 1)", "`(`"),
            ("id = 1 id = 2", "64-bit integer"),
            ("origin = 'a' 'b'", "'b'"),
            ("origin = 'unterminated", "unterminated quote"),
            ("id = 1 AND", "expected a condition"),
            ("id BETWEEN 1 OR 2", "expected AND"),
            ("id IS NOT 3", "expected NULL"),
        ] {
            let err = parse_filter(bad, &cols()).unwrap_err().to_string();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn quotes_keywords_and_bare_timestamps_inside_values() {
        let p = parse_filter(
            "origin = 'it''s OR AND' AND ts BETWEEN 2024-01-01 10:00:00 AND '2024-01-02' AND id<>7",
            &cols(),
        )
        .unwrap();
        assert_eq!(
            p[0],
            Predicate::compare("origin", CmpOp::Eq, Scalar::Bytes(b"it's OR AND".to_vec()))
        );
        assert!(matches!(p[1], Predicate::Between { .. }));
        assert_eq!(p[2], Predicate::compare("id", CmpOp::Ne, Scalar::Int(7)));
    }
}
