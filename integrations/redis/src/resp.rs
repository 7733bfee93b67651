//! Redis replies (RESP2 and RESP3) read out of a byte buffer that fills as
//! the socket delivers: [`ReplyScan`] finds where a reply ends without blocking
//! and without copying, and [`decode`] turns a complete one into a
//! [`redis::Value`].
//!
//! # Implementation details
//!
//! The scan is resumable: it remembers how far it got and how many
//! elements each aggregate it is inside still expects, so a reply that
//! arrives in many reads is scanned once in all, not once per read. It
//! looks at headers only: a bulk string's body is stepped over by its
//! length.
//!
//! [`decode`] builds the common types itself (simple and bulk strings,
//! integers, nulls, arrays, maps, sets, booleans). A reply holding a type
//! whose value only the redis crate can build (an error, whose
//! `ServerError` has no public constructor; a double, a big number, a
//! verbatim string, a push, an attribute), or whose text the redis crate
//! would refuse, is handed whole to [`redis::parse_redis_value`], so that
//! such values, and the errors for malformed ones, are exactly the redis
//! crate's.

use redis::{ErrorKind, RedisError, RedisResult, Value};

/// The deepest nesting of aggregates a reply may have, as in the redis
/// crate's parser.
const MAX_DEPTH: usize = 100;

/// How far the reply at the front of a buffer has been scanned.
#[derive(Debug, Default)]
pub(crate) struct ReplyScan {
    /// Bytes of the reply known to be complete elements.
    done: usize,
    /// For each aggregate the scan is inside, outermost first, how many
    /// elements it still expects; empty before the reply's first byte.
    open: Vec<u64>,
}

impl ReplyScan {
    /// Scans `buf`, which starts with the reply this scan has been looking
    /// at (and holds at least what it held last time): `Some(n)` once the
    /// reply is complete in `buf[..n]`, after which the scan starts over
    /// for the next reply; `None` while more bytes are needed.
    ///
    /// # Errors
    /// The bytes are not RESP (an unknown type byte, a bad length, nesting
    /// deeper than the redis crate accepts).
    pub(crate) fn complete(&mut self, buf: &[u8]) -> RedisResult<Option<usize>> {
        if self.open.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            self.open.push(1);
        }
        loop {
            // Close the aggregates that have all their elements.
            while let Some(&0) = self.open.last() {
                self.open.pop();
            }
            if self.open.is_empty() {
                let end = self.done;
                self.done = 0;
                return Ok(Some(end));
            }
            let at = self.done;
            let Some(line_end) = line_end(buf, at + 1) else {
                return Ok(None);
            };
            let header = &buf[at + 1..line_end - 2];
            let next = match buf[at] {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => RespElement::Done(line_end),
                b'$' | b'!' | b'=' => match length(header)? {
                    None => RespElement::Done(line_end),
                    Some(len) => {
                        let end = usize::try_from(len)
                            .ok()
                            .and_then(|len| line_end.checked_add(len)?.checked_add(2))
                            .ok_or_else(|| protocol("a bulk length past the address space"))?;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(protocol("a bulk string not ended by CRLF"));
                        }
                        RespElement::Done(end)
                    }
                },
                b'*' | b'~' | b'>' => match length(header)? {
                    None => RespElement::Done(line_end),
                    Some(n) => RespElement::Open(line_end, n),
                },
                b'%' => match length(header)? {
                    None => RespElement::Done(line_end),
                    Some(n) => RespElement::Open(line_end, n.saturating_mul(2)),
                },
                // Attributes come before the value they describe and are
                // not an element of their own.
                b'|' => match length(header)? {
                    None => return Err(protocol("an attribute without a length")),
                    Some(n) => RespElement::Prefix(line_end, n.saturating_mul(2)),
                },
                other => {
                    return Err(RedisError::from((
                        ErrorKind::Parse,
                        "not a RESP type byte",
                        format!("{:?}", char::from(other)),
                    )))
                }
            };
            match next {
                RespElement::Done(end) => {
                    self.done = end;
                    *self.open.last_mut().expect("inside the reply") -= 1;
                }
                RespElement::Open(end, n) => {
                    self.done = end;
                    *self.open.last_mut().expect("inside the reply") -= 1;
                    self.enter(n)?;
                }
                RespElement::Prefix(end, n) => {
                    self.done = end;
                    self.enter(n)?;
                }
            }
        }
    }

    fn enter(&mut self, elements: u64) -> RedisResult<()> {
        if self.open.len() > MAX_DEPTH {
            return Err(protocol("replies nested deeper than 100"));
        }
        self.open.push(elements);
        Ok(())
    }

    /// Forgets the reply under way (after an error, the buffer is dropped).
    pub(crate) fn reset(&mut self) {
        self.done = 0;
        self.open.clear();
    }

    /// Whether part of a reply has been scanned.
    #[cfg(test)]
    pub(crate) fn is_started(&self) -> bool {
        !self.open.is_empty()
    }
}

/// What the element at the scan's position is.
enum RespElement {
    /// Complete, ending at the offset.
    Done(usize),
    /// An aggregate whose header ends at the offset, with this many elements.
    Open(usize, u64),
    /// An attribute map whose header ends at the offset, with this many
    /// elements, before the element it describes.
    Prefix(usize, u64),
}

/// The offset just past the `\r\n` of the line starting at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut search = from;
    loop {
        let newline = buf.get(search..)?.iter().position(|&b| b == b'\n')?;
        let end = search + newline + 1;
        // A lone `\n` is part of the line, as in the redis crate's parser.
        if end - from >= 2 && buf[end - 2] == b'\r' {
            return Some(end);
        }
        search = end;
    }
}

