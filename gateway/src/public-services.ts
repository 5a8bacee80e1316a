import type { DescService } from "@bufbuild/protobuf";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";

/**
 * The services Zero's gateway fronts. Adding one here is all it takes to route it: REST routes come
 * from its `google.api.http` rules, RPC pass-through from its name, its URL from `<NAME>_URL`.
 */
export const publicServices: readonly DescService[] = [AuthService];
