//! The pages in a real browser: Debian's chromium driven through chromedriver (WebDriver),
//! headless. Each test signs in through the form and works as its role does; screenshots go to
//! `target/screenshots/` to be looked at.
//!
//! Without chromedriver the tests say SKIPPED, unless `REPRISE_REQUIRE_BROWSER` is set (as
//! `.ci/run` sets it after installing chromium and chromium-driver): then they fail.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::answers;
use crate::helpers::{free_port, spawn_app, TestApp};
use crate::screen_pop;
use crate::web::crisis;

const ENTER: &str = "\u{e007}";
const TAB: &str = "\u{e004}";

/// A headless chromium behind its own chromedriver.
struct Browser {
    client: Client,
    _driver: Driver,
}

/// chromedriver, stopped with its browser on drop, whatever the test did.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group: the browser goes with it.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The browser, or `None` (and a SKIPPED line) where chromium is not installed.
async fn browser() -> Option<Browser> {
    let found = on_path("chromedriver").zip(on_path("chromium"));
    let Some((driver_bin, chromium)) = found else {
        crate::helpers::missing_tool(
            "REPRISE_REQUIRE_BROWSER",
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver); .ci/run installs them",
        );
        return None;
    };
    let port = free_port();
    let driver = Driver({
        use std::os::unix::process::CommandExt;
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts")
    });
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/status")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=fr-BE"],
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("an object")
    };
    // chromedriver is on this machine: plain HTTP, no TLS stack.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("chromium did not start under chromedriver: {e}"));
    Some(Browser {
        client,
        _driver: driver,
    })
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots folder");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("screenshot written");
}

