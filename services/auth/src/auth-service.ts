import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArguments } from "@zero/kit/errors";
import { appendEvent } from "@zero/kit/events/outbox";
import { JwkSchema, UserSchema, type AuthService, type User } from "@zero/proto/zero/auth/v1/auth_pb";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import type { AccessTokenIssuer } from "./access-token.js";
import {
  emailProblem,
  nameProblem,
  normaliseEmail,
  passwordProblem,
  type PasswordHasher,
} from "./credentials.js";
import type { DB, UserRow } from "./db/schema.js";
import { insertRefreshToken } from "./refresh-tokens.js";
import type { SigningKeyStore } from "./signing-keys.js";
import { findUserByEmail, insertUser, isDuplicateEmail } from "./user-store.js";

export const EVENT_SOURCE = "zero.auth";
export const DEFAULT_ROLES: readonly string[] = ["customer"];
// The same words for an unknown email and a wrong password: the answer must not reveal which.
export const INVALID_CREDENTIALS = "invalid email or password";
// Clients and the gateway may reuse the key set this long; rotation keeps the old key passive
// for longer than that, so a cached set never misses a live token's key.
export const JWKS_CACHE_CONTROL = "public, max-age=300";

export interface AuthServiceDeps {
  db: Kysely<DB>;
  hasher: PasswordHasher;
  accessTokens: AccessTokenIssuer;
  signingKeys: SigningKeyStore;
  /** Nudges the outbox relay after a commit so events leave now rather than at the next poll. */
  relay: { wake(): void };
  refreshTokenTtlSeconds: number;
}

/** zero.auth.v1.AuthService: validate → one transaction → map. */
export function createAuthService(deps: AuthServiceDeps): ServiceImpl<typeof AuthService> {
  const { db, hasher } = deps;

  return {
    async register(req) {
      const email = normaliseEmail(req.email);
      const firstName = req.firstName.trim();
      const lastName = req.lastName.trim();
      const violations = [
        violation("email", emailProblem(email)),
        violation("password", passwordProblem(req.password)),
        violation("first_name", nameProblem(firstName)),
        violation("last_name", nameProblem(lastName)),
      ].filter((v) => v !== undefined);
      if (violations.length > 0) {
        throw invalidArguments(violations);
      }

      // Hash before the transaction: ~40 ms of argon2 must not hold a pooled connection.
      const passwordHash = await hasher.hash(req.password);
      let user: UserRow;
      try {
        user = await db.transaction().execute(async (trx) => {
          const row = await insertUser(trx, {
            id: uuidv7(),
            email,
            password_hash: passwordHash,
            first_name: firstName,
            last_name: lastName,
            roles: [...DEFAULT_ROLES],
          });
          await appendEvent(
            trx,
            UserRegisteredSchema,
            create(UserRegisteredSchema, {
              userId: row.id,
              email: row.email,
              firstName: row.first_name,
              lastName: row.last_name,
              registerTime: timestampFromDate(row.created_at),
            }),
            { source: EVENT_SOURCE },
          );
          return row;
        });
      } catch (error) {
        // The unique index decides, so two racing registrations cannot both win.
        if (isDuplicateEmail(error)) {
          throw new DomainError(
            "already_exists",
            "an account with this email already exists: sign in instead",
            {
              fieldViolations: [{ field: "email", description: "is already registered" }],
            },
          );
        }
        throw error;
      }
      deps.relay.wake();
      return { user: toUser(user) };
    },

    async login(req) {
      const violations = [
        violation("email", req.email.trim() === "" ? "is required" : undefined),
        violation("password", req.password === "" ? "is required" : undefined),
      ].filter((v) => v !== undefined);
      if (violations.length > 0) {
        throw invalidArguments(violations);
      }

      const user = await findUserByEmail(db, normaliseEmail(req.email));
      if (!user) {
        await hasher.verifyNothing(req.password);
        throw new DomainError("unauthenticated", INVALID_CREDENTIALS);
      }
      if (!(await hasher.verify(user.password_hash, req.password))) {
        throw new DomainError("unauthenticated", INVALID_CREDENTIALS);
      }

      const access = await deps.accessTokens.issue({ userId: user.id, email: user.email, roles: user.roles });
      const refresh = await insertRefreshToken(db, {
        userId: user.id,
        ttlSeconds: deps.refreshTokenTtlSeconds,
      });
      return {
        accessToken: access.token,
        tokenType: "Bearer",
        expiresIn: access.expiresIn,
        refreshToken: refresh.token,
        refreshExpiresIn: deps.refreshTokenTtlSeconds,
        token: access.token,
        user: toUser(user),
      };
    },

    async getJwks(_req, ctx) {
      const keys = await deps.signingKeys.publicJwks();
      ctx.responseHeader.set("Cache-Control", JWKS_CACHE_CONTROL);
      return {
        keys: keys.map((k) =>
          create(JwkSchema, {
            kty: k.kty,
            crv: k.crv ?? "",
            x: k.x ?? "",
            kid: k.kid ?? "",
            alg: k.alg ?? "",
            use: k.use ?? "",
          }),
        ),
      };
    },
  };
}

function violation(field: string, description: string | undefined) {
  return description === undefined ? undefined : { field, description };
}

function toUser(row: UserRow): User {
  return create(UserSchema, {
    id: row.id,
    email: row.email,
    firstName: row.first_name,
    lastName: row.last_name,
    roles: row.roles,
    createTime: timestampFromDate(row.created_at),
  });
}
