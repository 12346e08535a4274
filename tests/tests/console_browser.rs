//! The web console in a real browser: Debian's chromium, headless, loads the
//! index, every page it links to, the log's next page and an aggregate's
//! history; each renders its heading, not an error page; a hostile stored
//! string shows as text, not as an element; screenshots of the log and of
//! an aggregate are kept under `target/console-screenshots/`.
//!
//! Chromium is `$ES_CHROMIUM`, else `chromium` on the PATH, else
//! `/usr/bin/chromium`. Without it the test is skipped, except under
//! `CI=true`, where `.ci/run` installs it and its absence is a failure.

mod http_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::interface::console::Console;
use es_core::persistence::{Cipher, Compressor, StoredEvent, Tracking, Transcoder};
use es_core::prelude::*;

use http_support::serve;

#[aggregate]
pub struct Basket {
    owner: String,
    items: Vec<String>,
}

#[aggregate]
impl Basket {
    #[event("Opened")]
    pub fn open(owner: String) -> Self {
        Basket {
            owner,
            items: Vec::new(),
        }
    }

    #[event("ItemAdded")]
    pub fn add(&mut self, item: String) {
        self.items.push(item);
    }
}

/// What a stored field could hold if a user typed it: markup that would
/// run if the console wrote it unescaped.
const HOSTILE: &str = "<script>document.title='owned'</script><img src=x onerror=alert(1)>";

const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn the_console_renders_and_links_in_a_headless_browser() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed and CI=true: .ci/run installs it (apt-get install chromium), \
             or set ES_CHROMIUM to its path"
        );
        println!("skipped: chromium not installed");
        return;
    };
    let (base, hostile_id) = serve_console();
    let browser = Browser::new(chromium);

    let index = browser.dom(&format!("{base}/"));
    assert_eq!(heading(&index), "Applications", "{index}");
    // The follower's row: position 40 in a log of 61, so 21 behind.
    assert!(index.contains("dispatch"), "{index}");
    assert!(
        cells(&index).windows(3).any(|w| w == ["40", "61", "21"]),
        "{index}"
    );

    let links = same_origin_links(&index, &base);
    assert!(
        links.len() >= 2,
        "the index links each application: {links:?}"
    );
    for link in &links {
        let page = browser.dom(link);
        assert_not_error(&page, link);
    }

    let log_url = format!("{base}/applications/shop");
    let log = browser.dom(&log_url);
    assert!(
        heading(&log).starts_with("Notification log of shop"),
        "{log}"
    );
    assert!(log.contains("Basket.Opened"), "{log}");
    let next = link_with_rel(&log, "next").expect("the first page links the next");
    let second = browser.dom(&absolute(&base, &next));
    assert!(
        heading(&second).starts_with("Notification log of shop"),
        "{second}"
    );
    assert!(second.contains("Undecodable"), "the garbage row: {second}");
    assert!(
        second.contains("Basket.Opened"),
        "the rest of the page: {second}"
    );

    let aggregates: Vec<String> = same_origin_links(&log, &base)
        .into_iter()
        .filter(|link| link.contains("/aggregates/"))
        .collect();
    assert!(!aggregates.is_empty(), "the log links aggregates");
    for link in aggregates.iter().take(3) {
        let page = browser.dom(link);
        assert!(heading(&page).starts_with("Aggregate"), "{link}: {page}");
        assert!(page.contains("State after"), "{link}: {page}");
    }

    let hostile_url = format!("{base}/applications/shop/aggregates/{hostile_id}");
    let hostile = browser.dom(&hostile_url);
    assert!(heading(&hostile).starts_with("Aggregate"), "{hostile}");
    assert!(
        hostile.contains("&lt;script&gt;"),
        "shown as text: {hostile}"
    );
    assert!(!hostile.contains("<script"), "no script element: {hostile}");
    assert!(!hostile.contains("<img"), "no image element: {hostile}");
    assert!(
        hostile.contains("<title>Aggregate "),
        "the script never ran: {hostile}"
    );

    let missing = browser.dom(&format!("{base}/applications/nowhere"));
    assert_eq!(heading(&missing), "Not Found", "{missing}");

    let shots = screenshot_dir();
    let index_url = format!("{base}/");
    for (name, url) in [
        ("index", &index_url),
        ("log", &log_url),
        ("aggregate", &hostile_url),
    ] {
        let path = shots.join(format!("{name}.png"));
        browser.screenshot(url, &path);
        let png = std::fs::read(&path).expect("screenshot written");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{}",
            path.display()
        );
        println!("screenshot: {}", path.display());
    }
}

