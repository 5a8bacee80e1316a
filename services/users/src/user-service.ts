import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArgument } from "@zero/kit/errors";
import { createPageTokens, pageSizeOf } from "@zero/kit/page-token";
import { requirePrincipal } from "@zero/kit/principal";
import type { UserService } from "@zero/proto/zero/users/v1/users_pb";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import {
  fieldsOf,
  MAX_ADDRESSES_PER_USER,
  newAddressFields,
  toAddress,
  updatedAddressFields,
} from "./address.js";
import {
  clearOtherDefaults,
  countAddresses,
  deleteAddress,
  findAddress,
  insertAddress,
  listAddresses,
  updateAddress,
} from "./address-store.js";
import type { DB } from "./db/schema.js";
import { isErased } from "./erased-users.js";
import type { PersonalDataExport } from "./personal-data-export.js";
import { EMPTY_PROFILE, profileChanges, profileFieldsOf, toProfile } from "./profile.js";
import { findProfile, saveProfile } from "./profile-store.js";
import { isUuid, ME, targetUserId, userNotFound, type Intent } from "./user-access.js";
import { lockUser } from "./user-lock.js";

export interface UserServiceDeps {
  db: Kysely<DB>;
  personalData: PersonalDataExport;
}

/** zero.users.v1.UserService: authorise on the caller → validate → one transaction → map. */
export function createUserService(deps: UserServiceDeps): ServiceImpl<typeof UserService> {
  const { db } = deps;

  const caller = (ctx: HandlerContext, requested: string, intent: Intent) => {
    const principal = requirePrincipal(ctx);
    const userId = targetUserId(principal, requested, intent);
    return { userId, own: userId === principal.subject.toLowerCase() };
  };

  /** Writes after erasure would bring personal data back; the caller's token may still be valid. */
  const refuseErased = async (trx: Kysely<DB>, userId: string) => {
    if (await isErased(trx, userId)) throw accountDeleted();
  };

  return {
    async getProfile(req, ctx) {
      const { userId, own } = caller(ctx, req.userId, "read");
      const row = await findProfile(db, userId);
      if (row === undefined) {
        if (!own) throw userNotFound(userId);
        if (await isErased(db, userId)) throw accountDeleted();
        throw new DomainError(
          "not_found",
          "your profile is not there yet: it is created from your registration moments after it; retry shortly",
          { reason: "PROFILE_NOT_READY" },
        );
      }
      return { profile: toProfile(row) };
    },

    async updateProfile(req, ctx) {
      const { userId } = caller(ctx, req.userId, "write");
      const changes = profileChanges(req.profile, req.updateMask);
      const row = await db.transaction().execute(async (trx) => {
        await lockUser(trx, userId);
        await refuseErased(trx, userId);
        const current = await findProfile(trx, userId);
        const before = current === undefined ? EMPTY_PROFILE : profileFieldsOf(current);
        const after = { ...before, ...changes };
        const consentChanged =
          after.marketing_email !== before.marketing_email || after.marketing_sms !== before.marketing_sms;
        return saveProfile(trx, userId, {
          ...after,
          marketing_consent_updated_at: consentChanged
            ? new Date()
            : (current?.marketing_consent_updated_at ?? null),
        });
      });
      return { profile: toProfile(row) };
    },

    async createAddress(req, ctx) {
      const { userId } = caller(ctx, req.userId, "write");
      const fields = newAddressFields(req.address);
      const row = await db.transaction().execute(async (trx) => {
        await lockUser(trx, userId);
        await refuseErased(trx, userId);
        if ((await countAddresses(trx, userId)) >= MAX_ADDRESSES_PER_USER) {
          throw new DomainError(
            "failed_precondition",
            `you already have ${MAX_ADDRESSES_PER_USER} addresses, the most allowed: delete one first`,
            { reason: "ADDRESS_LIMIT" },
          );
        }
        const id = uuidv7();
        await clearOtherDefaults(trx, userId, fields, id);
        return insertAddress(trx, { ...fields, id, user_id: userId });
      });
      return { address: toAddress(row) };
    },

    async getAddress(req, ctx) {
      const { userId } = caller(ctx, req.userId, "read");
      const id = addressId(req.addressId);
      const row = await findAddress(db, userId, id);
      if (row === undefined) throw addressNotFound(id);
      return { address: toAddress(row) };
    },

    async listAddresses(req, ctx) {
      const { userId } = caller(ctx, req.userId, "read");
      const size = pageSizeOf(req.pageSize);
      const tokens = createPageTokens({ list: "addresses", filters: { userId }, cursor: { id: "uuid" } });
      const after = tokens.decode(req.pageToken);
      // One more than the page tells whether another page follows without a count query.
      const rows = await listAddresses(db, userId, { after: after?.id, limit: size + 1 });
      const page = tokens.page(rows, size, (row) => ({ id: row.id }));
      return { addresses: page.items.map(toAddress), nextPageToken: page.nextPageToken };
    },

    async updateAddress(req, ctx) {
      const { userId } = caller(ctx, req.userId, "write");
      const id = addressId(req.addressId);
      const row = await db.transaction().execute(async (trx) => {
        await lockUser(trx, userId);
        const current = await findAddress(trx, userId, id);
        if (current === undefined) throw addressNotFound(id);
        const fields = updatedAddressFields(fieldsOf(current), req.address, req.updateMask);
        await clearOtherDefaults(trx, userId, fields, id);
        return updateAddress(trx, userId, id, fields);
      });
      return { address: toAddress(row) };
    },

    async deleteAddress(req, ctx) {
      const { userId } = caller(ctx, req.userId, "write");
      const id = addressId(req.addressId);
      if (!(await deleteAddress(db, userId, id))) throw addressNotFound(id);
      return {};
    },

    async exportMyData(_req, ctx) {
      const { userId } = caller(ctx, ME, "read");
      const services = await deps.personalData.collect(userId, ctx.signal);
      return { userId, exportTime: timestampNow(), services };
    },
  };
}

function addressId(value: string): string {
  const id = value.trim();
  if (id === "") throw invalidArgument("address_id", "is required");
  if (!isUuid(id)) throw invalidArgument("address_id", "must be an address id (UUID)");
  return id.toLowerCase();
}

/** The same answer for another user's address as for one that never existed. */
function addressNotFound(id: string): DomainError {
  return new DomainError("not_found", `no address ${id} among this user's addresses`);
}

function accountDeleted(): DomainError {
  return new DomainError("not_found", "this account has been deleted", { reason: "ACCOUNT_DELETED" });
}
