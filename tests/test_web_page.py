"""The search page of `mmcli serve`: a real server over a mmcli-tiny index, driven by headless Chromium,
and the page's routes refusing what a foreign web page could make a browser ask for (plain HTTP)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY
from PIL import Image
from test_pictures_and_groups import SCREENSHOTS, _browser
from test_serve import _free_port, _wait_until_serving

from mmcli.demo.shapes import ShapeSpec, draw_shape

COLOURS = ("red", "blue", "green", "yellow")
SHAPES = ("circle", "square", "triangle", "star")
MAX_UPLOAD = 200_000
TAKEN = {1: 1685620800, 2: 1590969600}  # 2023-06-01 12:00 and 2020-06-01 00:00 UTC


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("web")
    photos = base / "photos"
    (photos / "b").mkdir(parents=True)
    for i, colour in enumerate(COLOURS):
        for j, shape in enumerate(SHAPES):
            for k in (1, 2):  # two of each: the other one is the nearest neighbour
                img = draw_shape(ShapeSpec(colour, shape), size=160, seed=1000 * k + 10 * i + j)
                path = photos / ("b" if k == 2 else "") / f"{colour}_{shape}_{k}.jpg"
                img.save(path, quality=92)
                os.utime(path, (TAKEN[k], TAKEN[k]))  # no EXIF: the mtime is the date
    home, cache = base / "home", base / "cache"
    env = {**os.environ, "MMCLI_HOME": str(home), "MMCLI_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("MMCLI_SERVER", None)
    subprocess.run(
        [sys.executable, "-m", "mmcli", "index", str(photos), "--index", "page", "--model", TINY, "-q"],
        env=env,
        check=True,
    )
    (photos / "broken.jpg").write_bytes(b"not a picture at all")  # after indexing: only the routes see them
    draw_shape(ShapeSpec("red", "circle"), size=120, seed=5).save(photos / "sheet.tif")
    outside = base / "outside"
    outside.mkdir()
    draw_shape(ShapeSpec("blue", "star"), size=200, seed=77).save(outside / "query.png")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmcli", "serve", "--index", "page", "--port", str(port)]
        + ["--allow-root", str(photos), "--max-upload", str(MAX_UPLOAD)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_until_serving(url, proc)
    yield {"url": url, "photos": photos, "outside": outside, "cache": cache, "port": port}
    proc.terminate()
    proc.wait(timeout=30)


def _request(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _q(path: Path | str) -> str:
    return urllib.parse.quote(str(path))


# ----------------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def browser(server, tmp_path_factory: pytest.TempPathFactory):
    driver = _browser(tmp_path_factory.mktemp("chrome"))
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def _open(browser, server) -> None:
    browser.get(server["url"] + "/")
    browser.execute_script("document.body.dataset.searches = '0'")


def _wait_for_search(browser, before: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(lambda d: int(d.execute_script("return document.body.dataset.searches")) > before)
    status = browser.find_element("id", "status")
    assert "error" not in (status.get_attribute("class") or ""), status.text


def _searches(browser) -> int:
    return int(browser.execute_script("return document.body.dataset.searches || '0'"))


def _hit_names(browser) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#results .hit')).map(e => e.title.split('/').pop())"
    )


def _type_query(browser, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element("id", "q")
    box.clear()
    before = _searches(browser)
    box.send_keys(text, Keys.ENTER)
    _wait_for_search(browser, before)


def _screenshot(browser, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / f"web-{name}.png"
    browser.save_screenshot(str(shot))
    assert Image.open(shot).size[0] > 0


def _thumbs_loaded(browser) -> list[int]:
    from selenium.webdriver.support.ui import WebDriverWait

    script = "return Array.from(document.querySelectorAll('#results img')).map(i => i.complete ? i.naturalWidth : 0)"
    WebDriverWait(browser, 30).until(lambda d: all(w > 0 for w in d.execute_script(script)))
    return browser.execute_script(script)


def test_a_typed_query_shows_the_expected_top_result(server, browser) -> None:
    _open(browser, server)
    _type_query(browser, "a red circle")
    names = _hit_names(browser)
    assert names[0].startswith("red_circle"), names
    assert "red circle" in browser.find_element("id", "status").text
    assert len(_thumbs_loaded(browser)) == len(names)
    score = browser.find_element("css selector", "#results .hit .score").text
    assert 0 < float(score) <= 1


def test_the_address_names_the_search(server, browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    photo = server["photos"] / "b" / "blue_circle_2.jpg"
    browser.get(f"{server['url']}/#like={_q(photo)}")  # a bookmark of "more like this"
    WebDriverWait(browser, 60).until(lambda d: _hit_names(d))
    assert _hit_names(browser)[0] == "blue_circle_1.jpg"
    assert browser.find_element("id", "example-name").text == photo.name


def test_plus_and_minus_terms_combine(server, browser) -> None:
    _open(browser, server)
    _type_query(browser, "a circle +blue -red")
    names = _hit_names(browser)
    assert names[0].startswith("blue_"), names
    assert not any(n.startswith("red_") for n in names[:4]), names


def test_a_date_range_narrows_the_results(server, browser) -> None:
    _open(browser, server)
    _type_query(browser, "a red circle")
    everything = _hit_names(browser)
    set_date = (
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('change', {bubbles: true}))"
    )
    before = _searches(browser)
    browser.execute_script(set_date, "after", "2023-01-01")
    _wait_for_search(browser, before)
    names = _hit_names(browser)
    assert names and len(names) < len(everything) and all(n.endswith("_1.jpg") for n in names), names
    assert names[0] == "red_circle_1.jpg"
    dates = browser.execute_script(
        "return Array.from(document.querySelectorAll('#results .hit time')).map(t => t.textContent)"
    )
    assert dates and set(dates) == {"2023-06-01 12:00"}, dates
    browser.execute_script(set_date, "before", "2022-12-31")  # an empty period: said, not a crash
    from selenium.webdriver.support.ui import WebDriverWait

    status = browser.find_element("id", "status")
    WebDriverWait(browser, 60).until(lambda d: "no time between" in status.text)
    assert "error" in (status.get_attribute("class") or "")


def test_clicking_a_result_searches_more_like_this(server, browser) -> None:
    _open(browser, server)
    _type_query(browser, "a green triangle")
    first = browser.find_element("css selector", "#results .hit")
    clicked = first.get_attribute("title")
    before = _searches(browser)
    first.find_element("css selector", ".pic").click()
    _wait_for_search(browser, before)
    names = _hit_names(browser)
    assert Path(clicked).name not in names  # the example itself is left out
    twin = Path(clicked).name.replace("_1.", "_2.") if "_1." in clicked else Path(clicked).name.replace("_2.", "_1.")
    assert names[0] == twin, (clicked, names)
    assert browser.find_element("id", "example").is_displayed()
    assert browser.find_element("id", "example-name").text == Path(clicked).name
    _thumbs_loaded(browser)
    _screenshot(browser, "like")
    before = _searches(browser)
    browser.back()  # Back returns to the typed query
    _wait_for_search(browser, before)
    assert _hit_names(browser)[0].startswith("green_triangle")
    assert not browser.find_element("id", "example").is_displayed()
    assert browser.find_element("id", "q").get_attribute("value") == "a green triangle"


def test_uploading_an_image_searches_by_example(server, browser) -> None:
    photos_before = sorted(p for p in server["photos"].rglob("*"))
    _open(browser, server)
    before = _searches(browser)
    browser.find_element("id", "file").send_keys(str(server["outside"] / "query.png"))
    _wait_for_search(browser, before)
    names = _hit_names(browser)
    assert names[0].startswith("blue_star"), names
    assert "query.png" in browser.find_element("id", "status").text
    assert sorted(p for p in server["photos"].rglob("*")) == photos_before  # nothing written beside the photos
    assert list((server["cache"] / "uploads").iterdir()) == []  # the upload is gone after the search
    _type_query(browser, "+star")  # the example stays and combines with typed terms
    assert _hit_names(browser)[0].startswith("blue_star")


def test_keyboard_enter_searches_arrows_move_enter_opens(server, browser) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, server)
    _type_query(browser, "a yellow square")  # Enter in the box searches
    active = "return document.activeElement.dataset.index"
    box = browser.find_element("id", "q")
    box.send_keys(Keys.ARROW_DOWN)
    assert browser.execute_script(active) == "0"
    body = browser.switch_to.active_element
    body.send_keys(Keys.ARROW_RIGHT)
    assert browser.execute_script(active) == "1"
    columns = browser.execute_script(
        "const t = document.querySelectorAll('#results .hit'); let n = 0;"
        "while (n < t.length && t[n].offsetTop === t[0].offsetTop) n++; return n"
    )
    assert columns > 1
    browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert browser.execute_script(active) == str(1 + columns)
    browser.switch_to.active_element.send_keys(Keys.ARROW_LEFT)
    selected = browser.execute_script("return document.activeElement.title")
    assert browser.execute_script(active) == str(columns)
    assert len(browser.find_elements("css selector", "#results .hit.selected")) == 1
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    viewer = browser.find_element("id", "viewer")
    assert viewer.is_displayed()
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script(
            "const i = document.getElementById('viewer-img'); return i.complete && i.naturalWidth"
        )
    )
    assert browser.find_element("id", "viewer-caption").text.endswith(selected)
    _screenshot(browser, "viewer")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not viewer.is_displayed()
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert browser.switch_to.active_element.get_attribute("id") == "q"


@pytest.mark.parametrize(("name", "size"), [("desktop", (1280, 900)), ("phone", (390, 844))])
def test_layout_and_screenshots(server, browser, name: str, size: tuple[int, int]) -> None:
    browser.set_window_size(*size)
    try:
        _open(browser, server)
        _type_query(browser, "a red circle")
        _thumbs_loaded(browser)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # nothing wider than the screen
        lefts = browser.execute_script(
            "return Array.from(document.querySelectorAll('#results .hit')).map(e => e.getBoundingClientRect().left)"
        )
        columns = len(set(lefts))
        assert columns == 2 if name == "phone" else columns >= 5, lefts
        # the score, the date and "full size" each on one line: moved down whole, never broken in two
        heights = browser.execute_script(
            "return Array.from(document.querySelectorAll('#results .meta .line > *')).map(e => "
            "[e.textContent, e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)])"
        )
        assert heights and all(h < 1.5 for _, h in heights), heights
        _screenshot(browser, name)
    finally:
        browser.set_window_size(1280, 900)


# --------------------------------------------------------------------------------- plain HTTP
def _routes(server) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    photo = server["photos"] / "red_circle_1.jpg"
    return [
        ("GET", "/", None, {}),
        ("POST", "/search", json.dumps({"query": "a red circle"}).encode(), {"Content-Type": "application/json"}),
        ("GET", f"/thumb?path={_q(photo)}", None, {}),
        ("GET", f"/image?path={_q(photo)}", None, {}),
        ("POST", "/search/upload?top_k=3", photo.read_bytes(), {"Content-Type": "image/jpeg"}),
    ]


def test_the_page_routes_answer_their_own_origin(server) -> None:
    for method, route, data, kind in _routes(server):
        status, headers, body = _request(server["url"] + route, method, data, {**kind, "Origin": server["url"]})
        assert status == 200, (route, body)
    status, headers, body = _request(server["url"] + "/")
    assert b'src="app.js"' in body and "frame-ancestors 'none'" in headers["content-security-policy"]
    for asset, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = _request(server["url"] + asset)
        assert status == 200 and headers["content-type"].startswith(kind) and body


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Host": "evil.example"},  # DNS rebinding: the attacker's name resolving to 127.0.0.1
        {"Host": "rebind.evil.example:1234", "Origin": "http://rebind.evil.example:1234"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},  # <img src>
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},  # another port
    ],
)
def test_foreign_pages_are_refused_on_every_page_route(server, headers: dict[str, str]) -> None:
    for method, route, data, kind in _routes(server):
        status, _, body = _request(server["url"] + route, method, data, {**kind, **headers})
        assert status == 403, (route, headers, body)
        assert "error" in json.loads(body) and b"hits" not in body


def test_a_link_from_another_site_opens_the_page(server) -> None:
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert _request(server["url"] + "/", headers=navigate)[0] == 200
    framed = {**navigate, "Sec-Fetch-Dest": "iframe"}
    assert _request(server["url"] + "/", headers=framed)[0] == 403


def test_pictures_outside_the_roots_are_refused_alike(server) -> None:
    for path in (
        server["outside"] / "query.png",
        "/etc/hostname",
        "/no/such/file.jpg",
        server["photos"] / ".." / "outside" / "query.png",
    ):
        for route in ("thumb", "image"):
            status, _, body = _request(f"{server['url']}/{route}?path={_q(path)}")
            assert status == 403 and "outside the allowed roots" in json.loads(body)["error"], (route, path, body)


def test_broken_and_missing_files_are_json_errors(server) -> None:
    for route in ("thumb", "image"):
        for name, code in (("broken.jpg", 415), ("missing.jpg", 404), ("b", 415)):
            status, headers, body = _request(f"{server['url']}/{route}?path={_q(server['photos'] / name)}")
            assert status == code and headers["content-type"] == "application/json", (route, name, body)
            assert json.loads(body)["error"]
    status, _, body = _request(f"{server['url']}/thumb")
    assert status == 422 and "path" in json.loads(body)["error"]


def test_thumbnails_are_cached_on_disk_and_revalidated(server) -> None:
    photo = server["photos"] / "b" / "blue_square_2.jpg"
    url = f"{server['url']}/thumb?path={_q(photo)}&size=100"
    status, headers, body = _request(url)
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert headers["cache-control"].startswith("private") and headers["etag"]
    with Image.open(io.BytesIO(body)) as img:
        assert max(img.size) == 128  # sizes snap to 128, 256, 512, 1024
    cached = list((server["cache"] / "thumbs").rglob("*.jpg"))
    assert any(p.read_bytes() == body for p in cached)
    assert _request(url, headers={"If-None-Match": headers["etag"]})[0] == 304
    os.utime(photo, ns=(1, 1))  # a changed file gets a new key
    again = _request(url)[1]["etag"]
    assert again != headers["etag"]


def test_full_images_as_browsers_show_them(server) -> None:
    status, headers, body = _request(f"{server['url']}/image?path={_q(server['photos'] / 'red_circle_1.jpg')}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert body == (server["photos"] / "red_circle_1.jpg").read_bytes()  # the file itself
    status, headers, body = _request(f"{server['url']}/image?path={_q(server['photos'] / 'sheet.tif')}")
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"  # TIFF: decoded


def test_uploads_are_limited_checked_and_removed(server) -> None:
    url = server["url"] + "/search/upload"
    status, _, body = _request(url, "POST", b"\0" * (MAX_UPLOAD + 1))
    assert status == 413, body
    status, _, body = _request(url, "POST", b"GIF89a but not really")
    assert status == 415 and "the uploaded file" in json.loads(body)["error"]
    assert "/uploads/" not in json.loads(body)["error"]
    status, _, body = _request(url + "?top_k=nope", "POST", (server["outside"] / "query.png").read_bytes())
    assert status == 400 and json.loads(body)["error"].startswith("--top-k nope")
    status, _, body = _request(url + "?image=/etc/hostname", "POST", (server["outside"] / "query.png").read_bytes())
    assert status == 403
    status, _, body = _request(url + "?top_k=2&add=star", "POST", (server["outside"] / "query.png").read_bytes())
    assert status == 200 and len(json.loads(body)["hits"]) == 2
    assert list((server["cache"] / "uploads").iterdir()) == []


def test_auto_threshold_rerank_and_explanations_on_the_page(server, browser) -> None:
    from second_model import write_second_model
    from selenium.webdriver.common.keys import Keys

    model = write_second_model(server["photos"] / ".models" / "tiny-moved")  # under the allowed root
    _open(browser, server)
    browser.find_element("id", "threshold-auto").click()
    assert browser.find_element("id", "threshold-out").text == "auto"
    assert not browser.find_element("id", "threshold").is_enabled()
    _type_query(browser, "a red circle")
    names = _hit_names(browser)
    assert {"red_circle_1.jpg", "red_circle_2.jpg"} <= set(names) and len(names) < 32, names
    assert "(auto)" in browser.find_element("id", "status").text
    tip = browser.find_element("css selector", "#results .hit .score").get_attribute("title")
    assert tip.startswith("a red circle  0.") and tip.endswith("\u00d7 1"), tip  # each term's cosine x weight
    box = browser.find_element("id", "rerank")
    box.send_keys(model)
    before = _searches(browser)
    box.send_keys(Keys.ENTER)
    _wait_for_search(browser, before)
    body = {"query": "a red circle", "threshold": "auto", "rerank": model, "top_k": 48, "explain": True}
    status, _, raw = _request(
        server["url"] + "/search", "POST", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, raw
    expected = [Path(h["path"]).name for h in json.loads(raw)["hits"]]
    assert _hit_names(browser) == expected and expected != names  # the second model's order
