"""The dashboard page (web/app, served by query-reader at /app/, docs/dashboard.md)
in headless Chromium driven by Selenium, against its own stack loaded with the
demo clinic (scripts/demo.sh): sign in by pasting a token, see the demo data in
every panel, schedule an appointment through the writer and see its row appear
without a reload, check it in and see the status change; a screenshot of each
screen under the test's output folder (pytest's tmp_path). The HTTP side of
/app/ (headers, redirect, 304, 404, 405, the name check) is tested with requests.
"""

import http.client
import json
import os
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from stack import ROOT, free_port

import selenium  # noqa: E402 python3-selenium, from scripts/install-deps.sh: a missing one fails
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402



def clinic_zone():
    """The demo clinic's timezone for this run: the first of these where the
    clinic's day has hours left to book (06:00-18:00 local now), so the live
    test runs whatever the hour in UTC."""
    now = datetime.now(timezone.utc)
    for name in ("Europe/London", "Asia/Tokyo", "America/New_York", "Pacific/Auckland",
                 "America/Los_Angeles", "Asia/Kolkata"):
        if 6 <= now.astimezone(ZoneInfo(name)).hour < 18:
            return name
    raise AssertionError("no clinic timezone with daytime now")  # cannot happen


TZNAME = clinic_zone()
TZ = ZoneInfo(TZNAME)  # the demo clinic's timezone
CHROMEDRIVER = "/usr/bin/chromedriver"
LIVE_DEADLINE_S = 2  # the issue: the row appears within 2 s, without a reload
TEST_VET = "Dr. Page Test"


@pytest.fixture(scope="module")
def clinic(stack):
    """Daemons on free ports, the demo clinic, a vet of the test's own with a
    block of availability from now to the end of the clinic's day (so there is
    a free slot today and a place to book, whatever the hour)."""
    ds = [stack.start_daemon(name, port=free_port())
          for name in ("projector", "query-reader", "cmd-writer")]
    for d in ds:
        d.wait_ready(90)
    writer, reader = ds[2], ds[1]
    env = dict(stack.env, VETPMS_WRITER_PORT=str(writer.port), VETPMS_DEMO_TIMEZONE=TZNAME)
    r = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], env=env, text=True,
                       capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr
    tenant = r.stdout.strip()
    admin = {"Authorization": "Bearer " + stack.token("admin", tenant, sub="e2e-page-admin")}

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=2)
    midnight = datetime.combine(now.astimezone(TZ).date() + timedelta(days=1),
                                datetime.min.time(), TZ).astimezone(timezone.utc)
    block_end = min(now + timedelta(hours=3), midnight)
    r = requests.post(writer.url + "/v1/staff", headers={**admin, "Idempotency-Key": "page-vet"},
                      json={"name": TEST_VET, "role": "veterinarian"}, timeout=30)
    assert r.status_code == 201, r.text
    vet_id = r.json()["id"]
    room = block_end - now >= timedelta(minutes=40)
    if room:
        r = requests.post(writer.url + f"/v1/staff/{vet_id}/availability",
                          headers={**admin, "Idempotency-Key": "page-block"},
                          json={"blocks": [{"start": iso(now), "end": iso(block_end)}]}, timeout=30)
        assert r.status_code in (200, 201), r.text
    yield {"writer": writer, "reader": reader, "tenant": tenant, "admin": admin,
           "vet_id": vet_id, "block_start": now, "room_today": room,
           "page_token": stack.token(["admin", "vet"], tenant, sub="e2e-page")}
    for d in reversed(ds):
        d.terminate()


