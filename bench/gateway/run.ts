import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { freePort } from "@zero/testkit/ports";
import { probeTcp, startProcess, type ServerProcess } from "@zero/testkit/server-process";
import type { LoadResult, LoadSpec } from "./load-generator.js";
import type { SutOptions } from "./sut.js";
import type { WakeUpCost } from "./wake-up-cost.js";

// The gateway benchmark: ONE run measures the ceiling of this machine (bare node:http), a direct
// Connect call to the echo service, the same call as REST through the gateway, and the gateway
// with each edge feature (authentication with its cache, Redis rate limiting, tracing) and with
// all of them; then each edge feature again, loaded at the same moment as its baseline (CPU per
// request, which the machine's drift then moves on both sides alike); then the latency the gateway
// adds at half of its saturation, with the bare server at the same rate for reference. The system under test (echo, gateway, Redis) runs on core 0, the
// load generator on core 1.
//
//   pnpm --filter @zero/bench gateway            (or: node --import tsx bench/gateway/run.ts)
//   BENCH_SECONDS=15 BENCH_CONNECTIONS=50 …      (defaults 5 s per measurement, 50 connections)
//
// Only loopback addresses are targeted; every process started here is stopped at the end.

const here = fileURLToPath(new URL(".", import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SUT_CORE = "0";
const LOAD_CORE = "1";

const has = (command: string): boolean => spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
const pinning = has("taskset") && os.cpus().length >= 2;
const useWrk = has("wrk") && process.env.BENCH_LOADGEN !== "node";
const pinned = (core: string, command: string[]): string[] =>
  pinning ? ["taskset", "-c", core, ...command] : command;
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void> | void)[] = [];

interface Target {
  readonly url: string;
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

interface Measurement {
  readonly name: string;
  readonly result: LoadResult;
  /** CPU time of each system-under-test process per request, in µs. */
  readonly cpuUsPerRequest: Record<string, number>;
}

/** One round of the latency phase: each path at the same fixed rate. */
interface Latency {
  readonly ceiling: Measurement;
  readonly direct: Measurement;
  readonly gateway: Measurement;
}

interface Sut {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const wakeUp = await measureWakeUpCostPinned();
  const facts = {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    node: process.version,
    loadAtStart: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
    pinning: pinning
      ? `SUT on core ${SUT_CORE}, load on core ${LOAD_CORE} (taskset)`
      : "none (taskset missing or one core)",
    wakeUpCost: `${wakeUp.backToBackUs.toFixed(1)} µs of work run back-to-back takes ${wakeUp.afterIdleUs.toFixed(1)} µs right after ${wakeUp.idleMs} ms asleep (${(wakeUp.afterIdleUs / wakeUp.backToBackUs).toFixed(0)}×) on the SUT's core: what each wake-up costs here (wake-up-cost.ts)`,
    loadGenerator: useWrk
      ? `wrk (HTTP/1.1, ${CONNECTIONS} connections) for throughput`
      : "in-repo Node generator",
  };
  if (!useWrk)
    process.stderr.write("wrk not found (apt-get install -y wrk): using the in-repo Node load generator\n");
  if (!pinning) process.stderr.write("taskset or a second core missing: processes are not pinned\n");

  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench", alg: "EdDSA", use: "sig" };
  // Shaped like auth's access tokens (a session id, an issue time): the revocation check reads both.
  const token = await new SignJWT({ roles: ["customer"], sid: "bench-session" })
    .setProtectedHeader({ alg: "EdDSA", kid: "bench" })
    .setIssuedAt()
    .setSubject("bench-user")
    .setIssuer("zero-auth")
    .setAudience("zero")
    .setExpirationTime("2h")
    .sign(privateKey);

  const echoBody = '{"message":"hello"}';
  const redis = await startRedisPinned();
  cleanups.push(() => redis.stop());
  const hello = await startSut("hello", {});
  const echo = await startSut("echo", { jwk });
  const gatewayOf = (opts: SutOptions): Promise<Sut> =>
    startSut("gateway", { ...opts, jwk, echoUrl: echo.url });
  // Every process starts once and stays up: the rounds below interleave the scenarios, so a
  // spell of load from other processes on this machine spreads over all of them.
  const [plain, limited, traced, authOff, authOn, allOn] = await Promise.all([
    gatewayOf({}),
    gatewayOf({ redisUrl: redis.url }),
    gatewayOf({ tracing: true }),
    gatewayOf({}),
    gatewayOf({ auth: true, revocationRedisUrl: redis.url }),
    gatewayOf({ auth: true, revocationRedisUrl: redis.url, redisUrl: redis.url, tracing: true }),
  ]);
  const direct: Target = {
    url: echo.url,
    method: "POST",
    path: "/zero.testing.v1.EchoService/Echo",
    headers: { "content-type": "application/json" },
    body: echoBody,
  };
  // Like the direct call: no token (a PUBLIC method; with one, echo would verify it on every call).
  const rest = (gateway: Sut): Target => ({ ...direct, url: gateway.url, path: "/v1/echo" });
  const user = (gateway: Sut): Target => ({
    url: gateway.url,
    method: "GET",
    path: "/v1/echo/whoami",
    headers: { authorization: `Bearer ${token}` },
    body: "",
  });
  const scenarios: Scenario[] = [
    {
      key: "ceiling",
      name: "bare node:http hello",
      suts: { hello },
      target: { ...direct, url: hello.url, path: "/" },
    },
    { key: "directConnect", name: "direct Connect call (echo)", suts: { echo }, target: direct },
    { key: "rest", name: "REST via gateway", suts: { gateway: plain, echo }, target: rest(plain) },
    {
      key: "restLimited",
      name: "REST via gateway + rate limit (Redis)",
      suts: { gateway: limited, echo },
      target: rest(limited),
    },
    {
      key: "restTraced",
      name: "REST via gateway + tracing",
      suts: { gateway: traced, echo },
      target: rest(traced),
    },
    {
      key: "userNoAuth",
      name: "USER route, edge auth off",
      suts: { gateway: authOff, echo },
      target: user(authOff),
    },
    {
      key: "userAuth",
      name: "USER route + edge auth (JWKS, cache, revocation)",
      suts: { gateway: authOn, echo },
      target: user(authOn),
    },
    {
      key: "userAll",
      name: "USER route + auth + rate limit + tracing",
      suts: { gateway: allOn, echo },
      target: user(allOn),
    },
  ];

  const runs = new Map<ScenarioKey, Measurement[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of scenarios) {
      process.stderr.write(`round ${round}/${ROUNDS}: ${scenario.name} … `);
      const m = await throughput(scenario.name, scenario.suts, scenario.target);
      runs.set(scenario.key, [...(runs.get(scenario.key) ?? []), m]);
      process.stderr.write(`${m.result.rps.toFixed(0)} req/s\n`);
    }
  }
  // The edge features again, each loaded at the same moment as its baseline (below).
  const byKey = (key: ScenarioKey): Scenario => scenarios.find((s) => s.key === key) as Scenario;
  const pairs: Pair[] = [
    { name: "+ rate limit", base: byKey("rest"), feature: byKey("restLimited"), featureOnly: [redis.pid] },
    { name: "+ tracing", base: byKey("rest"), feature: byKey("restTraced"), featureOnly: [] },
    {
      name: "+ edge auth (cache, revocation)",
      base: byKey("userNoAuth"),
      feature: byKey("userAuth"),
      featureOnly: [redis.pid],
    },
  ];
  const together: SameMoment[][] = pairs.map(() => []);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [i, pair] of pairs.entries()) {
      process.stderr.write(`round ${round}/${ROUNDS}: ${pair.name} and its baseline at the same moment … `);
      const m = await sameMoment(pair, echo.pid);
      together[i]?.push(m);
      process.stderr.write(`${(m.baseUs / m.featureUs).toFixed(2)}\n`);
    }
  }

  const medians = Object.fromEntries(
    scenarios.map((s) => [s.key, medianMeasurement(runs.get(s.key) ?? [])]),
  ) as Record<ScenarioKey, Measurement>;

  // Latency at half of the gateway's (median) saturation, the same rate on every path, alternating.
  const rate = Math.max(50, Math.round(medians.rest.result.rps / 2));
  const latency: Latency[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}: latency at ${rate} req/s …\n`);
    latency.push({
      // The machine's own floor at this rate: what a bare server pays per request when requests
      // come one wake-up at a time, next to what it pays draining a queue (closed loop).
      ceiling: await openLoop("ceiling", { hello }, { ...direct, url: hello.url, path: "/" }, rate),
      direct: await openLoop("direct", { echo }, direct, rate),
      gateway: await openLoop("rest", { gateway: plain, echo }, rest(plain), rate),
    });
  }

  facts.loadAtStart += ` → ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")} at the end`;
  report(facts, scenarios, runs, medians, rate, latency, pairs, together);
}

