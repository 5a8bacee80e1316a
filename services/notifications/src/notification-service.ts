import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArgument, invalidArguments, type FieldViolation } from "@zero/kit/errors";
import { createPageTokens, pageSizeOf } from "@zero/kit/page-token";
import { requirePrincipal } from "@zero/kit/principal";
import {
  DeadLetterSchema,
  DeliverySchema,
  DeliveryStatus,
  PeriodCountSchema,
  StatsPeriod,
  StatusCountSchema,
  TemplateCountSchema,
  type DeadLetter,
  type Delivery,
  type NotificationService,
} from "@zero/proto/zero/notifications/v1/notifications_pb";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import type { DB, DeadLetterRow, DeliveryRow, DeliveryStatusValue } from "./db/schema.js";
import type { DeadLetterReplayer } from "./dead-letter-replay.js";
import { listDeadLetters } from "./dead-letter-store.js";
import {
  emailProblem,
  fingerprintOf,
  isSecretVariable,
  isUuid,
  MAX_IDEMPOTENCY_KEY,
  normaliseEmail,
  redactVariables,
  statusFromProto,
  statusToProto,
  variablesProblem,
} from "./delivery.js";
import { deliveryStats } from "./delivery-stats.js";
import { findDelivery, listDeliveries, requeueFailed, type DeliveryFilter } from "./delivery-store.js";
import type { MailQueue } from "./mail-queue.js";
import { normaliseLocale, TEMPLATE_NAME, templateProblems } from "./template.js";
import { createTemplateAdmin } from "./template-admin.js";
import type { TemplateCatalog } from "./template-catalog.js";

export interface NotificationServiceDeps {
  db: Kysely<DB>;
  queue: MailQueue;
  catalog: TemplateCatalog;
  replayer: DeadLetterReplayer;
  /** Nudges the delivery worker after a commit that queued mail. */
  worker: { wake(): void };
}

const DAY_MS = 86_400_000;
const MAX_STATS_DAYS = 366;
const MAX_HOURLY_DAYS = 31;