def iso(t):
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMEDRIVER):
        pytest.fail("chromium-driver is missing: run scripts/install-deps.sh")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1800", "--lang=en-GB"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver, folder, name):
    path = os.path.join(folder, name)
    assert driver.save_screenshot(path), f"no screenshot {path}"
    assert os.path.getsize(path) > 1000
    # VETPMS_PAGE_SCREENSHOTS=dir: also copy them there (docs/dashboard.png is one)
    keep = os.environ.get("VETPMS_PAGE_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, keep)


def wait_text(driver, element_id, text, timeout=15):
    try:
        WebDriverWait(driver, timeout).until(
            EC.text_to_be_present_in_element((By.ID, element_id), text))
    except Exception:
        shown = driver.find_element(By.ID, element_id).text
        raise AssertionError(f"#{element_id} never showed {text!r} in {timeout} s; "
                             f"it shows {shown!r}") from None


def open_signed_in(browser, clinic):
    """The page, signed in: by the tab's session when an earlier test left one,
    else through the sign-in form."""
    browser.get(clinic["reader"].url + "/app/")
    WebDriverWait(browser, 15).until(
        lambda d: d.find_element(By.ID, "dashboard").is_displayed()
        or d.find_element(By.ID, "token").is_displayed())
    if not browser.find_element(By.ID, "dashboard").is_displayed():
        browser.find_element(By.ID, "token").send_keys(clinic["page_token"])
        browser.find_element(By.ID, "sign-in-button").click()
    WebDriverWait(browser, 15).until(EC.visibility_of_element_located((By.ID, "dashboard")))


def live_wait(browser, condition, what):
    """condition within LIVE_DEADLINE_S; on timeout, what the page showed."""
    try:
        WebDriverWait(browser, LIVE_DEADLINE_S).until(condition)
    except Exception as e:
        rows = browser.find_element(By.ID, "appointments").text
        live = browser.find_element(By.ID, "live").get_attribute("title")
        logs = [m["message"] for m in browser.get_log("browser")]
        raise AssertionError(f"{what} not seen within {LIVE_DEADLINE_S} s ({e!r}); rows: "
                             f"{rows!r}; stream: {live!r}; console: {logs}") from None


def raw_get(daemon, path):
    """GET with the path sent as written (requests would resolve the dots
    first): (status, parsed JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        is_json = r.getheader("Content-Type", "").startswith("application/json")
        return r.status, json.loads(body) if is_json else None
    finally:
        conn.close()


def csp_violations(driver):
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


# --- HTTP: what /app/ answers ------------------------------------------------

def test_app_files_are_served_with_a_strict_policy(clinic):
    reader = clinic["reader"]
    r = reader.get("/app", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/app/"
    r = reader.get("/app/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                      "connect-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-cache"
    assert "<script" in r.text and "vendor/chart.min.js" in r.text
    # no inline script: every <script> has a src
    assert r.text.count("<script") == r.text.count("<script src=") + r.text.count(
        '<script type="module" src=')
    etag = r.headers["ETag"]
    r2 = reader.get("/app/", headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b""
    assert reader.get("/app/index.html").content == r.content

    r = reader.get("/app/app.js")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert reader.get("/app/app.css").headers["Content-Type"] == "text/css; charset=utf-8"
    r = reader.get("/app/vendor/chart.min.js")
    assert r.status_code == 200 and b"Chart.js v" in r.content[:200]
    assert reader.request("HEAD", "/app/app.js").status_code == 200

    for bad in ("/app/nope.js", "/app/../Makefile", "/app/%2e%2e/Makefile", "/app/.hidden.js",
                "/app/vendor/", "/app/vendor/../index.html", "/app//index.html",
                "/app/index.html/", "/app/README", "/app/vendor/chunks/helpers.segment.js"):
        status, body = raw_get(reader, bad)
        assert status == 404, bad
        assert body["error"]["code"] == "NOT_FOUND", bad
    r = reader.request("POST", "/app/", data="x")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in r.headers["Allow"]
    # the API itself is unchanged: no token, no data
    assert reader.get("/v1/staff").status_code == 401


def test_symlinks_and_folders_in_the_app_dir_are_not_served(stack, tmp_path):
    """A reader on a folder of the test's own (VETPMS_READER_APP_DIR): a symlink
    (to a file outside, or inside) and a folder with an acceptable name are 404,
    a plain file is served; the vendor folder is a setting too."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("<!doctype html><title>t</title>")
    secret = tmp_path / "secret.js"
    secret.write_text("secret")
    os.symlink(secret, app / "out.js")
    os.symlink(app / "index.html", app / "in.html")
    (app / "folder.js").mkdir()
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "chart.min.js").write_text("/* stand-in */")
    reader = stack.start_daemon("query-reader", port=free_port(),
                                env={"VETPMS_READER_APP_DIR": str(app),
                                     "VETPMS_READER_VENDOR_DIR": str(vendor)})
    try:
        reader.wait_ready(60)
        assert reader.get("/app/").text == "<!doctype html><title>t</title>"
        assert reader.get("/app/vendor/chart.min.js").text == "/* stand-in */"
        for path in ("/app/out.js", "/app/in.html", "/app/folder.js", "/app/secret.js",
                     "/app/vendor/out.js"):
            status, body = raw_get(reader, path)
            assert status == 404 and body["error"]["code"] == "NOT_FOUND", path
    finally:
        reader.terminate()


