//! A place's resources as board-file values: its `NetworkSerialPort`
//! becomes `console: {ser2net: ...}`, its `NetworkPowerPort` a power switch
//! hilt drives itself.

use std::time::Duration;

use anyhow::bail;
use hilt_labgrid::{ResourceView, Session, State};

use crate::plan::{
    BoardFile, ConsoleCfg, HttpPowerCfg, HttpPowerModel, LabgridCfg, PowerCfg, Ser2netProtocol,
};

/// A serial port the exporter serves through ser2net only while the place
/// is acquired publishes its port then: waits (briefly) for it.
pub async fn wait_for_ports(session: &Session, cfg: &LabgridCfg) -> State {
    let mut rx = session.watch();
    let ready = |s: &State| {
        s.places.get(&cfg.place).is_some_and(|p| {
            s.matching(p)
                .iter()
                .filter(|r| r.cls == "NetworkSerialPort")
                .all(|r| r.param("port").is_some_and(|v| v != "0" && !v.is_empty()))
        })
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|s| ready(s))).await;
    session.state()
}

fn pick<'a>(
    found: Vec<&'a ResourceView>,
    want: Option<&str>,
    what: &str,
    cls: &str,
    key: &str,
    place: &str,
) -> anyhow::Result<&'a ResourceView> {
    let names = |v: &[&ResourceView]| {
        v.iter()
            .map(|r| r.path.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&ResourceView> = found
        .iter()
        .copied()
        .filter(|r| want.is_none_or(|w| r.path.name == w))
        .collect();
    match (chosen.as_slice(), want) {
        ([one], _) => Ok(one),
        ([], Some(w)) => bail!(
            "place {place} has no {cls} named {w:?} for the {what} (its {cls}s: {})",
            if found.is_empty() { "none".into() } else { names(&found) }
        ),
        ([], None) => bail!(
            "place {place} has no {cls} for the {what}: add one to its matches, or give the board file its own `{what}:`"
        ),
        (many, _) => bail!(
            "place {place} has {} {cls}s ({}): name the {what}'s with `labgrid: {{{key}: NAME}}`",
            many.len(),
            names(many)
        ),
    }
}

/// Fills in the console and power the board file leaves to the place.
pub fn resolve(board: &mut BoardFile, cfg: &LabgridCfg, state: &State) -> anyhow::Result<()> {
    let Some(place) = state.places.get(&cfg.place) else {
        bail!("place {} disappeared from the coordinator", cfg.place);
    };
    let resources = state.matching(place);
    let of = |cls: &str| -> Vec<&ResourceView> {
        resources.iter().copied().filter(|r| r.cls == cls).collect()
    };
    if board.console == ConsoleCfg::FromLabgrid {
        let r = pick(
            of("NetworkSerialPort"),
            cfg.console.as_deref(),
            "console",
            "NetworkSerialPort",
            "console",
            &cfg.place,
        )?;
        board.console = console_of(r)?;
    }
    if board.power == PowerCfg::FromLabgrid {
        let r = pick(
            of("NetworkPowerPort"),
            cfg.power.as_deref(),
            "power",
            "NetworkPowerPort",
            "power",
            &cfg.place,
        )?;
        board.power = power_of(r)?;
    }
    Ok(())
}

fn console_of(r: &ResourceView) -> anyhow::Result<ConsoleCfg> {
    let host = r.param("host").unwrap_or_default();
    let port = r
        .param("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    let Some(port) = port else {
        bail!(
            "{} publishes no port (the exporter serves it through ser2net only while the place is acquired: is ser2net installed on the exporter host?)",
            r.path
        );
    };
    if host.is_empty() {
        bail!("{} publishes no host", r.path);
    }
    let protocol = match r.param("protocol").as_deref() {
        None | Some("rfc2217") => Ser2netProtocol::Rfc2217,
        Some("raw") => Ser2netProtocol::Raw,
        Some(other) => bail!(
            "{}: serial protocol {other:?}: hilt speaks rfc2217 and raw",
            r.path
        ),
    };
    Ok(ConsoleCfg::Ser2net {
        host,
        port,
        protocol,
    })
}

fn power_of(r: &ResourceView) -> anyhow::Result<PowerCfg> {
    let model = match r.param("model").as_deref() {
        Some("simplerest") => HttpPowerModel::Simplerest,
        Some("rest") => HttpPowerModel::Rest,
        other => bail!(
            "{}: power model {:?}: hilt drives the simplerest and rest models itself; \
             for this one give the board file its own `power:` (e.g. a command running \
             `labgrid-client -p PLACE power on`, with LG_HOSTNAME/LG_USERNAME set to hilt's identity)",
            r.path,
            other.unwrap_or("none")
        ),
    };
    let url = r.param("host").unwrap_or_default();
    let cfg = HttpPowerCfg {
        model,
        url,
        index: r.param("index").unwrap_or_else(|| "0".into()),
    };
    super::power::HttpPower::new(&cfg)?;
    Ok(PowerCfg::Http(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hilt_labgrid::{Match, ParamValue, PlaceView, ResourcePath};
    use std::collections::BTreeMap;

    fn res(name: &str, cls: &str, params: &[(&str, ParamValue)]) -> ResourceView {
        ResourceView {
            path: ResourcePath {
                exporter: "exp1".into(),
                group: "b1".into(),
                name: name.into(),
            },
            cls: cls.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            acquired: "b1".into(),
            avail: true,
        }
    }

    fn state(rs: Vec<ResourceView>) -> State {
        let mut s = State::default();
        s.places.insert(
            "b1".into(),
            PlaceView {
                name: "b1".into(),
                comment: String::new(),
                tags: BTreeMap::new(),
                matches: vec![Match {
                    exporter: "exp1".into(),
                    group: "b1".into(),
                    cls: "*".into(),
                    name: None,
                }],
                acquired: Some("h/u".into()),
                acquired_resources: vec![],
                reservation: None,
            },
        );
        for r in rs {
            s.resources.insert(r.path.clone(), r);
        }
        s
    }

    fn board() -> BoardFile {
        serde_yaml_ng::from_str(
            "name: lab1\narch: arm64\nagent: console\nlabgrid: {coordinator: '127.0.0.1:20408', place: b1}\n",
        )
        .unwrap()
    }

    fn cfg() -> LabgridCfg {
        board().labgrid.unwrap()
    }

    use ParamValue::{Int, Str};

    #[test]
    fn a_serial_port_and_a_simplerest_switch_become_console_and_power() {
        let s = state(vec![
            res(
                "RawSerialPort",
                "NetworkSerialPort",
                &[
                    ("host", Str("127.0.0.1".into())),
                    ("port", Int(40001)),
                    ("speed", Int(115200)),
                ],
            ),
            res(
                "NetworkPowerPort",
                "NetworkPowerPort",
                &[
                    ("model", Str("simplerest".into())),
                    (
                        "host",
                        Str("http://127.0.0.1:9/relay/{index}/{value}".into()),
                    ),
                    ("index", Str("0".into())),
                ],
            ),
        ]);
        let mut b = board();
        assert_eq!(b.console, ConsoleCfg::FromLabgrid);
        resolve(&mut b, &cfg(), &s).unwrap();
        assert_eq!(
            b.console,
            ConsoleCfg::Ser2net {
                host: "127.0.0.1".into(),
                port: 40001,
                protocol: Ser2netProtocol::Rfc2217
            }
        );
        assert_eq!(
            b.power,
            PowerCfg::Http(HttpPowerCfg {
                model: HttpPowerModel::Simplerest,
                url: "http://127.0.0.1:9/relay/{index}/{value}".into(),
                index: "0".into()
            })
        );
    }

    #[test]
    fn missing_ambiguous_and_unsupported_resources_are_named() {
        let serial = |n: &str, port: i64| {
            res(
                n,
                "NetworkSerialPort",
                &[
                    ("host", Str("h".into())),
                    ("port", Int(port)),
                    ("protocol", Str("raw".into())),
                ],
            )
        };
        let e = format!(
            "{:#}",
            resolve(&mut board(), &cfg(), &state(vec![])).unwrap_err()
        );
        assert!(e.contains("no NetworkSerialPort for the console"), "{e}");
        let two = state(vec![serial("uart0", 1), serial("uart1", 2)]);
        let e = format!("{:#}", resolve(&mut board(), &cfg(), &two).unwrap_err());
        assert!(
            e.contains("2 NetworkSerialPorts") && e.contains("console: NAME"),
            "{e}"
        );
        let mut c = cfg();
        c.console = Some("uart1".into());
        let mut b = board();
        b.power = PowerCfg::Command {
            on: vec!["true".into()],
            off: vec!["true".into()],
            cycle: None,
        };
        resolve(&mut b, &c, &two).unwrap();
        assert!(matches!(
            b.console,
            ConsoleCfg::Ser2net {
                port: 2,
                protocol: Ser2netProtocol::Raw,
                ..
            }
        ));
        c.console = Some("uart9".into());
        let e = format!("{:#}", resolve(&mut board(), &c, &two).unwrap_err());
        assert!(e.contains("named \"uart9\""), "{e}");
        let unpublished = state(vec![serial("uart0", 0)]);
        let e = format!(
            "{:#}",
            resolve(&mut board(), &cfg(), &unpublished).unwrap_err()
        );
        assert!(e.contains("publishes no port"), "{e}");
        let gude = state(vec![
            serial("uart0", 1),
            res(
                "NetworkPowerPort",
                "NetworkPowerPort",
                &[("model", Str("gude".into())), ("host", Str("pdu".into()))],
            ),
        ]);
        let e = format!("{:#}", resolve(&mut board(), &cfg(), &gude).unwrap_err());
        assert!(
            e.contains("power model \"gude\"") && e.contains("labgrid-client"),
            "{e}"
        );
    }
}
