//! `mem_profile report` rendered by a real headless Chromium: the script
//! runs without a console message, every timeline draws its lines, and the
//! plot area of the screenshot is not blank. Skipped, with a notice, where
//! no `chromium` or `chromium-browser` is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{mem_profile, stderr};

/// The browser, if one is installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

const WINDOW: (u32, u32) = (1100, 1600);

/// Runs headless Chromium on a page with `args`, killed after a minute.
fn browse(browser: &Path, profile: &Path, page: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The page's console messages, as Chromium logs them.
fn console_lines(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Every value of `attribute` in the DOM text, in order.
fn attributes(dom: &str, attribute: &str) -> Vec<String> {
    let needle = format!(" {attribute}=\"");
    dom.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &dom[at + needle.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

#[test]
fn the_report_draws_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        eprintln!(
            "notice: the_report_draws_in_a_headless_browser skipped: no chromium or \
             chromium-browser on PATH"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let output = mem_profile(
        d,
        &[
            "run",
            "--scale",
            "0.02",
            "-q",
            "sort,join",
            "--memory-limit",
            "16M",
            "--out",
            "out",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = mem_profile(d, &["report", "out", "-o", "report.html"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = d.join("report.html");
    let profile = d.join("profile");

    // The console check catches what it should: a page with an error.
    let bad = d.join("bad.html");
    std::fs::write(&bad, "<script>console.error('boom'); missing();</script>").unwrap();
    let logged = console_lines(&browse(&browser, &profile, &bad, &["--dump-dom"]));
    assert_eq!(
        logged.len(),
        2,
        "the console is visible to this test: {logged:?}"
    );

    let output = browse(&browser, &profile, &page, &["--dump-dom"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(console_lines(&output), Vec::<String>::new());
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(attributes(&dom, "data-timelines"), ["2"], "the script ran");
    assert_eq!(
        attributes(&dom, "data-drawn-series"),
        ["3", "3"],
        "RSS, heap live and reserved drew in both plots"
    );
    let rect: Vec<u32> = attributes(&dom, "data-plot-rect")[0]
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let [left, top, width, height] = rect[..] else {
        panic!("{rect:?}")
    };
    assert!(width > 300 && height > 100, "{rect:?}");
    assert!(
        left + width <= WINDOW.0 && top + height <= WINDOW.1,
        "the first plot is on the first screen: {rect:?}"
    );

    let shot = d.join("shot.png");
    let output = browse(
        &browser,
        &profile,
        &page,
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(console_lines(&output), Vec::<String>::new());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), WINDOW);
    let channels = info.color_type.samples();
    let pixel = |x: u32, y: u32| {
        let at = (y as usize * info.width as usize + x as usize) * channels;
        (pixels[at], pixels[at + 1], pixels[at + 2])
    };
    let (mut colored, mut red, mut blue, mut green) = (0u32, 0u32, 0u32, 0u32);
    // The plot area, its bottom edge included: a line at 0 lies on the axis.
    for y in top..=top + height {
        for x in left + 2..left + width - 2 {
            let (r, g, b) = pixel(x, y);
            // Grid, axes, limit and text are grey; the lines are not.
            if r.max(g).max(b) - r.min(g).min(b) > 40 {
                colored += 1;
            }
            // The three lines' colors (#d62728, #1f77b4, #2ca02c), blended at their edges.
            if r > 170 && g < 90 && b < 90 {
                red += 1;
            }
            if b > 140 && r < 90 && g > 80 && g < 160 {
                blue += 1;
            }
            if g > 130 && r < 100 && b < 100 {
                green += 1;
            }
        }
    }
    let area = (width - 4) * (height + 1);
    assert!(
        colored * 200 > area,
        "more than 0.5% of the plot area is drawn in color: {colored} of {area} pixels"
    );
    assert!(
        red > 100 && blue > 100 && green > 100,
        "each line shows: RSS {red}, heap {blue}, reserved {green} pixels"
    );
}
