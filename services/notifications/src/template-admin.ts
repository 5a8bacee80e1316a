import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArguments, type FieldViolation } from "@zero/kit/errors";
import { createPageTokens, pageSizeOf } from "@zero/kit/page-token";
import { requirePrincipal } from "@zero/kit/principal";
import {
  TemplateSchema,
  type NotificationService,
  type Template,
} from "@zero/proto/zero/notifications/v1/notifications_pb";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { variablesProblem } from "./delivery.js";
import {
  MAX_DESCRIPTION,
  normaliseLocale,
  renderTemplate,
  TEMPLATE_NAME,
  templateProblems,
  type TemplateContent,
} from "./template.js";
import { toResolved, type TemplateCatalog } from "./template-catalog.js";
import {
  activateTemplateVersion,
  findActiveTemplate,
  findTemplateVersion,
  insertTemplate,
  insertTemplateVersion,
  listActiveTemplates,
  lockTemplate,
  type TemplateWithVersion,
} from "./template-store.js";

// The template RPCs of zero.notifications.v1.NotificationService (admin only): create, publish a
// new version, read, list, preview. Versions are immutable; publishing makes the new one active
// for every message queued from then on and writes it through the cache.

type TemplateRpcs = Pick<
  ServiceImpl<typeof NotificationService>,
  "createTemplate" | "publishTemplateVersion" | "getTemplate" | "listTemplates" | "previewTemplate"
>;

