import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@zero/kit/log";
import nodemailer, { type NodemailerError } from "nodemailer";
import { redactEmail } from "./delivery.js";

// How a rendered message leaves the service: nodemailer over SMTP (`SMTP_URL`, pooled
// connections), or — with no SMTP server configured — a `.eml` file per message in the mail
// folder, so a fresh checkout runs the whole platform and a developer can open what was "sent".

export interface OutgoingMail {
  deliveryId: string;
  /** `<id@domain>`, identical on every attempt. */
  messageId: string;
  from: string;
  to: string;
  subject: string;
  html: string | null;
  text: string | null;
}

export interface MailTransport {
  /** `smtp` or `file`, for logs and span attributes. */
  readonly kind: "smtp" | "file";
  /** Resolves with the server's answer (or the file written); rejects with a MailSendError. */
  send(mail: OutgoingMail): Promise<string>;
  close(): void;
}

/** A failed send; `permanent` when retrying the same message would fail the same way. */
export class MailSendError extends Error {
  readonly permanent: boolean;
  constructor(message: string, permanent: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = "MailSendError";
    this.permanent = permanent;
  }
}

export interface MailTransportOptions {
  /** `smtp://user:pass@host:port` or `smtps://…`; nodemailer options as query parameters. */
  smtpUrl: string | undefined;
  /** Where `.eml` files go when there is no SMTP server. */
  mailDir: string;
  /** Parallel SMTP connections. */
  maxConnections: number;
  logger: Logger;
}

// A hung server must not hold a worker (and its locked row) for minutes.
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };

export function createMailTransport(opts: MailTransportOptions): MailTransport {
  return opts.smtpUrl === undefined ? createFileTransport(opts) : createSmtpTransport(opts.smtpUrl, opts);
}

function createSmtpTransport(url: string, opts: MailTransportOptions): MailTransport {
  const transporter = nodemailer.createTransport({
    url,
    pool: true,
    maxConnections: opts.maxConnections,
    // The worker owns retries and their backoff; a silent requeue inside nodemailer would hide
    // attempts from the delivery's record.
    maxRequeues: 0,
    ...SMTP_TIMEOUTS,
  });
  return {
    kind: "smtp",
    async send(mail) {
      try {
        const info = await transporter.sendMail(toNodemailer(mail));
        return info.response;
      } catch (error) {
        throw toSendError(error);
      }
    },
    close() {
      transporter.close();
    },
  };
}

function createFileTransport(opts: MailTransportOptions): MailTransport {
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });
  const logger = opts.logger.child({ component: "mail-file" });
  let announced = false;
  return {
    kind: "file",
    async send(mail) {
      let raw: Buffer;
      try {
        const info = await composer.sendMail(toNodemailer(mail));
        raw = info.message as Buffer;
      } catch (error) {
        throw new MailSendError(`cannot build the message: ${(error as Error).message}`, true, error);
      }
      // Named by delivery id and written atomically: a resend after a crash replaces the file
      // instead of adding a second one.
      const file = join(opts.mailDir, `${mail.deliveryId}.eml`);
      try {
        await mkdir(opts.mailDir, { recursive: true });
        await writeFile(`${file}.tmp`, raw, { mode: 0o600 });
        await rename(`${file}.tmp`, file);
      } catch (error) {
        throw new MailSendError(`cannot write ${file}: ${(error as Error).message}`, false, error);
      }
      if (!announced) {
        logger.info({ dir: opts.mailDir }, "no SMTP_URL: mail is written as .eml files");
        announced = true;
      }
      logger.info({ to: redactEmail(mail.to), file, subject_length: mail.subject.length }, "mail written");
      return `written to ${file}`;
    },
    close() {
      composer.close();
    },
  };
}

function toNodemailer(mail: OutgoingMail) {
  return {
    messageId: mail.messageId,
    from: mail.from,
    to: mail.to,
    subject: mail.subject,
    ...(mail.html === null || mail.html === "" ? {} : { html: mail.html }),
    ...(mail.text === null || mail.text === "" ? {} : { text: mail.text }),
    // Nodemailer must not read attachments or embedded content from files or URLs on our behalf.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/**
 * Permanent: the server refused this message for good (5xx except 503) or it cannot be built.
 * Everything else — connection refused, timeouts, 4xx, authentication while the operator fixes
 * the credentials — is worth another attempt.
 */
function toSendError(error: unknown): MailSendError {
  const e = error as NodemailerError;
  // EMESSAGE also tags a 4xx answer to DATA: only without an SMTP reply is it our message's fault.
  const permanent = e.permanent === true || (e.code === "EMESSAGE" && e.responseCode === undefined);
  const detail = e.response ?? e.message;
  const code = e.responseCode === undefined ? (e.code ?? "error") : `${e.responseCode}`;
  return new MailSendError(`${code}: ${detail}`.slice(0, 500), permanent, error);
}
