import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { DomainError } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import type { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";

// The GDPR export (art. 15 and 20): users' own data plus what every other service holding
// personal data answers to ExportPersonalData, called with this service's own service token.
// All or nothing: a service that cannot answer fails the export with its name, because an export
// that is silently missing a part would tell the person Zero holds less than it does.

export interface PersonalDataSource {
  /** The service's name (`auth`, `payments`, …): its key in the export document. */
  name: string;
  client: Client<typeof PersonalDataService>;
}

export interface PersonalDataExportDeps {
  /** This service's name and data for the user. */
  own: { name: string; collect(userId: string): Promise<JsonObject> };
  sources: readonly PersonalDataSource[];
  /** Obtains the service token the sources' clients send (called first, so auth being down is named). */
  serviceToken: () => Promise<string>;
  /** Deadline for each source's answer. */
  timeoutMs: number;
  /** Exports prepared at once by this process; more are refused with `resource_exhausted`. */
  maxConcurrent: number;
  logger: Logger;
}

export interface PersonalDataExport {
  /** Service name → that service's data about the user, users' own first. */
  collect(userId: string, signal?: AbortSignal): Promise<Record<string, JsonObject>>;
}

export function createPersonalDataExport(deps: PersonalDataExportDeps): PersonalDataExport {
  const { logger } = deps;
  let running = 0;

  const ask = async (source: PersonalDataSource, userId: string, signal?: AbortSignal) => {
    try {
      const res = await source.client.exportPersonalData(
        { userId },
        { timeoutMs: deps.timeoutMs, ...(signal === undefined ? {} : { signal }) },
      );
      if (res.service !== source.name) {
        logger.warn(
          { source: source.name, answered: res.service },
          "personal data source answered under another name",
        );
      }
      return { ok: true as const, name: source.name, data: res.data ?? {} };
    } catch (error) {
      const cause = ConnectError.from(error);
      logger.error(
        { source: source.name, code: Code[cause.code], err: cause },
        "personal data source failed",
      );
      return { ok: false as const, name: source.name, cause };
    }
  };

  return {
    async collect(userId, signal) {
      if (running >= deps.maxConcurrent) {
        throw new DomainError(
          "resource_exhausted",
          "too many data exports are being prepared right now: retry in a few seconds",
          { reason: "EXPORT_BUSY" },
        );
      }
      running += 1;
      try {
        if (deps.sources.length > 0) {
          try {
            await deps.serviceToken();
          } catch (cause) {
            throw new DomainError(
              "unavailable",
              "the export cannot be prepared: the auth service cannot vouch for this service right now; retry shortly",
              { reason: "EXPORT_SOURCE_UNAVAILABLE", cause },
            );
          }
        }
        const [own, ...answers] = await Promise.all([
          deps.own.collect(userId),
          ...deps.sources.map((source) => ask(source, userId, signal)),
        ]);
        const failed = answers.filter((a) => !a.ok).map((a) => a.name);
        if (failed.length > 0) {
          const names = failed.join(", ");
          throw new DomainError(
            "unavailable",
            `the export cannot be complete: the ${names} service${failed.length > 1 ? "s are" : " is"} unavailable; retry shortly`,
            { reason: "EXPORT_SOURCE_UNAVAILABLE" },
          );
        }
        const document: Record<string, JsonObject> = { [deps.own.name]: own };
        for (const answer of answers) if (answer.ok) document[answer.name] = answer.data;
        return document;
      } finally {
        running -= 1;
      }
    },
  };
}
