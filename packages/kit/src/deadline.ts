import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";

/**
 * A unary call whose deadline (`grpc-timeout`, `connect-timeout-ms`) has passed answers
 * DEADLINE_EXCEEDED, as a gRPC server does: connect-node gives handlers a signal that aborts at the
 * deadline, but sends whatever they return, even long after the caller stopped waiting. A call
 * already past its deadline when it arrives is not run at all; one that ran past it has its
 * result or error replaced (handlers that watch the signal stop early on their own).
 */
export function createDeadlineInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (deadlinePassed(req.signal)) throw expired();
    let res;
    try {
      res = await next(req);
    } catch (error) {
      // Failed, but after the deadline: the caller gave up first, whatever the failure says.
      if (!req.stream && deadlinePassed(req.signal)) throw expired();
      throw error;
    }
    if (!res.stream && deadlinePassed(req.signal)) throw expired();
    return res;
  };
}

function deadlinePassed(signal: AbortSignal): boolean {
  return signal.aborted && ConnectError.from(signal.reason).code === Code.DeadlineExceeded;
}

function expired(): ConnectError {
  return new ConnectError("the call's deadline passed before it finished", Code.DeadlineExceeded);
}
