import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UserSchema, UserStatus, type User } from "@zero/proto/zero/auth/v1/auth_pb";
import type { UserRow, UserStatusValue } from "../db/schema.js";

// An account as the API shows it: never the password hash, TOTP secret or internal markers.

export const USER_STATUS: Record<UserStatusValue, UserStatus> = {
  active: UserStatus.ACTIVE,
  deactivated: UserStatus.DEACTIVATED,
};

export function toUser(row: UserRow): User {
  return create(UserSchema, {
    id: row.id,
    email: row.email,
    firstName: row.first_name,
    lastName: row.last_name,
    roles: row.roles,
    createTime: timestampFromDate(row.created_at),
    emailVerified: row.email_verified_at !== null,
    twoFactorEnabled: row.totp_enabled_at !== null,
    status: USER_STATUS[row.status],
    ...(row.last_login_at === null ? {} : { lastLoginTime: timestampFromDate(row.last_login_at) }),
  });
}
