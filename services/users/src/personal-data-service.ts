import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "@zero/kit/errors";
import type { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { collectPersonalData } from "./personal-data.js";
import { isUuid } from "./user-access.js";

export const PERSONAL_DATA_SERVICE_NAME = "users";

/** zero.privacy.v1.PersonalDataService for users' own data (INTERNAL: the kit admits service tokens only). */
export function createPersonalDataService(deps: { db: Kysely<DB> }): ServiceImpl<typeof PersonalDataService> {
  return {
    async exportPersonalData(req) {
      if (!isUuid(req.userId)) throw invalidArgument("user_id", "must be a user id (UUID)");
      return {
        service: PERSONAL_DATA_SERVICE_NAME,
        data: await collectPersonalData(deps.db, req.userId.toLowerCase()),
      };
    },
  };
}
