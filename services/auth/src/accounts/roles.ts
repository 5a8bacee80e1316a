// The roles an account can hold. `service` is not among them: it exists only in service tokens,
// which auth mints for client credentials, never for an account.
export const ROLES = ["customer", "support", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const DEFAULT_ROLES: readonly Role[] = ["customer"];
export const ADMIN_ROLES: readonly Role[] = ["customer", "admin"];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
