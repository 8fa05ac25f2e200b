//! A place's resources as board-file values: its `NetworkSerialPort`
//! becomes `console: {ser2net: ...}`, its `NetworkPowerPort` a power switch
//! hilt drives itself.

use std::path::Path;
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
    resolve_with(board, cfg, state, labgrid_client().as_deref())
}

/// [`resolve`], with the `labgrid-client` that drives the power models
/// hilt does not drive itself, if there is one.
fn resolve_with(
    board: &mut BoardFile,
    cfg: &LabgridCfg,
    state: &State,
    client: Option<&Path>,
) -> anyhow::Result<()> {
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
        let powers: Vec<&ResourceView> = resources
            .iter()
            .copied()
            .filter(|r| POWER_CLASSES.contains(&r.cls.as_str()))
            .collect();
        if powers.is_empty() {
            let others: Vec<&str> = resources.iter().map(|r| r.cls.as_str()).collect();
            bail!(
                "place {} has no power resource hilt can drive (its classes: {}; hilt drives {}): \
                 add one to its matches, or give the board file its own `power:`",
                cfg.place,
                if others.is_empty() {
                    "none".into()
                } else {
                    others.join(", ")
                },
                POWER_CLASSES.join(", ")
            );
        }
        let several = powers.len() > 1;
        let r = pick(
            powers,
            cfg.power.as_deref(),
            "power",
            "power resource",
            "power",
            &cfg.place,
        )?;
        board.power = power_of(r, cfg, several, client)?;
    }
    unused_transports(board, &cfg.place, &resources)
}

/// labgrid's transport classes that hilt has a transport for but does not
/// yet take from a place, with the board-file key that gives it instead.
const TRANSPORT_CLASSES: &[(&str, &str)] = &[
    ("NetworkAndroidFastboot", "fastboot"),
    ("AndroidNetFastboot", "fastboot"),
    ("NetworkService", "ssh"),
    ("NetworkUSBMassStorage", "flash"),
    ("NetworkUSBSDMuxDevice", "flash"),
    ("NetworkUSBSDWireDevice", "flash"),
    ("NetworkUSBFlashableDevice", "flash"),
    ("NetworkDFUDevice", "flash"),
    ("NetworkIMXUSBLoader", "flash"),
    ("NetworkMXSUSBLoader", "flash"),
    ("NetworkRKUSBLoader", "flash"),
];

/// A place that offers the board a transport hilt would leave unused,
/// while the board file has none for that job, is refused by name: the
/// run would otherwise fail later, far from the cause.
fn unused_transports(
    board: &BoardFile,
    place: &str,
    resources: &[&ResourceView],
) -> anyhow::Result<()> {
    let has = |key: &str| match key {
        "fastboot" => board.fastboot.is_some(),
        "ssh" => board.ssh.is_some(),
        _ => board.flash.is_some(),
    };
    let missing: Vec<String> = resources
        .iter()
        .filter_map(|r| {
            let (_, key) = TRANSPORT_CLASSES.iter().find(|(c, _)| *c == r.cls)?;
            (!has(key)).then(|| format!("{} ({}, board-file key `{key}:`)", r.cls, r.path))
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "place {place} offers resources hilt does not take from a labgrid place: {}; \
             give the board file that key, reaching the board from this host, or remove the \
             resource from the place's matches",
            missing.join("; ")
        );
    }
    Ok(())
}

/// The power resources `labgrid-client power` drives; hilt drives the HTTP
/// models of `NetworkPowerPort` itself.
const POWER_CLASSES: &[&str] = &[
    "NetworkPowerPort",
    "NetworkUSBPowerPort",
    "NetworkSiSPMPowerPort",
    "PDUDaemonPort",
    "TasmotaPowerPort",
    "NetworkYKUSHPowerPort",
    "NetworkSysfsGPIO",
];

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

