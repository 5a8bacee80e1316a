import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Logger } from "@zero/kit/log";
import { serviceAuthInterceptor, type ServiceTokenSource } from "@zero/kit/service-identity";
import { tracingClientInterceptor } from "@zero/kit/tracing";
import { NotificationService } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { setTimeout as sleep } from "node:timers/promises";

// Verification and password-reset mails. The code travels in the notifications service's INTERNAL
// RPC SendTransactionalEmail (authenticated with auth's own service token) and nowhere else: not in
// an event, not in a log line. Without NOTIFICATIONS_URL (a service started on its own) the mail is
// logged as "would be sent" — recipient redacted, no code.
//
// Sending happens after the request's transaction, in the background with a few retries: the
// answer to "reset my password" must not take longer when the account exists (that would tell
// who has one), and a slow mail server must not hold a sign-up.

export type TransactionalTemplate = "email-verification" | "password-reset";

export interface TransactionalMail {
  template: TransactionalTemplate;
  to: string;
  userId: string;
  /** The code's id: a retried send is one mail. */
  idempotencyKey: string;
  /** Template variables; names ending in `_code` are secret to notifications. */
  variables: Record<string, string>;
}

export interface MailSender {
  send(mail: TransactionalMail): Promise<void>;
}

export function createNotificationsMailSender(deps: { url: string; tokens: ServiceTokenSource }): MailSender {
  const client: Client<typeof NotificationService> = createClient(
    NotificationService,
    createConnectTransport({
      baseUrl: deps.url,
      httpVersion: "1.1",
      interceptors: [tracingClientInterceptor, serviceAuthInterceptor(deps.tokens)],
    }),
  );
  return {
    async send(mail) {
      await client.sendTransactionalEmail(
        {
          template: mail.template,
          to: mail.to,
          userId: mail.userId,
          idempotencyKey: mail.idempotencyKey,
          variables: mail.variables,
        },
        { timeoutMs: 10_000 },
      );
    },
  };
}

export function createLoggingMailSender(logger: Logger): MailSender {
  return {
    send(mail) {
      logger.info(
        { template: mail.template, to: redactEmail(mail.to), user_id: mail.userId },
        `mail would be sent to ${redactEmail(mail.to)} (NOTIFICATIONS_URL is not set)`,
      );
      return Promise.resolve();
    },
  };
}

/** `a***@example.com`: enough to tell mails apart in a log, not enough to identify anyone. */
export function redactEmail(email: string): string {
  const [local = "", domain = ""] = email.split("@");
  return `${local.slice(0, 1)}***@${domain}`;
}

export interface Mailer {
  /** Queues the mail for background delivery and returns at once. */
  post(mail: TransactionalMail): void;
  /** Waits for mails being sent (shutdown), at most `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
}

const ATTEMPTS = 4;

export function createMailer(deps: { sender: MailSender; logger: Logger; retryBaseMs?: number }): Mailer {
  const inFlight = new Set<Promise<void>>();
  const baseMs = deps.retryBaseMs ?? 1000;
  const deliver = async (mail: TransactionalMail) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await deps.sender.send(mail);
        return;
      } catch (error) {
        const context = { err: error, template: mail.template, to: redactEmail(mail.to), attempt };
        if (attempt >= ATTEMPTS) {
          // The user can ask again; the code in the lost mail simply expires.
          deps.logger.error(context, "transactional mail not sent");
          return;
        }
        deps.logger.warn(context, "transactional mail failed, retrying");
        await sleep(baseMs * 4 ** (attempt - 1));
      }
    }
  };
  return {
    post(mail) {
      const sending = deliver(mail).finally(() => inFlight.delete(sending));
      inFlight.add(sending);
    },
    async drain(timeoutMs) {
      await Promise.race([Promise.allSettled([...inFlight]), sleep(timeoutMs)]);
    },
  };
}
