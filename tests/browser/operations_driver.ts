/**
 * Drives Debian's chromium through the console's Operations table at URL while the page itself
 * sends requests (a fast route and a failing one), until the table shows their rate, error rate,
 * latency and a chart; prints what it saw as JSON. Usage:
 * deno run -A tests/browser/operations_driver.ts URL ARTIFACTS_DIR CHROMIUM
 */
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, artifacts, executablePath] = Deno.args;
const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${url}/console/?refresh=300`);
  await page.waitForSelector("body[data-loaded=true]");
  // Load from the page: one fast and one failing request every 40 ms.
  await page.evaluate(`setInterval(() => {
    fetch("/api/v2/ops/hello/browser");
    fetch("/api/v2/ops/boom");
  }, 40)`);
  const row = '#operations tr[data-extension="ops"]';
  // Page-side code as strings: this file is type-checked without the DOM library.
  const ready = `(() => {
    const tr = document.querySelector('${row}');
    const text = (cls) => tr?.querySelector("." + cls)?.textContent ?? "";
    const canvas = tr?.querySelector("canvas");
    return Number(text("rate")) > 0 && text("p50") !== "—" && text("errors") !== "—" &&
      Number(canvas?.dataset.points ?? 0) >= 3 && Number(canvas?.dataset.peak ?? 0) > 0;
  })()`;
  try {
    await page.waitForFunction(ready, undefined, { timeout: 60_000 });
  } catch (error) {
    const seen = await page.locator(`${row} td`).allTextContents().catch(() => []);
    throw new Error(
      `${(error as Error).message}; the row showed ${JSON.stringify(seen)}; errors ${
        JSON.stringify(errors)
      }; table ${await page.locator("#operations").innerHTML()}`,
    );
  }
  const cells = await page.locator(`${row} td, ${row} th`).allTextContents();
  // Whether the chart was drawn: some pixel of its canvas is not transparent.
  const chart = await page.evaluate(`(() => {
    const canvas = document.querySelector('${row} canvas');
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
    return { points: Number(canvas.dataset.points), label: canvas.getAttribute("aria-label"), painted };
  })()`) as { points: number; label: string; painted: number };
  await page.screenshot({ path: join(artifacts, "operations.png"), fullPage: true });
  console.log(JSON.stringify({
    headers: await page.locator("#operations thead th").allTextContents(),
    cells,
    chart,
    process: await page.textContent("#process"),
    core: await page.locator('#operations tr[data-extension="core"] td').allTextContents(),
    errors,
  }));
} finally {
  await browser.close();
}
