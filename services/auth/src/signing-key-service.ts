import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import { requirePrincipal } from "@zero/kit/principal";
import {
  SigningKeySchema,
  SigningKeyState,
  type SigningKey,
  type SigningKeyService,
} from "@zero/proto/zero/auth/v1/signing_keys_pb";
import type { SigningKeyStatus } from "./db/schema.js";
import type { SigningKeyInfo, SigningKeyStore } from "./tokens/signing-keys.js";

const STATE: Record<SigningKeyStatus, SigningKeyState> = {
  pending: SigningKeyState.PENDING,
  active: SigningKeyState.ACTIVE,
  passive: SigningKeyState.PASSIVE,
  retired: SigningKeyState.RETIRED,
};

export function toSigningKey(key: SigningKeyInfo): SigningKey {
  return create(SigningKeySchema, {
    kid: key.kid,
    state: STATE[key.status],
    createTime: timestampFromDate(key.created_at),
    ...(key.activate_at === null ? {} : { activateTime: timestampFromDate(key.activate_at) }),
    ...(key.retire_at === null ? {} : { retireTime: timestampFromDate(key.retire_at) }),
  });
}

/** zero.auth.v1.SigningKeyService (admins only). Every change is logged with who made it. */
export function createSigningKeyService(deps: {
  signingKeys: SigningKeyStore;
  logger: Logger;
}): ServiceImpl<typeof SigningKeyService> {
  const { signingKeys, logger } = deps;
  return {
    async listSigningKeys() {
      return { keys: (await signingKeys.list()).map(toSigningKey) };
    },

    async rotateSigningKey(req, ctx) {
      const key = await signingKeys.rotate({ activateNow: req.activateNow });
      logger.info(
        { kid: key.kid, activate_now: req.activateNow, by: requirePrincipal(ctx).subject },
        "signing key rotated",
      );
      return { key: toSigningKey(key) };
    },

    async retireSigningKey(req, ctx) {
      if (req.kid.trim() === "") throw invalidArgument("kid", "is required");
      const key = await signingKeys.retire(req.kid.trim());
      logger.info({ kid: key.kid, by: requirePrincipal(ctx).subject }, "signing key retired");
      return { key: toSigningKey(key) };
    },
  };
}