#[test]
fn unknown_pages_and_bad_queries_answer_4xx_pages() {
    let (base, _) = serve_console();
    let address = base.trim_start_matches("http://");
    for (path, status) in [
        ("/applications/nowhere", 404),
        ("/applications/shop/aggregates/no-such-basket", 404),
        ("/applications/shop?start=zero", 400),
        ("/applications/shop?start=0", 400),
        ("/no/such/page", 404),
    ] {
        let (code, body) = raw_get(address, path);
        assert_eq!(code, status, "{path}: {body}");
        assert!(body.contains("<h1>"), "an HTML page for {path}: {body}");
    }
}

#[test]
fn nested_under_a_base_path_every_link_stays_inside_it() {
    let shop = Arc::new(
        Application::builder()
            .name("shop")
            .in_memory()
            .build()
            .expect("shop"),
    );
    let mut basket = Basket::open("ada".into());
    shop.save(&mut basket).expect("save");
    let console = Console::new()
        .application(shop)
        .base_path("/ops/events")
        .router()
        .expect("router");
    let base = serve(axum::Router::new().nest("/ops/events", console));
    let address = base.trim_start_matches("http://");
    for path in [
        "/ops/events".to_owned(),
        "/ops/events/applications/shop".to_owned(),
        format!("/ops/events/applications/shop/aggregates/{}", basket.id()),
    ] {
        let (code, page) = raw_get(address, &path);
        assert_eq!(code, 200, "{path}: {page}");
        let links = same_origin_links(&page, &base);
        assert!(!links.is_empty(), "{path}: {page}");
        for link in links {
            assert!(
                link.starts_with(&format!("{base}/ops/events")),
                "{path} links {link}"
            );
            let (code, _) = raw_get(address, link.trim_start_matches(&base));
            assert_eq!(code, 200, "{path} links {link}");
        }
    }
}

#[test]
fn events_under_another_key_show_as_undecodable_rows_not_an_error_page() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("vault.sqlite3");
    let opened = |key: u8| {
        Application::builder()
            .name("vault")
            .sqlite(&file)
            .transcoder(Transcoder::MessagePack)
            .compressor(Compressor::Zstd)
            .cipher(Cipher::new(&[key; 32]).expect("cipher"))
            .build()
            .expect("vault")
    };
    let mut basket = Basket::open("ada".into());
    basket.add("pen".into());
    opened(1).save(&mut basket).expect("save");

    // The right key: MessagePack, compressed and encrypted, read as fields.
    let right = serve(
        Console::new()
            .application(Arc::new(opened(1)))
            .aggregate::<Basket>()
            .router()
            .expect("router"),
    );
    let address = right.trim_start_matches("http://");
    let (code, log) = raw_get(address, "/applications/vault");
    assert_eq!(code, 200, "{log}");
    assert!(log.contains("&quot;ada&quot;"), "{log}");

    // Another key: every row says why, the pages are still pages.
    let wrong = serve(
        Console::new()
            .application(Arc::new(opened(2)))
            .aggregate::<Basket>()
            .router()
            .expect("router"),
    );
    let address = wrong.trim_start_matches("http://");
    let (code, log) = raw_get(address, "/applications/vault");
    assert_eq!(code, 200, "{log}");
    assert_eq!(log.matches("Undecodable").count(), 2, "{log}");
    assert!(log.contains("not the one it was encrypted with"), "{log}");
    let (code, history) = raw_get(
        address,
        &format!("/applications/vault/aggregates/{}", basket.id()),
    );
    assert_eq!(code, 200, "{history}");
    assert_eq!(history.matches("Undecodable").count(), 2, "{history}");
    assert!(history.contains("not replayed"), "{history}");
}

