import { Code, ConnectError } from "@connectrpc/connect";
import { context } from "@opentelemetry/api";
import type { Context } from "@opentelemetry/api";

// A streaming RPC's handler runs while its response stream is iterated, after the interceptor
// returned. Interceptors that must see the handler's outcome (span status, metrics, error mapping)
// or run it inside a context therefore wrap the response stream with these hooks.
export interface StreamHooks {
  /** Each step of the source runs inside this OTel context (the handler sees its span). */
  context?: Context;
  /** Replaces an error thrown by the source before it reaches the consumer. */
  mapError?(error: unknown): unknown;
  /** Called once: with `undefined` on success, the (mapped) error, or a cancellation. */
  onEnd?(error: unknown): void;
}

export async function* interceptStream<T>(source: AsyncIterable<T>, hooks: StreamHooks): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const ctx = hooks.context;
  let ended = false;
  const end = (error: unknown): void => {
    if (ended) return;
    ended = true;
    hooks.onEnd?.(error);
  };
  try {
    for (;;) {
      const step = ctx === undefined ? await iterator.next() : await context.with(ctx, () => iterator.next());
      if (step.done === true) break;
      yield step.value;
    }
    end(undefined);
  } catch (error) {
    const mapped = hooks.mapError === undefined ? error : hooks.mapError(error);
    end(mapped);
    throw mapped;
  } finally {
    // Reached without end() only when the consumer stopped early (client went away).
    if (!ended) {
      end(new ConnectError("the client cancelled the stream", Code.Canceled));
      await iterator.return?.();
    }
  }
}
