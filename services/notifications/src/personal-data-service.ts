import type { JsonObject } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "@zero/kit/errors";
import type { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { isUuid } from "./delivery.js";
import { findDeliveriesOfUser } from "./delivery-store.js";
import { findRecipient } from "./recipient-store.js";

// zero.privacy.v1.PersonalDataService for the notifications service (GDPR art. 15/20): the
// address book entry and every message sent to the user — metadata and the (redacted) variables,
// not the bodies, which are re-renderable from the templates and may have held one-time codes.

export const EXPORT_SERVICE_NAME = "notifications";

export function createPersonalDataService(deps: { db: Kysely<DB> }): ServiceImpl<typeof PersonalDataService> {
  return {
    async exportPersonalData(req) {
      if (!isUuid(req.userId)) throw invalidArgument("user_id", "must be a user id (UUID)");
      const userId = req.userId.toLowerCase();
      const recipient = await findRecipient(deps.db, userId);
      const deliveries = await findDeliveriesOfUser(
        deps.db,
        userId,
        recipient === undefined ? [] : [recipient.email],
      );
      if (recipient === undefined && deliveries.length === 0)
        return { service: EXPORT_SERVICE_NAME, data: {} };
      const data: JsonObject = {
        ...(recipient === undefined
          ? {}
          : {
              contact: {
                email: recipient.email,
                firstName: recipient.first_name,
                lastName: recipient.last_name,
                updateTime: recipient.updated_at.toISOString(),
              },
            }),
        emails: deliveries.map((d) => ({
          id: d.id,
          to: d.recipient,
          template: d.template ?? "",
          subject: d.subject,
          status: d.status,
          variables: d.variables,
          createTime: d.created_at.toISOString(),
          ...(d.sent_at === null ? {} : { sendTime: d.sent_at.toISOString() }),
        })),
      };
      return { service: EXPORT_SERVICE_NAME, data };
    },
  };
}