/** zero.notifications.v1.NotificationService: validate → queue or query → map. */
export function createNotificationService(
  deps: NotificationServiceDeps,
): ServiceImpl<typeof NotificationService> {
  const { db, queue } = deps;

  return {
    async sendTransactionalEmail(req, ctx) {
      // Service tokens carry `sub: service:<name>`: the caller's name scopes its idempotency keys.
      const subject = requirePrincipal(ctx).subject;
      const caller = subject.startsWith("service:") ? subject.slice("service:".length) : subject;
      const violations: FieldViolation[] = [];
      const to = recipientOf(req.to, violations);
      const locale = localeOf(req.locale, violations);
      const template = req.template.trim();
      if (template === "") violations.push({ field: "template", description: "is required" });
      else if (!TEMPLATE_NAME.test(template))
        violations.push({ field: "template", description: "is not a template name" });
      checkVariables(req.variables, violations);
      const key = req.idempotencyKey.trim();
      if (key === "") violations.push({ field: "idempotency_key", description: "is required" });
      else if (key.length > MAX_IDEMPOTENCY_KEY)
        violations.push({
          field: "idempotency_key",
          description: `must be at most ${MAX_IDEMPOTENCY_KEY} characters`,
        });
      const userId = userIdOf(req.userId, violations);
      if (violations.length > 0) throw invalidArguments(violations);

      const secretNames = new Set(req.secretVariables);
      const { delivery } = await queue.enqueue(db, {
        idempotencyKey: `service:${caller}:${key}`,
        // Secret values stay out of the digest: a hash of a 6-digit code is the code.
        fingerprint: fingerprintOf({
          template,
          to,
          locale,
          userId,
          variables: redactVariables(req.variables, secretNames),
        }),
        source: `service:${caller}`,
        to,
        userId,
        locale,
        template: { name: template },
        variables: req.variables,
        secretNames,
        priority: "transactional",
      });
      deps.worker.wake();
      return { delivery: toDelivery(delivery) };
    },

    async sendNotification(req, ctx) {
      const violations: FieldViolation[] = [];
      const to = recipientOf(req.to, violations);
      const locale = localeOf(req.locale, violations);
      const template = req.template.trim();
      const inline = { subject: req.subject, html: req.htmlBody, text: req.textBody };
      if (template !== "") {
        if (!TEMPLATE_NAME.test(template))
          violations.push({ field: "template", description: "is not a template name" });
        for (const field of ["subject", "html_body", "text_body"] as const) {
          const value =
            field === "subject" ? req.subject : field === "html_body" ? req.htmlBody : req.textBody;
          if (value !== "") violations.push({ field, description: "must be empty when a template is given" });
        }
      } else if (inline.subject === "" && inline.html === "" && inline.text === "") {
        violations.push({
          field: "template",
          description: "is required (or give subject and text_body/html_body)",
        });
      } else {
        violations.push(...templateProblems(inline));
      }
      checkVariables(req.variables, violations);
      const headerKey = ctx.requestHeader.get("idempotency-key")?.trim() ?? "";
      const key = req.idempotencyKey.trim() || headerKey;
      if (key.length > MAX_IDEMPOTENCY_KEY)
        violations.push({
          field: "idempotency_key",
          description: `must be at most ${MAX_IDEMPOTENCY_KEY} characters`,
        });
      const userId = userIdOf(req.userId, violations);
      if (violations.length > 0) throw invalidArguments(violations);

      const { delivery } = await queue.enqueue(db, {
        idempotencyKey: key === "" ? `api:${uuidv7()}` : `api:${key}`,
        fingerprint: fingerprintOf({
          to,
          locale,
          template,
          inline,
          userId,
          variables: redactVariables(req.variables),
        }),
        source: "api",
        to,
        userId,
        locale,
        template: template === "" ? { inline } : { name: template },
        variables: req.variables,
        priority: "normal",
      });
      deps.worker.wake();
      return { delivery: toDelivery(delivery) };
    },

    async getDelivery(req) {
      const row = isUuid(req.deliveryId) ? await findDelivery(db, req.deliveryId) : undefined;
      if (row === undefined) {
        if (!isUuid(req.deliveryId)) throw invalidArgument("delivery_id", "must be a delivery id (UUID)");
        throw new DomainError("not_found", `delivery ${req.deliveryId} does not exist`);
      }
      return { delivery: toDelivery(row) };
    },

    async listDeliveries(req) {
      const violations: FieldViolation[] = [];
      const filter: DeliveryFilter = {};
      if (req.status !== DeliveryStatus.UNSPECIFIED) {
        const status = statusFromProto(req.status);
        if (status === undefined)
          violations.push({ field: "status", description: "is not a delivery status" });
        else filter.status = status;
      }
      if (req.template !== "") filter.template = req.template.trim();
      if (req.recipient !== "") filter.recipient = normaliseEmail(req.recipient);
      if (req.userId !== "") {
        if (!isUuid(req.userId)) violations.push({ field: "user_id", description: "must be a UUID" });
        else filter.userId = req.userId;
      }
      if (violations.length > 0) throw invalidArguments(violations);
      const limit = pageSizeOf(req.pageSize);
      const tokens = createPageTokens({ list: "deliveries", filters: filter, cursor: { id: "uuid" } });
      const after = tokens.decode(req.pageToken);
      const rows = await listDeliveries(db, {
        limit: limit + 1,
        filter,
        ...(after === undefined ? {} : { afterId: after.id }),
      });
      const page = tokens.page(rows, limit, (row) => ({ id: row.id }));
      return { deliveries: page.items.map(toDelivery), nextPageToken: page.nextPageToken };
    },

    async retryDelivery(req) {
      if (!isUuid(req.deliveryId)) throw invalidArgument("delivery_id", "must be a delivery id (UUID)");
      const requeued = await requeueFailed(db, req.deliveryId);
      if (requeued !== undefined) {
        deps.worker.wake();
        return { delivery: toDelivery(requeued) };
      }
      const row = await findDelivery(db, req.deliveryId);
      if (row === undefined) throw new DomainError("not_found", `delivery ${req.deliveryId} does not exist`);
      throw new DomainError(
        "failed_precondition",
        row.status === "failed"
          ? "this delivery's content was erased (a sent secret or a deleted account): it cannot be sent again"
          : `only FAILED deliveries can be retried; this one is ${row.status.toUpperCase()}`,
      );
    },

    async getStats(req) {
      const end = req.endTime === undefined ? new Date() : timestampDate(req.endTime);
      const start =
        req.startTime === undefined ? new Date(end.getTime() - 7 * DAY_MS) : timestampDate(req.startTime);
      const period = req.period === StatsPeriod.HOUR ? "hour" : "day";
      const violations: FieldViolation[] = [];
      if (
        req.period !== StatsPeriod.UNSPECIFIED &&
        req.period !== StatsPeriod.HOUR &&
        req.period !== StatsPeriod.DAY
      )
        violations.push({ field: "period", description: "must be HOUR or DAY" });
      if (start.getTime() >= end.getTime())
        violations.push({ field: "start_time", description: "must be before end_time" });
      const days = (end.getTime() - start.getTime()) / DAY_MS;
      if (days > MAX_STATS_DAYS)
        violations.push({
          field: "start_time",
          description: `the range may span at most ${MAX_STATS_DAYS} days`,
        });
      else if (period === "hour" && days > MAX_HOURLY_DAYS)
        violations.push({
          field: "period",
          description: `HOUR allows a range of at most ${MAX_HOURLY_DAYS} days`,
        });
      if (violations.length > 0) throw invalidArguments(violations);

      const template = req.template.trim();
      const stats = await deliveryStats(db, { start, end, period, ...(template === "" ? {} : { template }) });
      const statuses: DeliveryStatusValue[] = ["queued", "deferred", "sent", "failed"];
      return {
        startTime: timestampFromDate(start),
        endTime: timestampFromDate(end),
        period: period === "hour" ? StatsPeriod.HOUR : StatsPeriod.DAY,
        total: BigInt(stats.total),
        byStatus: statuses.map((s) =>
          create(StatusCountSchema, { status: statusToProto(s), count: BigInt(stats.byStatus.get(s) ?? 0) }),
        ),
        byTemplate: [...stats.byTemplate.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([name, c]) =>
            create(TemplateCountSchema, {
              template: name,
              count: BigInt(c.count),
              sent: BigInt(c.sent),
              failed: BigInt(c.failed),
              pending: BigInt(c.pending),
            }),
          ),
        byPeriod: [...stats.byPeriod.entries()]
          .sort(([a], [b]) => a - b)
          .map(([at, c]) =>
            create(PeriodCountSchema, {
              periodStart: timestampFromDate(new Date(at)),
              count: BigInt(c.count),
              sent: BigInt(c.sent),
              failed: BigInt(c.failed),
              pending: BigInt(c.pending),
            }),
          ),
      };
    },

    ...createTemplateAdmin({ db, catalog: deps.catalog }),

    async listDeadLetters(req) {
      const limit = pageSizeOf(req.pageSize);
      const tokens = createPageTokens({
        list: "dead-letters",
        filters: { includeResolved: req.includeResolved },
        cursor: { at: "timestamp", id: "uuid" },
      });
      const after = tokens.decode(req.pageToken);
      const rows = await listDeadLetters(db, {
        limit: limit + 1,
        includeResolved: req.includeResolved,
        ...(after === undefined ? {} : { after }),
      });
      const page = tokens.page(rows, limit, (row) => ({ at: row.dead_lettered_at, id: row.id }));
      return { deadLetters: page.items.map(toDeadLetter), nextPageToken: page.nextPageToken };
    },

    async replayDeadLetter(req) {
      if (!isUuid(req.deadLetterId))
        throw invalidArgument("dead_letter_id", "must be a dead letter id (UUID)");
      const result = await deps.replayer.replay(req.deadLetterId);
      return { deadLetter: toDeadLetter(result.deadLetter), resolved: result.resolved, error: result.error };
    },
  };
}

