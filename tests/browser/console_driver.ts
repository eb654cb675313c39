/**
 * Drives Debian's chromium with playwright-core through the console at URL, and prints what it
 * saw as JSON (the test asserts on it). A process of its own: playwright-core probes /proc when
 * it loads, which Deno allows only with all permissions, so the server under test keeps the
 * test's narrow ones. Usage: deno run -A tests/browser/console_driver.ts URL ARTIFACTS_DIR CHROMIUM [TOKEN]
 */
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, artifacts, executablePath, token] = Deno.args;
const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${url}/`);
  let askedForToken = false;
  if (token) {
    // The server requires a token: the console asks for one, then loads.
    await page.waitForSelector("body[data-needs-token=true]");
    askedForToken = await page.isVisible("#login");
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Use token" }).click();
  }
  await page.waitForSelector("body[data-loaded=true]");
  await page.keyboard.press("Tab");
  const firstFocus = await page.evaluate("document.activeElement?.textContent");

  const rows = (selector: string) => page.locator(`${selector} tbody tr`).allTextContents();
  const report: Record<string, unknown> = {
    version: await page.textContent("#version"),
    health: await page.textContent("#health"),
    extensions: await rows("#extensions"),
    slices: await rows("#slices"),
    tasks: await rows("#tasks"),
    graphNodes: await page.locator("#graph g.node").evaluateAll((nodes) =>
      nodes.map((n) => ({ slice: n.getAttribute("data-slice"), class: n.getAttribute("class") }))
    ),
    endpoints: await page.locator("#endpoints li").allTextContents(),
    firstFocus,
    askedForToken,
    loginHidden: await page.isHidden("#login"),
  };

  const greet = page.locator("#endpoints li", { hasText: "/api/v2/greeting/{name}" });
  await greet.getByLabel("name").fill("browser");
  await greet.getByRole("button").click();
  await greet.locator("pre").filter({ hasText: "hello browser" }).waitFor();
  report.tried = await greet.locator("pre").textContent();

  await page.screenshot({ path: join(artifacts, "console.png"), fullPage: true });
  await page.setViewportSize({ width: 375, height: 800 });
  report.widthAt375 = await page.evaluate("document.documentElement.scrollWidth");
  await page.screenshot({ path: join(artifacts, "console-375.png"), fullPage: true });
  report.errors = errors;
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
