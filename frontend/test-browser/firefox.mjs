// The app in Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi (no browser is ever downloaded):
// run by tests/test_firefox.py under `xvfb-run -a`, which gives Firefox a real WebGL2 context (headless Firefox
// has none on these machines).
//
//   node frontend/test-browser/firefox.mjs URL [--screenshot PATH]     (FIREFOX=/path/to/firefox to choose one)
//
// Opens URL (a server on nano-gpt), waits for the page's own signals (body[data-ready=true], then a drawn frame
// from the test hooks), hovers one cell and prints one JSON object: what the page shows (the WebGL context, the
// readout, the tooltip, the share of non-background pixels, the hovered cell's colour in Firefox's own screenshot,
// console errors) for the pytest to judge. A step that fails prints {"error": ..., "step": ...} and exits 1.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const [url, ...rest] = process.argv.slice(2);
const screenshot = rest.includes("--screenshot") ? rest[rest.indexOf("--screenshot") + 1] : null;
const firefox = process.env.FIREFOX || "/usr/bin/firefox-esr";
const VIEWPORT = { width: 1024, height: 720 };
// The cell hovered: layer 1's attention score of query 4 for key 2 (drawn at column 2, row 4 of slab 0).
const CELL = { tensor: "blocks.1.attn.hook_attn_scores", slab: 0, col: 2, row: 4 };
const TIMEOUT = 30_000;

// Firefox reaches for the network on its own (updates, telemetry, captive portal, experiments, remote settings,
// safe browsing lists): there is no network here but the package registries, so every such service is off or
// pointed nowhere. (puppeteer's profile already turns off many; these are the rest, and a few repeated to be sure.)
// Under strace, a run with these connects to nothing but the app's server and puppeteer's socket, and looks up no
// name; without the proxy and MOZ_REMOTE_SETTINGS_DEVTOOLS it looked up firefox.settings.services.mozilla.com.
const NOWHERE = "http://127.0.0.1:9/";
const PREFS = {
  "app.update.enabled": false, "app.update.auto": false, "app.update.checkInstallTime": false,
  "app.update.disabledForTesting": true, "app.update.url": NOWHERE,
  "app.normandy.enabled": false, "app.normandy.api_url": "", "app.shield.optoutstudies.enabled": false,
  "messaging-system.rsexperimentloader.enabled": false, "browser.discovery.enabled": false,
  "toolkit.telemetry.enabled": false, "toolkit.telemetry.unified": false, "toolkit.telemetry.archive.enabled": false,
  "toolkit.telemetry.server": "", "toolkit.telemetry.updatePing.enabled": false,
  "toolkit.telemetry.shutdownPingSender.enabled": false, "toolkit.telemetry.firstShutdownPing.enabled": false,
  "toolkit.telemetry.newProfilePing.enabled": false, "toolkit.telemetry.bhrPing.enabled": false,
  "datareporting.healthreport.uploadEnabled": false, "datareporting.policy.dataSubmissionEnabled": false,
  "browser.ping-centre.telemetry": false, "browser.newtabpage.activity-stream.telemetry": false,
  "browser.newtabpage.activity-stream.feeds.telemetry": false,
  "network.captive-portal-service.enabled": false, "network.connectivity-service.enabled": false,
  "captivedetect.canonicalURL": "", "network.trr.mode": 5, "network.dns.disablePrefetch": true,
  "network.prefetch-next": false, "network.predictor.enabled": false, "network.http.speculative-parallel-limit": 0,
  "services.settings.server": NOWHERE, "extensions.blocklist.enabled": false,
  "extensions.update.enabled": false, "extensions.systemAddon.update.enabled": false,
  "extensions.getAddons.cache.enabled": false, "media.gmp-manager.updateEnabled": false,
  "media.gmp-gmpopenh264.enabled": false, "media.gmp-widevinecdm.enabled": false,
  "browser.safebrowsing.malware.enabled": false, "browser.safebrowsing.phishing.enabled": false,
  "browser.safebrowsing.downloads.enabled": false, "browser.safebrowsing.downloads.remote.enabled": false,
  "browser.safebrowsing.provider.google4.updateURL": "", "browser.safebrowsing.provider.mozilla.updateURL": "",
  "browser.region.network.url": "", "browser.region.update.enabled": false, "browser.search.geoip.url": "",
  "browser.topsites.contile.enabled": false, "browser.newtabpage.activity-stream.feeds.system.topstories": false,
  "browser.aboutHomeSnippets.updateUrl": "", "browser.startup.homepage_override.mstone": "ignore",
  "geo.provider.network.url": "", "identity.fxaccounts.enabled": false, "security.OCSP.enabled": 0,
  "security.remote_settings.crlite_filters.enabled": false, "security.remote_settings.intermediates.enabled": false,
  "privacy.sanitize.sanitizeOnShutdown": false,
  // And should anything still ask: every http(s) request but to this machine goes to a proxy that is not there
  // (localhost and 127.0.0.1 never go through a proxy), so no name is even looked up.
  "network.proxy.type": 1, "network.proxy.http": "127.0.0.1", "network.proxy.http_port": 9,
  "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": 9, "network.proxy.allow_hijacking_localhost": false,
  "network.proxy.no_proxies_on": "localhost, 127.0.0.1, [::1]",
  // WebGL on Mesa's software rasteriser (llvmpipe under Xvfb): Firefox may block-list it; the test wants it on.
  "webgl.force-enabled": true, "webgl.disabled": false,
};