# --- the page in a browser ------------------------------------------------------

def test_sign_in_and_see_the_demo_clinic(clinic, browser, tmp_path):
    reader = clinic["reader"]
    browser.get(reader.url + "/app/")
    WebDriverWait(browser, 15).until(EC.visibility_of_element_located((By.ID, "token")))
    assert not browser.find_element(By.ID, "dashboard").is_displayed()
    shot(browser, tmp_path, "01-sign-in.png")

    # a bad token is refused and not kept
    browser.find_element(By.ID, "token").send_keys("not-a-token")
    browser.find_element(By.ID, "sign-in-button").click()
    wait_text(browser, "sign-in-error", "not accepted")
    assert browser.execute_script("return sessionStorage.getItem('vetpms.token')") is None

    token = browser.find_element(By.ID, "token")
    token.clear()
    token.send_keys(clinic["page_token"])
    browser.find_element(By.ID, "sign-in-button").click()
    WebDriverWait(browser, 15).until(EC.visibility_of_element_located((By.ID, "dashboard")))
    assert browser.execute_script("return sessionStorage.getItem('vetpms.token')") == \
        clinic["page_token"]
    assert clinic["page_token"] not in browser.current_url

    # the demo's data in each panel
    wait_text(browser, "expiring", "Feline RCP vaccine")
    wait_text(browser, "expiring", "RCP-2311")
    wait_text(browser, "stats-status", "15 appointment(s)")  # the demo's week ahead
    wait_text(browser, "revenue-status", "invoiced £")
    wait_text(browser, "revenue-currency", "GBP")
    wait_text(browser, "today-date", datetime.now(TZ).date().isoformat())
    if clinic["room_today"]:
        wait_text(browser, "slots", TEST_VET)
    for chart in ("stats-chart", "revenue-chart"):
        drawn = browser.execute_script(
            "const c = window.Chart && Chart.getChart(document.getElementById(arguments[0]));"
            "return c ? c.data.datasets.map(d => d.data.reduce((a, b) => a + b, 0)) : null;", chart)
        assert drawn and sum(drawn) > 0, (chart, drawn)

    # patient search and the chosen patient's timeline
    browser.find_element(By.ID, "patient-search").send_keys("Bella")
    wait_text(browser, "patient-results", "Bella (canine, Labrador) — Alice Smith")
    browser.find_element(By.CSS_SELECTOR, "#patient-results button").click()
    wait_text(browser, "timeline-title", "Timeline of Bella")
    wait_text(browser, "timeline", "Stifle strain")
    wait_text(browser, "timeline", "Meloxicam")
    shot(browser, tmp_path, "02-dashboard.png")
    assert csp_violations(browser) == []

    # a reload keeps the session (sessionStorage), signing out forgets it
    browser.refresh()
    WebDriverWait(browser, 15).until(EC.visibility_of_element_located((By.ID, "dashboard")))
    wait_text(browser, "expiring", "RCP-2311")
    browser.set_window_size(390, 844)  # a phone
    wait_text(browser, "revenue-status", "invoiced £")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page is {width}px wide on a 390px screen"
    shot(browser, tmp_path, "03-phone.png")
    browser.set_window_size(1280, 1800)


