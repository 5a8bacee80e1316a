import net from "node:net";
import { pathToFileURL } from "node:url";

// An HTTP/1.1 load generator on raw keep-alive sockets, run as its own process (pinned to its own
// core by run.ts). Two modes:
// - closed loop (`rate` 0): every connection sends its next request as soon as the previous
//   answer is in — the most the server can take (throughput);
// - open loop (`rate` > 0): requests are due at a fixed rate whatever the server does, and each
//   latency is measured from when its request was due, not when a connection was free (no
//   coordinated omission) — latency at a given load.
// Requests are serialised once; responses are parsed just enough to find their end.

export interface LoadSpec {
  readonly host: string;
  readonly port: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Requests per second for an open loop; 0 for a closed loop. */
  readonly rate: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  /** Answers outside 2xx, and connection errors. */
  readonly errors: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const body = Buffer.from(spec.body);
  const head = [
    `${spec.method} ${spec.path} HTTP/1.1`,
    `host: ${spec.host}:${spec.port}`,
    ...Object.entries(spec.headers).map(([k, v]) => `${k}: ${v}`),
    ...(body.length > 0 || spec.method === "POST" ? [`content-length: ${body.length}`] : []),
    "",
    "",
  ].join("\r\n");
  const request = Buffer.concat([Buffer.from(head), body]);

  const startedAt = performance.now();
  const measureFrom = startedAt + spec.warmupMs;
  const endAt = measureFrom + spec.durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let measuredRequests = 0;
  let stopping = false;

  // Open loop: due times waiting for a free connection.
  const backlog: number[] = [];
  const idle: Connection[] = [];

  interface Connection {
    send(dueAt: number): void;
  }

  const complete = (dueAt: number, ok: boolean): void => {
    const now = performance.now();
    if (dueAt >= measureFrom && now <= endAt) {
      measuredRequests++;
      latencies.push(now - dueAt);
      if (!ok) errors++;
    }
  };

  const open = (): Promise<Connection> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: spec.host, port: spec.port, noDelay: true });
      let buffer: Buffer = Buffer.alloc(0);
      let dueAt = 0;
      let busy = false;
      const connection: Connection = {
        send(at) {
          dueAt = at;
          busy = true;
          socket.write(request);
        },
      };
      const next = (): void => {
        busy = false;
        if (stopping) return;
        if (spec.rate === 0) {
          connection.send(performance.now());
        } else if (backlog.length > 0) {
          connection.send(backlog.shift() as number);
        } else {
          idle.push(connection);
        }
      };
      socket.on("connect", () => resolve(connection));
      socket.on("error", (error) => {
        if (!busy) return reject(error);
        errors++;
      });
      socket.on("data", (chunk: Buffer) => {
        buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
        for (;;) {
          const end = responseEnd(buffer);
          if (end < 0) return;
          const status = Number(buffer.subarray(9, 12).toString("latin1"));
          buffer = buffer.subarray(end);
          complete(dueAt, status >= 200 && status < 300);
          next();
        }
      });
    });

  const connections = await Promise.all(Array.from({ length: spec.connections }, open));
  if (spec.rate === 0) {
    for (const connection of connections) connection.send(performance.now());
  } else {
    idle.push(...connections);
    const interval = 1000 / spec.rate;
    let nextDue = performance.now();
    // Due times are checked on every turn of the event loop (setImmediate), not by a timer: a
    // 1 ms timer released requests in bursts up to a millisecond late, which added ~0.5 ms to every
    // latency and queued each burst's requests behind one another. This process has a core of its
    // own (run.ts pins it), so polling costs the system under test nothing.
    await new Promise<void>((resolve) => {
      const release = (): void => {
        const now = performance.now();
        while (nextDue <= now) {
          const connection = idle.pop();
          if (connection) connection.send(nextDue);
          else backlog.push(nextDue);
          nextDue += interval;
        }
        if (now < endAt) setImmediate(release);
        else resolve();
      };
      release();
    });
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, endAt - performance.now())));
  stopping = true;

  latencies.sort((a, b) => a - b);
  const pick = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requests: measuredRequests,
    rps: measuredRequests / (spec.durationMs / 1000),
    errors,
    p50Ms: pick(0.5),
    p90Ms: pick(0.9),
    p99Ms: pick(0.99),
    maxMs: latencies[latencies.length - 1] ?? 0,
  };
}

/** Where the first complete response in `buffer` ends (Content-Length or chunked); -1 if incomplete. */
function responseEnd(buffer: Buffer): number {
  const headerEnd = buffer.indexOf(CRLFCRLF);
  if (headerEnd < 0) return -1;
  const head = buffer.subarray(0, headerEnd).toString("latin1").toLowerCase();
  const bodyStart = headerEnd + 4;
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length) {
    const end = bodyStart + Number(length[1]);
    return buffer.length >= end ? end : -1;
  }
  if (/\r\ntransfer-encoding: *chunked/.test(head)) {
    let at = bodyStart;
    for (;;) {
      const lineEnd = buffer.indexOf("\r\n", at);
      if (lineEnd < 0) return -1;
      const size = parseInt(buffer.subarray(at, lineEnd).toString("latin1"), 16);
      at = lineEnd + 2 + size + 2;
      if (at > buffer.length) return -1;
      if (size === 0) return at;
    }
  }
  return bodyStart;
}

// As a process: `node --import tsx load-generator.ts '<LoadSpec JSON>'` prints a LoadResult.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
  const result = await runLoad(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
