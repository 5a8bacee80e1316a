/* global process, console */
// Renders the gateway's `/docs` page once in headless Chromium and saves a screenshot, so a person
// can look at it. Not a test: CI must not depend on a browser. Debian's Chromium:
//   apt-get install -y chromium
//   node --import tsx gateway/scripts/docs-screenshot.mjs [--url http://127.0.0.1:8080] [--out /tmp/zero-docs.png]
// Without --url it starts the diagnostic echo service and a gateway in-process on free ports.
// It also prints whether Swagger UI rendered operations (from the DOM) and any Content-Security-
// Policy violation Chromium reported (the page must work under its own strict CSP).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && args[at + 1] !== undefined ? args[at + 1] : fallback;
};
const out = option("--out", join(tmpdir(), "zero-docs.png"));
const chromium = option("--chromium", "/usr/bin/chromium");
let baseUrl = option("--url", undefined);
let stop = async () => {};

if (baseUrl === undefined) {
  const { createLogger } = await import("@zero/kit/log");
  const { createTokenVerifier } = await import("@zero/kit/principal");
  const { EchoService } = await import("@zero/proto/zero/testing/v1/echo_pb");
  const { TranscodingService } = await import("@zero/proto/zero/testing/v1/transcoding_pb");
  const { startEchoServer } = await import("@zero/echo/echo-server");
  const { startGateway } = await import("../src/gateway-server.ts");
  const logger = createLogger("docs-screenshot", { level: "warn" });
  // No tokens are checked for the page: an empty key set is enough.
  const verifier = createTokenVerifier({
    issuer: "zero-auth",
    audience: "zero",
    getJwks: async () => ({ keys: [] }),
  });
  const echo = await startEchoServer({ logger, verifier });
  const gateway = await startGateway({
    services: [EchoService, TranscodingService],
    upstreamUrls: { testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier,
  });
  baseUrl = gateway.url;
  stop = async () => {
    await gateway.close(500);
    await echo.close(500);
  };
}

const flags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--hide-scrollbars",
  "--window-size=1280,1600",
  // Lets Swagger UI fetch /openapi.json and render before the capture.
  "--virtual-time-budget=15000",
  "--enable-logging=stderr",
  "--v=0",
];

function runChromium(extra) {
  const profile = mkdtempSync(join(tmpdir(), "zero-docs-chromium-"));
  return new Promise((resolve, reject) => {
    const child = spawn(chromium, [...flags, `--user-data-dir=${profile}`, ...extra, `${baseUrl}/docs`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      rmSync(profile, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

try {
  const shot = await runChromium([`--screenshot=${out}`]);
  const dom = await runChromium(["--dump-dom"]);
  const operations = (dom.stdout.match(/class="opblock opblock-/g) ?? []).length;
  const title = /<h2[^>]*class="title"[^>]*>([^<]*)/.exec(dom.stdout)?.[1] ?? "(no title)";
  const cspViolations = [...shot.stderr.matchAll(/Refused to [^\n]*Content Security Policy[^\n]*/g)].map(
    (m) => m[0],
  );
  console.log(`docs page:        ${baseUrl}/docs`);
  console.log(`screenshot:       ${out} (${statSync(out).size} bytes, chromium exit ${shot.code})`);
  console.log(`rendered title:   ${title.trim()}`);
  console.log(`operations shown: ${operations}`);
  console.log(`CSP violations:   ${cspViolations.length === 0 ? "none" : cspViolations.join("\n  ")}`);
  if (operations === 0) process.exitCode = 1;
} finally {
  await stop();
}