/// The shop (61 notifications: 30 baskets of two events, one of them
/// hostile, and a row no mapper can read) and its follower, served on a
/// port of loopback; the base URL and the hostile basket's id.
fn serve_console() -> (String, OriginatorId) {
    let shop = Arc::new(
        Application::builder()
            .name("shop")
            .in_memory()
            .build()
            .expect("shop"),
    );
    let mut hostile_id = None;
    for n in 0..30 {
        let owner = if n == 3 {
            HOSTILE.to_owned()
        } else {
            format!("owner {n}")
        };
        let mut basket = Basket::open(owner);
        basket.add(format!("item {n}"));
        shop.save(&mut basket).expect("save");
        if n == 3 {
            hostile_id = Some(basket.id());
        }
    }
    let garbage = StoredEvent {
        originator_id: Uuid::new_v4().into(),
        originator_version: 1,
        topic: "Basket.Opened".into(),
        state: b"\xff\x00 not an event".to_vec(),
    };
    shop.recorder()
        .insert_events(&[garbage])
        .expect("the garbage row");
    let dispatch = Arc::new(
        Application::builder()
            .name("dispatch")
            .in_memory()
            .build()
            .expect("dispatch"),
    );
    dispatch
        .process_recorder()
        .insert_events_with_tracking(&[], &Tracking::new("shop", 40))
        .expect("tracking");
    let router = Console::new()
        .application(Arc::clone(&shop))
        .application(Arc::clone(&dispatch))
        .aggregate::<Basket>()
        .follower(dispatch, "shop")
        .router()
        .expect("router");
    (serve(router), hostile_id.expect("the hostile basket"))
}

fn raw_get(address: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_support::request(address, "GET", path, "");
    (status, body)
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ES_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
}

/// Headless chromium, one process per page, with a profile of its own.
struct Browser {
    program: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn new(program: PathBuf) -> Self {
        Browser {
            program,
            profile: tempfile::tempdir().expect("profile"),
        }
    }

    /// The page's DOM after loading, as chromium serialises it.
    fn dom(&self, url: &str) -> String {
        let out = self.profile.path().join("dom.html");
        self.run(&["--dump-dom", url], &out);
        std::fs::read_to_string(&out).expect("the DOM")
    }

    fn screenshot(&self, url: &str, path: &Path) {
        let _ = std::fs::remove_file(path);
        let shot = format!("--screenshot={}", path.display());
        self.run(
            &[&shot, "--window-size=1280,900", url],
            &self.profile.path().join("shot.log"),
        );
    }

    /// Runs chromium on `args`, its output to `stdout`; kills it if it hangs.
    fn run(&self, args: &[&str], stdout: &Path) {
        let profile = format!(
            "--user-data-dir={}",
            self.profile.path().join("profile").display()
        );
        let mut child = Command::new(&self.program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(["--no-first-run", "--hide-scrollbars", &profile])
            .args(args)
            .stdout(std::fs::File::create(stdout).expect("stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let deadline = Instant::now() + CHROMIUM_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("chromium's status") {
                assert!(status.success(), "chromium {args:?} exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {args:?} hung for {CHROMIUM_TIMEOUT:?}: killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Where screenshots are kept: `console-screenshots/` in the target directory.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir.canonicalize().unwrap_or(dir)
}

/// The text of the page's first `<h1>`, tags inside it dropped.
fn heading(dom: &str) -> String {
    let Some(start) = dom.find("<h1>") else {
        return String::new();
    };
    let rest = &dom[start + 4..];
    let inner = &rest[..rest.find("</h1>").unwrap_or(rest.len())];
    strip_tags(inner)
}

fn strip_tags(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

/// The text of every table cell, in order.
fn cells(dom: &str) -> Vec<String> {
    dom.split("<td")
        .skip(1)
        .map(|cell| {
            let body = &cell[cell.find('>').map_or(0, |at| at + 1)..];
            strip_tags(&body[..body.find("</td>").unwrap_or(body.len())])
        })
        .collect()
}

/// Every `href` of the page that stays on the console's origin, absolute.
fn same_origin_links(dom: &str, base: &str) -> Vec<String> {
    let mut links: Vec<String> = dom
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .filter(|href| href.starts_with('/') || href.starts_with(base))
        .map(|href| absolute(base, &href))
        .collect();
    links.sort();
    links.dedup();
    links
}

fn absolute(base: &str, href: &str) -> String {
    if href.starts_with('/') {
        format!("{base}{href}")
    } else {
        href.to_owned()
    }
}

/// The `href` of the page's first link with `rel`.
fn link_with_rel(dom: &str, rel: &str) -> Option<String> {
    dom.split("<a ")
        .skip(1)
        .find(|tag| tag.contains(&format!("rel=\"{rel}\"")))
        .and_then(|tag| tag.split("href=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
}

fn assert_not_error(dom: &str, url: &str) {
    let heading = heading(dom);
    for error in ["Not Found", "Bad Request", "Internal Server Error"] {
        assert_ne!(heading, error, "{url}: {dom}");
    }
    assert!(!heading.is_empty(), "{url} rendered no heading: {dom}");
}