def test_the_pages_sse_parser(clinic, browser):
    """web/app/stream.js's parser, run in the browser on the stream's wire format
    cut into awkward chunks: CRLF split between chunks, heartbeat comments, an
    event without data (ignored), multi-line data, a field without a space."""
    browser.get(clinic["reader"].url + "/app/")
    got = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/app/stream.js').then((m) => {
          const events = [], comments = [];
          const p = m.sseParser((e) => events.push(e), (c) => comments.push(c));
          const wire = ': heartbeat\\r\\n\\r\\nid: 3:41\\r\\nevent: AppointmentScheduled\\r\\n' +
            'data: {"type":"AppointmentScheduled","position":"3:41"}\\r\\n\\r\\n' +
            'id: 3:42\\nevent: Nothing\\n\\n' +
            'id:3:43\\nevent:AppointmentCheckedIn\\ndata: {"a":1,\\ndata: "b":2}\\n\\n: heartbeat\\n\\n';
          for (let i = 0; i < wire.length; i += 7) p.feed(wire.slice(i, i + 7));
          done({events, comments, last: p.lastId()});
        }).catch((e) => done({error: String(e)}));
    """)
    assert "error" not in got, got
    assert got["comments"] == ["heartbeat", "heartbeat"]
    assert got["events"] == [
        {"id": "3:41", "event": "AppointmentScheduled",
         "data": '{"type":"AppointmentScheduled","position":"3:41"}'},
        {"id": "3:43", "event": "AppointmentCheckedIn", "data": '{"a":1,\n"b":2}'},
    ]
    assert got["last"] == "3:43"


def test_appointments_appear_and_change_live(clinic, browser, tmp_path):
    if not clinic["room_today"]:
        pytest.skip("under 40 minutes left in the clinic's day: nothing to book today")
    writer, reader = clinic["writer"], clinic["reader"]
    admin = clinic["admin"]
    open_signed_in(browser, clinic)
    WebDriverWait(browser, 15).until(
        EC.text_to_be_present_in_element((By.ID, "live"), "live"))
    browser.execute_script("window.__notReloaded = true;")

    pets = requests.get(reader.url + "/v1/patients", params={"search": "Daisy"},
                        headers=admin, timeout=10).json()["data"]
    daisy = next(p for p in pets if p["name"] == "Daisy")
    start = clinic["block_start"] + timedelta(minutes=10)
    r = requests.post(writer.url + "/v1/appointments",
                      headers={**admin, "Idempotency-Key": str(uuid.uuid4())},
                      json={"patient_id": daisy["id"], "vet_id": clinic["vet_id"],
                            "start": iso(start), "end": iso(start + timedelta(minutes=20)),
                            "type": "consultation", "reason": "Live test"}, timeout=30)
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    row = f'#appointments tr[data-id="{aid}"]'
    live_wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, row)), "the new row")
    text = browser.find_element(By.CSS_SELECTOR, row).text
    assert "Daisy (rabbit)" in text and TEST_VET in text and "scheduled" in text
    shot(browser, tmp_path, "04-scheduled.png")

    r = requests.post(writer.url + f"/v1/appointments/{aid}/check-in",
                      headers={**admin, "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert r.status_code == 200, r.text
    live_wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, row), "checked in"),
              "the row's check-in")
    assert browser.execute_script("return window.__notReloaded === true")
    shot(browser, tmp_path, "05-checked-in.png")

    # the visit billed: the revenue chart follows live, the invoice is on
    # Daisy's timeline (it bills her appointment)
    revenue_before = browser.find_element(By.ID, "revenue-status").text
    def post(path, body):
        r = requests.post(writer.url + path, json=body, timeout=30,
                          headers={**admin, "Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code in (200, 201), r.text
        return r.json()
    invoice = post("/v1/invoices", {"client_id": daisy["client_id"], "appointment_id": aid})["id"]
    post(f"/v1/invoices/{invoice}/lines", {"description": "Consultation", "quantity": 1,
                                           "unit_price_cents": 5000, "tax_rate_bp": 0})
    post(f"/v1/invoices/{invoice}/issue", {"due_in_days": 30})
    WebDriverWait(browser, 5).until(
        lambda d: d.find_element(By.ID, "revenue-status").text not in ("", revenue_before))
    browser.find_element(By.ID, "patient-search").send_keys("Daisy")
    wait_text(browser, "patient-results", "Daisy (rabbit")
    browser.find_element(By.CSS_SELECTOR, "#patient-results button").click()
    wait_text(browser, "timeline", "total £50.00, balance £50.00 (issued)")
    wait_text(browser, "timeline", "consultation with Dr. Page Test — Live test (checked in)")
    assert browser.execute_script("return window.__notReloaded === true")

    # every panel filled at once (docs/dashboard.png is this one)
    search = browser.find_element(By.ID, "patient-search")
    search.clear()
    search.send_keys("Bella")
    wait_text(browser, "patient-results", "Bella (canine, Labrador)")
    browser.find_element(By.CSS_SELECTOR, "#patient-results button").click()
    wait_text(browser, "timeline", "Stifle strain")
    shot(browser, tmp_path, "06-overview.png")
    assert csp_violations(browser) == []
