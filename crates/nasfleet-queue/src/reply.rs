//! Decoding Redis replies into the crate's types, with precise errors instead
//! of panics: a reply of the wrong shape means a library of another version
//! or keys edited by hand, and the caller should learn exactly what was wrong.

use redis::Value;

use crate::error::{QueueError, Result};

pub(crate) fn text(op: &'static str, what: &str, v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone())
            .map_err(|_| QueueError::protocol(op, format!("{what} is not UTF-8"))),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        Value::Okay => Ok("OK".to_owned()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(QueueError::protocol(
            op,
            format!("{what}: expected a string, got {other:?}"),
        )),
    }
}

pub(crate) fn uint(op: &'static str, what: &str, v: &Value) -> Result<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i)
            .map_err(|_| QueueError::protocol(op, format!("{what}: negative number {i}"))),
        other => {
            let s = text(op, what, other)?;
            s.parse::<u64>()
                .map_err(|_| QueueError::protocol(op, format!("{what}: {s:?} is not a number")))
        }
    }
}

pub(crate) fn array<'a>(op: &'static str, what: &str, v: &'a Value) -> Result<&'a [Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(QueueError::protocol(
            op,
            format!("{what}: expected an array, got {other:?}"),
        )),
    }
}

/// `items[i]`, or an error naming what was missing.
pub(crate) fn at<'a>(
    op: &'static str,
    what: &str,
    items: &'a [Value],
    i: usize,
) -> Result<&'a Value> {
    items.get(i).ok_or_else(|| {
        QueueError::protocol(
            op,
            format!(
                "{what}: expected at least {} elements, got {}",
                i + 1,
                items.len()
            ),
        )
    })
}

/// A stream entry's field list (`[f1, v1, f2, v2, ...]` or a RESP3 map) as
/// pairs; values that are not strings are skipped.
pub(crate) fn fields(op: &'static str, v: &Value) -> Result<Vec<(String, String)>> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k, v)),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        Value::Nil => Vec::new(),
        other => {
            return Err(QueueError::protocol(
                op,
                format!("entry fields: expected an array, got {other:?}"),
            ))
        }
    };
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| Some((text(op, "field", k).ok()?, text(op, "value", v).ok()?)))
        .collect())
}

pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One stream entry: id and field/value pairs.
pub(crate) type Entry = (String, Vec<(String, String)>);

/// The entries of an `XREADGROUP ... STREAMS <one key> >` reply.
/// `Nil` (the block timed out) is no entries.
pub(crate) fn xread_entries(op: &'static str, v: &Value) -> Result<Vec<Entry>> {
    let streams: Vec<&Value> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|s| {
                let pair = array(op, "stream reply", s)?;
                at(op, "stream reply", pair, 1)
            })
            .collect::<Result<_>>()?,
        Value::Map(items) => items.iter().map(|(_, entries)| entries).collect(),
        other => {
            return Err(QueueError::protocol(
                op,
                format!("expected streams, got {other:?}"),
            ))
        }
    };
    let mut out = Vec::new();
    for entries in streams {
        for e in array(op, "entries", entries)? {
            let e = array(op, "entry", e)?;
            let id = text(op, "entry id", at(op, "entry", e, 0)?)?;
            let f = fields(op, at(op, "entry", e, 1)?)?;
            out.push((id, f));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xread_reply_is_decoded_and_nil_means_nothing() {
        assert!(xread_entries("t", &Value::Nil).unwrap().is_empty());
        let v = Value::Array(vec![Value::Array(vec![
            bulk("jobs"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("job"), bulk("j1"), bulk("payload"), bulk("{}")]),
            ])]),
        ])]);
        let entries = xread_entries("t", &v).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "1-0");
        assert_eq!(field(&entries[0].1, "job"), Some("j1"));
        assert_eq!(field(&entries[0].1, "payload"), Some("{}"));
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        assert!(xread_entries("t", &Value::Int(3)).is_err());
        assert!(xread_entries("t", &Value::Array(vec![Value::Array(vec![bulk("jobs")])])).is_err());
        assert!(uint("t", "n", &bulk("-3")).is_err());
        assert!(uint("t", "n", &Value::Int(-3)).is_err());
        assert!(at("t", "x", &[], 0).is_err());
    }
}
