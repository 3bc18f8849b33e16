"""Drives the web console in a real headless browser (Debian's chromium and chromium-driver, through Selenium).

    console_browser.py BASE_URL ADA_LOGIN_URL BOB_LOGIN_URL SHOTS_DIR PAGES_DIR STAGECRAFT

Ada promotes breast-cancer to prod (which asks for Bob's approval), Bob approves and reconciles prod, all through the
UI, while a read-only visitor's board updates through server-sent events without a reload; then a new version of
breast-cancer reaches dev (a commit and `stagecraft reconcile`, run in the current folder). Prints one JSON object of
what it saw; exits 1 with the reason when something is not as it must be.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, ada_login, bob_login, shots, pages, stagecraft = sys.argv[1:7]
seen = {}


def fail(message):
    print(json.dumps({"failed": message, "seen": seen}))
    sys.exit(1)


def browser():
    options = Options()
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait(description, condition, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.1)
    fail("timed out waiting for " + description)


def get(url, cookie=None):
    request = urllib.request.Request(url)
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def save(driver, name):
    """Keeps the page as the server sends it (for the HTML validator) and checks that every form control has a label."""
    session = driver.get_cookie("stagecraft_session")
    status, text = get(driver.current_url, "stagecraft_session=" + session["value"] if session else None)
    if status != 200:
        fail(f"{name}: GET {driver.current_url} answered {status}")
    with open(os.path.join(pages, name + ".html"), "w") as file:
        file.write(text)
    unlabelled = driver.execute_script(
        "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML)")
    if unlabelled:
        fail(f"{name}: controls without a label: {unlabelled}")
    buttons = driver.execute_script(
        "return Array.from(document.querySelectorAll('button')).filter(b => !b.textContent.trim()).map(b => b.outerHTML)")
    if buttons:
        fail(f"{name}: buttons without text: {buttons}")


def shot(driver, name):
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height + 20, 700), 2200))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(os.path.join(shots, name + ".png"))
    driver.set_window_size(1400, 1000)


def cell(driver, environment, model):
    return driver.find_element(By.ID, f"cell-{environment}-{model}").text


def post(path, fields, cookie=None, origin=None, keep=None):
    """POSTs a form; returns the status, keeping the answer's page as `keep` for the validator."""
    request = urllib.request.Request(base + path, data=urllib.parse.urlencode(fields).encode(), method="POST")
    if cookie:
        request.add_header("Cookie", cookie)
    if origin:
        request.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(request) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    if keep:
        with open(os.path.join(pages, keep + ".html"), "w") as file:
            file.write(text)
    return status


