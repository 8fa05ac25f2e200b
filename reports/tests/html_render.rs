//! The report page as a person sees it: rendered by headless Chromium
//! (Debian package `chromium`), screenshot checked for content.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hilt_reports::plots::{color, PALETTE};
use hilt_reports::synth::{write_run, SynthRun, SynthVariant};
use hilt_reports::{build_report, load_run, write_report, ReportOptions};

fn chromium() -> PathBuf {
    const INSTALL: &str = "chromium is needed to render the report: `apt-get install -y chromium` (Debian), or set HILT_CHROMIUM to its path";
    if let Ok(p) = std::env::var("HILT_CHROMIUM") {
        assert!(
            Path::new(&p).is_file(),
            "HILT_CHROMIUM={p} does not exist; {INSTALL}"
        );
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for name in ["chromium", "chromium-browser"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{INSTALL}");
}

fn screenshot(browser: &Path, page: &Path, out: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(
                status.success() && out.exists(),
                "chromium failed ({status}): {err}"
            );
            return;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium took more than 120 s to render {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_first_screen_shows_the_verdict_and_the_hang_rate_plot() {
    let browser = chromium();
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    // Every unpatched boot deadlocks with the plan's signature; the patched
    // kernel stalls twice and recovers. The per-signature verdict table sits
    // in the verdict box, above the figure: both must fit the first screen.
    let mut spec = SynthRun::new(
        "erofs-noio-ab",
        5,
        vec![
            SynthVariant::new("unpatched", 8)
                .deadlocks(8)
                .stack_signatures(&["erofs_decompress_in_bio_completion"]),
            SynthVariant::new("patched", 7).stalls(2),
        ],
    );
    spec.expect_absent("erofs_decompress_in_bio_completion", "patched");
    write_run(&run, &spec).unwrap();
    let mut opts = ReportOptions::default();
    opts.bootstrap.resamples = 200;
    let r = build_report(&[load_run(&run).unwrap()], &opts).unwrap();
    assert_eq!(
        r.signature_verdicts[0].met,
        Some(true),
        "{}",
        r.verdict.headline
    );
    let out = d.path().join("report");
    write_report(&r, &out).unwrap();
    let shot = d.path().join("shot.png");
    screenshot(
        &browser,
        &out.join("index.html").canonicalize().unwrap(),
        &shot,
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 900));
    let px = info.color_type.samples();
    let pixels: Vec<(u8, u8, u8)> = buf[..info.buffer_size()]
        .chunks(px)
        .map(|p| (p[0], p[1], p[2]))
        .collect();
    let non_white = pixels
        .iter()
        .filter(|p| p.0 < 240 || p.1 < 240 || p.2 < 240)
        .count();
    let colours: std::collections::HashSet<_> = pixels.iter().collect();
    assert!(
        non_white > pixels.len() / 20,
        "the page looks blank: {non_white} non-white pixels"
    );
    assert!(
        colours.len() > 100,
        "too few colours for text and a plot: {}",
        colours.len()
    );
    // The unpatched bar (8/8 hung, first palette colour) is on the first screen...
    let bar = color(0);
    let bar_px = pixels
        .iter()
        .filter(|p| **p == (bar.0, bar.1, bar.2))
        .count();
    assert!(
        bar_px > 20_000,
        "the hang-rate bar is not on the first screen ({bar_px} pixels of {:?})",
        PALETTE[0]
    );
    // ...and so is the verdict box, whose green border says the patch helps
    // (the signature is gone, as the plan expects).
    let green = pixels.iter().filter(|p| **p == (0x2c, 0xa0, 0x2c)).count();
    assert!(
        green > 500,
        "the verdict box is not on the first screen ({green} border pixels)"
    );
}