export function createTemplateAdmin(deps: { db: Kysely<DB>; catalog: TemplateCatalog }): TemplateRpcs {
  const { db } = deps;

  function validKey(
    name: string,
    locale: string,
    violations: FieldViolation[],
  ): { name: string; locale: string } {
    const trimmed = name.trim();
    if (trimmed === "") violations.push({ field: "name", description: "is required" });
    else if (!TEMPLATE_NAME.test(trimmed))
      violations.push({
        field: "name",
        description: "must be 2 to 63 lower-case letters, digits or -, starting with a letter",
      });
    const canonical = normaliseLocale(locale);
    if (canonical === undefined)
      violations.push({ field: "locale", description: "must be a BCP 47 language tag such as en or fr-CA" });
    return { name: trimmed, locale: canonical ?? "" };
  }

  function validContent(req: { subject: string; htmlBody: string; textBody: string; description?: string }) {
    const content: TemplateContent = { subject: req.subject, html: req.htmlBody, text: req.textBody };
    const violations = templateProblems(content);
    if (req.description !== undefined && req.description.length > MAX_DESCRIPTION)
      violations.push({ field: "description", description: `must be at most ${MAX_DESCRIPTION} characters` });
    return { content, violations };
  }

  async function publish(
    trx: Kysely<DB>,
    key: { name: string; locale: string },
    version: number,
    content: TemplateContent,
    createdBy: string,
  ): Promise<void> {
    await insertTemplateVersion(trx, {
      ...key,
      version,
      subject: content.subject,
      html_body: content.html,
      text_body: content.text,
      created_by: createdBy,
    });
  }

  return {
    async createTemplate(req, ctx) {
      const admin = requirePrincipal(ctx).subject;
      const violations: FieldViolation[] = [];
      const key = validKey(req.name, req.locale, violations);
      const { content, violations: contentViolations } = validContent(req);
      violations.push(...contentViolations);
      if (violations.length > 0) throw invalidArguments(violations);

      const row = await db.transaction().execute(async (trx) => {
        const created = await insertTemplate(trx, { ...key, description: req.description.trim() });
        if (!created) {
          throw new DomainError(
            "already_exists",
            `template "${key.name}" (${key.locale}) already exists: publish a new version instead (POST /v1/notifications/templates/${key.name}/versions)`,
            { fieldViolations: [{ field: "name", description: "already exists for this locale" }] },
          );
        }
        await publish(trx, key, 1, content, admin);
        return findActiveTemplate(trx, key.name, key.locale);
      });
      if (row === undefined) throw new Error("the created template vanished");
      await deps.catalog.published(toResolved(row));
      return { template: toTemplate(row) };
    },

    async publishTemplateVersion(req, ctx) {
      const admin = requirePrincipal(ctx).subject;
      const violations: FieldViolation[] = [];
      const key = validKey(req.name, req.locale, violations);
      const { content, violations: contentViolations } = validContent(req);
      violations.push(...contentViolations);
      if (violations.length > 0) throw invalidArguments(violations);

      const row = await db.transaction().execute(async (trx) => {
        // The row lock serialises concurrent publishes: each gets the next version number.
        const template = await lockTemplate(trx, key.name, key.locale);
        if (template === undefined) throw notFound(key);
        // Versions only ever grow and the newest is the active one.
        const next = template.active_version + 1;
        await publish(trx, key, next, content, admin);
        await activateTemplateVersion(
          trx,
          key,
          next,
          req.description.trim() === "" ? undefined : req.description.trim(),
        );
        return findActiveTemplate(trx, key.name, key.locale);
      });
      if (row === undefined) throw new Error("the published template vanished");
      // After the commit: the cache never holds a version Postgres might still roll back.
      await deps.catalog.published(toResolved(row));
      return { template: toTemplate(row) };
    },

    async getTemplate(req) {
      const violations: FieldViolation[] = [];
      const key = validKey(req.name, req.locale, violations);
      if (req.version < 0)
        violations.push({ field: "version", description: "must be positive (0 = the active one)" });
      if (violations.length > 0) throw invalidArguments(violations);
      const row =
        req.version === 0
          ? await findActiveTemplate(db, key.name, key.locale)
          : await findTemplateVersion(db, key.name, key.locale, req.version);
      if (row === undefined) throw notFound(key, req.version);
      return { template: toTemplate(row) };
    },

    async listTemplates(req) {
      const limit = pageSizeOf(req.pageSize, { default: 50 });
      const tokens = createPageTokens({ list: "templates", cursor: { name: "text", locale: "text" } });
      const after = tokens.decode(req.pageToken);
      const rows = await listActiveTemplates(db, {
        limit: limit + 1,
        ...(after === undefined ? {} : { after }),
      });
      const page = tokens.page(rows, limit, (row) => ({ name: row.name, locale: row.locale }));
      return { templates: page.items.map(toTemplate), nextPageToken: page.nextPageToken };
    },

    async previewTemplate(req) {
      const violations: FieldViolation[] = [];
      const key = validKey(req.name, req.locale, violations);
      const variables = variablesProblem(req.variables);
      if (variables !== undefined) violations.push({ field: "variables", description: variables });
      const draft = req.draftSubject !== "" || req.draftHtmlBody !== "" || req.draftTextBody !== "";
      let content: TemplateContent | undefined;
      if (draft) {
        content = { subject: req.draftSubject, html: req.draftHtmlBody, text: req.draftTextBody };
        violations.push(
          ...templateProblems(content, {
            subject: "draft_subject",
            html: "draft_html_body",
            text: "draft_text_body",
          }),
        );
      }
      if (req.version < 0)
        violations.push({ field: "version", description: "must be positive (0 = the active one)" });
      if (violations.length > 0) throw invalidArguments(violations);

      let version = 0;
      if (content === undefined) {
        const row =
          req.version === 0
            ? await findActiveTemplate(db, key.name, key.locale)
            : await findTemplateVersion(db, key.name, key.locale, req.version);
        if (row === undefined) throw notFound(key, req.version);
        content = toResolved(row).content;
        version = row.version;
      }
      const rendered = renderTemplate(content, req.variables);
      return { subject: rendered.subject, htmlBody: rendered.html, textBody: rendered.text, version };
    },
  };
}

function notFound(key: { name: string; locale: string }, version = 0): DomainError {
  return new DomainError(
    "not_found",
    version === 0
      ? `template "${key.name}" (${key.locale}) does not exist: list them with GET /v1/notifications/templates`
      : `template "${key.name}" (${key.locale}) has no version ${version}`,
  );
}

export function toTemplate(row: TemplateWithVersion): Template {
  return create(TemplateSchema, {
    name: row.name,
    locale: row.locale,
    description: row.description,
    version: row.version,
    active: row.version === row.active_version,
    subject: row.subject,
    htmlBody: row.html_body,
    textBody: row.text_body,
    createTime: timestampFromDate(row.created_at),
    createdBy: row.created_by,
  });
}