type ScenarioKey =
  "ceiling" | "directConnect" | "rest" | "restLimited" | "restTraced" | "userNoAuth" | "userAuth" | "userAll";

interface Scenario {
  readonly key: ScenarioKey;
  readonly name: string;
  readonly suts: Record<string, Sut>;
  readonly target: Target;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The run with the median throughput (its latencies and CPU figures belong together). */
function medianMeasurement(measurements: readonly Measurement[]): Measurement {
  const sorted = [...measurements].sort((a, b) => a.result.rps - b.result.rps);
  return sorted[Math.floor((sorted.length - 1) / 2)] as Measurement;
}

async function startSut(role: "hello" | "echo" | "gateway", opts: SutOptions): Promise<Sut> {
  const child = spawn(
    pinned(SUT_CORE, [
      process.execPath,
      "--import",
      "tsx",
      join(here, "sut.ts"),
      role,
      JSON.stringify(opts),
    ])[0] as string,
    pinned(SUT_CORE, [
      process.execPath,
      "--import",
      "tsx",
      join(here, "sut.ts"),
      role,
      JSON.stringify(opts),
    ]).slice(1),
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => children.delete(child));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${role} did not start within 60 s`)), 60_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      const match = /READY (\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once("exit", (code) => reject(new Error(`${role} exited (${code}) before it was ready`)));
  });
  return {
    url,
    pid: child.pid as number,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

async function startRedisPinned(): Promise<ServerProcess & { url: string }> {
  const port = await freePort();
  const server = await startProcess({
    command: pinning ? "taskset" : "redis-server",
    args: [
      ...(pinning ? ["-c", SUT_CORE, "redis-server"] : []),
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    isReady: () => probeTcp(port, "+PONG", "PING\r\n"),
    installHint: "apt-get install -y redis-server",
  });
  return Object.assign(server, { url: `redis://127.0.0.1:${port}` });
}

/** An edge feature and the scenario without it; `featureOnly`: processes only the feature uses. */
interface Pair {
  readonly name: string;
  readonly base: Scenario;
  readonly feature: Scenario;
  readonly featureOnly: readonly number[];
}

/** CPU µs of the whole system under test per request, for each path of a pair loaded together. */
interface SameMoment {
  readonly baseUs: number;
  readonly featureUs: number;
}

/**
 * Both gateways of a pair loaded at the same moment (half the connections each, from core 1), so a
 * change in the machine's speed hits both. Each path's cost per request: its gateway's CPU per
 * request, the echo service's (shared: its CPU over both paths' requests, the same call), and for
 * the feature, what only it uses (Redis). On one saturated core, throughput is the inverse of that
 * cost, so baseUs / featureUs is the share of throughput the feature keeps.
 */
async function sameMoment(pair: Pair, echoPid: number): Promise<SameMoment> {
  const half = Math.max(1, Math.floor(CONNECTIONS / 2));
  const both = (seconds: number): Promise<LoadResult[]> =>
    Promise.all(
      [pair.base, pair.feature].map((s) => load(s.target, { seconds, rate: 0, connections: half })),
    );
  const gateway = (s: Scenario): number => (s.suts.gateway as Sut).pid;
  const pids = [gateway(pair.base), gateway(pair.feature), echoPid, ...pair.featureOnly];
  await both(WARMUP_SECONDS);
  const before = pids.map(cpuTicks);
  const [base, feature] = (await both(SECONDS)) as [LoadResult, LoadResult];
  const [gBase, gFeature, echo, ...only] = pids.map((pid, i) =>
    ticksToUs(cpuTicks(pid) - (before[i] as number)),
  );
  const echoPerRequest = (echo as number) / Math.max(1, base.requests + feature.requests);
  const onlyUs = only.reduce((sum, us) => sum + us, 0);
  return {
    baseUs: (gBase as number) / Math.max(1, base.requests) + echoPerRequest,
    featureUs: ((gFeature as number) + onlyUs) / Math.max(1, feature.requests) + echoPerRequest,
  };
}

/** /proc/<pid>/stat counts CPU time in clock ticks, 100 per second on Linux (USER_HZ). */
const ticksToUs = (ticks: number): number => (ticks / 100) * 1e6;

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // utime and stime are fields 14 and 15 of stat; here 0-based after the command name (field 3 is index 0).
  return Number(fields[11]) + Number(fields[12]);
}

