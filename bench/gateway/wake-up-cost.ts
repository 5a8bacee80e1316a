import { pathToFileURL } from "node:url";

// How much slower this machine runs a small piece of work right after its process slept than
// back-to-back: the price of every wake-up, which a request crossing two processes pays at each
// hop when the load leaves gaps between requests. run.ts prints it with the machine facts, because
// on some VMs it, not the code, decides the latency at half of saturation (bench/gateway/RESULTS.md,
// Session 8: 6 µs of work took ~60 µs after 5–50 ms of sleep).
//
//   node --import tsx bench/gateway/wake-up-cost.ts      (run.ts pins it to the SUT's core)

export interface WakeUpCost {
  /** Median µs of the work when run again at once (setImmediate between runs). */
  readonly backToBackUs: number;
  /** Median µs of the same work run right after a timer of `idleMs`. */
  readonly afterIdleUs: number;
  readonly idleMs: number;
}

// A few µs of what a request handler does: parse and serialise a small JSON document.
const document = JSON.stringify({
  id: "0f1e2d3c",
  message: "hello",
  tags: ["a", "b"],
  n: 42,
  nested: { ok: true },
});
const work = (): number => JSON.stringify(JSON.parse(document)).length;

const timeWork = (): number => {
  const start = process.hrtime.bigint();
  work();
  return Number(process.hrtime.bigint() - start) / 1000;
};

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] as number;
};

const after = (idleMs: number): Promise<void> =>
  new Promise((resolve) => (idleMs === 0 ? setImmediate(resolve) : setTimeout(resolve, idleMs)));

async function sample(idleMs: number, count: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    await after(idleMs);
    times.push(timeWork());
  }
  return median(times);
}

export async function measureWakeUpCost(idleMs = 10, count = 200): Promise<WakeUpCost> {
  for (let i = 0; i < 20_000; i++) work(); // optimised before it is timed
  // Alternated in blocks, so a change in the machine's speed during the probe hits both.
  const backToBack: number[] = [];
  const afterIdle: number[] = [];
  for (let block = 0; block < 4; block++) {
    backToBack.push(await sample(0, count / 4));
    afterIdle.push(await sample(idleMs, count / 4));
  }
  return { backToBackUs: median(backToBack), afterIdleUs: median(afterIdle), idleMs };
}

// As a process: prints one WakeUpCost as JSON.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(await measureWakeUpCost())}\n`);
}
