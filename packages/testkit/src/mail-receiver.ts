import { setTimeout as sleep } from "node:timers/promises";
import { SMTPServer } from "smtp-server";
import { freePort } from "./ports.js";

// A real SMTP receiver (smtp-server) that records what it accepted and can misbehave on demand.

export interface ReceivedMail {
  messageId: string;
  to: string[];
  subject: string;
  raw: string;
  at: number;
}

export type ReceiverMode = "accept" | "tempfail" | "reject";

export interface MailReceiver {
  port: number;
  url: string;
  mails: ReceivedMail[];
  /** 451 on DATA (try later) or 550 on RCPT (no such user) instead of accepting. */
  mode: ReceiverMode;
  /** Time the server takes to accept a message once its data arrived (a slow MTA). */
  delayMs: number;
  /** Distinct Message-IDs received, with how often each arrived. */
  counts(): Map<string, number>;
  /** Closes the port (connections are dropped). */
  stop(): Promise<void>;
  /** Listens again on the same port (no-op when listening). */
  start(): Promise<void>;
}

export async function startMailReceiver(): Promise<MailReceiver> {
  const port = await freePort();
  const receiver: MailReceiver = {
    port,
    url: `smtp://127.0.0.1:${port}`,
    mails: [],
    mode: "accept",
    delayMs: 0,
    counts() {
      const counts = new Map<string, number>();
      for (const m of receiver.mails) counts.set(m.messageId, (counts.get(m.messageId) ?? 0) + 1);
      return counts;
    },
    stop: () => Promise.resolve(),
    start: () => Promise.resolve(),
  };
  let server: SMTPServer | undefined;
  receiver.start = async () => {
    if (server !== undefined) return; // already listening
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      closeTimeout: 100,
      onRcptTo(_address, _session, callback) {
        if (receiver.mode === "reject") {
          callback(Object.assign(new Error("5.1.1 no such user here"), { responseCode: 550 }));
          return;
        }
        callback();
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => void setTimeout(accept, receiver.delayMs));
        const accept = () => {
          if (receiver.mode === "tempfail") {
            callback(Object.assign(new Error("4.3.0 try again later"), { responseCode: 451 }));
            return;
          }
          const raw = Buffer.concat(chunks).toString("utf8");
          receiver.mails.push({
            messageId: header(raw, "message-id") ?? "",
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: header(raw, "subject") ?? "",
            raw,
            at: Date.now(),
          });
          callback(null);
        };
      },
    });
    const s = server;
    // A client that dies mid-session (the crash tests kill the sender) resets its socket: that is
    // the scenario, not a failure of the receiver.
    s.on("error", () => undefined);
    for (let attempt = 1; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.listen(port, "127.0.0.1", () => {
            s.off("error", reject);
            resolve();
          });
        });
        return;
      } catch (error) {
        // The port of a just-closed listener can stay busy for a moment.
        if (attempt >= 50) throw error;
        await sleep(100);
      }
    }
  };
  receiver.stop = async () => {
    const s = server;
    server = undefined;
    if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await receiver.start();
  return receiver;
}

/** A header of a raw message (unfolded). */
export function header(raw: string, name: string): string | undefined {
  const head = raw.split(/\r?\n\r?\n/)[0] ?? "";
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}
