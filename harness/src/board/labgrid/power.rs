//! labgrid's `NetworkPowerPort` with an HTTP model (`simplerest`, `rest`),
//! driven from this host as labgrid's own client drives it: the exporter
//! only publishes where the switch is.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::plan::{HttpPowerCfg, HttpPowerModel};

const LIMIT: Duration = Duration::from_secs(10);

pub struct HttpPower {
    cfg: HttpPowerCfg,
}

impl HttpPower {
    pub fn new(cfg: &HttpPowerCfg) -> anyhow::Result<Self> {
        Url::parse(&cfg.url)?;
        Ok(Self { cfg: cfg.clone() })
    }

    async fn set(&self, on: bool) -> anyhow::Result<()> {
        let value = if on { "1" } else { "0" };
        match self.cfg.model {
            HttpPowerModel::Simplerest => {
                let url = fill(&self.cfg.url, &self.cfg.index, Some(value));
                request("GET", &url, None).await.map(|_| ())
            }
            HttpPowerModel::Rest => {
                let url = fill(&self.cfg.url, &self.cfg.index, None);
                request("PUT", &url, Some(value)).await.map(|_| ())
            }
        }
    }

    /// Whether the switch says it is on (its body is `1`).
    pub async fn get(&self) -> anyhow::Result<bool> {
        let url = match self.cfg.model {
            HttpPowerModel::Simplerest => fill(&self.cfg.url, &self.cfg.index, Some(""))
                .trim_end_matches('/')
                .to_string(),
            HttpPowerModel::Rest => fill(&self.cfg.url, &self.cfg.index, None),
        };
        Ok(request("GET", &url, None).await?.trim() == "1")
    }
}

#[async_trait::async_trait]
impl hilt_transports::power::Power for HttpPower {
    async fn on(&mut self) -> anyhow::Result<()> {
        self.set(true).await
    }
    async fn off(&mut self) -> anyhow::Result<()> {
        self.set(false).await
    }
    fn lost(&mut self) -> Option<String> {
        None
    }
}

/// labgrid fills the URL with Python's str.format: `{index}` and `{value}`.
fn fill(url: &str, index: &str, value: Option<&str>) -> String {
    let mut u = url.replace("{index}", index);
    if let Some(v) = value {
        u = u.replace("{value}", v);
    }
    u
}

struct Url {
    host: String,
    port: u16,
    path: String,
}

impl Url {
    fn parse(url: &str) -> anyhow::Result<Url> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("power URL {url:?}: hilt drives plain http:// power switches (https needs labgrid-client)");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>()
                    .with_context(|| format!("power URL {url:?}: port {p:?}"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            bail!("power URL {url:?}: no host");
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`; the body of a 2xx answer.
async fn request(method: &str, url: &str, body: Option<&str>) -> anyhow::Result<String> {
    let u = Url::parse(url)?;
    let work = async {
        let mut s = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
            .await
            .with_context(|| format!("connecting to {}:{}", u.host, u.port))?;
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            u.path,
            u.host,
            u.port,
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        s.take(1 << 20).read_to_end(&mut resp).await?;
        anyhow::Ok(resp)
    };
    let resp = tokio::time::timeout(LIMIT, work)
        .await
        .with_context(|| format!("{method} {url}: no answer within {} s", LIMIT.as_secs()))?
        .with_context(|| format!("{method} {url}"))?;
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("{method} {url}: not an HTTP answer"))?;
    if !(200..300).contains(&status) {
        bail!("{method} {url}: HTTP {status}");
    }
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hilt_transports::power::Power;
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;

    /// A relay that records each request line and answers with its state.
    async fn relay() -> (u16, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        tokio::spawn(async move {
            let mut on = false;
            loop {
                let (mut c, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = c.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = req.lines().next().unwrap().to_string();
                if line.contains("/relay/0/1") || req.ends_with("\r\n\r\n1") {
                    on = true;
                } else if line.contains("/relay/0/0") || req.ends_with("\r\n\r\n0") {
                    on = false;
                }
                s2.lock().unwrap().push(line);
                let body = if on { "1" } else { "0" };
                let _ = c
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{body}").as_bytes(),
                    )
                    .await;
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn simplerest_and_rest_send_what_labgrid_sends() {
        let (port, seen) = relay().await;
        let mut p = HttpPower::new(&HttpPowerCfg {
            model: HttpPowerModel::Simplerest,
            url: format!("http://127.0.0.1:{port}/relay/{{index}}/{{value}}"),
            index: "0".into(),
        })
        .unwrap();
        p.on().await.unwrap();
        assert!(p.get().await.unwrap());
        p.off().await.unwrap();
        assert!(!p.get().await.unwrap());
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "GET /relay/0/1 HTTP/1.1",
                "GET /relay/0 HTTP/1.1",
                "GET /relay/0/0 HTTP/1.1",
                "GET /relay/0 HTTP/1.1"
            ]
        );
        seen.lock().unwrap().clear();
        let mut r = HttpPower::new(&HttpPowerCfg {
            model: HttpPowerModel::Rest,
            url: format!("http://127.0.0.1:{port}/relay/{{index}}/value"),
            index: "0".into(),
        })
        .unwrap();
        r.on().await.unwrap();
        assert!(r.get().await.unwrap());
        assert_eq!(
            *seen.lock().unwrap(),
            ["PUT /relay/0/value HTTP/1.1", "GET /relay/0/value HTTP/1.1"]
        );
    }

    #[tokio::test]
    async fn an_error_status_or_no_switch_is_an_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let _ = c.write_all(b"HTTP/1.1 500 Oops\r\n\r\n").await;
        });
        let mut p = HttpPower::new(&HttpPowerCfg {
            model: HttpPowerModel::Simplerest,
            url: format!("http://127.0.0.1:{port}/r/{{index}}/{{value}}"),
            index: "3".into(),
        })
        .unwrap();
        let e = format!("{:#}", p.on().await.unwrap_err());
        assert!(e.contains("HTTP 500") && e.contains("/r/3/1"), "{e}");
        // Nobody listens there any more.
        let e = format!("{:#}", p.on().await.unwrap_err());
        assert!(e.contains("connecting to 127.0.0.1"), "{e}");
        assert!(HttpPower::new(&HttpPowerCfg {
            model: HttpPowerModel::Rest,
            url: "https://x/".into(),
            index: "0".into(),
        })
        .is_err());
    }
}
