import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { DomainError, invalidArgument } from "@zero/kit/errors";
import {
  BookSchema,
  type TranscodingService,
  type WatchBooksResponse,
} from "@zero/proto/zero/testing/v1/transcoding_pb";

// zero.testing.v1.TranscodingService: answers with what it received, so a client sees exactly how
// the gateway transcoded its REST request. Nothing is stored; the few checks here are the ones a
// real service would make (the gateway already enforced REQUIRED fields for REST callers; gRPC
// callers reach this directly).

const MAX_WATCH_COUNT = 100;
const MAX_WATCH_INTERVAL_MS = 1_000;

export const transcodingService: ServiceImpl<typeof TranscodingService> = {
  getShelf: (req) => ({ shelf: { id: req.shelf?.id ?? "", theme: req.shelf?.theme ?? "" } }),

  getBook(req) {
    if (req.name === "") throw invalidArgument("name", "required field is missing");
    return { book: { name: req.name } };
  },

  listBooks: (req) => ({ books: [], nextPageToken: "", received: req }),

  createBook(req) {
    if (!req.book || req.book.title === "") throw invalidArgument("book.title", "required field is missing");
    // OUTPUT_ONLY fields are the service's to set, whatever the client sent.
    const book = create(BookSchema, { ...req.book, createTime: timestampNow() });
    return { book, parent: req.parent, requestId: req.requestId };
  },

  updateBook: (req) => ({
    ...(req.book ? { book: req.book } : {}),
    ...(req.updateMask ? { updateMask: req.updateMask } : {}),
  }),

  moveBook(req) {
    if (req.destination === "") throw invalidArgument("destination", "required field is missing");
    const id = req.name.split("/").pop() ?? "";
    return { name: `${req.destination}/books/${id}`, previousName: req.name, note: req.note };
  },

  deleteBook: (req) => ({ name: req.name, etag: req.etag }),

  getFile: (req) => ({ path: req.path, segments: req.path === "" ? [] : req.path.split("/") }),

  purgeShelf: (req) => ({ shelfId: req.shelfId, force: req.force }),

  echoValues: (req) => ({ received: req }),

  getHeaders(_req, ctx) {
    const headers: Record<string, string> = {};
    for (const name of ["x-request-id", "idempotency-key", "user-agent", "x-forwarded-for"]) {
      const value = ctx.requestHeader.get(name);
      if (value !== null) headers[name] = value;
    }
    const authorization = ctx.requestHeader.get("authorization");
    if (authorization !== null) headers["authorization"] = authorization.split(" ", 1)[0]!;
    return { headers };
  },

  async *watchBooks(req, ctx) {
    if (req.count < 0 || req.count > MAX_WATCH_COUNT) {
      throw invalidArgument("count", `must be 0 to ${MAX_WATCH_COUNT}`);
    }
    const intervalMs = req.interval
      ? Number(req.interval.seconds) * 1000 + Math.floor(req.interval.nanos / 1e6)
      : 0;
    if (intervalMs < 0 || intervalMs > MAX_WATCH_INTERVAL_MS) {
      throw invalidArgument("interval", `must be 0s to ${MAX_WATCH_INTERVAL_MS / 1000}s`);
    }
    for (let index = 0; index < req.count; index++) {
      if (index > 0 && intervalMs > 0) await sleep(intervalMs, ctx.signal);
      const book = create(BookSchema, {
        name: `shelves/watch/books/${index}`,
        title: `${req.title || "Book"} ${index}`,
      });
      yield { book, index } satisfies Partial<WatchBooksResponse>;
    }
  },
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new DomainError("aborted", "the call was cancelled"));
      },
      { once: true },
    );
  });
}
