import { DomainError } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import { injectTraceHeaders } from "@zero/kit/tracing";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import type { DB, DeliveryPriority, DeliveryRow } from "./db/schema.js";
import { isSecretVariable, messageIdFor, redactVariables } from "./delivery.js";
import { insertDeliveryOnce } from "./delivery-store.js";
import type { RecipientLimit } from "./recipient-limit.js";
import { renderTemplate, type TemplateContent } from "./template.js";
import type { TemplateCatalog } from "./template-catalog.js";

// Deciding to send: render the message now (it keeps the template version it was queued with)
// and insert it as a delivery row, once per idempotency key. Called inside the caller's
// transaction by the event consumers (with their inbox row), on the pool by the RPCs. The
// delivery worker does the sending.

export interface MailRequest {
  /** One message per key, whoever asks again and however often. */
  idempotencyKey: string;
  /** Digest of the request's parameters: the same key with other parameters is refused. */
  fingerprint: string;
  /** `event:<subject>`, `api`, `service:<caller>`. */
  source: string;
  /** Normalised and validated. */
  to: string;
  userId?: string | undefined;
  /** Canonical BCP 47. */
  locale: string;
  /** A template name, or `inline` content rendered like a template. */
  template: { name: string } | { inline: TemplateContent };
  variables: Record<string, string>;
  /** Variable names to treat as secret besides the conventional suffixes. */
  secretNames?: ReadonlySet<string>;
  priority: DeliveryPriority;
}

export interface MailQueue {
  /** The delivery for the request's key: `created` false when it existed already. */
  enqueue(db: Kysely<DB>, request: MailRequest): Promise<{ delivery: DeliveryRow; created: boolean }>;
}

export function createMailQueue(deps: {
  catalog: TemplateCatalog;
  limit: RecipientLimit;
  messageIdDomain: string;
  logger: Logger;
}): MailQueue {
  const logger = deps.logger.child({ component: "mail-queue" });

  /** When a normal message may go: now, or when the recipient's current slot frees up. */
  async function firstAttempt(recipient: string, priority: DeliveryPriority): Promise<Date> {
    if (priority === "transactional") return new Date();
    // Only a hint for the answer (QUEUED vs DEFERRED): the worker enforces the limit at send time.
    const wait = await deps.limit.waitFor(recipient).catch((err: unknown) => {
      logger.debug({ err }, "recipient limit unreadable; the worker will decide");
      return 0;
    });
    return new Date(Date.now() + wait);
  }

  return {
    async enqueue(db, request) {
      const existing = await db
        .selectFrom("deliveries")
        .selectAll()
        .where("idempotency_key", "=", request.idempotencyKey)
        .executeTakeFirst();
      if (existing !== undefined) return { delivery: checkSameRequest(existing, request), created: false };

      let content: TemplateContent;
      let templateName: string | null = null;
      let locale = request.locale;
      let version = 0;
      if ("name" in request.template) {
        const resolved = await deps.catalog.resolve(request.template.name, request.locale);
        if (resolved === undefined) {
          throw new DomainError(
            "not_found",
            `template "${request.template.name}" does not exist for locale ${request.locale} (nor its fallbacks): create it first`,
            {
              fieldViolations: [{ field: "template", description: "does not exist" }],
              reason: "TEMPLATE_NOT_FOUND",
            },
          );
        }
        content = resolved.content;
        templateName = resolved.name;
        locale = resolved.locale;
        version = resolved.version;
      } else {
        content = request.template.inline;
      }
      const rendered = renderTemplate(content, request.variables);

      const secretNames = request.secretNames ?? new Set<string>();
      const id = uuidv7();
      const nextAttemptAt = await firstAttempt(request.to, request.priority);
      const traceHeaders: Record<string, string> = {};
      injectTraceHeaders((k, v) => (traceHeaders[k] = v));
      const { delivery, created } = await insertDeliveryOnce(db, {
        id,
        idempotency_key: request.idempotencyKey,
        fingerprint: request.fingerprint,
        source: request.source,
        user_id: request.userId ?? null,
        recipient: request.to,
        template: templateName,
        locale,
        template_version: version,
        subject: rendered.subject,
        html_body: rendered.html === "" ? null : rendered.html,
        text_body: rendered.text === "" ? null : rendered.text,
        variables: JSON.stringify(redactVariables(request.variables, secretNames)),
        contains_secret: Object.keys(request.variables).some((k) => isSecretVariable(k, secretNames)),
        priority: request.priority,
        status: nextAttemptAt.getTime() > Date.now() ? "deferred" : "queued",
        next_attempt_at: nextAttemptAt,
        message_id: messageIdFor(id, deps.messageIdDomain),
        trace_headers: JSON.stringify(traceHeaders),
        updated_at: new Date(),
      });
      return { delivery: created ? delivery : checkSameRequest(delivery, request), created };
    },
  };
}

function checkSameRequest(existing: DeliveryRow, request: MailRequest): DeliveryRow {
  if (existing.fingerprint !== request.fingerprint) {
    throw new DomainError(
      "invalid_argument",
      "this idempotency key was already used for a different message: use a new key for a new message",
      {
        fieldViolations: [{ field: "idempotency_key", description: "was used with other parameters" }],
        reason: "IDEMPOTENCY_KEY_REUSED",
      },
    );
  }
  return existing;
}