let step = "launch";
const out = { firefox: null, errors: [] };
let browser;
try {
  browser = await puppeteer.launch({
    browser: "firefox", protocol: "webDriverBiDi", executablePath: firefox, headless: false,
    extraPrefsFirefox: PREFS, defaultViewport: VIEWPORT, timeout: TIMEOUT, protocolTimeout: TIMEOUT,
    args: [`--width=${VIEWPORT.width + 40}`, `--height=${VIEWPORT.height + 200}`],
    // A release build ignores services.settings.server (remote settings) unless this is set.
    env: { ...process.env, MOZ_REMOTE_SETTINGS_DEVTOOLS: "1", MOZ_CRASHREPORTER_DISABLE: "1" },
  });
  out.firefox = await browser.version();
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
  page.on("pageerror", (e) => out.errors.push(String(e)));
  // The test hooks (window.__llmviz) before the page's own script, as the Chromium tests load them; and the
  // first-visit card already dismissed, as for a returning visitor.
  await page.evaluateOnNewDocument(readFileSync(join(here, "..", "dist-test", "testhooks.js"), "utf8"));
  await page.evaluateOnNewDocument("localStorage.setItem('llmviz.intro.dismissed', '1')");

  step = "open the page";
  await page.goto(url);
  step = "wait for body[data-ready=true]";
  await page.waitForSelector("body[data-ready=true]");
  step = "wait for a drawn frame";
  await page.waitForFunction(() => window.__llmviz && window.__llmviz.stats().frames > 0, { polling: "raf" });

  step = "read the WebGL context";
  out.webgl = await page.evaluate(() => {
    const canvas = document.querySelector("#view");
    const gl2 = canvas.getContext("webgl2");  // the app's own context if it is WebGL2; null if it is another kind
    const gl = gl2 ?? canvas.getContext("webgl");
    return {
      webgl2: gl2 instanceof WebGL2RenderingContext, version: gl ? gl.getParameter(gl.VERSION) : null,
      renderer: gl ? gl.getParameter(gl.RENDERER) : null,
    };
  });
  out.stats = await page.evaluate(() => window.__llmviz.stats());

  step = "read the readout";
  out.readout = await page.$eval("#readout", (el) => ({
    visible: !el.hidden && el.getBoundingClientRect().height > 0,
    // biome-ignore lint/performance/useDomNodeTextContent: the text as laid out, as a user reads it
    text: el.innerText,
    token: el.querySelector(".ro-next [data-token]")?.getAttribute("data-token") ?? null,
    answer: el.querySelector("[data-answer]")?.getAttribute("data-answer") ?? null,
  }));

  step = "read the canvas's pixels";
  out.pixels = await page.evaluate(() => window.__llmviz.readPixels());  // the share that differ from the background

  step = `fly to ${CELL.tensor}`;
  const before = await page.evaluate(() => window.__llmviz.stats().frames);
  await page.evaluate((t) => window.__llmviz.flyToBlock(t), CELL.tensor);
  await page.waitForFunction((f) => window.__llmviz.stats().frames > f && !window.__llmviz.flying(), {}, before);

  step = "hover the cell";
  const p = await page.evaluate((c) => window.__llmviz.blockScreenPoint(c.tensor, c.slab, c.col, c.row), CELL);
  out.hovered = { ...CELL, x: p.x, y: p.y };
  await page.mouse.move(p.x, p.y);  // one move, straight onto the cell: no other cell is ever hovered
  step = "wait for the tooltip";
  await page.waitForSelector(`[role=tooltip][data-tensor="${CELL.tensor}"]`, { visible: true });
  await page.waitForSelector("[role=tooltip] .tt-formula", { visible: true });
  out.tooltip = await page.$eval("[role=tooltip]", (el) => ({
    // biome-ignore lint/performance/useDomNodeTextContent: the text as laid out, as a user reads it
    text: el.innerText,
    tensor: el.getAttribute("data-tensor"), index: el.getAttribute("data-index"),
    value: el.querySelector("[data-value]")?.getAttribute("data-value") ?? null,
    formula: el.querySelector(".tt-formula")?.textContent ?? null,
    result: el.querySelector("[data-result]")?.getAttribute("data-result") ?? null,
  }));

  step = "take a screenshot";
  const png = await page.screenshot({ type: "png" });
  if (screenshot) writeFileSync(screenshot, png);
  // What is on screen at the hovered cell, in Firefox's own screenshot (decoded by the page): the composited page,
  // not only WebGL's buffer; beside it the colour WebGL drew there and the scene's background colour.
  out.screen = await page.evaluate(async (b64, x, y) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const img = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    const at = (px, py) => [...ctx.getImageData(px, py, 1, 1).data.slice(0, 3)];
    const cell = at(Math.round(x * img.width / innerWidth), Math.round(y * img.height / innerHeight));
    ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--scene-bg").trim() || "#f8f9fa";
    ctx.fillRect(0, 0, 1, 1);
    return { cell, ground: at(0, 0), drawn: window.__llmviz.readPixels(x, y) };
  }, Buffer.from(png).toString("base64"), p.x, p.y);
  step = "done";
} catch (e) {
  out.error = String(e?.stack ?? e);
  out.step = step;
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(out.error ? 1 : 0);