async function throughput(name: string, suts: Record<string, Sut>, target: Target): Promise<Measurement> {
  await load(target, { seconds: WARMUP_SECONDS, rate: 0 });
  return measured(name, suts, () => load(target, { seconds: SECONDS, rate: 0 }));
}

/** Latency at a fixed rate, and what each process spent per request at that rate. */
async function openLoop(
  name: string,
  suts: Record<string, Sut>,
  target: Target,
  rate: number,
): Promise<Measurement> {
  await load(target, { seconds: WARMUP_SECONDS, rate, node: true });
  return measured(name, suts, () => load(target, { seconds: SECONDS, rate, node: true }));
}

/** A load run with the CPU time each process used per request during it (from /proc). */
async function measured(
  name: string,
  suts: Record<string, Sut>,
  run: () => Promise<LoadResult>,
): Promise<Measurement> {
  const before = Object.fromEntries(Object.entries(suts).map(([k, s]) => [k, cpuTicks(s.pid)]));
  const result = await run();
  const cpuUsPerRequest = Object.fromEntries(
    Object.entries(suts).map(([k, s]) => [
      k,
      ticksToUs(cpuTicks(s.pid) - (before[k] as number)) / Math.max(1, result.requests),
    ]),
  );
  return { name, result, cpuUsPerRequest };
}

