import type { DescService } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createReflection } from "@zero/kit/reflection";
import { ServerReflection as ReflectionV1 } from "@zero/proto/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ReflectionV1alpha } from "@zero/proto/grpc/reflection/v1alpha/reflection_pb";
import type { Exchange } from "./http-exchange.js";

// gRPC server reflection (v1 and v1alpha) answered by the gateway itself, for the services it
// routes: `grpcurl -plaintext localhost:8080 list` and `buf curl` without `--schema` then work
// against the one public port as they do against a service. Only what the gateway exposes is
// described — the same contracts as /openapi.json (INTERNAL methods are listed with their service,
// as in the protos, but stay unreachable here by every protocol).

export const REFLECTION_SERVICES: ReadonlySet<string> = new Set([
  ReflectionV1.typeName,
  ReflectionV1alpha.typeName,
]);

/** Serves one reflection call; resolves once its response is done. */
export type EdgeReflection = (exchange: Exchange) => Promise<void>;

export function createEdgeReflection(services: readonly DescService[]): EdgeReflection {
  const reflection = createReflection([...services, ReflectionV1, ReflectionV1alpha]);
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(ReflectionV1, reflection.v1);
      router.service(ReflectionV1alpha, reflection.v1alpha);
    },
  });
  return (exchange) =>
    new Promise<void>((resolve) => {
      exchange.res.once("close", resolve);
      handler(exchange.req, exchange.res);
    });
}
