//! What the coordinator has told a session: its places and the exporters'
//! resources, as plain values (no protocol types leak to callers).

use std::collections::BTreeMap;

use crate::glob;
use crate::proto;

/// `exporter/group/class/name`, as labgrid prints a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourcePath {
    pub exporter: String,
    pub group: String,
    pub name: String,
}

impl std::fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.exporter, self.group, self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// The value as text, whatever its type: exporters publish ports and
    /// indexes as numbers or strings depending on how they were written.
    pub fn text(&self) -> String {
        match self {
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Uint(u) => u.to_string(),
            ParamValue::Float(f) => f.to_string(),
            ParamValue::Str(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceView {
    pub path: ResourcePath,
    /// The class the exporter publishes (a local `RawSerialPort` is
    /// published as a `NetworkSerialPort`).
    pub cls: String,
    pub params: BTreeMap<String, ParamValue>,
    /// What the exporter adds about how to reach it (`proxy`,
    /// `proxy_required`).
    pub extra: BTreeMap<String, ParamValue>,
    /// The place that holds it, or empty.
    pub acquired: String,
    pub avail: bool,
}

impl ResourceView {
    pub fn param(&self, key: &str) -> Option<String> {
        self.params.get(key).map(ParamValue::text)
    }

    /// A true boolean in `extra`.
    pub fn extra_flag(&self, key: &str) -> bool {
        self.extra.get(key) == Some(&ParamValue::Bool(true))
    }
}

/// One of a place's resource matches: shell patterns over
/// exporter/group/class and optionally the resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub exporter: String,
    pub group: String,
    pub cls: String,
    pub name: Option<String>,
}

impl Match {
    /// As labgrid's `ResourceMatch.ismatch`.
    pub fn matches(&self, r: &ResourceView) -> bool {
        glob::matches(&self.exporter, &r.path.exporter)
            && glob::matches(&self.group, &r.path.group)
            && glob::matches(&self.cls, &r.cls)
            && self
                .name
                .as_deref()
                .is_none_or(|n| glob::matches(n, &r.path.name))
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.exporter, self.group, self.cls)?;
        if let Some(n) = &self.name {
            write!(f, "/{n}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlaceView {
    pub name: String,
    pub comment: String,
    pub tags: BTreeMap<String, String>,
    pub matches: Vec<Match>,
    /// `host/user` of the holder.
    pub acquired: Option<String>,
    /// `exporter/group/class/name` of each resource it holds.
    pub acquired_resources: Vec<String>,
    pub reservation: Option<String>,
}

/// The session's view; `synced` is the last Sync the coordinator answered,
/// `closed` why the stream ended, once it has.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub places: BTreeMap<String, PlaceView>,
    pub resources: BTreeMap<ResourcePath, ResourceView>,
    pub synced: u64,
    pub closed: Option<String>,
}

impl State {
    /// The resources a place's matches select, in path order.
    pub fn matching(&self, place: &PlaceView) -> Vec<&ResourceView> {
        self.resources
            .values()
            .filter(|r| place.matches.iter().any(|m| m.matches(r)))
            .collect()
    }

    /// Each of the place's matches that no available resource satisfies:
    /// the coordinator acquires whatever matches at the time, so a place
    /// whose exporter is down would be acquired with nothing in it.
    pub fn offline_matches(&self, place: &PlaceView) -> Vec<String> {
        place
            .matches
            .iter()
            .filter(|m| !self.resources.values().any(|r| r.avail && m.matches(r)))
            .map(|m| m.to_string())
            .collect()
    }

    pub(crate) fn apply(&mut self, u: proto::update_response::Kind) {
        use proto::update_response::Kind;
        match u {
            Kind::Resource(r) => {
                let r = resource(r);
                self.resources.insert(r.path.clone(), r);
            }
            Kind::DelResource(p) => {
                self.resources.remove(&path(p));
            }
            Kind::Place(p) => {
                let p = place(p);
                self.places.insert(p.name.clone(), p);
            }
            Kind::DelPlace(name) => {
                self.places.remove(&name);
            }
        }
    }
}

fn path(p: proto::resource::Path) -> ResourcePath {
    ResourcePath {
        exporter: p.exporter_name.unwrap_or_default(),
        group: p.group_name,
        name: p.resource_name,
    }
}

fn value(v: proto::MapValue) -> Option<ParamValue> {
    use proto::map_value::Kind;
    Some(match v.kind? {
        Kind::BoolValue(b) => ParamValue::Bool(b),
        Kind::IntValue(i) => ParamValue::Int(i),
        Kind::UintValue(u) => ParamValue::Uint(u),
        Kind::FloatValue(f) => ParamValue::Float(f),
        Kind::StringValue(s) => ParamValue::Str(s),
    })
}

fn resource(r: proto::Resource) -> ResourceView {
    ResourceView {
        path: path(r.path.unwrap_or_default()),
        cls: r.cls,
        params: r
            .params
            .into_iter()
            .filter_map(|(k, v)| value(v).map(|v| (k, v)))
            .collect(),
        extra: r
            .extra
            .into_iter()
            .filter_map(|(k, v)| value(v).map(|v| (k, v)))
            .collect(),
        acquired: r.acquired,
        avail: r.avail,
    }
}

pub(crate) fn place(p: proto::Place) -> PlaceView {
    PlaceView {
        name: p.name,
        comment: p.comment,
        tags: p.tags.into_iter().collect(),
        matches: p
            .matches
            .into_iter()
            .map(|m| Match {
                exporter: m.exporter,
                group: m.group,
                cls: m.cls,
                name: m.name,
            })
            .collect(),
        acquired: p.acquired.filter(|a| !a.is_empty()),
        acquired_resources: p.acquired_resources,
        reservation: p.reservation.filter(|r| !r.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(exporter: &str, group: &str, name: &str, cls: &str, avail: bool) -> ResourceView {
        ResourceView {
            path: ResourcePath {
                exporter: exporter.into(),
                group: group.into(),
                name: name.into(),
            },
            cls: cls.into(),
            params: BTreeMap::new(),
            extra: BTreeMap::new(),
            acquired: String::new(),
            avail,
        }
    }

    #[test]
    fn matches_select_by_class_and_optional_name_and_offline_ones_are_named() {
        let mut s = State::default();
        for r in [
            res("exp1", "b1", "RawSerialPort", "NetworkSerialPort", true),
            res("exp1", "b1", "NetworkPowerPort", "NetworkPowerPort", false),
            res("exp1", "b2", "RawSerialPort", "NetworkSerialPort", true),
        ] {
            s.resources.insert(r.path.clone(), r);
        }
        let m = |cls: &str, name: Option<&str>| Match {
            exporter: "exp1".into(),
            group: "b1".into(),
            cls: cls.into(),
            name: name.map(Into::into),
        };
        let place = PlaceView {
            name: "p".into(),
            comment: String::new(),
            tags: BTreeMap::new(),
            matches: vec![m("*", None)],
            acquired: None,
            acquired_resources: vec![],
            reservation: None,
        };
        let got: Vec<String> = s
            .matching(&place)
            .iter()
            .map(|r| r.path.name.clone())
            .collect();
        assert_eq!(got, ["NetworkPowerPort", "RawSerialPort"]);
        assert!(
            s.offline_matches(&place).is_empty(),
            "one available is enough"
        );
        let power_only = PlaceView {
            matches: vec![m("NetworkPowerPort", None), m("*", Some("Raw*"))],
            ..place
        };
        assert_eq!(s.offline_matches(&power_only), ["exp1/b1/NetworkPowerPort"]);
        assert_eq!(s.matching(&power_only).len(), 2);
    }
}