/** One load run from core 1: wrk for closed-loop throughput when installed, else the Node generator. */
async function load(
  target: Target,
  opts: { seconds: number; rate: number; node?: boolean; connections?: number },
): Promise<LoadResult> {
  const connections = opts.connections ?? CONNECTIONS;
  const url = new URL(target.url);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname))
    throw new Error("the benchmark only targets loopback");
  if (useWrk && opts.rate === 0 && opts.node !== true) return wrk(target, opts.seconds, connections);
  const spec: LoadSpec = {
    host: url.hostname,
    port: Number(url.port),
    method: target.method,
    path: target.path,
    headers: target.headers,
    body: target.body,
    connections,
    durationMs: opts.seconds * 1000,
    warmupMs: 0,
    rate: opts.rate,
  };
  const command = pinned(LOAD_CORE, [
    process.execPath,
    "--import",
    "tsx",
    join(here, "load-generator.ts"),
    JSON.stringify(spec),
  ]);
  const out = await run(command, opts.seconds * 1000 + 30_000);
  return JSON.parse(out.trim().split("\n").pop() ?? "{}") as LoadResult;
}

async function wrk(target: Target, seconds: number, connections: number): Promise<LoadResult> {
  const dir = mkdtempSync(join(os.tmpdir(), "zero-bench-"));
  try {
    const script = join(dir, "request.lua");
    writeFileSync(
      script,
      [
        `wrk.method = ${JSON.stringify(target.method)}`,
        `wrk.body = ${JSON.stringify(target.body)}`,
        ...Object.entries(target.headers).map(
          ([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`,
        ),
      ].join("\n"),
    );
    const command = pinned(LOAD_CORE, [
      "wrk",
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      "-s",
      script,
      `${target.url}${target.path}`,
    ]);
    const out = await run(command, seconds * 1000 + 30_000);
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
    const ms = (label: string): number => {
      const match = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
      if (!match) return 0;
      const value = Number(match[1]);
      return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
    };
    const max = /Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(out);
    return {
      requests,
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
      errors,
      p50Ms: ms("50"),
      p90Ms: ms("90"),
      p99Ms: ms("99"),
      maxMs: max ? Number(max[1]) * (max[2] === "us" ? 0.001 : max[2] === "s" ? 1000 : 1) : 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run on the SUT's core before anything else is started there, so nothing else wakes it. */
async function measureWakeUpCostPinned(): Promise<WakeUpCost> {
  const out = await run(
    pinned(SUT_CORE, [process.execPath, "--import", "tsx", join(here, "wake-up-cost.ts")]),
    60_000,
  );
  return JSON.parse(out.trim()) as WakeUpCost;
}

function run(command: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] as string, command.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    children.add(child);
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${command.join(" ")} exited with ${code}:\n${out}`));
    });
  });
}