fn power_of(
    r: &ResourceView,
    cfg: &LabgridCfg,
    several: bool,
    client: Option<&Path>,
) -> anyhow::Result<PowerCfg> {
    let model = match (r.cls.as_str(), r.param("model").as_deref()) {
        ("NetworkPowerPort", Some("simplerest")) => HttpPowerModel::Simplerest,
        ("NetworkPowerPort", Some("rest")) => HttpPowerModel::Rest,
        _ => return client_power(r, cfg, several, client),
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

/// Any other power resource, through `labgrid-client power`: labgrid's
/// own drivers for every model it knows. The client must speak as hilt
/// (`host/user`, from LG_HOSTNAME and LG_USERNAME), or it refuses a place
/// acquired by hilt.
fn client_power(
    r: &ResourceView,
    cfg: &LabgridCfg,
    several: bool,
    client: Option<&Path>,
) -> anyhow::Result<PowerCfg> {
    let what = match r.param("model") {
        Some(m) => format!("{} (model {m})", r.path),
        None => r.path.to_string(),
    };
    let Some(client) = client else {
        bail!(
            "{what}: hilt drives this power through labgrid-client, which is not on PATH: \
             install labgrid (`pip install labgrid`) where hilt runs, set LABGRID_CLIENT to it, \
             or give the board file its own `power:`"
        );
    };
    let me = super::identity();
    let (host, user) = me.split_once('/').unwrap_or((me.as_str(), ""));
    let place = match cfg.place.as_str() {
        "" => bail!("{what}: labgrid-client needs the place's name"),
        p => p.to_string(),
    };
    let argv = |action: &str| {
        let mut v = vec![
            "env".to_string(),
            format!("LG_HOSTNAME={host}"),
            format!("LG_USERNAME={user}"),
            client.to_string_lossy().into_owned(),
            "-x".into(),
            cfg.coordinator.clone(),
            "-p".into(),
            place.clone(),
            "power".into(),
            action.into(),
        ];
        // labgrid names a place's resource by its own name.
        if several {
            v.extend(["--name".into(), r.path.name.clone()]);
        }
        v
    };
    Ok(PowerCfg::Command {
        on: argv("on"),
        off: argv("off"),
        cycle: None,
    })
}

/// `$LABGRID_CLIENT`, else `labgrid-client` on PATH.
fn labgrid_client() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("LABGRID_CLIENT").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("labgrid-client"))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
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
        let e = format!(
            "{:#}",
            resolve_with(&mut board(), &cfg(), &gude, None).unwrap_err()
        );
        assert!(
            e.contains("model gude") && e.contains("labgrid-client, which is not on PATH"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            resolve(&mut board(), &cfg(), &state(vec![serial("uart0", 1)])).unwrap_err()
        );
        assert!(
            e.contains("no power resource") && e.contains("NetworkSerialPort"),
            "{e}"
        );
    }

    #[test]
    fn other_power_models_go_through_labgrid_client_as_hilt() {
        let gude = |name: &str| {
            res(
                name,
                "NetworkPowerPort",
                &[("model", Str("gude".into())), ("host", Str("pdu".into()))],
            )
        };
        let serial = res(
            "uart0",
            "NetworkSerialPort",
            &[("host", Str("h".into())), ("port", Int(1))],
        );
        let client = Path::new("/opt/lg/bin/labgrid-client");
        let mut b = board();
        resolve_with(
            &mut b,
            &cfg(),
            &state(vec![serial.clone(), gude("pdu")]),
            Some(client),
        )
        .unwrap();
        let me = crate::board::labgrid::identity();
        let (host, user) = me.split_once('/').unwrap();
        let want = |action: &str, extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = [
                "env",
                &format!("LG_HOSTNAME={host}"),
                &format!("LG_USERNAME={user}"),
                "/opt/lg/bin/labgrid-client",
                "-x",
                "127.0.0.1:20408",
                "-p",
                "b1",
                "power",
                action,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        assert_eq!(
            b.power,
            PowerCfg::Command {
                on: want("on", &[]),
                off: want("off", &[]),
                cycle: None
            }
        );
        // Of two switches, the one the board file names, by name.
        let mut c = cfg();
        c.power = Some("pdu2".into());
        let mut b = board();
        let two = state(vec![serial.clone(), gude("pdu1"), gude("pdu2")]);
        resolve_with(&mut b, &c, &two, Some(client)).unwrap();
        assert!(
            matches!(&b.power, PowerCfg::Command { on, .. } if *on == want("on", &["--name", "pdu2"])),
            "{:?}",
            b.power
        );
        // A USB power port of an exporter is labgrid-client's too.
        let mut b = board();
        let usb = state(vec![serial.clone(), res("hub", "NetworkUSBPowerPort", &[])]);
        resolve_with(&mut b, &cfg(), &usb, Some(client)).unwrap();
        assert!(matches!(b.power, PowerCfg::Command { .. }), "{:?}", b.power);
    }

    #[test]
    fn a_transport_the_board_leaves_to_the_place_is_refused_by_class() {
        let rs = vec![
            res(
                "uart0",
                "NetworkSerialPort",
                &[("host", Str("h".into())), ("port", Int(1))],
            ),
            res(
                "NetworkPowerPort",
                "NetworkPowerPort",
                &[
                    ("model", Str("simplerest".into())),
                    ("host", Str("http://h/{index}/{value}".into())),
                ],
            ),
            res("fastboot", "NetworkAndroidFastboot", &[]),
        ];
        let e = format!(
            "{:#}",
            resolve(&mut board(), &cfg(), &state(rs.clone())).unwrap_err()
        );
        assert!(
            e.contains("NetworkAndroidFastboot (exp1/b1/fastboot") && e.contains("`fastboot:`"),
            "{e}"
        );
        let mut b = board();
        b.fastboot = Some(crate::plan::FastbootCfg {
            target: "tcp:10.0.0.2:5554".into(),
        });
        resolve(&mut b, &cfg(), &state(rs)).unwrap();
    }
}
