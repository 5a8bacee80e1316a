import { AsyncResource } from "node:async_hooks";
import { deprecate } from "node:util";

// Node 20's `ClientHttp2Session.request` binds a fresh AsyncResource for every stream it opens
// (lib/internal/http2/core.js: `reqAsync.bind(requestOnConnect.bind(…))`), and each
// `AsyncResource#bind` defines the deprecated `asyncResource` property (DEP0172) with two new
// `util.deprecate` wrappers — each a `setPrototypeOf` on a fresh function plus a materialised
// `prototype` object. That is ~12 µs per upstream call on the gateway's hot path (`pnpm --filter
// @zero/bench gateway:bind`: 13.3 µs against 1.1 µs for the bind below; bench/gateway/RESULTS.md).
// Node plans to drop the property (nodejs/node#58618, open); until then, this process uses a bind
// that behaves the same — same async scope, `this`, `length`, and the same deprecated property
// with its warning — with two accessors shared by every bound function.

const DEPRECATION = "The asyncResource property on bound functions is deprecated";
const resourceOf = Symbol("asyncResource");

interface BoundFunction {
  [resourceOf]: AsyncResource;
}

const getResource = deprecate(
  function (this: BoundFunction): AsyncResource {
    return this[resourceOf];
  },
  DEPRECATION,
  "DEP0172",
);
const setResource = deprecate(
  function (this: BoundFunction, resource: AsyncResource): void {
    this[resourceOf] = resource;
  },
  DEPRECATION,
  "DEP0172",
);

/**
 * Replaces `AsyncResource.prototype.bind` for this process when it is Node's costly one (it defines
 * `asyncResource` per call); a no-op on versions without the property and on a second call.
 */
export function useSharedAccessorsInAsyncResourceBind(): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with .call(resource)
  const nodeBind = AsyncResource.prototype.bind;
  const probe = Object.getOwnPropertyDescriptor(
    new AsyncResource("probe").bind(() => undefined),
    "asyncResource",
  );
  if (probe?.get === undefined || probe.get === getResource) return;

  AsyncResource.prototype.bind = function bind<Func extends (...args: never[]) => unknown>(
    this: AsyncResource,
    fn: Func,
    // Node's bind takes it; @types/node does not declare it.
    thisArg?: unknown,
  ): Func {
    // Node's own validation and error (ERR_INVALID_ARG_TYPE).
    if (typeof fn !== "function") return Reflect.apply(nodeBind, this, [fn, thisArg]) as Func;
    return bindWithSharedAccessors(this, fn as unknown as AnyFunction, thisArg) as unknown as Func;
  };
}

type AnyFunction = (...args: unknown[]) => unknown;

/** What Node's bind does, but with the deprecated property's accessors made once, not per call. */
function bindWithSharedAccessors(resource: AsyncResource, fn: AnyFunction, thisArg: unknown): AnyFunction {
  const bound: AnyFunction =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]): unknown {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : resource.runInAsyncScope.bind(resource, fn, thisArg);
  // A function's own `length` already has the attributes Node gives it; only its value may differ.
  if (bound.length !== fn.length) {
    Object.defineProperty(bound, "length", {
      configurable: true,
      enumerable: false,
      value: fn.length,
      writable: false,
    });
  }
  Object.defineProperty(bound, "asyncResource", {
    configurable: true,
    enumerable: true,
    get: getResource,
    set: setResource,
  });
  (bound as unknown as BoundFunction)[resourceOf] = resource;
  return bound;
}