interface Row {
  readonly label: string;
  readonly value: number;
  /** The figure of each round, in order. */
  readonly each: string;
  readonly target: string;
  readonly met: boolean;
}

function report(
  facts: Record<string, string | number>,
  scenarios: readonly Scenario[],
  runs: ReadonlyMap<ScenarioKey, Measurement[]>,
  m: Record<ScenarioKey, Measurement>,
  rate: number,
  latency: readonly Latency[],
  pairs: readonly Pair[],
  together: readonly (readonly SameMoment[])[],
): void {
  const lines: string[] = [];
  const out = (line = ""): number => lines.push(line);
  out("## Machine");
  for (const [key, value] of Object.entries(facts)) out(`- ${key}: ${value}`);
  out(
    `- rounds: ${ROUNDS} × ${SECONDS} s per scenario (after ${WARMUP_SECONDS} s of warm-up), interleaved; medians shown`,
  );
  out();
  out("## Throughput (closed loop)");
  out("| scenario | req/s (median) | all rounds | p50 ms | p99 ms | errors | CPU µs/request (median run) |");
  out("|---|---:|---|---:|---:|---:|---|");
  for (const scenario of scenarios) {
    const { result, cpuUsPerRequest } = m[scenario.key];
    const all = (runs.get(scenario.key) ?? []).map((r) => r.result.rps.toFixed(0)).join(" / ");
    const errors = (runs.get(scenario.key) ?? []).reduce((sum, r) => sum + r.result.errors, 0);
    const cpu = Object.entries(cpuUsPerRequest)
      .map(([k, v]) => `${k} ${v.toFixed(0)}`)
      .join(", ");
    out(
      `| ${scenario.name} | ${result.rps.toFixed(0)} | ${all} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${errors} | ${cpu} |`,
    );
  }
  out();
  // Per pair, per round: the share of throughput the feature keeps (baseline µs / feature µs).
  const keptEach = pairs.map((_, i) => (together[i] ?? []).map((r) => r.baseUs / r.featureUs));
  out("## Edge features loaded at the same moment as their baseline (CPU µs per request, whole SUT)");
  out("| feature | baseline µs (median) | with feature µs (median) | kept (baseline / feature) each round |");
  out("|---|---:|---:|---|");
  for (const [i, pair] of pairs.entries()) {
    const rounds = together[i] ?? [];
    out(
      `| ${pair.name} | ${median(rounds.map((r) => r.baseUs)).toFixed(0)} | ${median(
        rounds.map((r) => r.featureUs),
      ).toFixed(0)} | ${(keptEach[i] ?? []).map((k) => k.toFixed(2)).join(" / ")} |`,
    );
  }
  out();
  const added = median(latency.map((l) => l.gateway.result.p50Ms - l.direct.result.p50Ms));
  out(`## Latency at ${rate} req/s (half of the gateway's median saturation; open loop, Node generator)`);
  // CPU per request at this rate next to the closed-loop figures above: a Node server answering
  // requests one wake-up at a time spends more on each than one draining a queue, so "half of
  // saturation" keeps its core busier than half (RESULTS.md, sessions 5 and 9). The bare server's
  // row shows how much of that is the machine's: it runs no code of Zero's.
  out(
    "| path | p50 ms (median) | p50 each round | p90 ms | p99 ms | errors | CPU µs/request (median) | × closed-loop CPU | SUT core busy |",
  );
  out("|---|---:|---|---:|---:|---:|---|---:|---:|");
  const paths = [
    ["bare node:http hello", (l: Latency) => l.ceiling, "ceiling"],
    ["direct Connect (echo)", (l: Latency) => l.direct, "directConnect"],
    ["REST via gateway", (l: Latency) => l.gateway, "rest"],
  ] as const;
  const sum = (values: readonly number[]): number => values.reduce((total, v) => total + v, 0);
  for (const [label, pick, closedLoop] of paths) {
    const results = latency.map((l) => pick(l).result);
    const each = results.map((r) => r.p50Ms.toFixed(3)).join(" / ");
    const p50 = median(results.map((r) => r.p50Ms));
    const p90 = median(results.map((r) => r.p90Ms));
    const p99 = median(results.map((r) => r.p99Ms));
    const errors = results.reduce((total, r) => total + r.errors, 0);
    const processes = Object.keys(pick(latency[0] as Latency).cpuUsPerRequest);
    const cpu = processes.map((k) => median(latency.map((l) => pick(l).cpuUsPerRequest[k] ?? 0)));
    const busy = (sum(cpu) * rate) / 1e6;
    const saturated = sum(Object.values(m[closedLoop].cpuUsPerRequest));
    out(
      `| ${label} | ${p50.toFixed(3)} | ${each} | ${p90.toFixed(3)} | ${p99.toFixed(3)} | ${errors} | ${processes
        .map((k, i) => `${k} ${(cpu[i] as number).toFixed(0)}`)
        .join(", ")} | ${(sum(cpu) / Math.max(1, saturated)).toFixed(1)} | ${(busy * 100).toFixed(0)} % |`,
    );
  }
  out();
  // Each ratio is taken within a round, where its two scenarios ran seconds apart, and the median
  // of the rounds is reported: a ratio of medians pairs one round's figure with another's, and on a
  // shared VM the machine's speed drifts more between rounds than within one.
  const roundRatios = (a: ScenarioKey, b: ScenarioKey): number[] => {
    const as = runs.get(a) ?? [];
    const bs = runs.get(b) ?? [];
    return as.map((x, i) => x.result.rps / Math.max(1, bs[i]?.result.rps ?? 0));
  };
  const ratioRow = (label: string, a: ScenarioKey, b: ScenarioKey, min?: number): Row => {
    const each = roundRatios(a, b);
    const value = median(each);
    return {
      label,
      value,
      each: each.map((r) => r.toFixed(2)).join(" / "),
      target: min === undefined ? "(info)" : `≥ ${min.toFixed(2)}`,
      met: min === undefined || value >= min,
    };
  };
  const rows: Row[] = [
    ratioRow("REST via gateway / direct Connect", "rest", "directConnect", 0.4),
    {
      label: "gateway-added p50 latency (ms)",
      value: added,
      each: latency.map((l) => (l.gateway.result.p50Ms - l.direct.result.p50Ms).toFixed(2)).join(" / "),
      target: "≤ 0.50",
      met: added <= 0.5,
    },
    ratioRow("+ rate limit / REST via gateway", "restLimited", "rest", 0.8),
    ratioRow("+ tracing / REST via gateway", "restTraced", "rest", 0.8),
    ratioRow("+ edge auth (cache, revocation) / auth off", "userAuth", "userNoAuth", 0.8),
    // The same three from the same-moment phase: less exposed to the machine's drift (Session 7).
    ...pairs.map((pair, i): Row => {
      const kept = keptEach[i] ?? [];
      return {
        label: `${pair.name}, loaded together with its baseline (CPU)`,
        value: median(kept),
        each: kept.map((k) => k.toFixed(2)).join(" / "),
        target: "≥ 0.80",
        met: median(kept) >= 0.8,
      };
    }),
    ratioRow("all edge features / none (USER route)", "userAll", "userNoAuth"),
    ratioRow("direct Connect / bare node:http ceiling", "directConnect", "ceiling"),
  ];
  out("## Ratios and targets (median of the rounds' own ratios)");
  out("| ratio | value | each round | target | met |");
  out("|---|---:|---|---|---|");
  // Three decimals: a missed 0.398 must not print as the 0.40 it was measured against.
  for (const { label, value, each, target, met } of rows)
    out(`| ${label} | ${value.toFixed(3)} | ${each} | ${target} | ${met ? "yes" : "NO"} |`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function shutdown(): Promise<void> {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const child of children) child.kill("SIGTERM");
}

process.on("SIGINT", () => {
  void shutdown().finally(() => process.exit(130));
});

try {
  await main();
} finally {
  await shutdown();
}
