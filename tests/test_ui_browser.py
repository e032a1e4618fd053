"""The web page in a real browser: Playwright drives Debian's Chromium against a real `vsep serve`.

The server runs the real CLI with the oracle's models (../shared/reference/models) and a token;
the jobs separate the 6 s oracle clip with the small MDX model. Needs `apt-get install -y chromium`
(the README's install step; .ci/run does it) and `playwright` (requirements-dev.txt).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REFERENCE, cli_env
from vsep_core.audio import AUDIO_EXTENSIONS
from vsep_core.remote.testing import CHROMIUM, CHROMIUM_ARGS, LiveServer

pytestmark = pytest.mark.slow

TOKEN = "browser-token-42"
CLIP = REFERENCE / "input" / "mardy20s_6s_16bit.flac"
FAST_MODEL = "UVR-MDX-NET-Inst_HQ_3.onnx"
SLOW_MODEL = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("browser") / "data"
    command = [sys.executable, "-m", "vsep_core.cli", "serve", "--data-dir", str(data), "--model_file_dir",
               str(REFERENCE / "models"), "--device", "cpu", "--max-upload-mb", "2", "--log_level", "warning"]
    with LiveServer(data, token=TOKEN, command=command, env=cli_env(), startup_timeout=120) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A page that has been given the token (asked once, kept for the session)."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url + "/")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()
    yield page
    context.close()


def submit(page, model: str, path: Path = CLIP) -> None:
    page.set_input_files("#file-input", str(path))
    page.select_option("#model-select", f"model:{model}")
    page.click("#separate-button")


def job_row(page, status: str):
    return page.locator(f".job[data-status={status}]")


def export_mix(page, tmp_path: Path, name: str) -> np.ndarray:
    with page.expect_download() as info:
        page.click("#export-mix")
    target = tmp_path / name
    info.value.save_as(target)
    return sf.read(target, dtype="float64")[0]


def server_stems(server: LiveServer, task_id: str) -> dict[str, np.ndarray]:
    out = server.data_dir / "jobs" / task_id / "output"
    return {p.name.split("_(")[1].split(")")[0]: sf.read(p, dtype="float64")[0] for p in out.iterdir()}


def test_the_page_asks_for_the_token_once_and_refuses_a_wrong_one(browser, server):
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator("#token-section")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    page.fill("#token-input", "wrong")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-error")).to_have_text("The server refused this token.")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()
    page.reload()  # kept for the session: not asked again
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#token-section")).to_be_hidden()
    context.close()


def test_upload_separate_play_mute_solo_volume_and_export_the_mix(page, server, tmp_path):
    from playwright.sync_api import expect

    page.fill("#model-search", "inst hq 3")
    expect(page.locator("#model-select option", has_text="on disk").first).to_be_attached()
    submit(page, FAST_MODEL)
    expect(page.locator("#upload-message")).to_have_text("1 job(s) queued.")
    done = job_row(page, "completed").filter(has_text=FAST_MODEL).first
    expect(done).to_be_visible(timeout=JOB_TIMEOUT_MS)
    task_id = done.get_attribute("data-id")
    done.locator(".actions button").click()
    expect(page.locator("#player-message")).to_have_text("Ready.", timeout=60_000)
    stems = server_stems(server, task_id)
    lanes = page.locator(".lane")
    expect(lanes).to_have_count(len(stems))
    assert sorted(lanes.evaluate_all("ls => ls.map(l => l.dataset.stem)")) == sorted(stems) == ["Instrumental",
                                                                                               "Vocals"]
    frames = len(stems["Vocals"])
    unlabelled = page.evaluate("""() => [...document.querySelectorAll("input, select, button")]
        .filter(e => !(e.labels?.length || e.getAttribute("aria-label") || e.textContent.trim()))
        .map(e => e.id || e.outerHTML.slice(0, 80))""")
    assert unlabelled == []  # every control has a name a screen reader can say

    vocals = page.locator(".lane[data-stem=Vocals]")
    vocals.locator(".mute").click()
    expect(vocals.locator(".mute")).to_have_attribute("aria-pressed", "true")
    page.select_option("#mix-format", "wav")
    mix = export_mix(page, tmp_path, "muted.wav")
    assert mix.shape == stems["Instrumental"].shape and len(mix) == frames
    np.testing.assert_allclose(mix, np.clip(stems["Instrumental"], -1, 1), atol=1.01 / 32768)

    vocals.locator(".mute").click()  # unmute, then solo the vocals: only they are heard
    vocals.locator(".solo").click()
    np.testing.assert_allclose(export_mix(page, tmp_path, "solo.wav"), np.clip(stems["Vocals"], -1, 1),
                               atol=1.01 / 32768)
    vocals.locator(".solo").click()
    vocals.locator("input[type=range]").fill("0.5")
    expected = np.clip(0.5 * stems["Vocals"] + stems["Instrumental"], -1, 1)
    np.testing.assert_allclose(export_mix(page, tmp_path, "volume.wav"), expected, atol=1.51 / 32768)

    for lane in ("Vocals", "Instrumental"):
        page.locator(f".lane[data-stem={lane}] .mute").click()
    page.select_option("#mix-format", "flac")
    silence = export_mix(page, tmp_path, "silence.flac")
    assert silence.shape == stems["Vocals"].shape and not silence.any()

    # keyboard: M and S act on the focused lane, Space plays and pauses on one clock
    vocals.focus()
    page.keyboard.press("m")
    expect(vocals.locator(".mute")).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("s")
    expect(vocals.locator(".solo")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press(" ")
    expect(page.locator("#play-button")).to_have_text("Pause")
    expect(page.locator("#time-display")).not_to_have_text("0:00.0 / 0:06.0", timeout=10_000)
    page.keyboard.press(" ")
    expect(page.locator("#play-button")).to_have_text("Play")
    paused_at = page.locator("#time-display").text_content()
    time.sleep(0.3)
    assert page.locator("#time-display").text_content() == paused_at

    # export is reachable from the transport with the keyboard alone
    page.focus("#play-button")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "export-mix":
            break
    assert page.evaluate("document.activeElement.id") == "export-mix"

    # seek by clicking a lane: a click at 3/4 of the width lands at 3/4 of the song
    box = vocals.locator(".wave").bounding_box()
    vocals.locator(".wave").click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    expect(page.locator("#time-display")).to_have_text("0:04.5 / 0:06.0")

    with page.expect_download() as info:
        vocals.locator(".download").click()
    info.value.save_as(tmp_path / "vocals-download")
    vocals_file = next((server.data_dir / "jobs" / task_id / "output").glob("*_(Vocals)_*"))
    assert info.value.suggested_filename == vocals_file.name
    assert (tmp_path / "vocals-download").read_bytes() == vocals_file.read_bytes()
    with page.expect_download() as info:
        page.click("#export-zip")
    import zipfile

    info.value.save_as(tmp_path / "stems.zip")
    assert sorted(zipfile.ZipFile(tmp_path / "stems.zip").namelist()) == sorted(
        p.name for p in (server.data_dir / "jobs" / task_id / "output").iterdir())

    # the job list and the open job survive a reload: they are the server's job store
    page.reload()
    expect(page.locator(f'.job[data-id="{task_id}"]')).to_have_attribute("data-status", "completed")
    expect(page.locator("#player-message")).to_have_text("Ready.", timeout=60_000)
    expect(page.locator(".lane")).to_have_count(2)

    # ... and a server restart: the page says it lost the server, then carries on with the same jobs
    rows = page.locator(".job")
    before = rows.evaluate_all("rs => rs.map(r => r.dataset.id + ':' + r.dataset.status)")
    server.stop()
    expect(page.locator("#banner")).to_contain_text("Lost contact with the server", timeout=15_000)
    server.start()
    expect(page.locator("#banner")).to_be_hidden(timeout=30_000)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.id + ':' + r.dataset.status)") == before
    page.select_option("#mix-format", "wav")
    assert len(export_mix(page, tmp_path, "after-restart.wav")) == frames

    # the job on screen goes away while it plays (expired here): playback stops, the page says why
    def expired(route):
        jobs = route.fetch().json()
        for job in jobs:
            if job["task_id"] == task_id:
                job.update(status="expired", files={}, error="the results were removed (test)")
        route.fulfill(status=200, content_type="application/json", body=json.dumps(jobs))

    page.click("#play-button")
    expect(page.locator("#play-button")).to_have_text("Pause")
    page.route("**/ui/api/jobs", expired)
    expect(page.locator("#player-message")).to_have_text(
        "This job is no longer available (the results were removed (test)); playback stopped.", timeout=10_000)
    expect(page.locator("#play-button")).to_have_text("Play")
    expect(page.locator("#play-button")).to_be_disabled()
    expect(page.locator(".lane")).to_have_count(0)


def test_cancel_a_running_job(page, server):
    from playwright.sync_api import expect

    submit(page, SLOW_MODEL)
    row = page.locator(".job").first
    expect(row).to_have_attribute("data-status", "processing", timeout=JOB_TIMEOUT_MS)
    task_id = row.get_attribute("data-id")
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(row.locator(".state")).to_have_text("Cancelled")
    assert not (server.data_dir / "jobs" / task_id / "output").exists()
    assert not (server.data_dir / "jobs" / task_id / "input").exists()


def test_bad_files_and_bad_parameters_are_refused_with_a_message(page, server, tmp_path):
    from playwright.sync_api import expect

    before = {p.name for p in (server.data_dir / "jobs").iterdir()}
    page.locator("#drop-zone").evaluate("""zone => {
        const files = new DataTransfer();
        files.items.add(new File(["not audio"], "dropped.txt", {type: "text/plain"}));
        files.items.add(new File([new Uint8Array(4000)], "dropped.wav", {type: "audio/wav"}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
    }""")
    readable = " ".join(AUDIO_EXTENSIONS)
    expect(page.locator("#chosen-files li")).to_have_text([f"dropped.txt: not an audio file vsep reads ({readable})",
                                                           "dropped.wav (4 KiB)"])
    (tmp_path / "notes.txt").write_text("not audio")
    page.set_input_files("#file-input", str(tmp_path / "notes.txt"))
    expect(page.locator("#chosen-files li.bad")).to_contain_text("notes.txt: not an audio file vsep reads")
    page.click("#separate-button")
    expect(page.locator("#upload-message")).to_contain_text("None of the chosen files can be separated")
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros((44100 * 13, 2), np.float32), 44100, subtype="PCM_16")  # 2.2 MB > --max-upload-mb 2
    page.set_input_files("#file-input", str(big))
    expect(page.locator("#chosen-files li.bad")).to_contain_text("larger than this server accepts (2.0 MiB)")

    # the form is the server's: one control per field of POST /separate, grouped by architecture
    import httpx

    fields = httpx.get(f"{server.url}/ui/api/info", headers=server.headers()).json()["fields"]
    names = page.locator("#param-groups .field :is(input, select)").evaluate_all("es => es.map(e => e.name)")
    assert names == [f["name"] for f in fields] and "mdxc_overlap" in names and "vr_aggression" in names
    assert page.locator("#field-output_bit_depth option").all_text_contents() == ["server default", "16", "24", "32"]

    # the browser enforces the form's limits ...
    page.set_input_files("#file-input", str(CLIP))
    page.locator("#params summary").first.click()
    page.locator("details[data-group=mdx_params] > summary").click()
    page.fill("#field-mdx_overlap", "1.5")
    expect(page.locator("#field-mdx_overlap-problem")).to_have_text("mdx_overlap must be at most 0.999")
    page.select_option("#model-select", f"model:{FAST_MODEL}")
    page.click("#separate-button")
    expect(page.locator("#upload-message")).to_have_text("Fix the highlighted parameter first.")
    assert {p.name for p in (server.data_dir / "jobs").iterdir()} == before

    # a file that only looks like audio is uploaded, fails on the server, and the list says why
    page.fill("#field-mdx_overlap", "")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    page.set_input_files("#file-input", str(broken))
    page.click("#separate-button")
    row = page.locator(".job").filter(has_text="broken.wav").first
    expect(row).to_have_attribute("data-status", "error", timeout=JOB_TIMEOUT_MS)
    expect(row.locator(".state")).to_contain_text("Failed: ")
    expect(row.locator(".state")).to_contain_text("cannot decode broken.wav: ")
    assert str(server.data_dir) not in row.locator(".state").text_content()  # no server paths on the page
    task_id = row.get_attribute("data-id")
    assert not any((server.data_dir / "jobs" / task_id).rglob("*.*"))  # no upload, no half-written stem


def test_the_server_enforces_the_limits_again_when_the_page_does_not(browser, server, tmp_path):
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()

    def without_limits(route):
        info = route.fetch().json()
        for field in info["fields"]:
            field.update({"min": None, "max": None, "exclusive_min": None})
        route.fulfill(status=200, content_type="application/json", body=json.dumps(info))

    page.route("**/ui/api/info", without_limits)
    page.goto(server.url + "/#token=" + TOKEN)
    expect(page.locator("#app")).to_be_visible()
    assert "token" not in page.url  # the token in the fragment is kept, then removed from the address bar
    before = {p.name for p in (server.data_dir / "jobs").iterdir()}
    page.set_input_files("#file-input", str(CLIP))
    page.select_option("#model-select", f"model:{FAST_MODEL}")
    page.locator("#params summary").first.click()
    page.fill("#field-mdx_overlap", "1.5")
    page.click("#separate-button")
    expect(page.locator("#uploads li.error")).to_contain_text(
        re.compile("mdx_overlap: input should be less than or equal to", re.I))
    assert {p.name for p in (server.data_dir / "jobs").iterdir()} == before
    context.close()


def test_vsep_ui_serves_on_loopback_and_opens_the_browser(tmp_path):
    """`vsep ui` with $BROWSER set to a script that records the address it is asked to open."""
    import os
    import subprocess

    import httpx

    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    fake_browser.chmod(0o755)
    env = cli_env(BROWSER=str(fake_browser), VSEP_API_TOKEN="ui-secret", VSEP_SERVER_DATA_DIR=str(tmp_path / "d"))
    proc = subprocess.Popen([sys.executable, "-m", "vsep_core.cli", "ui", "--model_file_dir",
                             str(REFERENCE / "models")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for _ in range(600):
            if opened.exists() and opened.read_text().strip():
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.1)
        url = opened.read_text().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/#token=ui-secret")
        base = url.split("/#")[0]
        page = httpx.get(base + "/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "app.js" in page.text
        assert httpx.get(base + "/ui/api/info").status_code == 401
        assert httpx.get(base + "/ui/api/info", headers={"Authorization": "Bearer ui-secret"}).status_code == 200
    finally:
        os.killpg(proc.pid, 2)
        proc.wait(30)
