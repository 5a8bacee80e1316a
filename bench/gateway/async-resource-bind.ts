import { AsyncResource } from "node:async_hooks";
import { useSharedAccessorsInAsyncResourceBind } from "@zero/gateway/edge/async-resource-bind";

// What the gateway saves per upstream call with edge/async-resource-bind.ts: Node 20's
// `ClientHttp2Session.request` makes one AsyncResource and binds one function per stream. This
// times that pair (plus the call) with Node's bind and with the replacement, alternated in one
// process, and prints the ratio.
//
//   node --import tsx bench/gateway/async-resource-bind.ts        (pnpm --filter @zero/bench gateway:bind)

const CALLS = 200_000;
const ROUNDS = 5;

// eslint-disable-next-line @typescript-eslint/unbound-method -- installed back on the prototype only
const nodeBind = AsyncResource.prototype.bind;
useSharedAccessorsInAsyncResourceBind();
// eslint-disable-next-line @typescript-eslint/unbound-method -- installed back on the prototype only
const sharedBind = AsyncResource.prototype.bind;
if (sharedBind === nodeBind) {
  console.log(`Node ${process.version} defines no asyncResource property per bind: nothing to replace.`);
  process.exit(0);
}

function requestOnConnect(this: { n: number }, headers: number): number {
  return this.n + headers;
}

/** ns per `new AsyncResource` + `bind` + call, as http2's request() does once per stream. */
function time(bind: typeof nodeBind): number {
  AsyncResource.prototype.bind = bind;
  let sum = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    const reqAsync = new AsyncResource("PendingRequest");
    const onConnect = reqAsync.bind(requestOnConnect.bind({ n: i }, 1));
    sum += onConnect();
  }
  const ns = Number(process.hrtime.bigint() - started) / CALLS;
  if (sum === 0) throw new Error("unreachable: keeps the loop from being optimised away");
  return ns;
}

const node: number[] = [];
const shared: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  node.push(time(nodeBind));
  shared.push(time(sharedBind));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(`Node ${process.version}, ${CALLS} binds per round, ${ROUNDS} rounds alternated`);
console.log(
  `Node's bind:          ${median(node).toFixed(0)} ns (rounds: ${node.map((x) => x.toFixed(0)).join(" / ")})`,
);
console.log(
  `shared accessors:     ${median(shared).toFixed(0)} ns (rounds: ${shared.map((x) => x.toFixed(0)).join(" / ")})`,
);
console.log(
  `saved per HTTP/2 stream: ${((median(node) - median(shared)) / 1000).toFixed(1)} µs; ratio ${(median(node) / median(shared)).toFixed(1)}×`,
);
