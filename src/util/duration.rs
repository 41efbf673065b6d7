//! Durations as users write them ("500ms", "30s", "5m") in profiles, flags and reports; one parser
//! and one serde form for all of them.

use std::collections::BTreeMap;
use std::time::Duration;

/// Parse a human duration; the error says what to write instead.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"30s\", \"5m\", \"2h\""))
}

/// The text form `parse` reads back.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "crate::util::duration::human")]` for a `Duration`.
pub mod human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, with = "crate::util::duration::human_opt")]` for an `Option<Duration>`.
pub mod human_opt {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::human::serialize(v, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::human::deserialize(d).map(Some)
    }
}

/// `#[serde(default, with = "crate::util::duration::human_map")]` for a map of durations.
pub mod human_map {
    use super::BTreeMap;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &BTreeMap<String, Duration>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, d)| (k, super::format(*d))))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Duration>, D::Error> {
        let m = BTreeMap::<String, String>::deserialize(d)?;
        m.into_iter().map(|(k, v)| super::parse(&v).map(|d| (k, d)).map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_and_format_round_trip() {
        let d = super::parse("1m 30s").unwrap();
        assert_eq!(d.as_secs(), 90);
        assert_eq!(super::parse(&super::format(d)).unwrap(), d);
        assert!(super::parse("5 parsecs").unwrap_err().contains("write e.g."));
    }
}