function recipientOf(to: string, violations: FieldViolation[]): string {
  const email = normaliseEmail(to);
  const problem = emailProblem(email);
  if (problem !== undefined) violations.push({ field: "to", description: problem });
  return email;
}

function localeOf(locale: string, violations: FieldViolation[]): string {
  const canonical = normaliseLocale(locale);
  if (canonical === undefined)
    violations.push({ field: "locale", description: "must be a BCP 47 language tag such as en or fr-CA" });
  return canonical ?? "";
}

function userIdOf(userId: string, violations: FieldViolation[]): string | undefined {
  if (userId === "") return undefined;
  if (!isUuid(userId)) violations.push({ field: "user_id", description: "must be a UUID" });
  return userId.toLowerCase();
}

function checkVariables(variables: Record<string, string>, violations: FieldViolation[]): void {
  const problem = variablesProblem(variables);
  if (problem !== undefined) violations.push({ field: "variables", description: problem });
}

export function toDelivery(row: DeliveryRow): Delivery {
  const pending = row.status === "queued" || row.status === "deferred";
  return create(DeliverySchema, {
    id: row.id,
    status: statusToProto(row.status),
    recipient: row.recipient,
    userId: row.user_id ?? "",
    template: row.template ?? "",
    locale: row.locale,
    templateVersion: row.template_version,
    subject: row.subject,
    // Stored redacted already; re-applied so a secret can never come back out through the API.
    variables: Object.fromEntries(
      Object.entries(row.variables).map(([k, v]) => [k, isSecretVariable(k) ? "[redacted]" : v]),
    ),
    source: row.source,
    attempts: row.attempts,
    lastError: row.last_error ?? "",
    messageId: row.message_id,
    createTime: timestampFromDate(row.created_at),
    ...(pending ? { nextAttemptTime: timestampFromDate(row.next_attempt_at) } : {}),
    ...(row.sent_at === null ? {} : { sendTime: timestampFromDate(row.sent_at) }),
  });
}

function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return create(DeadLetterSchema, {
    id: row.id,
    consumer: row.consumer,
    subject: row.subject,
    eventId: row.event_id ?? "",
    error: row.last_replay_error ?? row.error,
    deliveries: row.deliveries,
    deadLetterTime: timestampFromDate(row.dead_lettered_at),
    replays: row.replays,
    ...(row.resolved_at === null ? {} : { resolveTime: timestampFromDate(row.resolved_at) }),
    payloadBytes: row.payload.length,
  });
}
