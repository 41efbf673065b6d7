//! Structural shrinking for the minimiser: [`json_candidates`] lists simpler variants of a JSON
//! value, most aggressive first (empty containers, halves of arrays, each member or element
//! removed, then the same one level down, then simpler scalars). Every candidate is strictly
//! smaller by [`size`], so repeatedly taking an accepted candidate terminates.

use serde_json::Value;

/// Most candidates returned for one value (large documents would otherwise yield O(n) clones of
/// O(n) size).
pub const MAX_CANDIDATES: usize = 512;
/// Children examined per container when recursing.
const MAX_CHILDREN: usize = 64;

/// A size measure: nodes plus string and number text lengths.
pub fn size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(n) => 1 + n.to_string().len(),
        Value::String(s) => 1 + s.len(),
        Value::Array(a) => 1 + a.iter().map(size).sum::<usize>(),
        Value::Object(m) => 1 + m.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>(),
    }
}

/// Simpler variants of `v` (see module docs). Empty for `null`, `false`, `0`, `""`, `[]`, `{}`.
pub fn json_candidates(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    candidates_into(v, &mut out);
    let s = size(v);
    out.retain(|c| size(c) < s);
    out.truncate(MAX_CANDIDATES);
    out
}

fn candidates_into(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => {
            if *b {
                out.push(Value::Bool(false));
            }
        }
        Value::Number(n) => {
            let t = n.to_string();
            if t != "0" {
                out.push(Value::from(0));
                if let Some(i) = n.as_i64()
                    && i / 2 != 0
                {
                    out.push(Value::from(i / 2));
                }
                if t.len() > 2
                    && let Ok(shorter) = serde_json::from_str::<Value>(&t[..t.len() / 2])
                    && shorter.is_number()
                {
                    out.push(shorter);
                }
            }
        }
        Value::String(s) => {
            if !s.is_empty() {
                out.push(Value::String(String::new()));
                let half: String = s.chars().take(s.chars().count() / 2).collect();
                if !half.is_empty() {
                    out.push(Value::String(half));
                }
                if !s.is_ascii() {
                    out.push(Value::String(s.chars().filter(char::is_ascii).collect()));
                }
            }
        }
        Value::Array(a) => {
            if a.is_empty() {
                return;
            }
            out.push(Value::Array(Vec::new()));
            if a.len() > 1 {
                out.push(Value::Array(a[..a.len() / 2].to_vec()));
                out.push(Value::Array(a[a.len() / 2..].to_vec()));
            }
            if a.len() <= MAX_CHILDREN {
                for i in 0..a.len() {
                    let mut b = a.clone();
                    b.remove(i);
                    out.push(Value::Array(b));
                }
            }
            // A single element in place of the array (type change, but often what matters).
            if a.len() == 1 {
                out.push(a[0].clone());
            }
            for i in 0..a.len().min(MAX_CHILDREN) {
                if out.len() >= MAX_CANDIDATES {
                    return;
                }
                let mut sub = Vec::new();
                candidates_into(&a[i], &mut sub);
                for c in sub {
                    let mut b = a.clone();
                    b[i] = c;
                    out.push(Value::Array(b));
                }
            }
        }
        Value::Object(m) => {
            if m.is_empty() {
                return;
            }
            out.push(Value::Object(serde_json::Map::new()));
            let keys: Vec<&String> = m.keys().collect();
            for k in keys.iter().take(MAX_CHILDREN) {
                let mut n = m.clone();
                n.shift_remove(*k);
                out.push(Value::Object(n));
            }
            for k in keys.iter().take(MAX_CHILDREN) {
                if out.len() >= MAX_CANDIDATES {
                    return;
                }
                let mut sub = Vec::new();
                candidates_into(&m[*k], &mut sub);
                for c in sub {
                    let mut n = m.clone();
                    n.insert((*k).clone(), c);
                    out.push(Value::Object(n));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn candidates_are_smaller_and_reach_the_minimum() {
        let v = json!({"message":"hello world","level":"error","stacktrace":[{"lineno":120,"in_app":true}],"tags":{"a":"b"}});
        let cs = json_candidates(&v);
        assert!(cs.contains(&json!({})));
        assert!(cs.iter().any(|c| c.get("level").is_none() && c.get("message").is_some()));
        assert!(cs.iter().all(|c| size(c) < size(&v)));
        // Greedy descent always ends at a value without candidates.
        let mut cur = v;
        let mut steps = 0;
        while let Some(next) = json_candidates(&cur).into_iter().last() {
            cur = next;
            steps += 1;
            assert!(steps < 10_000);
        }
        assert!(json_candidates(&cur).is_empty());
    }
}
