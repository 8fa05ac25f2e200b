//! A place's resources as board-file values: its `NetworkSerialPort`
//! becomes `console: {ser2net: ...}`, its `NetworkPowerPort` a power switch
//! hilt drives itself.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use hilt_labgrid::{ResourceView, Session, State};

use crate::plan::{
    BoardFile, ConsoleCfg, FastbootCfg, HttpPowerCfg, HttpPowerModel, LabgridCfg, LabgridSshCfg,
    PowerCfg, Ser2netProtocol, SshCfg,
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
    if let (None, Some(login)) = (&board.ssh, &cfg.ssh) {
        let r = pick(
            of("NetworkService"),
            login.name.as_deref(),
            "ssh",
            "NetworkService",
            "ssh: {name",
            &cfg.place,
        )?;
        board.ssh = Some(ssh_of(r, login)?);
    }
    if board.fastboot.is_none() {
        let nets = of("RemoteAndroidNetFastboot");
        if nets.len() == 1 {
            board.fastboot = Some(fastboot_of(nets[0])?);
        }
    }
    unused_transports(board, &cfg.place, &resources)
}

/// A `NetworkService` as the board's `ssh:`: its address, port and user,
/// with the key and known_hosts the board file gives.
fn ssh_of(r: &ResourceView, login: &LabgridSshCfg) -> anyhow::Result<SshCfg> {
    let host = r.param("address").unwrap_or_default();
    if host.is_empty() {
        bail!("{} publishes no address", r.path);
    }
    // labgrid reaches a link-local address (fe80::1%eth1) through the
    // exporter host, which hilt does not.
    if host.contains('%') || r.extra_flag("proxy_required") {
        bail!(
            "{}: address {host} is reachable only through the exporter host (labgrid proxies              it over SSH); hilt connects directly: give the NetworkService an address this              host can reach, or give the board file its own `ssh:`",
            r.path
        );
    }
    let user = r.param("username").unwrap_or_default();
    if user.is_empty() {
        bail!("{} publishes no username", r.path);
    }
    // labgrid's own default when the exporter's config leaves it out.
    let port = match r.param("port") {
        None => 22,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| anyhow::anyhow!("{}: port {p:?} is not a TCP port", r.path))?,
    };
    Ok(SshCfg {
        host,
        port,
        user,
        key: login.key.clone(),
        known_hosts: login.known_hosts.clone(),
    })
}

/// An `AndroidNetFastboot` an exporter publishes, as the board's
/// `fastboot:`: hilt's fastboot speaks TCP.
fn fastboot_of(r: &ResourceView) -> anyhow::Result<FastbootCfg> {
    let address = r.param("address").unwrap_or_default();
    let port = r.param("port").unwrap_or_else(|| "5554".into());
    match r.param("protocol").as_deref().unwrap_or("udp") {
        "tcp" if !address.is_empty() => Ok(FastbootCfg {
            target: format!("tcp:{address}:{port}"),
        }),
        "tcp" => bail!("{} publishes no address", r.path),
        other => bail!(
            "{}: fastboot over {other}: hilt speaks fastboot over TCP (and USB on its own host):              set `protocol: tcp` on the exporter's AndroidNetFastboot if the device serves TCP,              or give the board file its own `fastboot:`",
            r.path
        ),
    }
}

/// What a place may offer that hilt does not take from it by itself, and
/// the board-file key that gives the job a transport instead.
const TRANSPORT_CLASSES: &[(&str, &str)] = &[
    ("NetworkService", "ssh"),
    ("RemoteAndroidNetFastboot", "fastboot"),
    ("RemoteAndroidUSBFastboot", "fastboot"),
    ("NetworkAndroidFastboot", "fastboot"),
    ("NetworkUSBMassStorage", "flash"),
    ("NetworkUSBSDMuxDevice", "flash"),
    ("NetworkUSBSDWireDevice", "flash"),
    ("NetworkUSBSDWire3Device", "flash"),
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
            (!has(key)).then(|| format!("{} ({}): {}", r.cls, r.path, what_to_do(r, key)))
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "place {place} offers resources hilt does not take from a labgrid place: {}; \
             or remove the resource from the place's matches",
            missing.join("; ")
        );
    }
    Ok(())
}

