"""Screenshots of vsep's web page for docs/ui.md, made in Debian's Chromium against a real `vsep serve`.

    python docs/tools/ui_screenshots.py [--models ../shared/reference/models] [--out docs/img]

Needs `apt-get install -y chromium` and `pip install playwright` (requirements-dev.txt). It starts
`vsep serve` on a free loopback port with a fresh data directory, separates the oracle clip with
two models (one job shown while it runs, one in the player) and writes ui-upload.png,
ui-running.png, ui-player.png (1280x720) and ui-phone.png (390x844).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from vsep_core.remote.testing import CHROMIUM, CHROMIUM_ARGS, LiveServer

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT.parent / "shared" / "reference" / "input" / "mardy20s_6s_16bit.flac"
FAST_MODEL = "UVR-MDX-NET-Inst_HQ_3.onnx"
SLOW_MODEL = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"


def main() -> None:
    """Start a server, drive the page through upload, a running job and the player, save the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "reference" / "models")
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        command = [sys.executable, "-m", "vsep_core.cli", "serve", "--data-dir", str(data), "--model_file_dir",
                   str(args.models), "--device", "cpu", "--log_level", "warning"]
        with LiveServer(data, command=command, env={"VSEP_OFFLINE": "1"}, startup_timeout=120) as server, \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(server.url + "/")
            expect(page.locator("#app")).to_be_visible()
            page.set_input_files("#file-input", str(args.clip))
            page.fill("#model-search", "mdx")
            page.select_option("#model-select", f"model:{FAST_MODEL}")
            page.locator("#params").evaluate("d => d.open = true")
            page.screenshot(path=str(args.out / "ui-upload.png"))
            page.locator("#params").evaluate("d => d.open = false")

            page.click("#separate-button")
            page.wait_for_selector(".job[data-status=completed] .actions button", timeout=300_000)
            page.set_input_files("#file-input", str(args.clip))
            page.fill("#model-search", "")
            page.select_option("#model-select", f"model:{SLOW_MODEL}")
            page.click("#separate-button")
            page.wait_for_selector(".job[data-status=processing]", timeout=120_000)
            progress = page.locator(".job[data-status=processing] progress")
            deadline = time.monotonic() + 300
            while float(progress.get_attribute("value") or 0) < 20 and time.monotonic() < deadline:
                time.sleep(0.2)
            page.screenshot(path=str(args.out / "ui-running.png"))

            page.locator(".job[data-status=completed] .actions button").first.click()
            expect(page.locator("#player-message")).to_have_text("Ready.", timeout=60_000)
            page.locator(".lane").first.locator(".mute").click()
            wave = page.locator(".lane .wave").nth(1).bounding_box()
            y = wave["y"] + wave["height"] / 2
            page.mouse.move(wave["x"] + 0.55 * wave["width"], y)  # drag across a lane: a loop region
            page.mouse.down()
            page.mouse.move(wave["x"] + 0.85 * wave["width"], y, steps=8)
            page.mouse.up()
            page.locator(".lane .wave").first.click(position={"x": 0.62 * wave["width"], "y": 30})
            page.screenshot(path=str(args.out / "ui-player.png"))

            page.wait_for_selector(".job[data-status=processing]", state="detached", timeout=600_000)
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            task = page.url.split("#job=")[-1]
            phone.goto(f"{server.url}/#job={task}")
            expect(phone.locator("#player-message")).to_have_text("Ready.", timeout=60_000)
            phone.locator("#player-section").scroll_into_view_if_needed()
            phone.screenshot(path=str(args.out / "ui-phone.png"))
            browser.close()
    print(f"wrote {', '.join(p.name for p in sorted(args.out.glob('ui-*.png')))} to {args.out}")


if __name__ == "__main__":
    main()
