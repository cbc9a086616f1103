"""Drives the operations console in headless Chromium (Debian's chromium
and chromium-driver, through Selenium): waits for the broker, writes a task
through the API and waits for it in the live feed, finds the poison
message among the dead letters with its reason, presses its replay button
and waits for "replayed". Saves a screenshot after each step.

    drive.py CONSOLE_URL API_URL SCREENSHOT_DIR

Prints a JSON summary on its last line.
"""

import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

console_url, api_url, shots = sys.argv[1:4]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
    options.add_argument(flag)
driver = webdriver.Chrome(
    service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options
)
wait = WebDriverWait(driver, 60, poll_frequency=0.25)
summary = {}


def shot(name):
    path = os.path.join(shots, name)
    driver.save_screenshot(path)
    summary.setdefault("screenshots", []).append(path)


def text(element_id):
    return driver.find_element(By.ID, element_id).text


try:
    driver.get(console_url)
    wait.until(lambda d: text("broker") == "broker up")
    wait.until(lambda d: "no lag read yet" not in text("groups"))
    shot("1-overview.png")

    request = urllib.request.Request(
        api_url + "/api/tasks",
        data=json.dumps({"title": "Seen in the console"}).encode(),
        headers={"content-type": "application/json", "x-user-id": "console-user"},
        method="POST",
    )
    with urllib.request.urlopen(request) as reply:
        task = json.load(reply)
    wait.until(lambda d: "todo.task-events.task_created" in text("live"))
    wait.until(lambda d: "handled" in text("live"))
    summary["live"] = text("live").splitlines()[:12]
    summary["task"] = task["id"]
    shot("2-live-feed.png")

    row = wait.until(
        lambda d: next(
            iter(d.find_elements(By.CSS_SELECTOR, 'table.dlq[data-topic="task-events.dlq"] tbody tr')), None
        )
    )
    summary["dead_letter"] = row.get_attribute("data-id")
    summary["reason"] = row.find_element(By.CSS_SELECTOR, ".reason").text
    row.find_element(By.CSS_SELECTOR, "button.replay").click()
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'tr[data-id="{summary["dead_letter"]}"] .replayed'
        )
    )
    wait.until(lambda d: "replayed " + summary["dead_letter"] in text("live"))
    shot("3-replayed.png")
    # After the page's next refresh, the server says so too.
    time.sleep(3.5)
    summary["replayed_after_refresh"] = bool(
        driver.find_elements(By.CSS_SELECTOR, f'tr[data-id="{summary["dead_letter"]}"] .replayed')
    )
    shot("4-after-refresh.png")
except Exception:
    shot("failure.png")
    print(driver.find_element(By.TAG_NAME, "body").text, file=sys.stderr)
    raise
finally:
    driver.quit()
print(json.dumps(summary))