async fn path(c: &Client) -> String {
    let url = c.current_url().await.expect("url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Waits until the page's path starts with `prefix`.
async fn arrive(c: &Client, prefix: &str) {
    for _ in 0..100 {
        if path(c).await.starts_with(prefix) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never reached {prefix}: at {}", path(c).await);
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Chooses `value` in the list found by `css`.
async fn select(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("{css} = {value}: {e}"));
}

/// Clicks what `css` finds.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// Clicks what `css` finds and waits for the page it loads: a mark set on this page's window
/// is gone once the next page is there, so that nothing after reads the page being left.
async fn click_and_load(c: &Client, css: &str) {
    c.execute("window.repriseLeaving = true;", vec![])
        .await
        .expect("page marked");
    click(c, css).await;
    for _ in 0..100 {
        // While the next page loads, the script may fail or still see the old window.
        let left = c
            .execute("return window.repriseLeaving !== true;", vec![])
            .await;
        if matches!(left, Ok(Value::Bool(true))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {css} loaded no page: at {}", path(c).await);
}

/// The attribute `name` of every element `css` finds, in page order.
async fn attrs(c: &Client, css: &str, name: &str) -> Vec<Option<String>> {
    let found = c
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    let mut values = Vec::with_capacity(found.len());
    for element in &found {
        values.push(element.attr(name).await.expect("attribute"));
    }
    values
}

async fn active_id(c: &Client) -> String {
    c.active_element()
        .await
        .expect("focus")
        .attr("id")
        .await
        .expect("id")
        .unwrap_or_default()
}

/// What `read` gives once it is `want`, or after two seconds: `autofocus` applies a moment
/// after the page loads on a busy machine.
async fn settles<F, R>(want: &str, read: F) -> String
where
    F: Fn() -> R,
    R: std::future::Future<Output = String>,
{
    let mut got = read().await;
    for _ in 0..40 {
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = read().await;
    }
    got
}

/// The id of the element with the focus once it is `id` (see [`settles`]).
async fn focus_settles_on(c: &Client, id: &str) -> String {
    settles(id, || active_id(c)).await
}

/// The text of the element with the focus.
async fn focused_text(c: &Client) -> String {
    c.active_element()
        .await
        .expect("focus")
        .text()
        .await
        .unwrap_or_default()
}

/// Signs in through the form, from the keyboard: the token, then Enter.
async fn sign_in(c: &Client, app: &TestApp, token: &str) {
    c.goto(&app.url("/sign-in")).await.expect("sign-in page");
    assert_eq!(
        focus_settles_on(c, "token").await,
        "token",
        "the token field has the focus"
    );
    c.active_element()
        .await
        .expect("field")
        .send_keys(&format!("{token}{ENTER}"))
        .await
        .expect("typed");
    for _ in 0..100 {
        if !path(c).await.starts_with("/sign-in") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still on the sign-in page");
}

async fn calls(app: &TestApp) -> Vec<Value> {
    app.admin().get_json("/api/v1/calls").await["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[tokio::test]
async fn each_role_signs_in_and_finds_its_pages() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let crisis = crisis(&app).await;
    c.goto(&app.url("/sign-in")).await.expect("page");
    shot(c, "sign-in").await;
    for (role, token) in app.tokens_by_role(&crisis.service).await {
        sign_in(c, &app, &token).await;
        // Each role lands on the page it works on all day.
        let (home, links) = match role {
            "agent" => ("/agent", 2),
            "secretary" => ("/contacts", 1),
            _ => ("/board", 4),
        };
        assert_eq!(path(c).await, home, "{role}");
        let nav = c.find_all(Locator::Css("header nav a")).await.expect("nav");
        assert_eq!(nav.len(), links, "{role}'s navigation");
        shot(c, &format!("home-{role}")).await;
        // A page the role may not open says so, in its language.
        if role == "secretary" || role == "agent" {
            c.goto(&app.url("/board")).await.expect("board");
            let problem = text(c, "#problem").await;
            assert!(
                problem.contains("Votre rôle ne donne pas accès"),
                "{role}: {problem}"
            );
            assert_eq!(text(c, "h1").await, "Accès refusé", "{role}");
            shot(c, &format!("refused-{role}")).await;
            c.back().await.expect("back");
        }
        click(c, "#sign-out").await;
        arrive(c, "/sign-in?out=1").await;
        assert!(text(c, "#message").await.contains("déconnecté"));
    }
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn an_agent_logs_a_call_from_the_keyboard() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let crisis = crisis(&app).await;
    let agent = app.account("Agent Anne", "agent", &[]).await;
    sign_in(c, &app, agent.token()).await;
    assert_eq!(
        focus_settles_on(c, "q").await,
        "q",
        "the search has the focus"
    );
    c.active_element()
        .await
        .expect("search")
        .send_keys(&format!("dupont{ENTER}"))
        .await
        .expect("typed");
    text(c, "#results").await;
    shot(c, "agent-search").await;
    // The first patient found has the focus (`autofocus`, applied a moment after the page
    // loads on a busy machine): Enter opens it.
    assert_eq!(
        settles("Dupont, Marie", || focused_text(c)).await,
        "Dupont, Marie"
    );
    let focused = c.active_element().await.expect("focus");
    focused.send_keys(ENTER).await.expect("enter");
    arrive(c, &format!("/agent?patient={}", crisis.patients[0])).await;
    let appointments = text(c, "#appointments").await;
    assert!(
        appointments.contains("Prothèse 0") && appointments.contains("Reporté"),
        "{appointments}"
    );
    assert_eq!(
        focus_settles_on(c, "reason").await,
        "reason",
        "the call form has the focus"
    );
    shot(c, "agent-patient").await;
    // Reason, outcome, appointment, duration, caller's number: typed, Tab between them.
    let keys = format!("Demande{TAB}Rappel{TAB}{TAB}3{TAB}061 23 45 60{ENTER}");
    c.active_element()
        .await
        .expect("reason")
        .send_keys(&keys)
        .await
        .expect("typed");
    arrive(c, "/agent?done=call").await;
    assert_eq!(text(c, "#flash").await, "Appel enregistré.");
    assert_eq!(
        focus_settles_on(c, "q").await,
        "q",
        "the focus is back in the search"
    );
    shot(c, "agent-logged").await;
    let logged = calls(&app).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["patient_id"], crisis.patients[0]);
    assert_eq!(logged[0]["reason"], "reschedule_request");
    assert_eq!(logged[0]["outcome"], "callback_scheduled");
    assert_eq!(logged[0]["duration_seconds"], 180);
    assert_eq!(logged[0]["caller_phone"], "+3261234560");

    // A double click sends one form; the same form sent twice anyway logs one call.
    c.goto(&app.url(&format!("/agent?patient={}", crisis.patients[1])))
        .await
        .expect("patient");
    c.execute(
        "const b = document.getElementById('log-call'); b.click(); b.click();",
        vec![],
    )
    .await
    .expect("double click");
    arrive(c, "/agent?done=call").await;
    assert_eq!(calls(&app).await.len(), 2);
    c.goto(&app.url(&format!("/agent?patient={}", crisis.patients[1])))
        .await
        .expect("patient");
    let statuses = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const f = document.getElementById('call-form');
             const send = () => fetch('/agent/calls', {method: 'POST', body: new URLSearchParams(new FormData(f))});
             Promise.all([send(), send()]).then(r => done(r.map(x => x.status)));",
            vec![],
        )
        .await
        .expect("two posts");
    assert_eq!(statuses, json!([200, 200]), "both followed to the page");
    assert_eq!(calls(&app).await.len(), 3, "one call for the two");

    // At 200 % zoom (half the CSS width), nothing runs off the side.
    c.set_window_size(640, 900).await.expect("resized");
    c.goto(&app.url(&format!("/agent?patient={}", crisis.patients[0])))
        .await
        .expect("patient");
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .expect("measured");
    assert_eq!(fits, json!(true));
    shot(c, "agent-zoom-200").await;
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn a_secretary_works_through_a_contact_list() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let crisis = crisis(&app).await;
    let secretary = app
        .account("Secrétariat chirurgie", "secretary", &[&crisis.service])
        .await;
    sign_in(c, &app, secretary.token()).await;
    // The site, the service, then *Afficher*.
    select(c, "#site", &crisis.site).await;
    select(c, "#service", &crisis.service).await;
    click(c, "#show").await;
    arrive(
        c,
        &format!("/contacts?site={}&service={}", crisis.site, crisis.service),
    )
    .await;
    let order: Vec<String> = attrs(c, "#contact-list tbody tr", "data-appointment")
        .await
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    assert_eq!(order, crisis.appointments, "priority order");
    shot(c, "contacts-list").await;

    let first = &crisis.appointments[0];
    let row = |id: &str| format!("#row-{id}");
    record_attempt(c, first, "no_answer").await;
    assert_eq!(text(c, &format!("{} .attempts", row(first))).await, "1");
    assert!(text(c, &format!("{} .last-outcome", row(first)))
        .await
        .contains("Pas de réponse"));
    // Said where she is looking: just below the row, on screen, and nowhere else.
    assert_eq!(text(c, "#done").await, "Tentative notée.");
    assert_eq!(around_done(c).await.0, format!("row-{first}"));
    assert!(in_view(c, "#done").await, "the message is on screen");
    assert!(c.find(Locator::Css("#flash")).await.is_err(), "said once");
    // Reached: the row leaves the list; the message is where it was.
    record_attempt(c, first, "reached").await;
    assert_eq!(text(c, "#total").await, "2");
    assert_eq!(
        around_done(c).await.1,
        format!("row-{}", crisis.appointments[1])
    );
    // A language switch does not say it again.
    select(c, "#lang-switch", "nl").await;
    click(c, "header form.inline button").await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("html[lang=nl]"))
        .await
        .expect("in Dutch");
    assert!(c.find(Locator::Css("#done")).await.is_err());
    assert!(c.find(Locator::Css("#flash")).await.is_err());
    select(c, "#lang-switch", "fr").await;
    click(c, "header form.inline button").await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("html[lang=fr]"))
        .await
        .expect("in French");
    // A new date for the next one, in the row.
    let second = &crisis.appointments[1];
    c.execute(
        "document.querySelector(arguments[0]).value = '2030-03-04T09:30';",
        vec![json!(format!("{} input[type=datetime-local]", row(second)))],
    )
    .await
    .expect("date typed");
    click_and_load(c, &format!("{} form.reschedule button", row(second))).await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#done"))
        .await
        .expect("back on the list");
    assert!(text(c, "#done")
        .await
        .starts_with("Nouvelle date enregistrée"));
    assert_eq!(text(c, "#total").await, "1");
    let moved = app
        .admin()
        .get_json(&format!("/api/v1/appointments/{second}"))
        .await;
    assert_eq!(moved["status"], "rescheduled");
    assert_eq!(moved["scheduled_at"], "2030-03-04T08:30:00Z");
    shot(c, "contacts-worked").await;
    // A date in the past is refused, in her words, and nothing moves.
    let third = &crisis.appointments[2];
    c.execute(
        "document.querySelector(arguments[0]).value = '2020-01-01T09:00';",
        vec![json!(format!("{} input[type=datetime-local]", row(third)))],
    )
    .await
    .expect("date typed");
    click_and_load(c, &format!("{} form.reschedule button", row(third))).await;
    assert!(text(c, "#problem + ul")
        .await
        .contains("La nouvelle date est passée"));
    c.back().await.expect("back");
    let third_now = app
        .admin()
        .get_json(&format!("/api/v1/appointments/{third}"))
        .await;
    assert_eq!(third_now["status"], "postponed");

    // Both downloads, fetched by the page's own links.
    let fetch = "const done = arguments[arguments.length - 1];
                 fetch(document.querySelector(arguments[0]).href)
                   .then(r => r.arrayBuffer().then(b => {
                     const bytes = new Uint8Array(b);
                     done([r.status, r.headers.get('content-disposition'),
                           new TextDecoder().decode(bytes), Array.from(bytes.slice(0, 3))]);
                   }));";
    let csv = c
        .execute_async(fetch, vec![json!("#download-csv")])
        .await
        .expect("csv");
    assert_eq!(csv[0], 200);
    assert!(csv[1].as_str().unwrap_or_default().contains("attachment"));
    let body = csv[2].as_str().unwrap_or_default();
    assert!(
        body.starts_with("appointment_id,priority,kind,service,label"),
        "{body}"
    );
    assert!(
        body.contains("Peeters") && !body.contains("Dupont"),
        "{body}"
    );
    let excel = c
        .execute_async(fetch, vec![json!("#download-excel")])
        .await
        .expect("excel");
    assert_eq!(excel[3], json!([0xEF, 0xBB, 0xBF]), "UTF-8 with its BOM");
    assert!(
        excel[2].as_str().unwrap_or_default().contains(';'),
        "semicolons"
    );

    // The paper version: the list without the page around it.
    let pdf = c
        .print(
            fantoccini::wd::PrintConfiguration::builder()
                .orientation(fantoccini::wd::PrintOrientation::Landscape)
                .build()
                .expect("print settings"),
        )
        .await
        .expect("printed");
    let pdf_path = screenshots().join("contacts-print.pdf");
    std::fs::write(&pdf_path, &pdf).expect("pdf written");
    if let Some(printed) = pdf_text(&pdf_path) {
        // The one row left (the columns wrap names over lines).
        assert!(
            printed.contains("Peeters,") && printed.contains("Anke"),
            "{printed}"
        );
        assert!(!printed.contains("Dupont"), "{printed}");
        assert!(printed.contains("Imprimé le"), "{printed}");
        for absent in ["Noter", "Télécharger", "Se déconnecter", "Listes de rappel"] {
            assert!(!printed.contains(absent), "{absent} on paper: {printed}");
        }
        let _ = Command::new("pdftoppm")
            .args(["-png", "-r", "70", "-singlefile"])
            .arg(&pdf_path)
            .arg(screenshots().join("contacts-print"))
            .status();
    }
    c.clone().close().await.expect("closed");
}

/// Records an attempt from an appointment's row of the contact list, and waits for the list
/// to come back.
async fn record_attempt(c: &Client, appointment: &str, outcome: &str) {
    let row = format!("#row-{appointment}");
    select(c, &format!("{row} select[name=outcome]"), outcome).await;
    click_and_load(c, &format!("{row} form.attempt button")).await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#done"))
        .await
        .expect("back on the list");
}

/// The id of the row just above and just below the message of what was done.
async fn around_done(c: &Client) -> (String, String) {
    let ids = c
        .execute(
            "const d = document.getElementById('done').closest('tr');
             return [d.previousElementSibling ? d.previousElementSibling.id : '',
                     d.nextElementSibling ? d.nextElementSibling.id : ''];",
            vec![],
        )
        .await
        .expect("rows around");
    let ids: Vec<String> = ids
        .as_array()
        .expect("two")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    (ids[0].clone(), ids[1].clone())
}

/// Whether the element is within the window (not scrolled away).
async fn in_view(c: &Client, css: &str) -> bool {
    c.execute(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();
         return r.top >= 0 && r.bottom <= window.innerHeight;",
        vec![json!(css)],
    )
    .await
    .expect("measured")
    .as_bool()
    .unwrap_or(false)
}

/// The text of a PDF (poppler's pdftotext), or `None` where it is not installed and not
/// required.
fn pdf_text(pdf: &std::path::Path) -> Option<String> {
    match Command::new("pdftotext")
        .args(["-layout"])
        .arg(pdf)
        .arg("-")
        .output()
    {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => {
            crate::helpers::missing_tool(
                "REPRISE_REQUIRE_BROWSER",
                "the printed text: pdftotext is not installed (poppler-utils)",
            );
            None
        }
    }
}

#[tokio::test]
async fn a_coordinator_reopens_a_site_and_reads_the_calls_chart() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let crisis = crisis(&app).await;
    let days = [("2022-05-14", 3), ("2022-05-15", 1), ("2022-05-17", 5)];
    for (day, n) in days {
        for i in 0..n {
            let r = app.admin().post("/api/v1/calls", &json!({"received_at": format!("{day}T1{i}:00:00+02:00"), "reason": "other", "outcome": "informed"}))
                .await;
            assert_eq!(r.status(), 201);
        }
    }
    let coordinator = app.account("Coordination", "coordinator", &[]).await;
    // A call logged today, years later, and one with a wrong year: neither moves the chart
    // off the days of the crisis.
    for at in [
        chrono::Utc::now().to_rfc3339(),
        "1922-05-14T10:00:00+02:00".to_string(),
    ] {
        let r = app
            .admin()
            .post(
                "/api/v1/calls",
                &json!({"received_at": at, "reason": "other", "outcome": "informed"}),
            )
            .await;
        assert_eq!(r.status(), 201, "{at}");
    }
    sign_in(c, &app, coordinator.token()).await;
    assert_eq!(path(c).await, "/board", "a coordinator lands on the board");
    // One bar per day from the first call to the last (the 16th has none), as the API says.
    let stats = coordinator
        .get_json(
            "/api/v1/calls/stats?from=2022-05-14T00:00:00%2B02:00&to=2022-05-18T00:00:00%2B02:00",
        )
        .await;
    let expected: Vec<i64> = stats["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|p| p["count"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(expected, vec![3, 1, 0, 5]);
    let drawn: Vec<i64> = attrs(c, "#calls-chart svg rect.bar", "data-count")
        .await
        .into_iter()
        .map(|n| n.and_then(|n| n.parse().ok()).unwrap_or(-1))
        .collect();
    assert_eq!(drawn, expected);
    let heights = c
        .execute(
            "return [...document.querySelectorAll('#calls-chart rect.bar')].map(r => r.getBoundingClientRect().height);",
            vec![],
        )
        .await
        .expect("measured");
    let heights: Vec<f64> = heights
        .as_array()
        .expect("heights")
        .iter()
        .map(|h| h.as_f64().unwrap_or(0.0))
        .collect();
    assert!(
        heights[3] > heights[0] && heights[0] > heights[1] && heights[2] == 0.0,
        "{heights:?}"
    );
    assert_eq!(text(c, "#calls-total").await, "11");
    shot(c, "board").await;
    c.execute(
        "document.querySelector('#calls-chart').scrollIntoView();",
        vec![],
    )
    .await
    .expect("scrolled");
    let chart = c
        .find(Locator::Css("#calls-chart figure"))
        .await
        .expect("chart")
        .screenshot()
        .await
        .expect("chart screenshot");
    std::fs::write(screenshots().join("board-chart.png"), chart).expect("written");

    let site_row = format!("#site-{}", crisis.site);
    assert!(text(c, &format!("{site_row} .to-contact")).await == "3");
    select(c, &format!("{site_row} select[name=programme]"), "moderate").await;
    let rooms = c
        .find(Locator::Css(&format!(
            "{site_row} input[name=operating_rooms_open]"
        )))
        .await
        .expect("rooms");
    rooms.clear().await.expect("cleared");
    rooms.send_keys("1").await.expect("typed");
    // The rooms' field has a visible label.
    assert!(c
        .find(Locator::Css(&format!(
            "{site_row} label[for^=rooms-]:not(.visually-hidden)"
        )))
        .await
        .is_ok());
    click(c, &format!("{site_row} form.reopen button")).await;
    // First what it will do; cancelled there, nothing happens.
    arrive(c, "/board/reopen?").await;
    assert_eq!(text(c, "#confirm-to-contact").await, "3");
    assert_eq!(text(c, "#confirm-rooms").await, "1 / 2");
    assert!(!c
        .find(Locator::Css("#confirm-notify"))
        .await
        .expect("the email choice")
        .is_selected()
        .await
        .expect("state"));
    shot(c, "board-confirm-reopen").await;
    // `/board/reopen?` starts with `/board` too: wait for the next page itself.
    click_and_load(c, "#confirm-cancel").await;
    arrive(c, "/board").await;
    let sites = coordinator.get_json("/api/v1/sites").await;
    assert!(sites["items"]
        .as_array()
        .expect("sites")
        .iter()
        .any(|s| s["code"] == crisis.site.as_str() && s["status"] == "closed"));
    let sent = coordinator.get_json("/api/v1/notifications").await;
    assert!(!sent["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|n| n["template"] == "site_reopened"));
    // Again, confirmed, with the emails chosen.
    select(c, &format!("{site_row} select[name=programme]"), "moderate").await;
    let rooms = c
        .find(Locator::Css(&format!(
            "{site_row} input[name=operating_rooms_open]"
        )))
        .await
        .expect("rooms");
    rooms.clear().await.expect("cleared");
    rooms.send_keys("1").await.expect("typed");
    click(c, &format!("{site_row} form.reopen button")).await;
    arrive(c, "/board/reopen?").await;
    click(c, "#confirm-notify").await;
    click(c, "#confirm-yes").await;
    arrive(c, "/board?done=reopened").await;
    let said = text(c, "#flash").await;
    assert!(
        said.contains("3 rendez-vous à recontacter") && said.contains("emails en file"),
        "{said}"
    );
    assert!(text(c, &format!("{site_row} .programme"))
        .await
        .contains("Modéré"));
    let class = c
        .find(Locator::Css(&site_row))
        .await
        .expect("row")
        .attr("class")
        .await
        .expect("class");
    assert_eq!(class.as_deref(), Some("open"));
    let sites = coordinator.get_json("/api/v1/sites").await;
    let site = sites["items"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["code"] == crisis.site.as_str()))
        .expect("site")
        .clone();
    assert_eq!(
        (
            site["status"].as_str(),
            site["operating_rooms_open"].as_i64()
        ),
        (Some("open"), Some(1))
    );

    click(c, "#centre-switch").await;
    arrive(c, "/board/call-centre?").await;
    assert!(text(c, "#confirm-centre").await.contains("11 appels"));
    click(c, "#confirm-yes").await;
    arrive(c, "/board?done=centre").await;
    assert_eq!(text(c, "#centre-status").await, "Désactivé");
    shot(c, "board-reopened").await;
    c.clone().close().await.expect("closed");
}

/// The pages over the demo scenario (a smaller draw of it): every Vivalia site on the board,
/// three weeks of calls on the chart, a real contact list. The figures agree with the API's.
#[tokio::test]
async fn a_patient_answers_from_a_phone_with_the_keyboard() {
    let Some(browser) = browser().await else {
        return;
    };
    let c = &browser.client;
    let app = answers::app().await;
    let s = answers::scene(&app).await;
    let (planned, _, _) = answers::anne_links(&app, &s).await;
    // A phone's width: the page fits without sideways scrolling.
    c.set_window_size(360, 740).await.expect("resized");
    c.goto(&app.url(&planned)).await.expect("the answer page");
    assert!(text(c, "#date").await.contains("04/03/2030 à 09:00"));
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .expect("measured");
    assert_eq!(fits, json!(true));
    shot(c, "answer-open").await;
    // The first choice has the focus; Space chooses it, Tab reaches the button, Enter sends.
    assert_eq!(focus_settles_on(c, "answer-keep").await, "answer-keep");
    c.active_element()
        .await
        .expect("focus")
        .send_keys(&format!(" {TAB}"))
        .await
        .expect("typed");
    assert_eq!(active_id(c).await, "send");
    c.active_element()
        .await
        .expect("focus")
        .send_keys(ENTER)
        .await
        .expect("sent");
    let message = text(c, "#message").await;
    assert!(message.contains("fixé au 04/03/2030 à 09:00"), "{message}");
    shot(c, "answer-done").await;
    assert_eq!(
        answers::appointment(&app, &s.kept).await["status"],
        "rescheduled"
    );
    // Back and send again: the page says the link is used, and nothing more is recorded.
    c.goto(&app.url(&planned)).await.expect("again");
    assert!(text(c, "#message").await.contains("déjà répondu"));
    shot(c, "answer-used").await;
    let attempts = answers::appointment(&app, &s.kept).await["contact_attempts"]
        .as_array()
        .expect("list")
        .len();
    assert_eq!(attempts, 1);
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn the_demo_scenario_reads_at_a_glance() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let db = app.state.db.clone();
    let size = reprise::demo::DemoSize {
        patients: 3_000,
        appointments: 6_000,
        calls: 8_000,
    };
    let report = tokio::task::spawn_blocking(move || reprise::demo::load(&db, 2022, size))
        .await
        .expect("joined")
        .expect("demo loaded");
    c.set_window_size(1280, 2200).await.expect("tall window");
    sign_in(c, &app, &report.tokens["coordinator"]).await;
    c.goto(&app.url("/board")).await.expect("board");
    let rows = c
        .find_all(Locator::Css("#sites tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), report.sites);
    let sites = app
        .user(&report.tokens["coordinator"])
        .get_json("/api/v1/sites")
        .await;
    let waiting: i64 = sites["items"]
        .as_array()
        .expect("sites")
        .iter()
        .map(|s| s["postponed_to_contact"].as_i64().unwrap_or(0))
        .sum();
    assert!(waiting > 0);
    assert_eq!(
        text(c, "#backlog tfoot td:last-child").await,
        waiting.to_string(),
        "the board's backlog is the API's"
    );
    let stats = app
        .user(&report.tokens["coordinator"])
        .get_json("/api/v1/calls/stats")
        .await;
    let days = stats["series"].as_array().expect("series").len();
    assert!(days >= 21, "three weeks of calls: {days}");
    let bars = c
        .find_all(Locator::Css("#calls-chart rect.bar"))
        .await
        .expect("bars");
    assert_eq!(bars.len(), days);
    shot(c, "demo-board").await;

    sign_in(c, &app, &report.tokens["secretary"]).await;
    c.goto(&app.url("/contacts?site=ARL&service=ARL-CHIR"))
        .await
        .expect("list");
    let list = app
        .user(&report.tokens["secretary"])
        .get_json("/api/v1/contact-list?site=ARL&service=ARL-CHIR")
        .await;
    let total = list["items"].as_array().expect("items").len();
    assert_eq!(text(c, "#total").await, total.to_string());
    let shown = c
        .find_all(Locator::Css("#contact-list tbody tr"))
        .await
        .expect("rows");
    assert_eq!(shown.len(), total.min(100));
    let first = shown[0].attr("data-appointment").await.expect("attr");
    assert_eq!(
        first.as_deref(),
        list["items"][0]["appointment_id"].as_str()
    );
    shot(c, "demo-contacts").await;
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn the_api_page_works_under_its_content_policy() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    c.goto(&app.url("/docs/")).await.expect("docs");
    // Swagger UI draws the operations from the served document, with its own scripts only.
    text(c, ".opblock-summary-path").await;
    let paths = attrs(c, ".opblock-summary-path", "data-path").await;
    assert!(
        paths
            .iter()
            .flatten()
            .any(|p| p == "/api/v1/patients/search"),
        "{paths:?}"
    );
    let policy = app.anonymous().get("/docs/").await;
    assert!(policy.headers().contains_key("content-security-policy"));
    shot(c, "docs").await;
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn a_printed_list_has_every_row_on_numbered_portrait_pages() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    // 435 appointments to rebook, as in Arlon's surgery after the incident.
    let mut csv = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    for i in 0..435 {
        csv.push_str(&format!(
            "\n,Patient{i:03},Anne,1960-01-01,0470 12 34 56,,fr,false,{site},{service},operation,Hanche,2022-05-{:02} {:02}:00,{},false,false",
            16 + i % 14,
            8 + i % 9,
            1 + i % 4
        ));
    }
    let r = app
        .admin()
        .post_csv("/api/v1/appointments/import", csv)
        .await;
    assert_eq!(r.status(), 200);
    app.postpone(&site, "2022-05-01T00:00:00Z", "2022-07-01T00:00:00Z")
        .await;
    sign_in(c, &app, app.admin().token()).await;
    c.goto(&app.url(&format!("/contacts?site={site}")))
        .await
        .expect("list");
    assert_eq!(text(c, "#total").await, "435");
    // *Imprimer* opens the whole list, not the page of 100 on screen.
    click(c, "#print").await;
    arrive(c, "/contacts/print?").await;
    let pdf = c
        .print(
            fantoccini::wd::PrintConfiguration::builder()
                .orientation(fantoccini::wd::PrintOrientation::Portrait)
                .build()
                .expect("print settings"),
        )
        .await
        .expect("printed");
    let pdf_path = screenshots().join("contacts-print-all.pdf");
    std::fs::write(&pdf_path, &pdf).expect("pdf written");
    let Some(printed) = pdf_text(&pdf_path) else {
        return;
    };
    for i in 0..435 {
        assert!(printed.contains(&format!("Patient{i:03}")), "row {i}");
    }
    assert!(
        printed.contains("Patients à contacter : 435"),
        "the heading"
    );
    // Numbered pages, 15 rows a page or more: under 30 pages for 435 rows.
    let pages = printed.matches('\u{c}').count().max(1);
    assert!(printed.contains(&format!("Page 1 / {pages}")), "{printed}");
    assert!(printed.contains(&format!("Page {pages} / {pages}")));
    assert!(
        435 / pages >= 15,
        "{pages} pages: {} rows a page",
        435 / pages
    );
    for absent in [
        "Noter",
        "Télécharger",
        "Se déconnecter",
        "Imprimer cette liste",
    ] {
        assert!(!printed.contains(absent), "{absent} on paper");
    }
    let _ = Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf_path)
        .arg(screenshots().join("contacts-print-all"))
        .status();
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn the_service_list_follows_the_site_chosen() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let (site_a, service_a) = app.create_site_and_service().await;
    let (site_b, service_b) = app.create_site_and_service().await;
    sign_in(c, &app, app.admin().token()).await;
    c.goto(&app.url("/contacts")).await.expect("contacts");
    let shown = |c: &Client| {
        let c = c.clone();
        async move {
            let v = c
                .execute(
                    "return [...document.querySelectorAll('#service option')]
                       .filter(o => o.value && !o.parentElement.hidden).map(o => o.value);",
                    vec![],
                )
                .await
                .expect("options");
            v.as_array()
                .expect("list")
                .iter()
                .map(|o| o.as_str().unwrap_or_default().to_string())
                .collect::<Vec<String>>()
        }
    };
    // Before a site is chosen every service shows, grouped under its site.
    let all = shown(c).await;
    assert!(
        all.contains(&service_a) && all.contains(&service_b),
        "{all:?}"
    );
    select(c, "#site", &site_a).await;
    assert_eq!(shown(c).await, vec![service_a.clone()]);
    select(c, "#service", &service_a).await;
    // Another site: the service of the first one is no longer chosen.
    select(c, "#site", &site_b).await;
    assert_eq!(shown(c).await, vec![service_b.clone()]);
    let chosen = c
        .execute("return document.getElementById('service').value;", vec![])
        .await
        .expect("value");
    assert_eq!(chosen, json!(""));
    c.clone().close().await.expect("closed");
}

#[tokio::test]
async fn a_patients_request_reads_as_a_request_and_is_found_at_once() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = answers::app().await;
    let s = answers::scene(&app).await;
    let (_, unplanned, _) = answers::anne_links(&app, &s).await;
    // Anne asks, from her email, to be called back about the operation with no day yet.
    let r = app
        .client
        .post(app.url(&unplanned))
        .form(&[("answer", "call_back")])
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let tokens = app.tokens_by_role(&s.service).await;
    let secretary = &tokens
        .iter()
        .find(|(r, _)| *r == "secretary")
        .expect("one")
        .1;
    sign_in(c, &app, secretary).await;
    c.goto(&app.url(&format!("/contacts?site={}", s.site)))
        .await
        .expect("list");
    let row = format!("#row-{}", s.unplanned);
    assert_eq!(
        text(c, &format!("{row} .request")).await,
        "Le patient demande à être rappelé"
    );
    let last = text(c, &format!("{row} .last-outcome")).await;
    assert!(last.starts_with("Réponse par email le"), "{last}");
    assert!(!last.contains("Refus"), "not a refusal: {last}");
    // Counted above the list; the link shows those rows alone.
    assert_eq!(text(c, "#requests-link").await, "Demandes des patients : 1");
    click_and_load(c, "#requests-link").await;
    arrive(c, "/contacts?").await;
    let shown: Vec<String> = attrs(
        c,
        "#contact-list tbody tr[data-appointment]",
        "data-appointment",
    )
    .await
    .into_iter()
    .map(Option::unwrap_or_default)
    .collect();
    assert_eq!(shown, vec![s.unplanned.clone()]);
    shot(c, "contacts-requests").await;
    c.clone().close().await.expect("closed");
}

/// The value of the field `id` in the page now.
async fn value_of(c: &Client, id: &str) -> String {
    c.execute(
        "const f = document.getElementById(arguments[0]); return f ? f.value : null;",
        vec![json!(id)],
    )
    .await
    .expect("read")
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// The text of the element `id` now, in one script (the pop's panel is replaced as events
/// arrive: an element found first and read after could be gone).
async fn text_of(c: &Client, id: &str) -> String {
    c.execute(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
        vec![json!(id)],
    )
    .await
    .expect("read")
    .as_str()
    .unwrap_or_default()
    .trim()
    .to_string()
}

/// Waits until the page's event stream is open (the script marks the panel).
async fn stream_open(c: &Client) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#pop[data-live]"))
        .await
        .expect("the page's event stream opens");
}

#[tokio::test]
async fn an_answered_call_fills_the_agents_open_page_within_a_second() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let patient = screen_pop::caller_patient(&app).await;
    let anne = app.agent_with_extension("201").await;
    let bob = app.agent_with_extension("202").await;
    sign_in(c, &app, anne.token()).await;
    arrive(c, "/agent").await;
    stream_open(c).await;
    assert_eq!(value_of(c, "caller_phone").await, "");

    let posted = std::time::Instant::now();
    screen_pop::answer(&app, &pbx, "c-1", "201").await;
    let deadline = posted + Duration::from_secs(1);
    let mut phone = value_of(c, "caller_phone").await;
    while phone.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        phone = value_of(c, "caller_phone").await;
    }
    let took = posted.elapsed();
    assert_eq!(
        phone, "+3261234567",
        "the form's phone within a second ({took:?})"
    );
    assert!(took <= Duration::from_secs(1), "{took:?}");
    assert_eq!(value_of(c, "patient_id").await, patient);
    assert!(!value_of(c, "received_at").await.is_empty());
    assert!(!value_of(c, "phone_call_id").await.is_empty());
    assert_eq!(text_of(c, "pop-title").await, "Appel en cours");
    assert!(text_of(c, "pop-patients").await.contains("Dubois, Marie"));
    assert_eq!(text(c, "#form-patient").await, "Patient : Dubois, Marie");
    shot(c, "agent-screen-pop").await;

    // The hangup brings the duration; what the agent typed stays.
    c.find(Locator::Id("notes"))
        .await
        .expect("notes")
        .send_keys("Demande un nouveau rendez-vous")
        .await
        .expect("typed");
    screen_pop::pbx_event(&app, &pbx, "c-1", &[("event", "hangup")]).await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#pop-title"))
        .await
        .expect("title");
    for _ in 0..100 {
        if !value_of(c, "duration_minutes").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!value_of(c, "duration_minutes").await.is_empty());
    assert_eq!(text_of(c, "pop-title").await, "Appel terminé");
    assert_eq!(value_of(c, "notes").await, "Demande un nouveau rendez-vous");
    assert_eq!(value_of(c, "caller_phone").await, "+3261234567");

    // Another call answered while this one is being written up: its panel shows, and the
    // form stays with the call the agent is writing about.
    let first = value_of(c, "phone_call_id").await;
    screen_pop::answer(&app, &pbx, "c-3", "201").await;
    for _ in 0..100 {
        if text_of(c, "pop-title").await == "Appel en cours" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(text_of(c, "pop-title").await, "Appel en cours");
    assert_eq!(value_of(c, "phone_call_id").await, first);
    assert_eq!(value_of(c, "notes").await, "Demande un nouveau rendez-vous");
    assert!(!value_of(c, "duration_minutes").await.is_empty());

    // Another agent's open page shows nothing of a call Anne answers.
    click(c, "#sign-out").await;
    arrive(c, "/sign-in?out=1").await;
    sign_in(c, &app, bob.token()).await;
    arrive(c, "/agent").await;
    stream_open(c).await;
    screen_pop::answer(&app, &pbx, "c-2", "201").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hidden = c
        .execute("return document.getElementById('pop').hidden;", vec![])
        .await
        .expect("read");
    assert_eq!(hidden, json!(true));
    assert_eq!(value_of(c, "caller_phone").await, "");
    assert_eq!(value_of(c, "patient_id").await, "");
    shot(c, "agent-no-pop").await;
    c.clone().close().await.expect("closed");
}