visitor = browser()
user = browser()
try:
    # A read-only visitor: the board after dev and qa were reconciled; no action anywhere.
    visitor.get(base + "/")
    wait("the visitor's live connection", lambda: visitor.find_element(By.ID, "live").text == "live")
    for environment in ["dev", "qa"]:
        if "b35c" not in cell(visitor, environment, "breast-cancer") or "Synced" not in cell(visitor, environment, "breast-cancer"):
            fail(f"{environment} does not show breast-cancer serving: {cell(visitor, environment, 'breast-cancer')!r}")
    prod = cell(visitor, "prod", "breast-cancer")
    if "promotable from qa" not in prod:
        fail(f"prod does not offer qa's version: {prod!r}")
    actions = visitor.find_elements(By.CSS_SELECTOR, "a[href^='/actions/'], form[method='post']")
    seen["visitor_action_controls"] = len(actions)
    if actions:
        fail(f"a read-only visitor sees {len(actions)} action controls")
    save(visitor, "board-visitor")
    visitor.execute_script("window.stagecraftMarker = 42")

    # Ada signs in with her one-time link (a second use fails) and promotes breast-cancer to prod.
    user.get(ada_login)
    wait("Ada signed in", lambda: "Signed in as Ada" in user.find_element(By.TAG_NAME, "header").text)
    seen["login_link_reused"] = get(ada_login)[0]
    if seen["login_link_reused"] != 401:
        fail("a login link signed in twice")
    ada_cookie = "stagecraft_session=" + user.get_cookie("stagecraft_session")["value"]
    flags = user.get_cookie("stagecraft_session")
    seen["cookie"] = {"httpOnly": flags.get("httpOnly"), "sameSite": flags.get("sameSite")}
    save(user, "board-signed-in")
    user.find_element(By.CSS_SELECTOR, "#cell-prod-breast-cancer a[href^='/actions/promote']").click()
    wait("the promotion's confirmation", lambda: "Promote breast-cancer to prod" in user.find_element(By.TAG_NAME, "h1").text)
    diff = user.find_element(By.CSS_SELECTOR, "pre.diff").text
    if "+       version: b35c54cc93bb" not in diff:
        fail(f"the confirmation does not show the pin it commits: {diff!r}")
    seen["promotion_diff"] = diff
    save(user, "confirm-promote")

    # Forged posts: no session → 401; Ada's session without the form's CSRF token → 403; from another origin → 403.
    fields = {"model": "breast-cancer", "env": "prod"}
    seen["forged_anonymous"] = post("/actions/promote", fields, keep="answer-401")
    seen["forged_without_csrf"] = post("/actions/promote", fields, cookie=ada_cookie, keep="answer-403")
    seen["forged_wrong_csrf"] = post("/actions/promote", dict(fields, csrf="0" * 64), cookie=ada_cookie)
    csrf = user.find_element(By.CSS_SELECTOR, "form[action='/actions/promote'] input[name=csrf]").get_attribute("value")
    seen["forged_other_origin"] = post("/actions/promote", dict(fields, csrf=csrf), cookie=ada_cookie, origin="http://evil.example")
    if seen["forged_anonymous"] != 401 or seen["forged_without_csrf"] != 403 or seen["forged_wrong_csrf"] != 403 \
            or seen["forged_other_origin"] != 403:
        fail("forged posts were not refused as they must be")
    seen["visitor_fetch_post"] = visitor.execute_script(
        "return await fetch('/actions/promote', {method: 'POST', body: new URLSearchParams({model: 'breast-cancer', env: 'prod'})})"
        ".then(r => r.status)")

    user.find_element(By.CSS_SELECTOR, "form[action='/actions/promote'] button[type=submit]").click()
    wait("the promotion's result", lambda: "waiting for approval" in user.find_element(By.TAG_NAME, "main").text)
    seen["promotion_result"] = user.find_element(By.TAG_NAME, "main").text

    # The visitor's board shows the waiting promotion, without a reload.
    wait("the visitor's board to show the waiting promotion",
         lambda: "awaiting approval" in cell(visitor, "prod", "breast-cancer"))
    if visitor.execute_script("return window.stagecraftMarker") != 42:
        fail("the visitor's page was reloaded")
    seen["visitor_after_promotion"] = cell(visitor, "prod", "breast-cancer")

    # Ada cannot approve her own promotion: the same refusal the CLI gives.
    user.get(base + "/")
    user.find_element(By.CSS_SELECTOR, "#cell-prod-breast-cancer a[href^='/actions/approve']").click()
    user.find_element(By.CSS_SELECTOR, "form[action='/actions/approve'] button[type=submit]").click()
    seen["ada_approves"] = wait("Ada's refusal", lambda: user.find_element(By.TAG_NAME, "main").text if "Not done" in user.page_source else None)

    # Ada signs out; Bob signs in and approves.
    user.get(base + "/")
    user.find_element(By.CSS_SELECTOR, "header form[action='/logout'] button").click()
    wait("signed out", lambda: "Read-only" in user.find_element(By.TAG_NAME, "header").text)
    user.get(bob_login)
    wait("Bob signed in", lambda: "Signed in as Bob" in user.find_element(By.TAG_NAME, "header").text)
    user.find_element(By.CSS_SELECTOR, "#cell-prod-breast-cancer a[href^='/actions/reject']").click()
    wait("the rejection's confirmation", lambda: "Reject breast-cancer for prod" in user.find_element(By.TAG_NAME, "h1").text)
    save(user, "confirm-reject")
    user.get(base + "/")
    user.find_element(By.CSS_SELECTOR, "#cell-prod-breast-cancer a[href^='/actions/approve']").click()
    wait("the approval's confirmation", lambda: "Approve breast-cancer for prod" in user.find_element(By.TAG_NAME, "h1").text)
    save(user, "confirm-approve")
    user.find_element(By.CSS_SELECTOR, "form[action='/actions/approve'] button[type=submit]").click()
    wait("the approval's result", lambda: "Approved breast-cancer" in user.find_element(By.TAG_NAME, "main").text)
    seen["approval_result"] = user.find_element(By.TAG_NAME, "main").text
    wait("the visitor's board to show the approved pin",
         lambda: "awaiting approval" not in cell(visitor, "prod", "breast-cancer")
         and "OutOfSync" in cell(visitor, "prod", "breast-cancer"))

    # Bob reconciles prod now; the visitor sees it serve, still without a reload.
    user.get(base + "/")
    user.find_element(By.CSS_SELECTOR, "a[href='/actions/reconcile?env=prod']").click()
    wait("the reconcile's confirmation", lambda: "Reconcile prod now" in user.find_element(By.TAG_NAME, "h1").text)
    save(user, "confirm-reconcile")
    user.find_element(By.CSS_SELECTOR, "form[action='/actions/reconcile'] button[type=submit]").click()
    wait("the reconcile", lambda: "Reconciled prod" in user.find_element(By.TAG_NAME, "main").text, seconds=120)
    wait("the visitor's board to show prod serving",
         lambda: "Synced" in cell(visitor, "prod", "breast-cancer") and "nothing serves" not in cell(visitor, "prod", "breast-cancer"))
    if visitor.execute_script("return window.stagecraftMarker") != 42:
        fail("the visitor's page was reloaded")
    seen["visitor_after_reconcile"] = cell(visitor, "prod", "breast-cancer")
    seen["visitor_updates"] = visitor.execute_script("return document.body.getAttribute('data-updated') !== null")

    # A second version of breast-cancer built into dev by the CLI: the visitor's board shows it in its own colour, and
    # qa offers it.
    manifest = open("manifests/breast-cancer.yaml").read()
    open("manifests/breast-cancer.yaml", "w").write(manifest.replace("l2: 0.01", "l2: 0.1"))
    identity = ["-c", "user.name=Carol", "-c", "user.email=carol@example.com"]
    subprocess.run(["git", *identity, "commit", "-q", "-am", "breast-cancer: more regularisation"], check=True)
    reconciled = subprocess.run([stagecraft, "reconcile", "--env", "dev"], capture_output=True, text=True)
    if reconciled.returncode != 0:
        fail("reconcile --env dev: " + reconciled.stdout + reconciled.stderr)
    wait("the visitor's board to show dev's new version", lambda: "promotable from dev" in cell(visitor, "qa", "breast-cancer"))
    if visitor.execute_script("return window.stagecraftMarker") != 42:
        fail("the visitor's page was reloaded")
    colours = visitor.execute_script(
        "return ['dev', 'qa'].map(e => getComputedStyle(document.querySelector('#cell-' + e + '-breast-cancer .serving a.v'))"
        ".borderLeftColor)")
    seen["colours"] = colours
    if colours[0] == colours[1]:
        fail(f"two versions have one colour: {colours}")

    # Bob rolls dev back to the version before: the confirmation shows the pin, the board then shows dev out of sync.
    user.get(base + "/")
    user.find_element(By.CSS_SELECTOR, "#cell-dev-breast-cancer a[href^='/actions/rollback']").click()
    wait("the rollback's confirmation", lambda: "Roll back breast-cancer in dev" in user.find_element(By.TAG_NAME, "h1").text)
    if "+       version: b35c54cc93bb" not in user.find_element(By.CSS_SELECTOR, "pre.diff").text:
        fail("the rollback's confirmation does not show the pin it commits")
    user.find_element(By.CSS_SELECTOR, "form[action='/actions/rollback'] button[type=submit]").click()
    wait("the rollback's result", lambda: "Rolled back breast-cancer b35c54cc93bb in dev" in user.find_element(By.TAG_NAME, "main").text)
    wait("the visitor's board to show dev out of sync",
         lambda: "OutOfSync" in cell(visitor, "dev", "breast-cancer") and "desired" in cell(visitor, "dev", "breast-cancer"))

    # The pages, as the screenshots show them and the validator reads them.
    user.get(base + "/")
    shot(user, "board")
    save(user, "board-after")
    user.get(base + "/models/breast-cancer")
    save(user, "model")
    options = user.find_elements(By.CSS_SELECTOR, "#compare-a option")
    seen["versions"] = len(options)
    user.find_element(By.CSS_SELECTOR, "form.compare button").click()
    wait("the comparison", lambda: user.find_element(By.CSS_SELECTOR, "table.compare"))
    save(user, "model-compare")
    shot(user, "model")
    for environment in ["dev", "qa", "prod"]:
        user.get(base + "/environments/" + environment)
        save(user, "environment-" + environment)
    # Traffic to qa while its page is open: penguins requests, about 40 a second for 8 s.
    server = json.loads(get(base + "/api/environments/qa")[1])["server"]
    header, *rows = open("data/penguins/test.csv").read().strip().split("\n")
    names = header.split(",")

    def request(row):
        inputs = [
            {"name": name, "datatype": "FP64", "shape": [1], "data": [float(value)]} if value.replace(".", "").isdigit()
            else {"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}
            for name, value in zip(names, row.split(",")) if name not in ("species", "year") and value
        ]
        return json.dumps({"inputs": inputs}).encode()

    bodies = [request(row) for row in rows]

    def load():
        for index in range(320):
            url = f"http://{server}/v2/models/penguins/infer"
            urllib.request.urlopen(urllib.request.Request(url, data=bodies[index % len(bodies)])).read()
            time.sleep(0.025)

    traffic = threading.Thread(target=load)
    traffic.start()
    user.get(base + "/environments/qa")
    wait("qa's drift chart", lambda: user.find_element(By.CSS_SELECTOR, "svg[aria-label^='Population stability index']"))
    user.find_element(By.CSS_SELECTOR, "details summary").click()
    # The page reads the server's /metrics again every 5 s: then it has a window to give a rate over.
    wait("qa's request rate", lambda: user.find_element(By.CSS_SELECTOR, "dl.figures dd").text not in ("", "-", "0.0"))
    if not user.execute_script("return document.querySelector('details').open"):
        fail("the explanation the reader opened closed when the page refreshed")
    seen["qa_rate"] = user.find_element(By.CSS_SELECTOR, "dl.figures").text
    shot(user, "environment")
    traffic.join()
    user.get(base + "/login")
    save(user, "login")
    user.get(base + "/actions/rollback?model=breast-cancer&env=qa")
    save(user, "confirm-rollback")
    status, text = get(base + "/models/no-such-model")
    seen["missing_model"] = status
    with open(os.path.join(pages, "not-found.html"), "w") as file:
        file.write(text)
    seen["done_page"] = post("/actions/reconcile", {"env": "qa", "csrf": user.find_element(
        By.CSS_SELECTOR, "header form[action='/logout'] input[name=csrf]").get_attribute("value")},
        cookie="stagecraft_session=" + user.get_cookie("stagecraft_session")["value"], keep="answer-done")
    print(json.dumps(seen))
finally:
    visitor.quit()
    user.quit()