/// A length header: `None` for a null (`-1`).
fn length(header: &[u8]) -> RedisResult<Option<u64>> {
    match header {
        b"-1" => Ok(None),
        digits => match parse_u64(digits) {
            Some(n) => Ok(Some(n)),
            None => Err(RedisError::from((
                ErrorKind::Parse,
                "not a RESP length",
                String::from_utf8_lossy(digits).into_owned(),
            ))),
        },
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

fn parse_i64(digits: &[u8]) -> Option<i64> {
    match digits {
        [b'-', rest @ ..] => {
            let n = parse_u64(rest)?;
            0i64.checked_sub_unsigned(n)
        }
        rest => i64::try_from(parse_u64(rest)?).ok(),
    }
}

fn protocol(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Parse, what))
}

/// The value of the complete reply `reply` (as [`ReplyScan::complete`] found it).
///
/// # Errors
/// The redis crate's error for a reply it cannot parse.
pub(crate) fn decode(reply: &[u8]) -> RedisResult<Value> {
    let mut at = 0;
    match value(reply, &mut at) {
        Some(value) if at == reply.len() => Ok(value),
        _ => redis::parse_redis_value(reply),
    }
}

/// The element at `*at`, moving `*at` past it; `None` when the redis crate
/// should build it (see the module docs).
fn value(buf: &[u8], at: &mut usize) -> Option<Value> {
    let kind = *buf.get(*at)?;
    let line_end = line_end(buf, *at + 1)?;
    let header = &buf[*at + 1..line_end - 2];
    *at = line_end;
    Some(match kind {
        b'+' => match header {
            b"OK" => Value::Okay,
            text => Value::SimpleString(String::from_utf8(text.to_vec()).ok()?),
        },
        b':' => Value::Int(parse_i64(header)?),
        b'_' => Value::Nil,
        b'#' => match header {
            b"t" => Value::Boolean(true),
            b"f" => Value::Boolean(false),
            _ => return None,
        },
        b'$' => match header {
            b"-1" => Value::Nil,
            len => {
                let end = line_end + usize::try_from(parse_u64(len)?).ok()?;
                let bytes = buf.get(line_end..end)?.to_vec();
                *at = end + 2;
                Value::BulkString(bytes)
            }
        },
        b'*' | b'~' => match header {
            b"-1" => Value::Nil,
            len => {
                let items = elements(buf, at, parse_u64(len)?)?;
                if kind == b'*' {
                    Value::Array(items)
                } else {
                    Value::Set(items)
                }
            }
        },
        b'%' => {
            let pairs = parse_u64(header)?;
            let mut map = Vec::with_capacity(capacity(buf, pairs));
            for _ in 0..pairs {
                let key = value(buf, at)?;
                map.push((key, value(buf, at)?));
            }
            Value::Map(map)
        }
        _ => return None,
    })
}

fn elements(buf: &[u8], at: &mut usize, n: u64) -> Option<Vec<Value>> {
    let mut items = Vec::with_capacity(capacity(buf, n));
    for _ in 0..n {
        items.push(value(buf, at)?);
    }
    Some(items)
}

/// Room for `n` elements, but no more than the bytes could hold (a length
/// is the peer's claim; each element takes at least three bytes).
fn capacity(buf: &[u8], n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(buf.len() / 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `bytes` fed in pieces of `step`, returning each reply's value.
    fn replies(bytes: &[u8], step: usize) -> Vec<Value> {
        let mut scan = ReplyScan::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(n) = scan.complete(&buf).unwrap() {
                out.push(decode(&buf[..n]).unwrap());
                buf.drain(..n);
            }
        }
        assert!(buf.is_empty() && !scan.is_started(), "{buf:?} left over");
        out
    }

    const MIXED: &[u8] = b"+OK\r\n+PONG\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n*0\r\n\
        *3\r\n:1\r\n*2\r\n$1\r\na\r\n_\r\n$0\r\n\r\n%1\r\n+k\r\n#t\r\n~2\r\n:1\r\n:2\r\n\
        -ERR no such key\r\n,3.5\r\n(123\r\n=7\r\ntxt:abc\r\n>2\r\n+message\r\n$1\r\nx\r\n\
        |1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n";

    #[test]
    fn every_type_parses_as_the_redis_crate_parses_it_in_any_split() {
        // The redis crate's parser keeps what it read ahead, so it is asked
        // for the known number of replies.
        let mut parser = redis::Parser::new();
        let mut reader = MIXED;
        let expected: Vec<Value> = (0..16)
            .map(|_| parser.parse_value(&mut reader).unwrap())
            .collect();
        for step in [1, 2, 3, 7, MIXED.len()] {
            assert_eq!(replies(MIXED, step), expected, "pieces of {step}");
        }
    }

    #[test]
    fn a_bulk_body_with_crlf_inside_is_stepped_over_by_length() {
        let value = replies(b"$4\r\n\r\n\r\n\r\n", 1);
        assert_eq!(value, [Value::BulkString(b"\r\n\r\n".to_vec())]);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        for bad in [
            &b"?what\r\n"[..],
            b"$x\r\n",
            b"$2\r\nabcd\r\n",
            b"*99999999999999999999\r\n",
        ] {
            let err = ReplyScan::default().complete(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Parse, "{bad:?}: {err}");
        }
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 2);
        let err = ReplyScan::default().complete(&deep).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
    }

    #[test]
    fn an_incomplete_reply_waits_and_remembers_its_place() {
        let mut scan = ReplyScan::default();
        let full = b"*2\r\n$3\r\nabc\r\n:7\r\n";
        assert_eq!(scan.complete(&full[..9]).unwrap(), None);
        assert!(scan.is_started());
        assert_eq!(scan.complete(&full[..15]).unwrap(), None);
        assert_eq!(scan.complete(full).unwrap(), Some(full.len()));
        assert!(!scan.is_started());
    }
}