/// How a board file gets the job of a resource hilt does not take.
fn what_to_do(r: &ResourceView, key: &str) -> String {
    match (r.cls.as_str(), key) {
        ("NetworkService", _) => "give `labgrid: {ssh: {key: FILE, known_hosts: FILE}}` to log in \
             to it (the resource carries no key and no host key), or the board file's own `ssh:`"
            .into(),
        // A USB device is the exporter host's: labgrid's client reaches it
        // there over SSH (usbip or the tool run remotely), hilt only on the
        // host it runs on.
        (_, _) if r.param("busnum").is_some() || r.params.contains_key("path") => {
            let host = r
                .param("host")
                .unwrap_or_else(|| "the exporter host".into());
            format!(
                "a USB device on {host}, which hilt reaches only on the host it runs on: \
                 run hilt on {host} with the board file's own `{key}:`{}",
                if key == "fastboot" {
                    ", or have the device serve fastboot over TCP and export it as an \
                     AndroidNetFastboot with `protocol: tcp`"
                } else {
                    ""
                }
            )
        }
        _ => format!("give the board file its own `{key}:`, reaching the board from this host"),
    }
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
            extra: BTreeMap::new(),
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
        let mut rs = console_and_power();
        rs.push(res("fastboot", "NetworkAndroidFastboot", &[]));
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

    fn console_and_power() -> Vec<ResourceView> {
        vec![
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
        ]
    }

    /// Why resolving `rs` for the stock board with `c` fails.
    fn refusal(c: &LabgridCfg, rs: Vec<ResourceView>) -> String {
        format!("{:#}", resolve(&mut board(), c, &state(rs)).unwrap_err())
    }

    fn login() -> LabgridSshCfg {
        LabgridSshCfg {
            key: "/k/id".into(),
            known_hosts: "/k/known_hosts".into(),
            name: None,
        }
    }

    #[test]
    fn a_network_service_becomes_the_boards_ssh_with_the_files_key() {
        let service = |name: &str, port: Option<i64>| {
            let mut p = vec![
                ("address", Str("192.0.2.7".into())),
                ("username", Str("root".into())),
                ("password", Str("labgrid-only".into())),
            ];
            if let Some(port) = port {
                p.push(("port", Int(port)));
            }
            res(name, "NetworkService", &p)
        };
        let mut rs = console_and_power();
        rs.push(service("NetworkService", Some(2222)));
        // Without `labgrid.ssh`, the service is refused by name, saying
        // what to add.
        let e = refusal(&cfg(), rs.clone());
        assert!(
            e.contains("NetworkService (exp1/b1/NetworkService)")
                && e.contains("labgrid: {ssh: {key: FILE, known_hosts: FILE}}"),
            "{e}"
        );
        let mut c = cfg();
        c.ssh = Some(login());
        let mut b = board();
        resolve(&mut b, &c, &state(rs.clone())).unwrap();
        assert_eq!(
            b.ssh,
            Some(SshCfg {
                host: "192.0.2.7".into(),
                port: 2222,
                user: "root".into(),
                key: "/k/id".into(),
                known_hosts: "/k/known_hosts".into(),
            })
        );
        // labgrid's default port; of two services, the one named.
        let mut two = console_and_power();
        two.push(service("dut", None));
        two.push(service("dut-alt", Some(2222)));
        let e = refusal(&c, two.clone());
        assert!(e.contains("2 NetworkServices"), "{e}");
        c.ssh.as_mut().unwrap().name = Some("dut".into());
        let mut b = board();
        resolve(&mut b, &c, &state(two)).unwrap();
        assert_eq!(b.ssh.as_ref().unwrap().port, 22);
        // A link-local address labgrid would reach through the exporter.
        let mut ll = console_and_power();
        let mut r = service("NetworkService", None);
        r.params
            .insert("address".into(), Str("fe80::2%eth1".into()));
        ll.push(r.clone());
        let mut c = cfg();
        c.ssh = Some(login());
        let e = refusal(&c, ll);
        assert!(e.contains("only through the exporter host"), "{e}");
        let mut proxied = console_and_power();
        r.params.insert("address".into(), Str("10.0.0.2".into()));
        r.extra
            .insert("proxy_required".into(), ParamValue::Bool(true));
        proxied.push(r);
        let e = refusal(&c, proxied);
        assert!(e.contains("only through the exporter host"), "{e}");
    }

    #[test]
    fn network_fastboot_over_tcp_is_taken_and_usb_elsewhere_is_explained() {
        let net = |protocol: &str| {
            res(
                "AndroidNetFastboot",
                "RemoteAndroidNetFastboot",
                &[
                    ("host", Str("exporter1".into())),
                    ("address", Str("192.0.2.9".into())),
                    ("port", Int(5554)),
                    ("protocol", Str(protocol.into())),
                ],
            )
        };
        let mut rs = console_and_power();
        rs.push(net("tcp"));
        let mut b = board();
        resolve(&mut b, &cfg(), &state(rs)).unwrap();
        assert_eq!(
            b.fastboot.map(|f| f.target).as_deref(),
            Some("tcp:192.0.2.9:5554")
        );
        let mut rs = console_and_power();
        rs.push(net("udp"));
        let e = refusal(&cfg(), rs);
        assert!(
            e.contains("fastboot over udp") && e.contains("protocol: tcp"),
            "{e}"
        );
        let mut rs = console_and_power();
        rs.push(res(
            "AndroidUSBFastboot",
            "RemoteAndroidUSBFastboot",
            &[
                ("host", Str("exporter1".into())),
                ("busnum", Int(1)),
                ("devnum", Int(4)),
                ("path", Str("1-1.2".into())),
            ],
        ));
        let e = refusal(&cfg(), rs);
        assert!(
            e.contains("RemoteAndroidUSBFastboot (exp1/b1/AndroidUSBFastboot)")
                && e.contains("a USB device on exporter1")
                && e.contains("run hilt on exporter1")
                && e.contains("AndroidNetFastboot with `protocol: tcp`"),
            "{e}"
        );
    }
}
