import type { DescService } from "@bufbuild/protobuf";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { SessionService } from "@zero/proto/zero/auth/v1/session_pb";
import { SigningKeyService } from "@zero/proto/zero/auth/v1/signing_keys_pb";
import { TwoFactorService } from "@zero/proto/zero/auth/v1/two_factor_pb";
import { UserAdminService } from "@zero/proto/zero/auth/v1/user_admin_pb";
import { NotificationService } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { PaymentService } from "@zero/proto/zero/payments/v1/payments_pb";
import { UserService } from "@zero/proto/zero/users/v1/users_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";

/**
 * The services Zero's gateway fronts. Adding one here is all it takes to route it: REST routes come
 * from its `google.api.http` rules, RPC pass-through from its name, its URL from `<NAME>_URL`.
 */
export const publicServices: readonly DescService[] = [
  AuthService,
  SessionService,
  TwoFactorService,
  UserAdminService,
  SigningKeyService,
  UserService,
  NotificationService,
  PaymentService,
  // The diagnostic `echo` service (services/echo): every access level and google.api.http form.
  EchoService,
  TranscodingService,
];
